"""Backtests: a past run against the orders after its day (`crmbot model backtest`, the
Backtest line of `/crm model`).

A hand-made book whose future is planted makes every figure checkable by hand (on SQLite,
PostgreSQL and MariaDB); the sample company, trained 90 days before its last day through
the real pipeline, is checked against its real outcome computed here from the orders.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlmodel import col
from typer.testing import CliRunner

from crmbot.analytics.backtest import backtest, purchase_model
from crmbot.analytics.clv import (
    BgNbdParams,
    conditional_expected_purchases,
    probability_no_purchase,
)
from crmbot.cli.main import app
from crmbot.core.config import Settings, get_settings
from crmbot.core.db import connect, read_session, write_session
from crmbot.core.models import Customer, CustomerScore, ModelRun, Order
from crmbot.runs import backtest as backtests
from crmbot.runs import train
from tests.conftest import RealBook, SampleCompany, copy_of_sample
from tests.support.scored_data import add_customers, add_run, book
from tests.support.small_crm import ChatBot

AS_OF = date(2026, 3, 31)
HORIZON = 90
# Days since the last purchase on AS_OF, per customer C000..C009 (the run's recency).
RECENCY = [200, 10, 0, 120, 30, 90, 5, 60, 20, 15]
# Who bought in (AS_OF, AS_OF + 90]: the rest churned. Risks fall from C000 (0.90) to
# C009 (0.45), so the ranking is good but not perfect.
STAYED = {"C001", "C004", "C006", "C007", "C008", "C009"}
SEGMENTS = ["Lost", "Champions", "Lost", "At risk", "Champions"] * 2
BGNBD = {"r": 0.6, "alpha": 25.0, "a": 0.7, "b": 2.4, "time_unit": "days"}


def hand_auc(churned: list[bool], score: list[float]) -> float:
    """Pairs (churned, stayed) ranked the right way round; ties count half."""
    pairs = [
        (s_c, s_s)
        for (c, s_c), (k, s_s) in product(zip(churned, score, strict=True), repeat=2)
        if c and not k
    ]
    return sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs) / len(pairs)


def at(day: date, hour: int = 10, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute))


def plant_book(engine: Engine) -> tuple[int, int]:
    """Ten scored buyers, a prospect and a customer who joined after the run; the run as of
    AS_OF (its future planted) and a newer live run without a future. (old, new) run ids."""
    accounts = book(10)
    pks = add_customers(engine, accounts)
    from tests.support.scored_data import Account

    prospect = Account(customer_id="P001", name="Prospect", churn_risk=0.5, clv=0.0)
    pks |= add_customers(engine, [prospect])
    old = add_run(engine, [*accounts, prospect], pks, as_of=AS_OF, activate=False)
    new = add_run(engine, accounts, pks, as_of=date(2026, 6, 30))
    later = add_customers(
        engine, [Account(customer_id="L001", name="Joined later", churn_risk=0.5, clv=1.0)]
    )
    orders: list[tuple[int, datetime, float]] = []
    for index, account in enumerate(accounts):
        pk = pks[account.customer_id]
        orders.append((pk, at(AS_OF - timedelta(days=300)), 50.0))
        orders.append((pk, at(AS_OF - timedelta(days=RECENCY[index])), 60.0))
    c = {account.customer_id: pks[account.customer_id] for account in accounts}
    after = AS_OF + timedelta(days=1)
    end = AS_OF + timedelta(days=HORIZON)
    orders += [
        # C001: two orders on one day and one on another: two purchase days.
        (c["C001"], at(after, 9), 40.0),
        (c["C001"], at(after, 17), 45.0),
        (c["C001"], at(after + timedelta(days=20)), 30.0),
        (c["C004"], at(end, 23, 30), 20.0),  # the horizon's last day counts
        (c["C006"], at(after + timedelta(days=40)), 20.0),
        (c["C007"], at(after + timedelta(days=3)), 0.0),  # a free order is a purchase
        (c["C008"], at(after + timedelta(days=60)), 25.0),
        (c["C009"], at(after + timedelta(days=10)), 25.0),
        (c["C009"], at(after + timedelta(days=11)), 25.0),
        (c["C009"], at(after + timedelta(days=12)), 25.0),
        # Churned all the same: a refund in the horizon, an order on the run's own day,
        # one the day after the horizon (the book's latest order).
        (c["C000"], at(after + timedelta(days=5)), -30.0),
        (c["C002"], at(AS_OF, 23, 30), 15.0),
        (c["C003"], at(end + timedelta(days=1)), 15.0),
        # Not known on AS_OF: not counted.
        (later["L001"], at(after + timedelta(days=2)), 99.0),
    ]
    with write_session(engine) as session:
        for number, (pk, when, amount) in enumerate(orders):
            session.add(
                Order(order_id=f"O{number:04d}", customer_pk=pk, ordered_at=when, amount=amount)
            )
        for index, account in enumerate(accounts):
            session.execute(
                update(CustomerScore)
                .where(
                    col(CustomerScore.run_id) == old,
                    col(CustomerScore.customer_pk) == pks[account.customer_id],
                )
                .values(recency_days=float(RECENCY[index]), frequency=2, segment=SEGMENTS[index])
            )
        session.execute(
            update(CustomerScore)
            .where(col(CustomerScore.run_id) == old, col(CustomerScore.customer_pk) == pks["P001"])
            .values(frequency=0, churn_risk=None, value_at_risk=None, segment="Prospects")
        )
        run = session.get(ModelRun, old)
        assert run is not None
        run.params = {"churn": {"horizon_days": HORIZON}, "clv": {"bgnbd": BGNBD}}
        run.metrics = {"clv": {"purchase_model": {"model": "BG/NBD"}, "horizon_days": 365.25}}
    return old, new


def planted_truth() -> pd.DataFrame:
    """Per customer C000..C009: risk, recency, churned, purchase days after, BG/NBD inputs."""
    accounts = book(10)
    future_days = {"C001": 2, "C004": 1, "C006": 1, "C007": 1, "C008": 1, "C009": 3}
    frame = pd.DataFrame(
        {
            "risk": [a.churn_risk for a in accounts],
            "clv": [a.clv for a in accounts],
            "recency": RECENCY,
            "churned": [a.customer_id not in STAYED for a in accounts],
            "bought": [future_days.get(a.customer_id, 0) for a in accounts],
            "segment": SEGMENTS,
        },
        index=[a.customer_id for a in accounts],
    )
    # Two purchase days by AS_OF (C002's second is AS_OF itself, twice): x = 1, T = 300,
    # t_x = 300 - recency.
    frame["x"] = 1.0
    frame["T"] = 300.0
    frame["t_x"] = 300.0 - frame["recency"]
    return frame


def test_the_planted_future_gives_the_figures_computed_by_hand(storage_engine: Engine) -> None:
    old, _new = plant_book(storage_engine)
    with read_session(storage_engine) as session:
        run = session.get(ModelRun, old)
        assert run is not None
        session.expunge(run)
    document = backtests.backtest_run(storage_engine, run, default_horizon=30)
    truth = planted_truth()

    assert document["future"]["complete"] is True
    assert document["future"]["horizon_days"] == HORIZON  # the run's own, not the default
    assert document["future"]["window"] == {"after": "2026-03-31", "until": "2026-06-29"}
    assert document["customers"] == 11 and document["buyers"] == 10  # not the prospect
    churn = document["churn"]
    assert churn["scored"] == 10 and churn["churned"] == 4
    assert churn["real_rate"] == 0.4
    assert churn["predicted_rate"] == pytest.approx(truth["risk"].mean(), abs=1e-4)
    expected_auc = hand_auc(truth["churned"].tolist(), truth["risk"].tolist())
    assert churn["roc_auc"] == pytest.approx(expected_auc, abs=1e-4)
    recency_auc = hand_auc(truth["churned"].tolist(), truth["recency"].astype(float).tolist())
    assert churn["baselines"]["recency"]["roc_auc"] == pytest.approx(recency_auc, abs=1e-4)
    params = BgNbdParams(r=0.6, alpha=25.0, a=0.7, b=2.4)  # BGNBD
    quiet = probability_no_purchase(params, HORIZON, truth["x"], truth["t_x"], truth["T"])
    bgnbd_auc = hand_auc(truth["churned"].tolist(), list(quiet))
    assert churn["baselines"]["bgnbd"]["roc_auc"] == pytest.approx(bgnbd_auc, abs=1e-4)
    # Ten customers: each tenth is one of them, lowest risk first.
    calibration = churn["calibration"]
    assert [row["customers"] for row in calibration] == [1] * 10
    by_risk = truth.sort_values("risk")
    assert [row["predicted_rate"] for row in calibration] == pytest.approx(by_risk["risk"].tolist())
    assert [row["real_rate"] for row in calibration] == by_risk["churned"].astype(float).tolist()
    # The at-risk list: all ten have value at risk; its rates are the whole book's.
    assert churn["at_risk_list"]["customers"] == 10
    assert churn["at_risk_list"]["real_rate"] == 0.4
    segments = {row["segment"]: row for row in document["segments"]}
    for name, rows in truth.groupby("segment"):
        assert segments[name]["customers"] == len(rows)
        assert segments[name]["real_rate"] == pytest.approx(rows["churned"].mean(), abs=1e-4)
    assert [row["segment"] for row in document["segments"]] == ["Champions", "At risk", "Lost"]
    purchases = document["purchases"]
    assert purchases["real"] == int(truth["bought"].sum()) == 9
    expected = conditional_expected_purchases(params, HORIZON, truth["x"], truth["t_x"], truth["T"])
    assert purchases["predicted"] == pytest.approx(float(expected.sum()), abs=0.01)
    mae = float(np.mean(np.abs(expected - truth["bought"].to_numpy())))
    assert purchases["mae"] == pytest.approx(mae, abs=1e-4)
    # The CLV horizon (365 days) has not elapsed: the stored expectation is not compared.
    assert "clv_purchases" not in document


def test_a_run_without_a_future_says_so(storage_engine: Engine) -> None:
    _old, new = plant_book(storage_engine)
    with read_session(storage_engine) as session:
        run = session.get(ModelRun, new)
        assert run is not None
        session.expunge(run)
        latest = backtests.latest_order_day(storage_engine)
        chosen = backtests.latest_with_future(
            session=session, latest_order=latest, default_horizon=HORIZON
        )
    assert latest == date(2026, 6, 30)
    assert chosen is not None and chosen.as_of == AS_OF  # the newer run has no future
    document = backtests.backtest_run(storage_engine, run, default_horizon=HORIZON)
    assert document["future"] == {
        "complete": False,
        "horizon_days": HORIZON,
        "window": {"after": "2026-06-30", "until": "2026-09-28"},
        "latest_order": "2026-06-30",
        "days_seen": 0,
    }
    assert "churn" not in document and "purchases" not in document


def test_one_day_short_of_the_horizon_is_no_future() -> None:
    scores = pd.DataFrame(
        {
            "churn_risk": [0.9, 0.1],
            "recency_days": [100.0, 3.0],
            "frequency": [2, 5],
            "segment": ["Lost", "Champions"],
            "value_at_risk": [90.0, 10.0],
            "expected_purchases": [0.1, 4.0],
        },
        index=pd.Index([1, 2], name="customer_pk"),
    )
    bought = pd.Series([3.0], index=[2])
    short = backtest(
        scores, bought, as_of=AS_OF, horizon_days=HORIZON, latest_order=date(2026, 6, 28)
    )
    assert short["future"]["complete"] is False and short["future"]["days_seen"] == 89
    whole = backtest(
        scores, bought, as_of=AS_OF, horizon_days=HORIZON, latest_order=date(2026, 6, 29)
    )
    assert whole["churn"]["roc_auc"] == 1.0 and whole["churn"]["real_rate"] == 0.5
    # Without the purchase model's inputs there is no BG/NBD baseline and no expectation.
    assert set(whole["churn"]["baselines"]) == {"recency"}
    assert "note" in whole["purchases"]
    # The stored expectation over an elapsed CLV horizon.
    clv = backtest(
        scores,
        bought,
        as_of=AS_OF,
        horizon_days=HORIZON,
        latest_order=date(2027, 4, 1),
        clv_horizon=(365, pd.Series([1.0, 6.0], index=[1, 2])),
    )
    assert clv["clv_purchases"] == {
        "horizon_days": 365,
        "customers": 2,
        "predicted": 4.1,
        "real": 7,
        "mae": pytest.approx((0.9 + 2.0) / 2),
    }


def test_the_purchase_model_is_the_one_the_run_used() -> None:
    mbg = {"r": 1.0, "alpha": 2.0, "a": 3.0, "b": 4.0, "time_unit": "days"}
    used = purchase_model({"bgnbd": BGNBD, "mbgnbd": mbg}, {"purchase_model": {"model": "MBG/NBD"}})
    assert used is not None and used.modified and (used.r, used.b) == (1.0, 4.0)
    assert purchase_model({"bgnbd": BGNBD}, {}) == BgNbdParams(0.6, 25.0, 0.7, 2.4)
    assert purchase_model({"bgnbd": {"r": "unreadable"}}, {}) is None
    assert purchase_model(None, None) is None


def test_model_command_shows_what_the_run_said_and_what_happened(
    storage_engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    plant_book(storage_engine)
    bot = ChatBot(storage_engine, settings, tmp_path / "charts")
    reply = bot.reply("model")
    fields = dict(reply.fields)
    truth = planted_truth()
    auc = hand_auc(truth["churned"].tolist(), truth["risk"].tolist())
    assert fields["Backtest"].startswith(
        "The run of 2026-03-31 said 68% of its 10 buying customers would not buy within "
        "90 days; 40% did not."
    )
    assert f"ROC AUC {auc:.3f} (recency alone" in fields["Backtest"]
    assert "BG/NBD alone" in fields["Backtest"]


def test_model_command_without_a_future_has_no_backtest_line(bot: ChatBot) -> None:
    # The small CRM's runs are as of 2026-06-23 and 06-30; its latest order is of 06-20.
    assert "Backtest" not in dict(bot.reply("model").fields)


@pytest.fixture
def cli_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    path = tmp_path / "crm.db"
    monkeypatch.chdir(tmp_path)  # no developer .env
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{path}")
    get_settings.cache_clear()
    engine = connect(f"sqlite:///{path}")
    yield engine
    engine.dispose()
    get_settings.cache_clear()


def test_cli_prints_the_report_and_json(cli_database: Engine) -> None:
    old, new = plant_book(cli_database)
    runner = CliRunner()
    result = runner.invoke(app, ["model", "backtest", str(old)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert f"Backtest of model run {old} (as of 2026-03-31, succeeded)" in text
    assert "said 68% of its 10 buying customers would not buy within 90 days; 40% did not" in text
    assert "Calibration: tenths of the customers by churn risk" in text
    assert "Churn by segment" in text and "Champions" in text
    assert "9 made by the 10 customers who had bought" in text

    result = runner.invoke(app, ["model", "backtest", "latest", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["run"] == old and document["churn"]["churned"] == 4

    result = runner.invoke(app, ["model", "backtest", str(new)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "No future yet: the run's 90-day horizon runs to 2026-09-28" in text
    assert "(0 days of 90 seen)" in text

    # Kept in the run: `model show` prints it.
    result = runner.invoke(app, ["model", "show", str(old)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "Backtest: The run of 2026-03-31 said 68% of its 10 buying customers" in text
    assert f"(`crmbot model backtest {old}` for the detail)" in text

    for argument, message in (
        ("99", "there is no model run 99"),
        ("soon", "run id or `latest`"),
    ):
        result = runner.invoke(app, ["model", "backtest", argument])
        assert result.exit_code == 1 and message in " ".join(result.output.split())


def test_the_sample_company_against_its_real_future(
    sample_company: SampleCompany, tmp_path: Path
) -> None:
    """Trained 90 days before its last day through the real pipeline; the real outcome
    computed here from the orders, independently of the loader."""
    engine = copy_of_sample(sample_company, tmp_path)
    as_of = sample_company.as_of - timedelta(days=HORIZON)
    result = train(engine, sample_company.settings, as_of)
    assert result.status == "succeeded", result.error
    with read_session(engine) as session:
        run = session.get(ModelRun, result.run_id)
        assert run is not None
        session.expunge(run)
        scores = pd.DataFrame(
            session.execute(
                select(
                    col(CustomerScore.customer_pk),
                    col(CustomerScore.churn_risk),
                    col(CustomerScore.frequency),
                ).where(col(CustomerScore.run_id) == run.id)
            ).all(),
            columns=["customer_pk", "risk", "frequency"],
        ).set_index("customer_pk")
        orders = pd.DataFrame(
            session.execute(
                select(col(Order.customer_pk), col(Order.ordered_at), col(Order.amount))
            ).all(),
            columns=["customer_pk", "ordered_at", "amount"],
        )
        known = {pk for (pk,) in session.execute(select(col(Customer.id))).all()}
    start = datetime.combine(as_of + timedelta(days=1), time())
    window = orders[
        (orders["ordered_at"] >= start)
        & (orders["ordered_at"] < start + timedelta(days=HORIZON))
        & (orders["amount"] >= 0)
    ]
    buyers = scores[scores["frequency"] > 0]
    churned = ~buyers.index.isin(window["customer_pk"])
    assert known >= set(scores.index)

    document = backtests.backtest_run(engine, run, default_horizon=HORIZON)
    churn = document["churn"]
    assert document["buyers"] == len(buyers) == churn["scored"]
    assert churn["churned"] == int(churned.sum())
    from sklearn.metrics import roc_auc_score

    assert churn["roc_auc"] == pytest.approx(roc_auc_score(churned, buyers["risk"]), abs=1e-4)
    # What the sample company plants, a churn model reading tickets and surveys sees and
    # recency alone does not: the run ranks the real future better than both baselines.
    assert churn["roc_auc"] > churn["baselines"]["recency"]["roc_auc"]
    assert churn["roc_auc"] > churn["baselines"]["bgnbd"]["roc_auc"]
    assert churn["predicted_rate"] == pytest.approx(buyers["risk"].mean(), abs=1e-4)
    # The real churn of each tenth by risk, computed here: it rises from the lowest tenth
    # to the highest.
    ranked = np.argsort(buyers["risk"].to_numpy(), kind="stable")
    tenths = [churned[part].mean() for part in np.array_split(ranked, 10)]
    assert [row["real_rate"] for row in churn["calibration"]] == pytest.approx(tenths, abs=1e-4)
    assert tenths[-1] - tenths[0] > 0.6
    # Among segments of 30 or more (a dozen customers' churn rate is noise), Champions
    # churn least.
    rates = {r["segment"]: r["real_rate"] for r in document["segments"] if r["customers"] >= 30}
    assert min(rates, key=lambda name: rates[name]) == "Champions", document["segments"]
    engine.dispose()


def test_the_backtest_is_kept_in_the_run_until_the_orders_change(storage_engine: Engine) -> None:
    old, new = plant_book(storage_engine)

    def run_of(run_id: int) -> ModelRun:
        with read_session(storage_engine) as session:
            run = session.get(ModelRun, run_id)
            assert run is not None
            session.expunge(run)
            return run

    first = backtests.kept_backtest(storage_engine, run_of(old), default_horizon=HORIZON)
    kept = (run_of(old).metrics or {})["backtest"]
    # The orders up to the horizon's end (not the one the day after), the highest id among
    # them, and whether the CLV horizon had passed.
    assert kept["fingerprint"] == [33, 34, False]
    assert {k: v for k, v in kept.items() if k != "fingerprint"} == first
    assert (run_of(old).metrics or {})["clv"]["purchase_model"] == {"model": "BG/NBD"}  # kept
    # Read back as kept: a planted change to the kept figures shows through, also after an
    # order after the horizon, which changes none of them.
    with write_session(storage_engine) as session:
        run = session.get(ModelRun, old)
        assert run is not None and run.metrics is not None
        run.metrics = {**run.metrics, "backtest": {**kept, "buyers": 999}}
    c000 = _pk(storage_engine, "C000")
    _order(storage_engine, "AFTER", c000, at(date(2026, 7, 15)))
    again = backtests.kept_backtest(storage_engine, run_of(old), default_horizon=HORIZON)
    assert again["buyers"] == 999
    assert again["future"]["latest_order"] == "2026-07-15"  # how far the book goes: today's
    # A late order in the horizon: computed again, C000 no longer churned.
    _order(storage_engine, "LATE", c000, at(date(2026, 5, 1)))
    again = backtests.kept_backtest(storage_engine, run_of(old), default_horizon=HORIZON)
    assert again["buyers"] == 10 and again["churn"]["churned"] == 3
    assert (run_of(old).metrics or {})["backtest"]["fingerprint"] == [34, 36, False]
    # A run without a future is never kept.
    backtests.kept_backtest(storage_engine, run_of(new), default_horizon=HORIZON)
    assert "backtest" not in (run_of(new).metrics or {})


def test_the_retrain_keeps_the_newest_backtest_for_the_model_command(
    storage_engine: Engine,
) -> None:
    assert backtests.keep_latest_backtest(storage_engine, default_horizon=HORIZON) is None
    old, new = plant_book(storage_engine)

    assert backtests.keep_latest_backtest(storage_engine, default_horizon=HORIZON) == old

    with read_session(storage_engine) as session:
        measured, newest = session.get(ModelRun, old), session.get(ModelRun, new)
        assert measured is not None and newest is not None
        kept = (measured.metrics or {})["backtest"]
        assert kept["buyers"] == 10 and kept["fingerprint"] == [33, 34, False]
        assert "backtest" not in (newest.metrics or {})


def _pk(engine: Engine, customer_id: str) -> int:
    with read_session(engine) as session:
        return int(
            session.execute(
                select(col(Customer.id)).where(col(Customer.customer_id) == customer_id)
            ).scalar_one()
        )


def _order(engine: Engine, order_id: str, pk: int, when: datetime) -> None:
    with write_session(engine) as session:
        session.add(Order(order_id=order_id, customer_pk=pk, ordered_at=when, amount=5.0))


def test_latest_without_any_run_with_a_future_says_how_to_get_one(cli_database: Engine) -> None:
    accounts = book(3)
    pks = add_customers(cli_database, accounts)
    add_run(cli_database, accounts, pks, as_of=date(2026, 6, 30))
    result = CliRunner().invoke(app, ["model", "backtest", "latest"])
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "no kept run has its whole 90-day horizon in the data yet" in text
    assert "pin one (`crmbot model pin RUN`)" in text


@pytest.mark.slow  # the shared CDNOW book, trained once per session (~6 s)
def test_cdnow_backtest_matches_the_real_log(cdnow_book: RealBook) -> None:
    """CDNOW (the real log `lifetimes` ships) trained as of 1997-09-30: the backtest's
    outcome and figures match the raw log's next 90 days, computed here from the file."""
    from sklearn.metrics import roc_auc_score

    from benchmarks.real_books import cdnow_transactions

    engine, cutoff = cdnow_book.engine, cdnow_book.as_of
    with read_session(engine) as session:
        run = session.get(ModelRun, cdnow_book.run.run_id)
        assert run is not None
        session.expunge(run)
        risk = pd.Series(
            dict(
                session.execute(
                    select(col(Customer.customer_id), col(CustomerScore.churn_risk))
                    .join(CustomerScore, col(CustomerScore.customer_pk) == col(Customer.id))
                    .where(col(CustomerScore.run_id) == run.id)
                ).all()
            )
        )
    document = backtests.backtest_run(engine, run, default_horizon=HORIZON)  # writes nothing

    raw = cdnow_transactions()
    window = raw[
        (raw["ordered_at"] > pd.Timestamp(cutoff))
        & (raw["ordered_at"] <= pd.Timestamp(cutoff + timedelta(days=HORIZON)))
        & (raw["dollar_value"] >= 0)
    ]
    came_back = set("CDNOW-" + window["customer_id"])
    churned = ~risk.index.isin(came_back)
    churn = document["churn"]
    assert document["buyers"] == churn["scored"] == 23_570 == len(risk)
    assert churn["churned"] == int(churned.sum())
    assert churn["roc_auc"] == pytest.approx(roc_auc_score(churned, risk.to_numpy()), abs=1e-4)
    days = window.drop_duplicates(["customer_id", "ordered_at"])
    assert document["purchases"]["real"] == len(days)
    for baseline in ("recency", "bgnbd"):
        assert 0.7 < churn["baselines"][baseline]["roc_auc"] < 0.85
