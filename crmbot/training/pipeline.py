"""One model run: load data as of a date -> run every stage -> write scores -> activate.

The stage contract (see `crmbot.analytics.base`): a stage is a module with
`def run(ctx: RunContext) -> None` that fills its columns of `ctx.scores` (index
`customer_pk`, column names as in `CustomerScore`) and writes JSON-able
`ctx.params[name]` / `ctx.metrics[name]`. A stage that cannot fit its model raises
`StageFailed("<which model> ... <why>")`. A stage module may also define
`compare(new_metrics, champion_metrics, settings) -> str | None`: the champion/challenger
check, returning why the new run is worse than the active one (the run is then `rejected`
and not activated unless forced) or None.

Scores are written under a new `ModelRun`; only when every row is in does one transaction
mark the run succeeded and point `ActiveRun` at it. A failure anywhere leaves the previous
run active, so readers (who always join through `ActiveRun`) never see a half-written model.
"""

from __future__ import annotations

import gc
import importlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from json.encoder import encode_basestring_ascii
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import JSON, DateTime, delete, insert, select, update
from sqlalchemy.engine import Engine
from sqlmodel import col

from crmbot import queries
from crmbot.analytics.base import (
    HASHED_TEXTS,
    PURCHASE_DAYS,
    PURCHASE_PAIRS,
    ReleasedTable,
    RunContext,
    StageFailed,
    TrainingData,
    load_training_data,
    paused_gc,
    read_frame,
)
from crmbot.analytics.database_source import DatabaseSource
from crmbot.analytics.sql_summary import summary_in_database
from crmbot.core.clock import utc_now
from crmbot.core.config import Settings
from crmbot.core.db import is_sqlite, read_session, refresh_statistics, write_session
from crmbot.core.models import ActiveRun, CustomerScore, ModelRun, RunOffer

logger = logging.getLogger(__name__)

# The model stages, in the order they run. Later stages may read earlier stages' columns.
STAGES: list[tuple[str, str]] = [
    ("features", "crmbot.analytics.features"),
    ("segments", "crmbot.analytics.segments"),
    ("clusters", "crmbot.analytics.clusters"),
    ("clv", "crmbot.analytics.clv"),
    ("satisfaction", "crmbot.analytics.satisfaction"),
    ("churn", "crmbot.analytics.churn"),
    ("graph", "crmbot.analytics.graph"),
    ("recommend", "crmbot.analytics.recommend"),
]

# What each stage reads of the loaded tables (`TrainingData`) and of the run's cache
# (`RunContext.cache`). After the last stage that reads one, it is released: at a million
# customers the ticket texts and orders alone are about a gigabyte that the graph and
# rules stages would otherwise carry. A stage not listed reads everything.
STAGE_READS: dict[str, frozenset[str]] = {
    "features": frozenset({"customers", "orders", "tickets", "feedback"}),
    "segments": frozenset(),
    "clusters": frozenset(),
    "clv": frozenset({"customers", "orders", PURCHASE_DAYS}),
    "satisfaction": frozenset({"customers", "tickets", "feedback"}),
    # Snapshots see every table as of an earlier day (`TrainingData.as_of_earlier`).
    "churn": frozenset(
        {"customers", "orders", "lines", "products", "tickets", "feedback", "referrals"}
        | {HASHED_TEXTS}
    ),
    "graph": frozenset({"orders", "lines", "referrals", PURCHASE_PAIRS}),
    "recommend": frozenset({"products", PURCHASE_PAIRS}),
}
TABLES = tuple(f.name for f in fields(TrainingData) if f.name != "as_of")

# Rows per transaction when writing scores: each commit costs a WAL sync on SQLite (50k rows
# per commit writes 100k scores in 1.7 s where 5k rows per commit took 2.7 s); PostgreSQL
# takes each chunk as one COPY, MariaDB as multi-row INSERTs of SQLAlchemy's batch size.
WRITE_CHUNK_ROWS = 50_000
SQLITE_WRITE_CACHE_KIB = 256 * 1024
MAX_ERROR_CHARS = 500

# What a run reads of the previous live run (segment migration, and the headline numbers
# for comparisons); the rest stays in the database.
PREVIOUS_SCORE_COLUMNS = ["segment", "cluster", "clv", "p_alive", "churn_risk"]

SCORE_COLUMNS: list[str] = [c.name for c in CustomerScore.__table__.columns]  # type: ignore[attr-defined]


@dataclass(frozen=True)
class StageEvent:
    """What the progress callback hears: a step starting, finishing or failing."""

    step: str  # "load", a stage name, "write" or "activate"
    state: str  # start | done | failed
    index: int  # 1-based position among all steps
    total: int
    seconds: float | None = None
    note: str | None = None


ProgressCallback = Callable[[StageEvent], None]


@dataclass
class RunResult:
    run_id: int
    as_of: date
    status: str  # succeeded | failed | rejected
    activated: bool
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    row_counts: dict[str, int] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)


def load_stage(module_path: str) -> ModuleType:
    """The stage's module, imported when the run reaches it (so commands that never train
    never pay for scikit-learn). A module that cannot be imported fails the run by name."""
    try:
        return importlib.import_module(module_path)
    except ImportError as exc:
        raise StageFailed(f"the stage module {module_path} cannot be imported: {exc}") from exc


def train(
    engine: Engine,
    settings: Settings,
    as_of: date,
    *,
    force: bool = False,
    progress: ProgressCallback | None = None,
    stages: Sequence[tuple[str, str]] | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> RunResult:
    """Run every stage as of `as_of` and activate the result (see the module docstring).

    `force` activates the run even when a champion/challenger check rejects it.
    `stages` replaces the standard stage list (e.g. a subset when profiling).
    """
    try:
        return _train(engine, settings, as_of, force, progress, stages, clock)
    finally:
        gc.unfreeze()


def _train(
    engine: Engine,
    settings: Settings,
    as_of: date,
    force: bool,
    progress: ProgressCallback | None,
    stages: Sequence[tuple[str, str]] | None,
    clock: Callable[[], datetime],
) -> RunResult:
    stage_list = list(STAGES if stages is None else stages)
    total_steps = len(stage_list) + 3
    notify = progress or (lambda _event: None)
    _close_abandoned_runs(engine, settings, clock)
    run_id = _create_run(engine, as_of, forced=force, clock=clock)
    timings: dict[str, float] = {}
    row_counts: dict[str, int] = {}
    ctx: RunContext | None = None
    started = time.perf_counter()
    step = "load"
    try:
        notify(StageEvent("load", "start", 1, total_steps))
        t0 = time.perf_counter()
        previous_run_id, previous = _active_scores(engine)
        database = (
            DatabaseSource(engine, as_of)
            if summary_in_database(engine, settings.summary_in_database)
            else None
        )
        data = load_training_data(engine, as_of, with_orders=database is None)
        # The frames' millions of strings live as long as the run: the garbage collector
        # need not walk them at every full collection the stages set off.
        gc.freeze()
        row_counts.update(_data_counts(data, database))
        ctx = RunContext.start(data, settings, previous_scores=previous)
        ctx.database = database
        timings["load"] = time.perf_counter() - t0
        notify(StageEvent("load", "done", 1, total_steps, timings["load"]))

        for position, (name, module_path) in enumerate(stage_list, start=2):
            step = name
            notify(StageEvent(name, "start", position, total_steps))
            t0 = time.perf_counter()
            module = load_stage(module_path)
            module.run(ctx)
            release_unread(ctx, after=name, still_to_run=[n for n, _ in stage_list[position - 1 :]])
            timings[name] = time.perf_counter() - t0
            notify(StageEvent(name, "done", position, total_steps, timings[name]))

        step = "write"
        notify(StageEvent("write", "start", total_steps - 1, total_steps))
        t0 = time.perf_counter()
        row_counts["offers"] = write_offers(engine, run_id, ctx.offers)
        row_counts["scores"] = write_scores(engine, run_id, ctx.scores)
        timings["write"] = time.perf_counter() - t0
        notify(StageEvent("write", "done", total_steps - 1, total_steps, timings["write"]))

        step = "activate"
        notify(StageEvent("activate", "start", total_steps, total_steps))
        verdict = None
        if previous_run_id is not None:
            verdict = challenger_verdict(
                ctx.metrics, _run_metrics(engine, previous_run_id), settings, stage_list
            )
        ctx.params["run"] = {
            "as_of": as_of.isoformat(),
            "previous_run_id": previous_run_id,
            "forced": force,
            "rejected_because": verdict,
        }
        timings["total"] = time.perf_counter() - started
        activate_now = verdict is None or force
        status = "succeeded" if activate_now else "rejected"
        error = None if activate_now else f"not activated: {verdict}"
        _finish_run(
            engine,
            run_id,
            status=status,
            activate=activate_now,
            error=error,
            timings=timings,
            row_counts=row_counts,
            params=ctx.params,
            metrics=ctx.metrics,
            clock=clock,
        )
        notify(StageEvent("activate", "done", total_steps, total_steps, note=verdict))
        return RunResult(
            run_id=run_id,
            as_of=as_of,
            status=status,
            activated=activate_now,
            error=error,
            timings=timings,
            row_counts=row_counts,
            params=ctx.params,
            metrics=ctx.metrics,
        )
    except Exception as exc:
        error = describe_failure(step, exc)
        logger.warning("model run %s failed: %s", run_id, error, exc_info=not _expected(exc))
        timings["total"] = time.perf_counter() - started
        notify(StageEvent(step, "failed", 0, total_steps, note=error))
        params = ctx.params if ctx is not None else {}
        metrics = ctx.metrics if ctx is not None else {}
        _fail_run(
            engine,
            run_id,
            error=error,
            timings=timings,
            row_counts=row_counts,
            params=params,
            metrics=metrics,
            clock=clock,
        )
        return RunResult(
            run_id=run_id,
            as_of=as_of,
            status="failed",
            activated=False,
            error=error,
            timings=timings,
            row_counts=row_counts,
            params=params,
            metrics=metrics,
        )


def release_unread(ctx: RunContext, *, after: str, still_to_run: list[str]) -> None:
    """Free the tables and cache entries no stage in `still_to_run` reads (STAGE_READS)."""
    everything = frozenset(TABLES) | frozenset(ctx.cache)
    wanted = frozenset().union(*(STAGE_READS.get(n, everything) for n in still_to_run))
    for name in TABLES:
        if name not in wanted and not isinstance(getattr(ctx.data, name), ReleasedTable):
            ctx.data.release(name, after=after)
    for key in [k for k in ctx.cache if k not in wanted]:
        del ctx.cache[key]


def _expected(exc: Exception) -> bool:
    return isinstance(exc, StageFailed)


def describe_failure(step: str, exc: Exception) -> str:
    """ "<step>: <why>" — which model failed and why, for the run's record and the user."""
    if isinstance(exc, StageFailed):
        return f"{step}: {str(exc).strip() or 'failed'}"
    # A database error's own text carries every bound parameter; its driver message is enough.
    cause = getattr(exc, "orig", None) or exc
    reason = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    if len(reason) > MAX_ERROR_CHARS:
        reason = reason[: MAX_ERROR_CHARS - 1] + "…"
    return f"{step}: unexpected {type(cause).__name__}: {reason or 'no message'}"


def challenger_verdict(
    new_metrics: dict[str, Any],
    champion_metrics: dict[str, Any],
    settings: Settings,
    stages: Iterable[tuple[str, str]] = STAGES,
) -> str | None:
    """Why the new run is worse than the active one, or None when it may go live.

    Each stage module that defines `compare(new_metrics, champion_metrics, settings)` judges
    its own model (e.g. churn: ROC AUC no more than CRMBOT_CHURN_AUC_MARGIN below the
    champion's); the first objection wins.
    """
    for name, module_path in stages:
        compare = getattr(load_stage(module_path), "compare", None)
        if compare is None:
            continue
        objection = compare(new_metrics.get(name) or {}, champion_metrics.get(name) or {}, settings)
        if objection:
            return f"{name}: {objection}"
    return None


def _data_counts(data: TrainingData, database: DatabaseSource | None) -> dict[str, int]:
    return {
        "customers": len(data.customers),
        "orders": len(data.orders) if database is None else database.order_count(),
        "order_lines": len(data.lines) if database is None else database.order_line_count(),
        "products": len(data.products),
        "tickets": len(data.tickets),
        "feedback": len(data.feedback),
        "referrals": len(data.referrals),
    }


# ---------------------------------------------------------------------------------------
# Writing scores


_SCORE_TABLE: Any = CustomerScore.__table__  # type: ignore[attr-defined]
# SQLAlchemy's storage format for DateTime on SQLite (what its result processor parses).
_SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"


def _non_null_defaults() -> dict[str, Any]:
    # Columns that are NOT NULL with a default in CustomerScore (frequency=0, segment...).
    defaults: dict[str, Any] = {}
    for name, info in CustomerScore.model_fields.items():
        if info.default is not None and not callable(info.default) and name in SCORE_COLUMNS:
            defaults[name] = info.default
    return defaults


def _column_values(name: str, values: pd.Series, *, as_text: bool) -> list[Any]:
    """One score column as plain Python values the driver accepts (None for missing);
    `as_text`: datetimes and JSON as the text SQLAlchemy would store (for a driver-level
    insert on SQLite and COPY on PostgreSQL).

    Converted a column at a time with array operations: a million customers times forty
    columns is too many values to inspect one by one.
    """
    column_type = _SCORE_TABLE.c[name].type
    default = _non_null_defaults().get(name)
    if isinstance(column_type, JSON):
        cells = [None if isinstance(v, float) or v is pd.NA else v for v in values.tolist()]
        if as_text:  # serialised here, numpy scalars included, in C
            return [None if v is None else _json_text(v) for v in cells]
        return [None if v is None else _jsonable(v) for v in cells]
    if isinstance(column_type, DateTime):
        stamps = pd.to_datetime(values)
        missing = stamps.isna().to_numpy()
        if as_text:
            text = stamps.dt.strftime(_SQLITE_DATETIME).to_numpy(dtype=object)
        else:
            text = np.array(stamps.dt.to_pydatetime(), dtype=object)
        text[missing] = None
        return text.tolist()
    python_type = column_type.python_type
    if python_type in (int, float):
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
        missing = ~np.isfinite(numbers)
        if python_type is int:
            numeric = np.rint(np.where(missing, 0, numbers)).astype(np.int64).astype(object)
        else:
            numeric = numbers.astype(object)
        numeric[missing] = default
        return list(numeric.tolist())
    objects = values.to_numpy(dtype=object, copy=True)
    missing = pd.isna(values).to_numpy()
    objects[missing] = default
    return objects.tolist()


def score_columns(scores: pd.DataFrame) -> list[str]:
    """The CustomerScore columns a run's frame fills (besides run_id and customer_pk)."""
    return [c for c in scores.columns if c in SCORE_COLUMNS and c not in ("run_id", "customer_pk")]


def score_rows(
    run_id: int, scores: pd.DataFrame, *, as_text: bool = False
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """(column names, one tuple per customer) for the run's score rows (`as_text`: see
    `_column_values`)."""
    columns = score_columns(scores)
    pks = [int(pk) for pk in scores.index.to_numpy()]
    values = [_column_values(name, scores[name], as_text=as_text) for name in columns]
    # NOT NULL columns no stage filled (e.g. when a run has fewer stages) get their model
    # defaults here: the driver-level insert does not apply SQLAlchemy's Python defaults.
    for name, default in _non_null_defaults().items():
        if name not in columns and name not in ("run_id", "customer_pk"):
            columns.append(name)
            values.append([default] * len(pks))
    rows = list(zip([run_id] * len(pks), pks, *values, strict=True))
    return ["run_id", "customer_pk", *columns], rows


def score_records(run_id: int, scores: pd.DataFrame) -> list[dict[str, Any]]:
    """One dict per customer with every CustomerScore column the frame has."""
    names, rows = score_rows(run_id, scores)
    return [dict(zip(names, row, strict=True)) for row in rows]


def write_scores(engine: Engine, run_id: int, scores: pd.DataFrame) -> int:
    """Insert the run's score rows in chunks of WRITE_CHUNK_ROWS. Returns rows written.

    The rows are invisible to readers until the run is activated, so each chunk may
    commit on its own and a crash half-way leaves only rows of a run nobody reads. On
    SQLite the tuples go straight to the driver's executemany and on PostgreSQL through
    COPY (values already in SQLAlchemy's storage formats); on MariaDB through a Core
    insert, whose executemany batches rows into multi-row statements.
    """
    # Rows are made a chunk at a time: a million customers' rows as Python tuples at once
    # took a gigabyte.
    chunks = [
        scores.iloc[start : start + WRITE_CHUNK_ROWS]
        for start in range(0, len(scores), WRITE_CHUNK_ROWS)
    ]
    if is_sqlite(engine):
        _write_sqlite(engine, run_id, chunks)
        return len(scores)
    if engine.dialect.name == "postgresql":
        _write_postgresql(engine, run_id, chunks)
    else:
        insert_statement = insert(_SCORE_TABLE)
        for chunk in chunks:
            with paused_gc():
                records = score_records(run_id, chunk)
                with engine.begin() as connection:
                    connection.execute(insert_statement, records)
    # Before activation, so the first reads of the new run are planned on its rows.
    refresh_statistics(engine, _SCORE_TABLE.name)
    return len(scores)


def _write_sqlite(engine: Engine, run_id: int, chunks: list[pd.DataFrame]) -> None:
    quote = engine.dialect.identifier_preparer.quote
    with paused_gc(), engine.connect() as connection:
        # Four indexes take each row at a random place: with SQLite's default 2 MB page
        # cache a million rows spend most of their time re-reading index pages.
        connection.exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_WRITE_CACHE_KIB}")
        connection.commit()
        try:
            for chunk in chunks:
                names, rows = score_rows(run_id, chunk, as_text=True)
                statement = (
                    f"INSERT INTO {quote(_SCORE_TABLE.name)} "
                    f"({', '.join(quote(n) for n in names)}) "
                    f"VALUES ({', '.join('?' for _ in names)})"
                )
                with connection.begin():
                    connection.exec_driver_sql(statement, rows)
        finally:
            connection.rollback()
            connection.exec_driver_sql("PRAGMA cache_size=-2000")
            connection.commit()


def _write_postgresql(engine: Engine, run_id: int, chunks: list[pd.DataFrame]) -> None:
    # COPY: 100k score rows in 2.9 s where multi-row INSERTs took 4.8 s.
    quote = engine.dialect.identifier_preparer.quote
    for chunk in chunks:
        with paused_gc():
            names, rows = score_rows(run_id, chunk, as_text=True)
            statement = (
                f"COPY {quote(_SCORE_TABLE.name)} ({', '.join(quote(n) for n in names)}) FROM STDIN"
            )
            with engine.begin() as connection:
                cursor = connection.connection.cursor()
                with cursor.copy(statement) as copy:  # type: ignore[attr-defined]
                    for row in rows:
                        copy.write_row(row)


def write_offers(engine: Engine, run_id: int, offers: list[dict[str, Any]]) -> int:
    """Store the run's offers (`RunContext.offers`), numbered by position."""
    if offers:
        rows = [{**offer, "run_id": run_id, "offer": number} for number, offer in enumerate(offers)]
        with engine.begin() as connection:
            connection.execute(insert(RunOffer), _jsonable(rows))
    return len(offers)


# ---------------------------------------------------------------------------------------
# The run's record and activation


def _create_run(engine: Engine, as_of: date, *, forced: bool, clock: Callable[[], datetime]) -> int:
    with write_session(engine) as session:
        run = ModelRun(as_of=as_of, started_at=clock(), status="running", forced=forced)
        session.add(run)
        session.flush()
        assert run.id is not None
        return run.id


def _close_abandoned_runs(
    engine: Engine, settings: Settings, clock: Callable[[], datetime]
) -> None:
    """Mark runs left "running" by a process that died (e.g. SIGKILL) as failed.

    A run still "running" after a whole training-lock lease cannot have a live holder (the
    holder renews the lease while it works); its partial score rows were never read and are
    deleted.
    """
    cutoff = clock() - timedelta(seconds=settings.training_lock_lease_seconds)
    with write_session(engine) as session:
        stale = list(
            session.execute(
                select(col(ModelRun.id)).where(
                    col(ModelRun.status) == "running", col(ModelRun.started_at) < cutoff
                )
            ).scalars()
        )
        if not stale:
            return
        session.execute(delete(CustomerScore).where(col(CustomerScore.run_id).in_(stale)))
        session.execute(delete(RunOffer).where(col(RunOffer.run_id).in_(stale)))
        session.execute(
            update(ModelRun)
            .where(col(ModelRun.id).in_(stale))
            .values(
                status="failed",
                finished_at=clock(),
                error="abandoned: the training process stopped before the run finished",
            )
        )
    logger.warning("marked abandoned model runs %s as failed", stale)


def _json_default(value: Any) -> Any:
    """For json.dumps: numpy scalars and dates that stages may leave in JSON columns."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


_JSON = json.JSONEncoder(default=_json_default)


def _json_text(value: Any) -> str:
    """`value` as JSON text, as json.dumps writes it; the two common cells (a list of offer
    numbers, a list of reasons) joined here in twice the speed of the encoder."""
    if isinstance(value, list) and all(type(item) is int for item in value):
        return "[" + ", ".join(map(str, value)) + "]"
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return "[" + ", ".join(map(encode_basestring_ascii, value)) + "]"
    return _JSON.encode(value)


def _jsonable(value: Any) -> Any:
    """Plain JSON types only: stages should already comply; this guards numpy leftovers."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


def _finish_run(
    engine: Engine,
    run_id: int,
    *,
    status: str,
    activate: bool,
    error: str | None,
    timings: dict[str, float],
    row_counts: dict[str, int],
    params: dict[str, Any],
    metrics: dict[str, Any],
    clock: Callable[[], datetime],
) -> None:
    now = clock()
    with write_session(engine) as session:
        run = session.get(ModelRun, run_id)
        assert run is not None
        run.status = status
        run.finished_at = now
        run.error = error
        run.timings = _jsonable({k: round(v, 4) for k, v in timings.items()})
        run.row_counts = _jsonable(row_counts)
        run.params = _jsonable(params)
        run.metrics = _jsonable(metrics)
        if activate:
            # Same transaction: the run is marked live and ActiveRun points at it.
            run.activated_at = now
            _point_active_run(session, run_id, now)


def _point_active_run(session: Any, run_id: int, now: datetime) -> None:
    current = session.get(ActiveRun, queries.SCORES_SLOT, with_for_update=True)
    if current is None:
        session.add(ActiveRun(slot=queries.SCORES_SLOT, run_id=run_id, activated_at=now))
    else:
        current.run_id = run_id
        current.activated_at = now


def _fail_run(
    engine: Engine,
    run_id: int,
    *,
    error: str,
    timings: dict[str, float],
    row_counts: dict[str, int],
    params: dict[str, Any],
    metrics: dict[str, Any],
    clock: Callable[[], datetime],
) -> None:
    with write_session(engine) as session:
        # Rows of a run that will never be read only take space.
        session.execute(delete(CustomerScore).where(col(CustomerScore.run_id) == run_id))
        session.execute(delete(RunOffer).where(col(RunOffer.run_id) == run_id))
        session.execute(
            update(ModelRun)
            .where(ModelRun.id == run_id)  # type: ignore[arg-type]
            .values(
                status="failed",
                finished_at=clock(),
                error=error[:4000],
                timings=_jsonable({k: round(v, 4) for k, v in timings.items()}),
                row_counts=_jsonable(row_counts),
                params=_jsonable(params),
                metrics=_jsonable(metrics),
            )
        )


def _run_metrics(engine: Engine, run_id: int) -> dict[str, Any]:
    with read_session(engine) as session:
        run = queries.get_run(session, run_id)
        return dict(run.metrics or {}) if run is not None else {}


def _active_scores(engine: Engine) -> tuple[int | None, pd.DataFrame | None]:
    with read_session(engine) as session:
        run_id = queries.active_run_id(session)
        if run_id is None:
            return None, None
    # Read like the training data: a million previous scores through SQLAlchemy's rows
    # took longer than the models using them.
    names = ["customer_pk", *PREVIOUS_SCORE_COLUMNS]
    statement = select(*[_SCORE_TABLE.c[name] for name in names]).where(
        _SCORE_TABLE.c.run_id == run_id
    )
    return run_id, read_frame(engine, statement, names).set_index("customer_pk")
