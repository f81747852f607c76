"""Retention: old model runs are pruned after a retrain, in bounded batches, never the live
or a pinned one, and the room comes back; `crmbot db stats` shows where the room goes.

Runs are built with the cheap score builders of `tests.support.scored_data` (rows written
straight into the real tables); the retrain tests train for real, on two quick stages.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, insert, select, text, update
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from crmbot import runs
from crmbot.cli.main import app
from crmbot.core.config import Settings, get_settings
from crmbot.core.db import connect, make_engine, read_session, upgrade, write_session
from crmbot.core.models import ActiveRun, CustomerScore, ModelRun, RunOffer
from crmbot.core.storage import database_size, sqlite_auto_vacuum, table_sizes, vacuum
from crmbot.runs import retention
from crmbot.runs.retention import (
    RetentionError,
    pin_run,
    prune_after_retrain,
    prune_runs,
    rows_per_run,
    run_tables,
)
from crmbot.training.pipeline import STAGES
from tests.support.scored_data import Account, add_customers, add_run, book
from tests.support.value_data import END, build_company, insert_company

ACCOUNTS = book(4)
OFFERS_PER_RUN = 3
QUICK_STAGES = STAGES[:2]  # features and segments: a real run in a fraction of a second
DAY = date(2026, 3, 1)


def build_runs(
    engine: Engine, count: int = 6, *, live: int | None = None, accounts: list[Account] = ACCOUNTS
) -> list[int]:
    """`count` succeeded runs scoring `accounts`, each with offers; `live` (default the
    newest) is made the live one."""
    pks = add_customers(engine, accounts)
    ids = [
        add_run(engine, accounts, pks, as_of=DAY + timedelta(days=i), activate=False)
        for i in range(count)
    ]
    with write_session(engine) as session:
        for run_id in ids:
            for offer in range(OFFERS_PER_RUN):
                session.add(
                    RunOffer(
                        run_id=run_id,
                        offer=offer,
                        product_id=f"P{offer}",
                        name=f"Product {offer}",
                        confidence=0.5,
                        lift=2.0,
                        support=0.1,
                        reason="bought together",
                    )
                )
    runs.activate(engine, live if live is not None else ids[-1])
    return ids


def run_ids(engine: Engine) -> set[int]:
    with read_session(engine) as session:
        return {i for i in session.execute(select(ModelRun.id)).scalars() if i is not None}


def rows_of(engine: Engine, model: Any, run_id: int) -> int:
    with read_session(engine) as session:
        return int(
            session.execute(
                select(func.count()).select_from(model).where(model.run_id == run_id)
            ).scalar_one()
        )


def scores_of(engine: Engine, run_ids: set[int]) -> list[tuple[Any, ...]]:
    table: Any = CustomerScore.__table__  # type: ignore[attr-defined]
    with engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                select(table)
                .where(table.c.run_id.in_(run_ids))
                .order_by(table.c.run_id, table.c.customer_pk)
            )
        ]


def status_of(engine: Engine, run_id: int) -> str | None:
    with read_session(engine) as session:
        return session.execute(
            select(ModelRun.status).where(ModelRun.id == run_id)
        ).scalar_one_or_none()


def retaining(settings: Settings, keep: int, monthly: int = 0) -> Settings:
    return settings.model_copy(update={"retain_runs": keep, "retain_monthly_runs": monthly})


# ---------------------------------------------------------------------------------------
# What is kept


def test_the_newest_runs_the_live_one_and_pinned_ones_are_kept(
    storage_engine: Engine, settings: Settings
) -> None:
    ids = build_runs(storage_engine, 6, live=2)
    assert pin_run(storage_engine, 1)
    kept = {1, 2, 4, 5, 6}
    before = scores_of(storage_engine, kept)

    result = prune_after_retrain(storage_engine, retaining(settings, 3))

    assert result is not None and result.pruned == [3]
    assert run_ids(storage_engine) == kept
    assert scores_of(storage_engine, kept) == before  # every kept score intact
    assert rows_of(storage_engine, CustomerScore, 3) == 0
    assert rows_of(storage_engine, RunOffer, 3) == 0
    for run_id in kept:
        assert rows_of(storage_engine, RunOffer, run_id) == OFFERS_PER_RUN
    assert result.rows_deleted == {"customer_score": len(ACCOUNTS), "run_offer": OFFERS_PER_RUN}
    with read_session(storage_engine) as session:
        assert runs.active_run_id(session=session) == 2
    assert ids == [1, 2, 3, 4, 5, 6]


def test_the_first_run_of_each_recent_month_is_kept_for_backtests(
    storage_engine: Engine, settings: Settings
) -> None:
    days = ["01-05", "01-20", "02-03", "02-10", "03-01", "03-15", "04-02", "04-03", "05-01"]
    pks = add_customers(storage_engine, ACCOUNTS)
    ids = [
        add_run(storage_engine, ACCOUNTS, pks, as_of=date.fromisoformat(f"2026-{day}"))
        for day in days
    ]
    assert ids == list(range(1, 10))
    result = prune_after_retrain(storage_engine, retaining(settings, 2, monthly=3))

    # newest two (8, 9), and the first of May (9), April (7) and March (5)
    assert result is not None and result.pruned == [1, 2, 3, 4, 6]
    assert run_ids(storage_engine) == {5, 7, 8, 9}
    with read_session(storage_engine) as session:
        assert retention.runs_to_prune(session, keep=2, monthly=0) == [5, 7]


def test_a_run_whose_day_cannot_be_read_belongs_to_no_month() -> None:
    runs_by_day = [(1, date(2026, 5, 3)), (2, "unreadable"), (3, date(2026, 5, 1)), (4, None)]
    assert retention.monthly_runs(runs_by_day, months=2) == {3}
    assert retention.monthly_runs(runs_by_day, months=0) == set()


def test_the_live_run_is_kept_even_when_older_than_the_runs_kept(
    storage_engine: Engine,
) -> None:
    build_runs(storage_engine, 6, live=1)  # a rollback made the oldest run live
    result = prune_runs(storage_engine, keep=3)
    assert result.pruned == [2, 3]
    assert run_ids(storage_engine) == {1, 4, 5, 6}
    assert rows_of(storage_engine, CustomerScore, 1) == len(ACCOUNTS)
    with read_session(storage_engine) as session:
        assert runs.active_run_id(session=session) == 1


def test_a_pinned_run_survives_until_unpinned(storage_engine: Engine) -> None:
    build_runs(storage_engine, 5)
    assert pin_run(storage_engine, 1)
    assert not pin_run(storage_engine, 1)  # already pinned: no change, no error
    assert prune_runs(storage_engine, keep=2).pruned == [2, 3]
    assert run_ids(storage_engine) == {1, 4, 5}
    assert rows_of(storage_engine, CustomerScore, 1) == len(ACCOUNTS)

    assert pin_run(storage_engine, 1, pinned=False)
    assert prune_runs(storage_engine, keep=2).pruned == [1]
    assert run_ids(storage_engine) == {4, 5}
    with pytest.raises(RetentionError, match="there is no model run 1"):
        pin_run(storage_engine, 1)


def test_runs_still_training_are_kept_and_old_failed_runs_go(storage_engine: Engine) -> None:
    build_runs(storage_engine, 4)
    with write_session(storage_engine) as session:
        session.execute(update(ModelRun).where(ModelRun.id == 1).values(status="failed"))
        session.execute(update(ModelRun).where(ModelRun.id == 2).values(status="rejected"))
        session.add(ModelRun(as_of=DAY, started_at=DAY, status="running"))  # run 5
    # The newest 2 runs holding scores are 4 and 3 (the rejected one counts too).
    with read_session(storage_engine) as session:
        assert retention.runs_to_prune(session, keep=2) == [1, 2]
    assert prune_runs(storage_engine, keep=2).pruned == [1, 2]
    assert run_ids(storage_engine) == {3, 4, 5}
    # Fewer scored runs than `keep`: nothing goes; keep=0 keeps everything.
    assert prune_runs(storage_engine, keep=5).pruned == []
    assert prune_runs(storage_engine, keep=0).pruned == []
    assert run_ids(storage_engine) == {3, 4, 5}


# ---------------------------------------------------------------------------------------
# How: batches, marking, races


def test_tiny_batches_delete_everything_and_no_statement_deletes_more(
    storage_engine: Engine,
) -> None:
    build_runs(storage_engine, 5)
    deleted: list[tuple[str, int]] = []

    @event.listens_for(storage_engine, "after_cursor_execute")
    def record(_conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE FROM"):
            deleted.append((statement.split()[2].strip('"`'), cursor.rowcount))

    result = prune_runs(storage_engine, keep=2, batch_rows=3)
    event.remove(storage_engine, "after_cursor_execute", record)

    assert result.pruned == [1, 2, 3]
    assert run_ids(storage_engine) == {4, 5}
    for run_id in (1, 2, 3):
        assert rows_of(storage_engine, CustomerScore, run_id) == 0
        assert rows_of(storage_engine, RunOffer, run_id) == 0
    score_batches = [count for table, count in deleted if table == "customer_score"]
    assert score_batches and max(score_batches) <= 3
    assert sum(score_batches) == 3 * len(ACCOUNTS)
    assert len(score_batches) >= 3 * 2  # 4 rows a run in batches of 3: at least 2 a run
    assert result.rows_deleted["customer_score"] == 3 * len(ACCOUNTS)
    # A batch of one row works as well.
    assert prune_runs(storage_engine, keep=1, batch_rows=1).pruned == [4]
    assert run_ids(storage_engine) == {5}


def test_every_table_keyed_by_run_id_is_pruned() -> None:
    names = {t.name for t in run_tables()}
    assert names == {"customer_score", "run_offer"}
    keys = {t.name: t.key.name if t.key is not None else None for t in run_tables()}
    assert keys == {"customer_score": "customer_pk", "run_offer": "offer"}


def test_a_run_being_pruned_cannot_be_activated_or_pinned(storage_engine: Engine) -> None:
    build_runs(storage_engine, 3)
    assert retention._mark(storage_engine, keep=1) == [1, 2]
    with pytest.raises(runs.RunNotActivatable):
        runs.activate(storage_engine, 1)
    with pytest.raises(RetentionError, match="being pruned"):
        pin_run(storage_engine, 1)
    # An interrupted prune: the next one finishes the marked runs whatever `keep` says.
    assert prune_runs(storage_engine, keep=0).pruned == [1, 2]
    assert run_ids(storage_engine) == {3}


def test_a_run_made_live_while_marked_is_left_alone(storage_engine: Engine) -> None:
    build_runs(storage_engine, 3)
    assert retention._mark(storage_engine, keep=1) == [1, 2]
    # An admin's activation that checked the run just before it was marked.
    with write_session(storage_engine) as session:
        session.execute(update(ActiveRun).values(run_id=1))
    assert retention._delete_run(storage_engine, 1, 2) is None
    assert status_of(storage_engine, 1) == "succeeded"
    assert rows_of(storage_engine, CustomerScore, 1) == len(ACCOUNTS)
    assert prune_runs(storage_engine, keep=1).pruned == [2]
    assert run_ids(storage_engine) == {1, 3}


# ---------------------------------------------------------------------------------------
# After a retrain


@pytest.fixture
def company(storage_engine: Engine) -> Engine:
    insert_company(storage_engine, build_company())
    return storage_engine


def test_a_retrain_prunes_and_a_pruning_failure_does_not_fail_it(
    company: Engine,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    keep_one = retaining(settings, 1)
    first = runs.train(company, keep_one, END, stages=QUICK_STAGES)
    assert first.activated

    def broken(*_args: Any, **_kwargs: Any) -> int:
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(retention, "_delete_batch", broken)
    with caplog.at_level(logging.ERROR, logger="crmbot.runs.retention"):
        second = runs.train(company, keep_one, END, stages=QUICK_STAGES)
    assert second.status == "succeeded" and second.activated, second.error
    with read_session(company) as session:
        assert runs.active_run_id(session=session) == second.run_id
    assert "pruning old model runs failed" in caplog.text
    assert "the disk is on fire" in caplog.text
    assert rows_of(company, CustomerScore, first.run_id) == 40  # nothing lost, nothing half

    monkeypatch.undo()
    third = runs.train(company, keep_one, END, stages=QUICK_STAGES)
    assert third.activated
    assert run_ids(company) == {third.run_id}
    assert rows_of(company, CustomerScore, first.run_id) == 0
    assert rows_of(company, CustomerScore, third.run_id) == 40


def test_a_failed_retrain_prunes_nothing(storage_engine: Engine, settings: Settings) -> None:
    build_runs(storage_engine, 3)
    broken = [*QUICK_STAGES, ("later", "crmbot.analytics.not_written")]
    result = runs.train(storage_engine, retaining(settings, 1), END, stages=broken)
    assert result.status == "failed"
    assert run_ids(storage_engine) == {1, 2, 3, result.run_id}


# ---------------------------------------------------------------------------------------
# Room given back, and shown


def _pages(engine: Engine) -> tuple[int, int]:
    with engine.connect() as connection:
        pages = connection.exec_driver_sql("PRAGMA page_count").scalar_one()
        free = connection.exec_driver_sql("PRAGMA freelist_count").scalar_one()
    return int(pages), int(free)


MANY = book(1500, owners=("U0AM1",))


def test_sqlite_files_crmbot_creates_give_pruned_pages_back(tmp_path: Path) -> None:
    engine = connect(f"sqlite:///{tmp_path / 'crm.db'}")
    assert sqlite_auto_vacuum(engine) == "incremental"
    build_runs(engine, 4, accounts=MANY)
    pages_before, _ = _pages(engine)
    result = prune_runs(engine, keep=1)
    pages_after, free_after = _pages(engine)
    assert result.pruned == [1, 2, 3]
    assert free_after == 0
    # Three of four runs' pages given back; the customers and their name index stay.
    assert pages_after < pages_before * 0.55
    assert result.reclaimed_bytes > 0
    assert rows_of(engine, CustomerScore, 4) == len(MANY)
    engine.dispose()


def test_an_older_sqlite_file_is_converted_by_vacuum(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as plain:  # created the way crmbot did before: no auto_vacuum
        plain.execute("CREATE TABLE kept_from_before (id INTEGER PRIMARY KEY)")
    plain.close()
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    assert sqlite_auto_vacuum(engine) == "none"
    build_runs(engine, 3, accounts=MANY)
    result = prune_runs(engine, keep=1)
    assert result.pruned == [1, 2] and result.reclaimed_bytes == 0
    pages_before, free_before = _pages(engine)
    assert free_before > 0  # reused by the next writes, not given back

    vacuum(engine)
    pages_after, free_after = _pages(engine)
    assert sqlite_auto_vacuum(engine) == "incremental"
    assert free_after == 0 and pages_after < pages_before
    assert rows_of(engine, CustomerScore, 3) == len(MANY)
    engine.dispose()


def test_stats_show_rows_and_bytes_per_table_and_rows_per_run(storage_engine: Engine) -> None:
    build_runs(storage_engine, 3, live=2)
    pin_run(storage_engine, 1)
    sizes = {size.name: size for size in table_sizes(storage_engine)}
    assert sizes["customer_score"].rows == 3 * len(ACCOUNTS)
    assert sizes["run_offer"].rows == 3 * OFFERS_PER_RUN
    assert sizes["model_run"].rows == 3
    # SQLite here has dbstat; PostgreSQL and MariaDB always tell.
    assert sizes["customer_score"].bytes is not None and sizes["customer_score"].bytes > 0
    assert database_size(storage_engine).bytes
    per_run = {run.run_id: run for run in rows_per_run(storage_engine)}
    assert list(per_run) == [3, 2, 1]
    assert per_run[2].live and not per_run[2].pinned
    assert per_run[1].pinned and not per_run[1].live
    assert per_run[3].rows == {"customer_score": len(ACCOUNTS), "run_offer": OFFERS_PER_RUN}
    assert per_run[3].as_of == (DAY + timedelta(days=2)).isoformat()


def test_vacuum_runs_on_every_database(storage_engine: Engine) -> None:
    build_runs(storage_engine, 3)
    prune_runs(storage_engine, keep=1)
    vacuum(storage_engine)
    assert run_ids(storage_engine) == {3}
    assert rows_of(storage_engine, CustomerScore, 3) == len(ACCOUNTS)


def test_the_migration_adds_pinned_as_false_to_existing_runs(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'crm.db'}")
    upgrade(engine, "0002")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO model_run (as_of, started_at, status, forced) "
                "VALUES ('2026-01-01', '2026-01-01 02:00:00', 'succeeded', 0)"
            )
        )
    upgrade(engine)
    with read_session(engine) as session:
        assert session.execute(select(ModelRun.pinned)).scalar_one() is False
    engine.dispose()


# ---------------------------------------------------------------------------------------
# The command line

runner = CliRunner()


@pytest.fixture
def cli_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    path = tmp_path / "crm.db"
    monkeypatch.chdir(tmp_path)  # no developer .env
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.setenv("CRMBOT_RETAIN_RUNS", "2")
    monkeypatch.setenv("COLUMNS", "250")  # tables unwrapped
    get_settings.cache_clear()
    engine = connect(f"sqlite:///{path}")
    build_runs(engine, 4)
    yield engine
    engine.dispose()
    get_settings.cache_clear()


def _invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, " ".join(result.output.split())


def test_the_commands(cli_database: Engine) -> None:
    assert get_settings().retain_runs == 2

    code, output = _invoke("model", "pin", "1")
    assert code == 0 and "Model run 1 is pinned" in output, output
    code, output = _invoke("model", "list")
    assert code == 0 and "succeeded (pinned)" in output and "succeeded (active)" in output

    code, output = _invoke("db", "stats")
    assert code == 0, output
    for expected in ("Tables", "customer_score", "Rows per model run", "pruned next", "pinned"):
        assert expected in output, (expected, output)

    code, output = _invoke("model", "prune", "--dry-run")
    assert code == 0 and "Would delete model runs 2 (keeping 2)" in output, output
    assert run_ids(cli_database) == {1, 2, 3, 4}
    code, output = _invoke("model", "prune")
    pruned = "Pruned 1 model run (2): 4 customer_score rows, 3 run_offer rows deleted"
    assert code == 0 and pruned in output, output
    assert run_ids(cli_database) == {1, 3, 4}

    code, output = _invoke("model", "unpin", "1")
    assert code == 0 and "Model run 1 is no longer pinned" in output
    code, output = _invoke("model", "prune", "--keep", "1")
    # run 1 stays all the same: the first run of its month (CRMBOT_RETAIN_MONTHLY_RUNS)
    assert code == 0 and run_ids(cli_database) == {1, 4}

    code, output = _invoke("db", "vacuum")
    assert code == 0 and "Vacuumed" in output and "auto_vacuum=incremental" in output, output
    code, output = _invoke("model", "pin", "99")
    assert code == 1 and "there is no model run 99" in output


def test_a_run_inserted_without_pinned_is_not_pinned(storage_engine: Engine) -> None:
    """The column's server default: a run written by a plain INSERT is not pinned."""
    with storage_engine.begin() as connection:
        connection.execute(
            insert(ModelRun.__table__),  # type: ignore[attr-defined]
            [{"as_of": DAY, "started_at": DAY, "status": "succeeded", "forced": False}],
        )
    with read_session(storage_engine) as session:
        assert session.execute(select(ModelRun.pinned)).scalar_one() is False
