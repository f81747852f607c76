"""One training run end to end: as-of isolation, activation in one transaction, failures
that keep the previous run live, champion/challenger, and a run killed half-way."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from crmbot import queries, runs
from crmbot.core.config import Settings
from crmbot.core.db import make_engine, read_session, write_session
from crmbot.core.models import CustomerScore, ModelRun
from crmbot.runs import train
from crmbot.training import pipeline as training
from crmbot.training import scores as score_writer
from crmbot.training.pipeline import STAGES, StageEvent
from crmbot.training.scores import write_offers, write_scores
from tests.conftest import copy_of_sample
from tests.support.value_data import END, START, build_company, insert_company, later_rows

VALUE_STAGES = STAGES[:4]  # features, segments, clusters, clv: enough for the mechanics
assert [name for name, _ in VALUE_STAGES] == ["features", "segments", "clusters", "clv"]


def _score_count(engine: Engine, run_id: int) -> int:
    with read_session(engine) as session:
        return runs.run_score_count(session=session, run_id=run_id)


def _active(engine: Engine) -> int | None:
    with read_session(engine) as session:
        return runs.active_run_id(session=session)


def _run(engine: Engine, run_id: int) -> ModelRun:
    with read_session(engine) as session:
        run = runs.get_run(session=session, run_id=run_id)
        assert run is not None
        return run


def _stage_module(directory: Path, name: str, body: str) -> str:
    """A real stage module on disk (a plug-in as a later capability would add one)."""
    (directory / f"{name}.py").write_text(textwrap.dedent(body))
    return name


@pytest.fixture
def company_engine(engine: Engine) -> Engine:
    insert_company(engine, build_company())
    return engine


def test_end_to_end_on_every_database(storage_engine: Engine, settings: Settings) -> None:
    company = build_company()
    insert_company(storage_engine, company)
    result = train(storage_engine, settings, END)
    assert result.status == "succeeded", result.error
    assert result.activated and _active(storage_engine) == result.run_id
    assert result.row_counts["scores"] == len(company.customers) == 40
    assert _score_count(storage_engine, result.run_id) == 40

    run = _run(storage_engine, result.run_id)
    assert run.status == "succeeded" and run.as_of == END and run.activated_at is not None
    assert set(run.params["clv"]["bgnbd"]) == {"r", "alpha", "a", "b", "time_unit"}
    assert set(run.params["clv"]["gamma_gamma"]) == {"p", "q", "gamma"}
    assert {"features", "segments", "clusters", "clv"} <= set(run.metrics)
    assert set(run.timings) >= {"load", "features", "clv", "write", "total"}
    assert run.row_counts["orders"] == len(company.orders)

    with read_session(storage_engine) as session:
        scores = queries.scores_frame(session=session)
    assert len(scores) == 40
    prospect = scores.loc[40]
    assert prospect["segment"] == "Prospects" and prospect["frequency"] == 0
    assert pd.isna(prospect["clv"])
    buyers = scores.drop(index=40)
    assert buyers["clv"].notna().all() and buyers["cluster"].notna().all()
    assert buyers["segment"].isin(set(run.metrics["segments"]["sizes"])).all()
    # JSON columns written by later stages come back as Python lists.
    for column in ("churn_reasons", "next_products"):
        values = [v for v in scores[column] if v is not None]
        assert all(isinstance(v, list) for v in values)


def test_training_as_of_an_earlier_day_ignores_later_rows(settings: Settings) -> None:
    """The same scores as of END whether or not the database holds rows dated after it."""
    company = build_company()
    engines = []
    for with_later in (False, True):
        engine = make_engine("sqlite://")
        SQLModel.metadata.create_all(engine)
        insert_company(engine, company)
        if with_later:
            insert_company(engine, later_rows(company))
        engines.append(engine)
    results = [train(engine, settings, END) for engine in engines]
    assert [r.status for r in results] == ["succeeded", "succeeded"], [r.error for r in results]
    frames = []
    for engine, result in zip(engines, results, strict=True):
        with read_session(engine) as session:
            frames.append(queries.scores_frame(session=session, run_id=result.run_id))
    pd.testing.assert_frame_equal(frames[0], frames[1], check_exact=False, rtol=1e-9)
    params = [{k: v for k, v in r.params.items() if k != "run"} for r in results]
    assert params[0] == params[1]
    assert results[0].row_counts == results[1].row_counts
    # ... and the later rows are really there and would change the answer.
    later = train(engines[1], settings, END + timedelta(days=90), stages=VALUE_STAGES)
    assert later.row_counts["orders"] > results[1].row_counts["orders"]
    for engine in engines:
        engine.dispose()


def test_summaries_from_the_database_give_the_same_run(
    storage_engine: Engine, settings: Settings
) -> None:
    """CRMBOT_SUMMARY_IN_DATABASE=always: training reads no order line, and of the orders
    only what the database grouped them into and the churn sample's own, and scores every
    customer as the pandas path does; auto means pandas on SQLite."""
    assert training.summary_in_database(make_engine("sqlite://"), "auto") is False
    company = build_company()
    insert_company(storage_engine, company)
    insert_company(storage_engine, later_rows(company))
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(" ".join(statement.split()))

    results, frames = [], []
    for mode in ("never", "always"):
        statements.clear()
        event.listen(storage_engine, "before_cursor_execute", record)
        try:
            result = train(
                storage_engine,
                settings.model_copy(update={"summary_in_database": mode}),
                END,
                force=True,
            )
        finally:
            event.remove(storage_engine, "before_cursor_execute", record)
        assert result.status == "succeeded", result.error
        with read_session(storage_engine) as session:
            scores = queries.scores_frame(session=session, run_id=result.run_id)
        # The second run follows the first: what it says of the run before is its own.
        frames.append(scores.drop(columns=[c for c in scores if c.startswith("previous_")]))
        results.append(result)
        reads_orders = [s for s in statements if re.search(r"\b(FROM|JOIN) [`\"]?orders\b", s)]
        assert reads_orders
        grouped = r"GROUP BY|DISTINCT|^SELECT (count|min)\("
        ungrouped = [s for s in reads_orders if not re.search(grouped, s)]
        if mode == "always":
            # Only the churn sample's own orders, asked by customer (`DatabaseSource.sample`).
            by_customer = r"orders\.customer_pk (IN \(|= ANY \()"
            assert ungrouped and all(re.search(by_customer, s) for s in ungrouped)
        else:
            assert ungrouped  # the pandas path reads the orders themselves
    pd.testing.assert_frame_equal(frames[0], frames[1], check_exact=False, rtol=1e-9)
    params = [{k: v for k, v in r.params.items() if k != "run"} for r in results]
    assert params[0] == params[1]
    assert _measured(results[0].metrics) == _measured(results[1].metrics)
    assert results[0].row_counts == results[1].row_counts


def test_the_sample_company_scores_the_same_from_database_summaries(
    sample_company: Any, tmp_path: Path
) -> None:
    """Hundreds of customers, rules and a churn model with several snapshots: the run that
    reads only the database's summaries matches the session's run over every order."""
    engine = copy_of_sample(sample_company, tmp_path)
    settings = sample_company.settings.model_copy(update={"summary_in_database": "always"})
    result = train(engine, settings, sample_company.as_of, force=True)
    assert result.status == "succeeded", result.error
    assert result.metrics["recommend"]["rules"] > 0
    assert result.metrics["churn"]["training"]["snapshots"] > 1
    with read_session(engine) as session:
        frames = [
            queries.scores_frame(session=session, run_id=r.run_id)
            for r in (sample_company.run, result)
        ]
    engine.dispose()
    frames = [f.drop(columns=[c for c in f if c.startswith("previous_")]) for f in frames]
    pd.testing.assert_frame_equal(frames[0], frames[1], check_exact=False, rtol=1e-9)
    assert _measured(result.metrics) == _measured(sample_company.run.metrics)


def _measured(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics without clock times and without the comparison with the run before."""
    return {
        k: _measured(v) if isinstance(v, dict) else v
        for k, v in metrics.items()
        if not k.endswith("_seconds") and k != "migration"
    }


def test_a_model_that_cannot_be_fitted_fails_the_run_and_keeps_the_previous_one(
    company_engine: Engine, settings: Settings
) -> None:
    first = train(company_engine, settings, END, stages=VALUE_STAGES)
    assert first.activated
    # Three weeks in, nobody has bought twice: BG/NBD cannot be fitted.
    failed = train(company_engine, settings, START + timedelta(days=20), stages=VALUE_STAGES)
    assert failed.status == "failed" and not failed.activated
    assert failed.error is not None and failed.error.startswith("clv: BG/NBD: ")
    assert _active(company_engine) == first.run_id
    run = _run(company_engine, failed.run_id)
    assert run.status == "failed" and run.error == failed.error and run.activated_at is None
    assert "features" in run.timings and run.finished_at is not None
    assert _score_count(company_engine, failed.run_id) == 0


def test_unexpected_errors_are_recorded_in_one_line(
    company_engine: Engine, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    broken = _stage_module(
        tmp_path,
        "crmbot_test_broken_stage",
        """
        def run(ctx):
            return 1 / 0
        """,
    )
    bad_import = _stage_module(
        tmp_path, "crmbot_test_bad_import_stage", "import crmbot_no_such_dependency\n"
    )
    result = train(company_engine, settings, END, stages=[STAGES[0], ("broken", broken)])
    assert result.status == "failed"
    assert result.error == "broken: unexpected ZeroDivisionError: division by zero"
    # A stage whose module exists but cannot import its own dependencies fails by name.
    result = train(company_engine, settings, END, stages=[STAGES[0], ("bad", bad_import)])
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.startswith("bad: the stage module crmbot_test_bad_import_stage cannot")
    assert _active(company_engine) is None


def test_progress_events_and_a_missing_stage_module(
    company_engine: Engine, settings: Settings
) -> None:
    events: list[StageEvent] = []
    result = train(company_engine, settings, END, stages=VALUE_STAGES, progress=events.append)
    steps = [(e.step, e.state) for e in events]
    assert steps[:2] == [("load", "start"), ("load", "done")]
    assert steps[-2:] == [("activate", "start"), ("activate", "done")]
    assert [s for s, state in steps if state == "done"][1:5] == [n for n, _ in VALUE_STAGES]
    assert {e.total for e in events} == {len(VALUE_STAGES) + 3}
    assert result.activated
    # Every stage ships with crmbot: a missing module is a broken installation, not a skip.
    missing = train(
        company_engine,
        settings,
        END,
        stages=[*VALUE_STAGES, ("later", "crmbot.analytics.not_written")],
    )
    assert missing.status == "failed"
    assert missing.error is not None
    assert missing.error.startswith(
        "later: the stage module crmbot.analytics.not_written cannot be imported"
    )
    assert _active(company_engine) == result.run_id


def test_challenger_worse_than_champion_is_rejected_unless_forced(
    company_engine: Engine, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    judge = _stage_module(
        tmp_path,
        "crmbot_test_judge_stage",
        """
        def run(ctx):
            ctx.metrics["judge"] = {"quality": ctx.data.as_of.day}

        def compare(new, champion, settings):
            if champion and new["quality"] < champion["quality"]:
                return f"quality {new['quality']} is below {champion['quality']}"
            return None
        """,
    )
    stages = [*VALUE_STAGES, ("judge", judge)]
    champion = train(company_engine, settings, END, stages=stages)  # day 31
    assert champion.activated
    worse = train(company_engine, settings, END - timedelta(days=1), stages=stages)  # day 30
    assert worse.status == "rejected" and not worse.activated
    assert worse.error == "not activated: judge: quality 30 is below 31"
    assert _active(company_engine) == champion.run_id
    assert _score_count(company_engine, worse.run_id) == 40  # kept, may be activated later
    forced = train(company_engine, settings, END - timedelta(days=1), stages=stages, force=True)
    assert forced.status == "succeeded" and forced.activated
    assert _run(company_engine, forced.run_id).forced
    # Activating the rejected run by hand is a forced activation.
    activated = runs.activate(company_engine, worse.run_id)
    assert activated.status == "succeeded" and activated.forced
    assert _active(company_engine) == worse.run_id


def test_readers_see_the_previous_run_until_the_flip(
    company_engine: Engine, settings: Settings
) -> None:
    first = train(company_engine, settings, END, stages=VALUE_STAGES)
    seen: list[tuple[str, str, int | None, int]] = []

    def watch(event: StageEvent) -> None:
        if event.step in ("write", "activate"):
            active = _active(company_engine)
            count = _score_count(company_engine, active) if active else 0
            seen.append((event.step, event.state, active, count))

    second = train(
        company_engine, settings, END - timedelta(days=7), stages=VALUE_STAGES, progress=watch
    )
    assert second.activated
    before_flip = [s for s in seen if s[:2] != ("activate", "done")]
    assert before_flip and all(s[2:] == (first.run_id, 40) for s in before_flip)
    assert seen[-1][2:] == (second.run_id, 40)


def test_scores_are_written_in_chunks(
    company_engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(score_writer, "WRITE_CHUNK_ROWS", 7)
    result = train(company_engine, settings, END, stages=VALUE_STAGES)
    assert _score_count(company_engine, result.run_id) == 40


def test_activate_rolls_back_and_refuses_runs_that_cannot_serve(
    company_engine: Engine, settings: Settings
) -> None:
    first = train(company_engine, settings, END, stages=VALUE_STAGES)
    second = train(company_engine, settings, END - timedelta(days=30), stages=VALUE_STAGES)
    failed = train(company_engine, settings, START + timedelta(days=20), stages=VALUE_STAGES)
    assert _active(company_engine) == second.run_id
    runs.activate(company_engine, first.run_id)
    assert _active(company_engine) == first.run_id
    with pytest.raises(runs.RunNotActivatable, match=f"model run {failed.run_id} is failed"):
        runs.activate(company_engine, failed.run_id)
    with pytest.raises(runs.RunNotActivatable, match="there is no model run 999"):
        runs.activate(company_engine, 999)
    assert _active(company_engine) == first.run_id


def test_a_run_abandoned_by_a_dead_process_is_closed_by_the_next(
    company_engine: Engine, settings: Settings
) -> None:
    with write_session(company_engine) as session:
        stale = ModelRun(as_of=END, started_at=datetime(2026, 1, 1), status="running")
        session.add(stale)
        session.flush()
        stale_id = stale.id
        session.add(CustomerScore(run_id=stale_id, customer_pk=1))
    result = train(
        company_engine, settings, END, stages=VALUE_STAGES, clock=lambda: datetime(2026, 1, 2)
    )
    assert result.activated
    run = _run(company_engine, stale_id)
    assert run.status == "failed" and run.error is not None and "abandoned" in run.error
    assert _score_count(company_engine, stale_id) == 0


KILLED_TRAINING = """
import sys, time
from datetime import date
from crmbot.core.config import Settings
from crmbot.core.db import make_engine
from crmbot.runs import train
from crmbot.training.pipeline import STAGES

def stop_here(event):
    if event.step == {step!r} and event.state == "start":
        print("REACHED", flush=True)
        time.sleep(120)

engine = make_engine({url!r})
train(engine, Settings(_env_file=None), date.fromisoformat({as_of!r}), stages=STAGES[:4],
      progress=stop_here)
"""


@pytest.mark.parametrize("step", ["activate"])
def test_training_killed_half_way_leaves_the_previous_run_live(
    tmp_path: Path, settings: Settings, step: str
) -> None:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    engine = make_engine(url)
    SQLModel.metadata.create_all(engine)
    insert_company(engine, build_company())
    first = train(engine, settings, END, stages=VALUE_STAGES)
    before = queries_scores(engine)

    script = KILLED_TRAINING.format(step=step, url=url, as_of=str(END - timedelta(days=5)))
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip() == "REACHED", child.stderr.read() if child.stderr else ""
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL

    # Readers still see the whole previous run and nothing of the killed one.
    assert _active(engine) == first.run_id
    pd.testing.assert_frame_equal(queries_scores(engine), before)
    with read_session(engine) as session:
        killed = session.execute(
            select(ModelRun).where(ModelRun.id != first.run_id)  # type: ignore[arg-type]
        ).scalar_one()
        assert killed.status == "running"
    # The next run starts, and once the dead run is older than a lease it is closed.
    later = datetime.now() + timedelta(seconds=settings.training_lock_lease_seconds + 60)
    result = train(engine, settings, END, stages=VALUE_STAGES, clock=lambda: later)
    assert result.activated
    assert _run(engine, killed.id).status == "failed"  # type: ignore[arg-type]
    with read_session(engine) as session:
        leftover = session.execute(
            select(func.count()).select_from(CustomerScore).where(CustomerScore.run_id == killed.id)  # type: ignore[arg-type]
        ).scalar_one()
    assert leftover == 0
    engine.dispose()


def queries_scores(engine: Engine) -> pd.DataFrame:
    with read_session(engine) as session:
        return queries.scores_frame(session=session)


def _running_run(engine: Engine) -> int:
    """A new run in progress, for writing score rows under."""
    with write_session(engine) as session:
        run = ModelRun(as_of=END, started_at=datetime(2026, 1, 1), status="running")
        session.add(run)
        session.flush()
        assert run.id is not None
        return run.id


def test_score_values_survive_the_round_trip(storage_engine: Engine) -> None:
    """NaN and NaT become NULL, integers stay integers, JSON keeps numpy scalars' values."""
    insert_company(storage_engine, build_company(customers=3))
    run_id = _running_run(storage_engine)
    import numpy as np

    scores = pd.DataFrame(
        {
            "frequency": [3, 0, 1],
            "r_score": pd.array([5, None, 2], dtype="Int64"),
            "clv": [12.5, np.nan, 0.0],
            "segment": ["Champions", None, "Lost"],
            "last_order_at": pd.to_datetime(["2025-12-30 10:11:12", None, "2025-01-02 00:00:00"]),
            "churn_reasons": [["no order for 83 days"], None, []],
            "next_products": [[{"product_id": "P1", "lift": np.float64(2.5)}], None, None],
        },
        index=pd.Index([1, 2, 3], name="customer_pk"),
    )
    assert write_scores(storage_engine, run_id, scores) == 3
    with read_session(storage_engine) as session:
        back = queries.scores_frame(session=session, run_id=run_id)
    assert back.loc[1, "r_score"] == 5 and back.loc[3, "r_score"] == 2
    assert pd.isna(back.loc[2, "r_score"]) and pd.isna(back.loc[2, "clv"])
    assert back.loc[2, "segment"] == "Prospects"  # NOT NULL column: the model's default
    assert back.loc[2, "referred_customers"] == 0  # not in the frame at all
    assert back.loc[1, "last_order_at"] == pd.Timestamp("2025-12-30 10:11:12")
    assert pd.isna(back.loc[2, "last_order_at"])
    assert back.loc[1, "churn_reasons"] == ["no order for 83 days"]
    assert back.loc[3, "churn_reasons"] == []
    assert back.loc[1, "next_products"] == [{"product_id": "P1", "lift": 2.5}]
    assert back.loc[2, "next_products"] is None


def test_offers_are_stored_once_per_run_and_found_from_the_score_row(
    storage_engine: Engine,
) -> None:
    insert_company(storage_engine, build_company(customers=2))
    run_id = _running_run(storage_engine)
    offers = [
        {
            "product_id": f"P{n}",
            "name": f"Product {n}",
            "confidence": 0.5 + n / 10,
            "lift": 1.5,
            "support": 0.1,
            "reason": f"{50 + n * 10}% of customers who bought …",
        }
        for n in range(3)
    ]
    assert write_offers(storage_engine, run_id, offers) == 3
    scores = pd.DataFrame(
        {"next_products": [[2, 0], None]}, index=pd.Index([1, 2], name="customer_pk")
    )
    write_scores(storage_engine, run_id, scores)
    with read_session(storage_engine) as session:
        first = session.get(CustomerScore, (run_id, 1))
        second = session.get(CustomerScore, (run_id, 2))
        assert first is not None and second is not None
        assert queries.customer_offers(session=session, score=first) == [offers[2], offers[0]]
        assert queries.customer_offers(session=session, score=second) == []


def test_tables_no_later_stage_reads_are_released(company_engine: Engine) -> None:
    from crmbot.analytics.base import PURCHASE_DAYS, PURCHASE_PAIRS, RunContext, load_training_data

    ctx = RunContext.start(load_training_data(company_engine, END), Settings(_env_file=None))  # type: ignore[call-arg]
    ctx.cache[PURCHASE_DAYS] = "days"
    ctx.cache[PURCHASE_PAIRS] = "pairs"
    training.release_unread(ctx, after="churn", still_to_run=["graph", "recommend"])
    assert len(ctx.data.orders) > 0 and len(ctx.data.lines) > 0 and len(ctx.data.products) > 0
    assert list(ctx.cache) == [PURCHASE_PAIRS]
    with pytest.raises(RuntimeError, match="'tickets' was released after the churn stage"):
        ctx.data.tickets["body"]
    with pytest.raises(RuntimeError, match="STAGE_READS"):
        len(ctx.data.feedback)
    # A stage the table does not know reads everything: nothing more is released.
    training.release_unread(ctx, after="graph", still_to_run=["a-plugin-stage"])
    assert len(ctx.data.orders) > 0 and list(ctx.cache) == [PURCHASE_PAIRS]
    training.release_unread(ctx, after="recommend", still_to_run=[])
    assert not ctx.cache
    for name in training.TABLES:
        with pytest.raises(RuntimeError):
            len(getattr(ctx.data, name))


def test_the_summary_is_freed_after_its_last_reader_while_stages_remain(
    company_engine: Engine,
) -> None:
    from crmbot.analytics.base import SUMMARY, RunContext, load_training_data

    ctx = RunContext.start(load_training_data(company_engine, END), Settings(_env_file=None))  # type: ignore[call-arg]
    ctx.features = pd.DataFrame(index=ctx.scores.index)
    ctx.cache[SUMMARY] = ctx.features  # the database source keeps its copy here
    training.release_unread(ctx, after="satisfaction", still_to_run=["churn", "graph"])
    assert ctx.features is not None and SUMMARY in ctx.cache
    training.release_unread(ctx, after="churn", still_to_run=["graph", "recommend"])
    assert ctx.features is None and SUMMARY not in ctx.cache
    # After the last stage the summary stays, for whoever called `fit`.
    ctx.features = pd.DataFrame(index=ctx.scores.index)
    training.release_unread(ctx, after="recommend", still_to_run=[])
    assert ctx.features is not None


def test_a_stage_done_reading_frees_what_no_later_stage_reads(company_engine: Engine) -> None:
    from crmbot.analytics.base import RunContext, load_training_data

    ctx = RunContext.start(load_training_data(company_engine, END), Settings(_env_file=None))  # type: ignore[call-arg]
    ctx.done_reading("graph", "orders", "lines")  # run on its own: nothing is known
    assert len(ctx.data.orders) > 0 and len(ctx.data.lines) > 0
    ctx.read_later = training.reads_of(ctx, ["a-plugin-stage"])  # reads everything
    ctx.done_reading("graph", "orders", "lines")
    assert len(ctx.data.orders) > 0 and len(ctx.data.lines) > 0
    ctx.read_later = training.reads_of(ctx, ["recommend"])
    ctx.done_reading("graph", "orders", "lines", "products")
    assert len(ctx.data.products) > 0  # the rules read the catalogue
    with pytest.raises(RuntimeError, match="'orders' was released after the graph stage"):
        len(ctx.data.orders)
    with pytest.raises(RuntimeError, match="'lines' was released after the graph stage"):
        len(ctx.data.lines)


@pytest.mark.parametrize("listed", [None, 7])
def test_a_database_sample_reads_its_own_orders_as_the_loaded_ones(
    storage_engine: Engine, monkeypatch: pytest.MonkeyPatch, listed: int | None
) -> None:
    """`DatabaseSource.sample`: the sample's orders equal the loaded orders of the same
    customers (columns, types, order), asked by customer (a few at a time where the
    database takes lists: `listed`), and its snapshots' summaries equal pandas'."""
    from crmbot.analytics.base import load_training_data
    from crmbot.analytics.source import database_source
    from crmbot.analytics.source.database_source import DatabaseSource

    if listed is not None:
        monkeypatch.setattr(database_source, "MAX_LISTED_CUSTOMERS", listed)
    company = build_company()
    insert_company(storage_engine, company)
    insert_company(storage_engine, later_rows(company))  # rows after END are never read
    loaded = load_training_data(storage_engine, END)
    keep = pd.Index(loaded.customers.index[::3])
    everything = load_training_data(storage_engine, END, with_orders=False)
    data, source = DatabaseSource(storage_engine, END).sample(everything.for_customers(keep))
    expected = loaded.orders[loaded.orders["customer_pk"].isin(keep)].reset_index(drop=True)
    assert len(expected) > 0 and expected["ordered_at"].max() < loaded.cutoff
    pd.testing.assert_frame_equal(data.orders, expected, check_dtype=True)
    earlier = data.as_of_earlier(END - timedelta(days=60))
    from crmbot.analytics.source.pandas_summary import customer_summary

    pd.testing.assert_frame_equal(
        source.narrowed(earlier).summary(),
        customer_summary(loaded.for_customers(keep).as_of_earlier(END - timedelta(days=60))),
    )
