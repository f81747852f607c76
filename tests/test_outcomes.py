"""Outcomes that teach: the churn of touched accounts on a past at-risk list against
untouched accounts of the same predicted risk, and false alarms by reason — the pure
comparison, read from the database on every database, in `/crm model`, and on the sample
company with its planted touches."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy.engine import Engine

from crmbot.analytics.outcomes import compare_touched, reason_kind
from crmbot.core.config import Settings
from crmbot.core.db import read_session, write_session
from crmbot.core.models import ActiveRun, Customer, CustomerScore, ModelRun, Order, Touch
from crmbot.runs.outcomes import (
    NotMeasurable,
    latest_order_day,
    measurable_run,
    touch_outcomes,
)
from tests.support.small_crm import ChatBot

PAST = date(2026, 3, 31)
TODAY = date(2026, 6, 30)


def accounts(rows: list[tuple[float, bool, bool, str | None, str | None]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["churn_risk", "touched", "churned", "top_reason", "outcome"])


def test_touched_are_compared_with_untouched_of_the_same_risk() -> None:
    rows = (
        # 50-60%: 2 touched (1 churned), 4 untouched (1 churned)
        [(0.55, True, True, None, None), (0.52, True, False, None, None)]
        + [(0.51, False, c, None, None) for c in (True, False, False, False)]
        # 90-100%: 2 touched (1 churned), 2 untouched (2 churned)
        + [(0.95, True, True, None, None), (0.99, True, False, None, None)]
        + [(0.91, False, True, None, None), (1.0, False, True, None, None)]
        # 70-80%: touched only — no comparable untouched account, left out of the match
        + [(0.75, True, True, None, None)]
    )
    result = compare_touched(accounts(rows))
    assert (result["accounts"], result["touched"], result["untouched"]) == (11, 5, 6)
    assert result["matched_touched"] == 4
    assert result["touched_churn"] == pytest.approx(2 / 4)
    # Each band's untouched rate weighted by its touched accounts: (2 * 1/4 + 2 * 1) / 4.
    assert result["untouched_churn"] == pytest.approx((2 * 0.25 + 2 * 1.0) / 4)
    assert result["difference"] == pytest.approx(0.5 - 0.625)
    assert result["margin"] > 0
    bands = {band["from"]: band for band in result["bands"]}
    assert (bands[0.7]["touched"], bands[0.7]["untouched"]) == (1, 0)
    assert bands[0.9]["untouched_churn"] == 1.0


def test_a_risk_on_a_band_edge_falls_in_the_band_it_starts() -> None:
    rows = [
        (0.6, True, True, None, None),
        (0.7, False, False, None, None),
        (0.5, False, True, None, None),
    ]
    bands = {band["from"]: band for band in compare_touched(accounts(rows))["bands"]}
    assert (bands[0.5]["touched"], bands[0.5]["untouched"]) == (0, 1)
    assert (bands[0.6]["touched"], bands[0.7]["untouched"]) == (1, 1)


def test_nothing_to_compare_without_untouched_accounts_of_the_same_risk() -> None:
    result = compare_touched(
        accounts([(0.6, True, True, None, None), (0.95, False, True, None, None)])
    )
    assert result["matched_touched"] == 0
    assert result["touched_churn"] is None and result["difference"] is None


def test_false_alarms_by_the_kind_of_top_reason() -> None:
    tickets = [
        "2 unresolved tickets (typical customer: 0.3)",
        "1 unresolved ticket (typical customer: 0.3)",
    ]
    pattern = "purchase pattern: 94% chance of no order in the next 90 days (typical customer: 37%)"
    rows = (
        [(0.8, True, False, tickets[i % 2], "false_alarm") for i in range(3)]
        + [(0.8, True, True, tickets[0], "lost") for _ in range(3)]
        + [(0.9, True, True, pattern, "no_answer") for _ in range(5)]
        + [(0.9, True, False, pattern, None)]  # no outcome logged: not counted
        + [(0.9, False, False, pattern, "false_alarm")]  # untouched: not an outcome of a touch
        + [(0.6, True, False, "last CSAT 2/5", "false_alarm")]  # too few to show
    )
    alarms = compare_touched(accounts(rows))["false_alarms"]
    assert (alarms["outcomes"], alarms["false_alarms"]) == (12, 4)
    assert alarms["by_reason"] == [
        {"reason": "… unresolved tickets", "outcomes": 6, "false_alarms": 3, "rate": 0.5},
        {
            "reason": "purchase pattern: …% chance of no order in the next … days",
            "outcomes": 5,
            "false_alarms": 0,
            "rate": 0.0,
        },
    ]
    assert (
        reason_kind("no unresolved tickets (typical customer: 0.3)")[0]
        == reason_kind("3 unresolved tickets")[0]
    )


def plant_past_list(engine: Engine) -> dict[str, int]:
    """A past run as of PAST whose horizon has passed: 8 accounts at risk, 3 touched in
    the window (one of them twice), 1 touched too late, 1 touched before the run; orders
    after PAST say who stayed; a live run as of TODAY."""
    with write_session(engine) as session:
        pks = {}
        for n in range(10):
            customer = Customer(customer_id=f"A{n}", name=f"Account {n}", owner="maria")
            session.add(customer)
            session.flush()
            assert customer.id is not None
            pks[f"A{n}"] = customer.id
        past = ModelRun(as_of=PAST, started_at=datetime(2026, 4, 1), status="succeeded")
        live = ModelRun(as_of=TODAY, started_at=datetime(2026, 7, 1), status="succeeded")
        session.add_all([past, live])
        session.flush()
        assert past.id is not None and live.id is not None
        risks = [0.55, 0.56, 0.57, 0.58, 0.93, 0.94, 0.95, 0.96, 0.2, 0.3]
        for n, risk in enumerate(risks):
            session.add(
                CustomerScore(
                    run_id=past.id,
                    customer_pk=pks[f"A{n}"],
                    churn_risk=risk,
                    churn_reasons=["2 unresolved tickets (typical customer: 0.3)"],
                )
            )
        session.add(ActiveRun(slot="scores", run_id=live.id, activated_at=datetime(2026, 7, 1)))
        # Who bought in the horizon (PAST, PAST + 90]: A0, A2, A4, A8, A9; A1 only before.
        for n, when in [(0, 10), (2, 80), (4, 45), (8, 5), (9, 60), (1, -3)]:
            session.add(
                Order(
                    order_id=f"O{n}",
                    customer_pk=pks[f"A{n}"],
                    ordered_at=datetime.combine(PAST, datetime.min.time()) + timedelta(days=when),
                    amount=50.0,
                )
            )
        session.add(
            Order(
                order_id="LAST",
                customer_pk=pks["A9"],
                ordered_at=datetime(2026, 6, 30, 12),
                amount=9.0,
            )
        )
        at = datetime.combine(PAST, datetime.min.time())
        for n, days, outcome in [
            (0, 2, "reached"),
            (0, 9, "saved"),  # the latest outcome counts
            (1, 5, "false_alarm"),
            (4, 29, None),
            (5, 31, "lost"),  # after the window: untouched for this list
            (6, 0, "reached"),  # on the run's day itself, before the list: untouched
        ]:
            session.add(
                Touch(
                    customer_pk=pks[f"A{n}"],
                    kind="call",
                    author="maria",
                    created_at=at + timedelta(days=days, hours=10),
                    outcome=outcome,
                    run_id=past.id,
                )
            )
    return {"past": past.id, "live": live.id}


def test_a_past_list_is_measured_from_the_database(storage_engine: Engine) -> None:
    ids = plant_past_list(storage_engine)
    latest = latest_order_day(storage_engine)
    assert latest == TODAY
    with read_session(storage_engine) as session:
        run = measurable_run(session=session, latest_order=latest, default_horizon=90)
        assert run is not None and run.id == ids["past"]
        live = session.get(ModelRun, ids["live"])
    result = touch_outcomes(storage_engine, run, default_horizon=90)
    assert (result["run"], result["as_of"], result["window_days"]) == (
        ids["past"],
        "2026-03-31",
        30,
    )
    assert (result["accounts"], result["touched"], result["untouched"]) == (8, 3, 5)
    # Touched: A0 (bought), A1 (did not), A4 (bought) -> 1 of 3 churned.
    assert result["touched_churn"] == pytest.approx(1 / 3)
    # 50-60% untouched: A2 bought, A3 did not (1/2); 90-100% untouched: A5, A6, A7 did not.
    assert result["untouched_churn"] == pytest.approx((2 * 0.5 + 1 * 1.0) / 3)
    alarms = result["false_alarms"]
    assert (alarms["outcomes"], alarms["false_alarms"]) == (2, 1)  # A0 saved, A1 false alarm
    with pytest.raises(NotMeasurable, match="not in the data yet"):
        assert live is not None
        touch_outcomes(storage_engine, live, default_horizon=90)


def test_a_list_whose_horizon_has_not_passed_is_not_measured(storage_engine: Engine) -> None:
    plant_past_list(storage_engine)
    with read_session(storage_engine) as session:
        early = measurable_run(
            session=session, latest_order=PAST + timedelta(days=60), default_horizon=90
        )
        assert early is None
        assert measurable_run(session=session, latest_order=None, default_horizon=90) is None


def test_crm_model_shows_touched_against_untouched(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    plant_past_list(engine)
    reply = ChatBot(engine, settings, tmp_path).reply("model")
    fields = dict(reply.fields)
    touched = fields["Touched vs not"]
    assert touched.startswith("run 1's at-risk list (2026-03-31, risk ≥ 50%): 3 accounts of 8")
    assert "33% of them churned within 90 days, against 67% of untouched accounts" in touched
    assert "observational, not causal" in touched
    assert fields["False alarms"].startswith('50% of 2 logged outcomes said "not at risk"')


def test_crm_model_says_nothing_of_touches_without_a_past_list(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    from tests.support.small_crm import seed

    seed(engine)
    fields = dict(ChatBot(engine, settings, tmp_path).reply("model").fields)
    assert "Touched vs not" not in fields and "False alarms" not in fields
