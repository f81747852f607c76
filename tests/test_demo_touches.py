"""The sample company's planted touches: what account managers did after an earlier run's
at-risk list, the customers a touch kept buying, and `/crm model`'s comparison on it."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select

from crmbot.core.db import read_session
from crmbot.core.models import ModelRun, Touch
from crmbot.demo import generate_company
from crmbot.demo.touches import CAMPAIGN_DAYS, TOUCH_FILE, past_run_day, plant_touches
from crmbot.runs import train
from crmbot.runs.outcomes import touch_outcomes
from tests.conftest import SampleCompany, copy_of_sample


def test_touches_are_planted_before_the_last_day_by_the_owners(tmp_path: Path) -> None:
    truth = generate_company(tmp_path / "a", customers=600, seed=3)
    again = generate_company(tmp_path / "b", customers=600, seed=3)
    first = (tmp_path / "a" / TOUCH_FILE).read_bytes()
    assert first == (tmp_path / "b" / TOUCH_FILE).read_bytes()  # same seed, same touches
    assert again.saved_customer_ids == truth.saved_customer_ids
    touches = pd.read_csv(tmp_path / "a" / TOUCH_FILE, dtype=str, keep_default_na=False)
    customers = pd.read_csv(tmp_path / "a" / "customers.csv", dtype=str, keep_default_na=False)
    assert len(touches) == truth.touches > 0
    created = pd.to_datetime(touches["created_at"])
    past = pd.Timestamp(past_run_day(truth.as_of))
    assert created.min() > past + pd.Timedelta(days=1) - pd.Timedelta(seconds=1)
    assert created.max() < pd.Timestamp(truth.as_of) + pd.Timedelta(days=1)
    owners = customers.set_index("customer_id")["owner"]
    assert (touches["author"] == owners.reindex(touches["customer_id"]).to_numpy()).all()
    assert (touches["author"] != "").all()
    assert set(touches["kind"]) <= {"call", "email", "meeting"}
    assert set(touches["outcome"]) <= {"", "reached", "no_answer", "saved", "lost", "false_alarm"}


def test_saved_customers_buy_again_after_the_touch(tmp_path: Path) -> None:
    truth = generate_company(tmp_path, customers=1500, seed=5)
    assert truth.saved_customer_ids
    touches = pd.read_csv(tmp_path / TOUCH_FILE, dtype=str, keep_default_na=False)
    orders = pd.read_csv(tmp_path / "orders.csv", dtype={"customer_id": str})
    orders = orders[orders["amount"] >= 0]
    window_end = pd.Timestamp(past_run_day(truth.as_of) + timedelta(days=CAMPAIGN_DAYS + 1))
    for customer in truth.saved_customer_ids:
        touched = pd.to_datetime(touches.loc[touches["customer_id"] == customer, "created_at"])
        first_touch = touched[touched < window_end].min()
        bought = pd.to_datetime(orders.loc[orders["customer_id"] == customer, "ordered_at"])
        assert (bought > first_touch).any(), customer
        # The generator's story agrees: if they stopped again, it was after the touch.
        if customer in truth.churned_on:
            assert pd.Timestamp(truth.churned_on[customer]) >= first_touch.normalize()


@pytest.mark.slow  # trains the earlier run of the sample company
def test_the_sample_company_shows_touched_accounts_churning_less(
    sample_company: SampleCompany, tmp_path: Path
) -> None:
    engine = copy_of_sample(sample_company, tmp_path)
    past = train(engine, sample_company.settings, past_run_day(sample_company.as_of))
    assert past.status in ("succeeded", "rejected"), past.error
    planted = plant_touches(engine, sample_company.directory, run_id=past.run_id)
    assert planted == sample_company.truth.touches
    assert plant_touches(engine, sample_company.directory, run_id=past.run_id) == 0  # once
    with read_session(engine) as session:
        assert session.execute(select(func.count()).select_from(Touch)).scalar_one() == planted
        run = session.get(ModelRun, past.run_id)
        latest = session.execute(select(func.max(Touch.created_at))).scalar_one()
    assert run is not None and latest < datetime.combine(
        sample_company.as_of + timedelta(days=1), datetime.min.time()
    )
    result = touch_outcomes(engine, run, default_horizon=90)
    assert result["touched"] >= 50 and result["untouched"] >= 50
    # Touches save some customers about to stop: touched accounts churn less than untouched
    # ones of the same predicted risk.
    assert result["difference"] < 0
    assert result["false_alarms"]["outcomes"] > 0
    engine.dispose()
