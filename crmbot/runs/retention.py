"""Retention: which model runs are kept, and pruning the others.

Every retrain adds a run with one score row per customer; at a million customers that is
a million rows a night. Retention keeps

* the newest `keep` runs that hold scores (succeeded or rejected; `CRMBOT_RETAIN_RUNS`,
  default 14), and every run newer than the oldest of them (failed runs included: they
  hold no rows, only their record);
* the first run of each of the last `monthly` calendar months (by the day its data stops;
  `CRMBOT_RETAIN_MONTHLY_RUNS`, default 4), so that a run older than the churn horizon is
  always there for a backtest (`crmbot.runs.backtest`) to hold against what happened after
  it — with nightly retrains the newest 14 runs are never 90 days old;
* the live run, however old (a rollback may have made an old run live);
* every pinned run (`crmbot model pin RUN`);
* a run still training.

Every other run is pruned: its rows in each table keyed by run id (`run_tables`: the score
rows, the offers, and any table added later with a foreign key to `model_run.id`), then
its record. `keep=0` prunes nothing.

How, so that nobody sees half a run and no statement grows with the number of customers:

1. One transaction marks the runs to prune `pruning`, with the guard in the UPDATE itself
   (not live, not pinned, not running). From then on `crmbot.runs.activate` refuses them
   (only a succeeded or rejected run may go live) and `pin_run` refuses them.
2. Their rows are deleted in batches of at most `batch_rows` rows (default 20,000), each
   batch one statement in its own transaction: the next `batch_rows` keys of the table's
   primary key within the run, found through that key's index. PostgreSQL's autovacuum can
   clean each committed batch while the next is deleted (no transaction spans the prune),
   MariaDB holds each batch's row locks only for that batch, and on SQLite the bot's own
   writes (audit rows) get the write lock between batches. Each batch first checks that
   its run is still marked and neither live nor pinned; one that is (made live in the
   moment before it was marked) gets its status back and is left alone.
3. The run's record goes last. A prune interrupted half-way leaves runs marked `pruning`;
   the next prune finishes them whatever `keep` says.
4. The room is given back (`crmbot.core.storage.reclaim_free_pages`): SQLite's incremental
   vacuum where the file has it, fresh planner statistics on PostgreSQL and MariaDB.

`prune_after_retrain` is what the lifecycle calls once a new run is live. It never raises:
a pruning failure is logged, the retrain stays a success and the next retrain tries again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import (
    Column,
    String,
    Table,
    cast,
    delete,
    false,
    func,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlmodel import SQLModel, col

from crmbot.core.config import Settings
from crmbot.core.db import read_session, write_session
from crmbot.core.models import ActiveRun, ModelRun
from crmbot.core.storage import reclaim_free_pages
from crmbot.runs.lock import acquire_training_lock

logger = logging.getLogger(__name__)

BATCH_ROWS = 20_000
PRUNING = "pruning"
RUNNING = "running"
SCORED = ("succeeded", "rejected")  # the runs that hold scores and count towards `keep`


class RetentionError(ValueError):
    """A run cannot be pinned or unpinned; the message says why."""


@dataclass(frozen=True)
class RunTable:
    """A table whose rows belong to one model run each."""

    table: Table
    run_column: Column[Any]
    key: Column[Any] | None  # the primary-key column batches advance along; None: one row a run

    @property
    def name(self) -> str:
        return self.table.name


def run_tables() -> list[RunTable]:
    """Every table with a foreign key to `model_run.id`, children before parents, except
    `active_run` (which names the live run, never pruned)."""
    found = []
    for table in reversed(SQLModel.metadata.sorted_tables):
        if table.name in (ModelRun.__tablename__, ActiveRun.__tablename__):
            continue
        for foreign_key in table.foreign_keys:
            if foreign_key.column.table.name != ModelRun.__tablename__:
                continue
            run_column = foreign_key.parent
            others = [c for c in table.primary_key.columns if c is not run_column]
            found.append(RunTable(table, run_column, others[0] if others else None))
    return found


@dataclass
class PruneResult:
    pruned: list[int] = field(default_factory=list)  # runs deleted, oldest first
    rows_deleted: dict[str, int] = field(default_factory=dict)  # per table
    left_alone: list[int] = field(default_factory=list)  # marked, then found live or pinned
    reclaimed_bytes: int = 0
    reclaim_seconds: float = 0.0  # of `seconds`, the time giving the room back took
    seconds: float = 0.0


# ---------------------------------------------------------------------------------------
# Which runs go


def runs_to_prune(session: Session, *, keep: int, monthly: int = 0) -> list[int]:
    """The runs a prune with `keep` (and `monthly`) would delete, oldest first (see the
    module docstring)."""
    runs: list[tuple[int, str, bool, Any]] = [
        (run_id, status, bool(pinned), as_of)
        for run_id, status, pinned, as_of in session.execute(
            select(
                col(ModelRun.id), col(ModelRun.status), col(ModelRun.pinned), col(ModelRun.as_of)
            ).order_by(col(ModelRun.id).desc())
        ).all()
        if run_id is not None
    ]
    live = set(session.execute(select(col(ActiveRun.run_id))).scalars())
    scored = [run_id for run_id, status, _, _ in runs if status in SCORED]
    cutoff = scored[keep - 1] if keep > 0 and len(scored) >= keep else None
    kept_monthly = monthly_runs([(r, a) for r, s, _, a in runs if s in SCORED], months=monthly)
    return sorted(
        run_id
        for run_id, status, pinned, _ in runs
        if run_id not in live
        and not pinned
        and status != RUNNING
        and (
            status == PRUNING
            or (cutoff is not None and run_id < cutoff and run_id not in kept_monthly)
        )
    )


def monthly_runs(runs: list[tuple[int, Any]], *, months: int) -> set[int]:
    """Of `(run id, as_of)` pairs, the first run (earliest day, then lowest id) of each of
    the `months` latest calendar months that have one. A day that cannot be read (a corrupt
    record) belongs to no month."""
    first: dict[tuple[int, int], tuple[date, int]] = {}
    for run_id, as_of in runs:
        if not isinstance(as_of, date):
            continue
        month = (as_of.year, as_of.month)
        if month not in first or (as_of, run_id) < first[month]:
            first[month] = (as_of, run_id)
    latest = sorted(first, reverse=True)[: max(months, 0)]
    return {first[month][1] for month in latest}


# ---------------------------------------------------------------------------------------
# Pruning


def prune_runs(
    engine: Engine,
    *,
    keep: int,
    monthly: int = 0,
    batch_rows: int = BATCH_ROWS,
    reclaim: bool = True,
) -> PruneResult:
    """Delete every run retention does not keep, in bounded batches; see the module
    docstring. `reclaim` gives the room back afterwards."""
    if batch_rows < 1:
        raise ValueError("batch_rows must be at least 1")
    started = time.perf_counter()
    result = PruneResult(rows_deleted={t.name: 0 for t in run_tables()})
    for run_id in _mark(engine, keep, monthly):
        deleted = _delete_run(engine, run_id, batch_rows)
        if deleted is None:
            result.left_alone.append(run_id)
            continue
        result.pruned.append(run_id)
        for name, count in deleted.items():
            result.rows_deleted[name] += count
        logger.info(
            "pruned model run %s (%s)",
            run_id,
            ", ".join(f"{count:,} {name} rows" for name, count in deleted.items()),
        )
    if reclaim and result.pruned:
        reclaim_started = time.perf_counter()
        result.reclaimed_bytes = reclaim_free_pages(engine, *[t.name for t in run_tables()])
        result.reclaim_seconds = time.perf_counter() - reclaim_started
    result.seconds = time.perf_counter() - started
    return result


def _mark(engine: Engine, keep: int, monthly: int = 0) -> list[int]:
    with write_session(engine) as session:
        # A run marked and then made live or pinned in the same moment (see
        # `_still_prunable`) gets its status back if an interrupted prune left it marked.
        session.execute(
            update(ModelRun)
            .where(
                col(ModelRun.status) == PRUNING,
                or_(
                    col(ModelRun.pinned) == true(),
                    col(ModelRun.id).in_(select(col(ActiveRun.run_id))),
                ),
            )
            .values(status="succeeded")
        )
        chosen = runs_to_prune(session, keep=keep, monthly=monthly)
        if not chosen:
            return []
        session.execute(
            update(ModelRun)
            .where(
                col(ModelRun.id).in_(chosen),
                col(ModelRun.pinned) == false(),
                col(ModelRun.status) != RUNNING,
                col(ModelRun.id).not_in(select(col(ActiveRun.run_id))),
            )
            .values(status=PRUNING)
        )
        marked = session.execute(
            select(col(ModelRun.id))
            .where(col(ModelRun.id).in_(chosen), col(ModelRun.status) == PRUNING)
            .order_by(col(ModelRun.id))
        ).scalars()
        return list(marked)


def _delete_run(engine: Engine, run_id: int, batch_rows: int) -> dict[str, int] | None:
    """Rows deleted per table, or None when the run turned out live or pinned."""
    deleted: dict[str, int] = {}
    for run_table in run_tables():
        deleted[run_table.name] = 0
        while True:
            count = _delete_batch(engine, run_table, run_id, batch_rows)
            if count is None:
                return None
            deleted[run_table.name] += count
            if count < batch_rows:
                break
    with write_session(engine) as session:
        if not _still_prunable(session, run_id):
            return None
        session.execute(
            delete(ModelRun).where(col(ModelRun.id) == run_id, col(ModelRun.status) == PRUNING)
        )
    return deleted


def _delete_batch(engine: Engine, run_table: RunTable, run_id: int, batch_rows: int) -> int | None:
    """Delete at most `batch_rows` of the run's rows of one table, in one transaction."""
    with write_session(engine) as session:
        if not _still_prunable(session, run_id):
            return None
        statement = delete(run_table.table).where(run_table.run_column == run_id)
        if run_table.key is not None:
            bound = session.execute(
                select(run_table.key)
                .where(run_table.run_column == run_id)
                .order_by(run_table.key)
                .offset(batch_rows - 1)
                .limit(1)
            ).scalar_one_or_none()
            if bound is not None:
                statement = statement.where(run_table.key <= bound)
        return int(getattr(session.execute(statement), "rowcount", 0) or 0)


def _still_prunable(session: Session, run_id: int) -> bool:
    """Whether the run is still marked and neither live nor pinned; a marked run that has
    become live or pinned gets its status back."""
    row = session.execute(
        select(col(ModelRun.status), col(ModelRun.pinned)).where(col(ModelRun.id) == run_id)
    ).one_or_none()
    if row is None or row.status != PRUNING:
        return False
    live = run_id in set(session.execute(select(col(ActiveRun.run_id))).scalars())
    if live or row.pinned:
        logger.warning("model run %s became live or pinned while being pruned; kept", run_id)
        session.execute(
            update(ModelRun).where(col(ModelRun.id) == run_id).values(status="succeeded")
        )
        return False
    return True


def prune_after_retrain(engine: Engine, settings: Settings) -> PruneResult | None:
    """Prune to `settings.retain_runs` after a retrain made its run live. Never raises:
    whatever goes wrong is logged, and the next retrain tries again."""
    if settings.retain_runs <= 0:
        return None
    try:
        result = prune_runs(engine, keep=settings.retain_runs, monthly=settings.retain_monthly_runs)
    except Exception:
        logger.exception(
            "pruning old model runs failed; the new run is live all the same, and the next "
            "retrain tries again (or run `crmbot model prune`)"
        )
        return None
    if result.pruned:
        logger.info(
            "retention (CRMBOT_RETAIN_RUNS=%s) pruned runs %s in %.1fs: %s rows deleted, "
            "%s bytes given back",
            settings.retain_runs,
            result.pruned,
            result.seconds,
            result.rows_deleted,
            result.reclaimed_bytes,
        )
    return result


def prune_exclusively(
    engine: Engine, settings: Settings, *, keep: int, holder: str, batch_rows: int = BATCH_ROWS
) -> PruneResult:
    """`prune_runs` under the training lock (`crmbot model prune`): never beside a
    training run. Raises `TrainingInProgress` when one holds the lock."""
    with acquire_training_lock(engine, holder, lease_seconds=settings.training_lock_lease_seconds):
        return prune_runs(
            engine, keep=keep, monthly=settings.retain_monthly_runs, batch_rows=batch_rows
        )


# ---------------------------------------------------------------------------------------
# Pinning


def pin_run(engine: Engine, run_id: int, *, pinned: bool = True) -> bool:
    """Pin (or unpin) a run: pruning keeps a pinned run however old it is. Returns False
    when it already was (or was not) pinned; raises `RetentionError` for a run that does
    not exist or is being pruned."""
    with write_session(engine) as session:
        changed = session.execute(
            update(ModelRun)
            .where(
                col(ModelRun.id) == run_id,
                col(ModelRun.status) != PRUNING,
                col(ModelRun.pinned) == (not pinned),
            )
            .values(pinned=pinned)
        )
        if int(getattr(changed, "rowcount", 0) or 0):
            return True
        row = session.execute(
            select(col(ModelRun.status), col(ModelRun.pinned)).where(col(ModelRun.id) == run_id)
        ).one_or_none()
    if row is None:
        raise RetentionError(f"there is no model run {run_id}; see `crmbot model list`")
    if row.status == PRUNING and pinned:
        raise RetentionError(f"model run {run_id} is being pruned; it can no longer be pinned")
    return False


# ---------------------------------------------------------------------------------------
# Rows per run


@dataclass(frozen=True)
class RunRows:
    """One run's rows in each run table (`crmbot db stats`)."""

    run_id: int
    as_of: str
    status: str
    live: bool
    pinned: bool
    rows: dict[str, int]


def rows_per_run(engine: Engine) -> list[RunRows]:
    """Every run, newest first, with its row count in each table keyed by run id."""
    tables = run_tables()
    with read_session(engine) as session:
        runs = session.execute(
            select(
                col(ModelRun.id),
                # As text: a run's record is shown even when its date does not parse.
                cast(col(ModelRun.as_of), String),
                col(ModelRun.status),
                col(ModelRun.pinned),
            ).order_by(col(ModelRun.id).desc())
        ).all()
        live = set(session.execute(select(col(ActiveRun.run_id))).scalars())
        counts = {
            t.name: {
                run_id: int(count)
                for run_id, count in session.execute(
                    select(t.run_column, func.count()).group_by(t.run_column)
                ).all()
            }
            for t in tables
        }
    return [
        RunRows(
            run_id=run_id,
            as_of=str(as_of or ""),
            status=status,
            live=run_id in live,
            pinned=bool(pinned),
            rows={t.name: int(counts[t.name].get(run_id, 0)) for t in tables},
        )
        for run_id, as_of, status, pinned in runs
    ]
