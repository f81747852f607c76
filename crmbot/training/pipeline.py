"""The training pipeline: load data as of a date -> run every stage -> the run's scores.

The stage contract (see `crmbot.analytics.base`): a stage is a module with
`def run(ctx: RunContext) -> None` that fills its columns of `ctx.scores` (index
`customer_pk`, column names as in `CustomerScore`) and writes JSON-able
`ctx.params[name]` / `ctx.metrics[name]`. A stage that cannot fit its model raises
`StageFailed("<which model> ... <why>")`. A stage module may also define
`compare(new_metrics, champion_metrics, settings) -> str | None`: the champion/challenger
check, returning why the new run is worse than the active one (the run is then `rejected`
and not activated unless forced) or None.

`fit` loads the data and runs the stages; writing the scores is `crmbot.training.scores`;
a run's record, its lock and its activation are `crmbot.runs`, which calls both.
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import logging
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import date
from types import ModuleType
from typing import Any, cast

import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Engine

from crmbot.analytics.base import (
    HASHED_TEXTS,
    PURCHASE_DAYS,
    PURCHASE_PAIRS,
    SUMMARY,
    ReleasedTable,
    RunContext,
    StageFailed,
    TrainingData,
    read_frame,
)
from crmbot.analytics.source import open_source, table_row_counts

# How the run's setting picks where the orders are grouped (read through this module).
from crmbot.analytics.source.sql_summary import summary_in_database as summary_in_database
from crmbot.core.config import Settings
from crmbot.core.models import CustomerScore

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
# (`RunContext.cache`; SUMMARY is also `RunContext.features`). After the last stage that
# reads one, it is released: at a million customers the ticket texts and orders alone are
# about a gigabyte that the graph and rules stages would otherwise carry, and the summary
# about 320 MB. A stage not listed reads everything.
STAGE_READS: dict[str, frozenset[str]] = {
    "features": frozenset({"customers", "orders", "tickets", "feedback", SUMMARY}),
    "segments": frozenset({SUMMARY}),
    "clusters": frozenset({SUMMARY}),
    "clv": frozenset({"customers", "orders", PURCHASE_DAYS, SUMMARY}),
    "satisfaction": frozenset({"customers", "tickets", "feedback"}),
    # Snapshots see every table as of an earlier day (`TrainingData.as_of_earlier`).
    "churn": frozenset(
        {"customers", "orders", "lines", "products", "tickets", "feedback", "referrals"}
        | {HASHED_TEXTS, SUMMARY}
    ),
    "graph": frozenset({"orders", "lines", "referrals", PURCHASE_PAIRS}),
    "recommend": frozenset({"products", PURCHASE_PAIRS}),
}
TABLES = tuple(f.name for f in fields(TrainingData) if f.name != "as_of")

MAX_ERROR_CHARS = 500

# What a run reads of the previous live run (segment migration, and the headline numbers
# for comparisons); the rest stays in the database.
PREVIOUS_SCORE_COLUMNS = ["segment", "cluster", "clv", "p_alive", "churn_risk"]

_SCORE_TABLE: Any = CustomerScore.__table__  # type: ignore[attr-defined]


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


def load_stage(module_path: str) -> ModuleType:
    """The stage's module, imported when the run reaches it (so commands that never train
    never pay for scikit-learn). A module that cannot be imported fails the run by name."""
    try:
        return importlib.import_module(module_path)
    except ImportError as exc:
        raise StageFailed(f"the stage module {module_path} cannot be imported: {exc}") from exc


def step_count(stages: Sequence[tuple[str, str]]) -> int:
    """Steps a run reports: load, each stage, write, activate."""
    return len(stages) + 3


def fit(
    engine: Engine,
    settings: Settings,
    as_of: date,
    *,
    previous: pd.DataFrame | None,
    stages: Sequence[tuple[str, str]],
    notify: ProgressCallback,
    timings: dict[str, float],
    row_counts: dict[str, int],
) -> RunContext:
    """Load the data as of `as_of` and run every stage in `stages`: the filled RunContext.

    `previous` is the live run's scores (`previous_scores`); `timings` and `row_counts` are
    filled as the steps finish, so a failure still leaves what was measured. A stage that
    fails raises `StageError` naming it; a failure while loading raises as it is.
    """
    total_steps = step_count(stages)
    notify(StageEvent("load", "start", 1, total_steps))
    t0 = time.perf_counter()
    data, source = open_source(engine, settings, as_of)
    # The frames' millions of strings live as long as the run: the garbage collector
    # need not walk them at every full collection the stages set off.
    gc.freeze()
    row_counts.update(table_row_counts(data, source))
    ctx = RunContext.start(data, settings, previous_scores=previous, source=source)
    give_back_freed_memory()
    timings["load"] = time.perf_counter() - t0
    notify(StageEvent("load", "done", 1, total_steps, timings["load"]))

    for position, (name, module_path) in enumerate(stages, start=2):
        notify(StageEvent(name, "start", position, total_steps))
        t0 = time.perf_counter()
        ctx.read_later = reads_of(ctx, [n for n, _ in stages[position - 1 :]])
        try:
            module = load_stage(module_path)
            module.run(ctx)
        except Exception as exc:
            raise StageError(name, exc) from exc
        release_unread(ctx, after=name, still_to_run=[n for n, _ in stages[position - 1 :]])
        give_back_freed_memory()
        timings[name] = time.perf_counter() - t0
        notify(StageEvent(name, "done", position, total_steps, timings[name]))
    return ctx


class StageError(Exception):
    """A step of the run failed: which one, and the exception it raised."""

    def __init__(self, step: str, cause: Exception) -> None:
        super().__init__(describe_failure(step, cause))
        self.step = step
        self.cause = cause


def reads_of(ctx: RunContext, stages: list[str]) -> frozenset[str]:
    """The tables and cache entries these stages read (STAGE_READS; everything for a
    stage it does not list)."""
    everything = frozenset(TABLES) | frozenset(ctx.cache) | {SUMMARY}
    return frozenset().union(*(STAGE_READS.get(n, everything) for n in stages))


def release_unread(ctx: RunContext, *, after: str, still_to_run: list[str]) -> None:
    """Free the tables and cache entries no stage in `still_to_run` reads (STAGE_READS).

    The summary (`ctx.features`) goes too while stages remain that do not read it; after
    the last stage it stays, for whoever called `fit`."""
    wanted = reads_of(ctx, still_to_run)
    for name in TABLES:
        if name not in wanted and not isinstance(getattr(ctx.data, name), ReleasedTable):
            ctx.data.release(name, after=after)
    for key in [k for k in ctx.cache if k not in wanted]:
        del ctx.cache[key]
    if still_to_run and SUMMARY not in wanted:
        ctx.features = None


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim`, or None where the C library is not glibc."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return cast(Callable[[int], int], ctypes.CDLL("libc.so.6").malloc_trim)
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _malloc_trim()


def give_back_freed_memory() -> None:
    """Return the memory a stage freed to the operating system (glibc's `malloc_trim`).

    glibc keeps freed blocks in its heap for reuse, so a stage's freed arrays and frames
    stayed in the process's resident memory (300 MB after the churn stage at 200k
    customers); at a million the graph stage peaked 120 MB lower with this. Milliseconds
    per stage; nothing where the C library is not glibc."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def expected_failure(exc: Exception) -> bool:
    """A failure the run records without a traceback: a model that could not be fitted."""
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


def previous_scores(engine: Engine, run_id: int) -> pd.DataFrame:
    """The columns of run `run_id` a new run compares with (PREVIOUS_SCORE_COLUMNS), index
    customer_pk. Read like the training data: a million previous scores through
    SQLAlchemy's rows took longer than the models using them."""
    names = ["customer_pk", *PREVIOUS_SCORE_COLUMNS]
    statement = select(*[_SCORE_TABLE.c[name] for name in names]).where(
        _SCORE_TABLE.c.run_id == run_id
    )
    return read_frame(engine, statement, names).set_index("customer_pk")
