"""A model run's life, in one place.

    start   close runs a dead process left "running"; create the run's record
    fit     the training pipeline (`crmbot.training.pipeline.fit`) runs every stage
    write   its score rows and offers, invisible to readers until activation
    judge   each stage's champion/challenger check against the live run
    finish  one transaction marks the run succeeded and points `ActiveRun` at it — or
            rejected (a worse model is kept back unless forced) — or failed, its rows
            deleted; in every failure the previous run stays live

Later: `activate` makes any finished run live (a rollback is activating an older one),
`list_runs` and `get_run` show them, and `active_run` is the one run every reader sees.

A run's record may be corrupt (JSON that does not parse, a date that does not): it still
loads, the bad values as `Unreadable`. `run_json` is the one reader of its JSON values;
a live run whose data date is unreadable is refused by `active_run` with a way out
(`RunUnreadable`), and a champion whose metrics are unreadable never blocks a new run.
`train_exclusively` is what the scheduler, `/crm retrain` and `crmbot train` call: the
same life under the training lock (`crmbot.runs.lock`).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlmodel import col

from crmbot.core import metrics, run_summary
from crmbot.core.clock import utc_now
from crmbot.core.config import Settings
from crmbot.core.db import (
    bulk_write_connection,
    read_session,
    without_memory_map,
    write_session,
)
from crmbot.core.models import ActiveRun, CustomerScore, ModelRun, RunOffer, Unreadable
from crmbot.runs.lock import acquire_training_lock, as_clock
from crmbot.runs.retention import prune_after_retrain

if TYPE_CHECKING:
    import pandas as pd

    from crmbot.training.pipeline import ProgressCallback

logger = logging.getLogger(__name__)

# The slot `ActiveRun` keeps the live run under.
SCORES_SLOT = "scores"

Clock = Callable[[], datetime]


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


class RunNotActivatable(ValueError):
    """`activate` was asked for a run that cannot go live; the message says why."""


class RunUnreadable(RuntimeError):
    """The live run's record cannot serve: its data date is unreadable (corrupt). The
    message says so and names the ways out."""

    def __init__(self, run_id: int | None, what: str) -> None:
        self.run_id = run_id
        super().__init__(
            f"The live model run {run_id} cannot be used: its {what} is unreadable (the "
            "record is corrupt). An admin can make a good run live with "
            "`crmbot model activate RUN` (see `crmbot model list`) or retrain."
        )


class RunAlreadyStarted(RuntimeError):
    """A scheduled retrain found a run already started for its slot (another scheduler)."""

    def __init__(self, run: ModelRun) -> None:
        self.run = run
        super().__init__(
            f"Retrain skipped: run {run.id} already started at "
            f"{run.started_at:%Y-%m-%d %H:%M} UTC for this scheduled slot."
        )


# ---------------------------------------------------------------------------------------
# Reading runs


def active_run(*, session: Session) -> ModelRun | None:
    """The model run every reader sees, or None before the first training.

    Raises `RunUnreadable` when the live run's data date is unreadable: every answer says
    how old its data is, and none can say it of that run."""
    run = session.execute(
        select(ModelRun)
        .join(ActiveRun, col(ActiveRun.run_id) == col(ModelRun.id))
        .where(col(ActiveRun.slot) == SCORES_SLOT)
    ).scalar_one_or_none()
    if run is not None and _unreadable(run.as_of):
        _warn_once(run.id, "as_of", run.as_of)
        raise RunUnreadable(run.id, "data date (as_of)")
    return run


def active_run_id(*, session: Session) -> int | None:
    return session.execute(
        select(col(ActiveRun.run_id)).where(col(ActiveRun.slot) == SCORES_SLOT)
    ).scalar_one_or_none()


def get_run(*, session: Session, run_id: int) -> ModelRun | None:
    return session.get(ModelRun, run_id)


def list_runs(*, session: Session, limit: int = 20) -> list[ModelRun]:
    """The newest runs first, every status (running, succeeded, failed, rejected)."""
    return list(
        session.execute(select(ModelRun).order_by(col(ModelRun.id).desc()).limit(limit)).scalars()
    )


def run_score_count(*, session: Session, run_id: int) -> int:
    return int(
        session.execute(
            select(func.count())
            .select_from(CustomerScore)
            .where(col(CustomerScore.run_id) == run_id)
        ).scalar_one()
    )


def age_days(run: ModelRun, *, today: date) -> int:
    """Days between the run's data cut-off and `today`."""
    return (today - run.as_of).days


RunJsonField = Literal["params", "metrics", "timings", "row_counts"]
RUN_JSON_FIELDS: tuple[RunJsonField, ...] = ("params", "metrics", "timings", "row_counts")
RUN_DATE_FIELDS = ("as_of", "started_at", "finished_at", "activated_at")


def run_json(run: ModelRun, name: RunJsonField) -> dict[str, Any] | Unreadable:
    """A run's `params`, `metrics`, `timings` or `row_counts`: a dict ({} when nothing was
    recorded), or `Unreadable` (falsy) when the stored value is not JSON or not an object.
    The one reader of these values; an unreadable one is logged once per run."""
    value = getattr(run, name)
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    _warn_once(run.id, name, value)
    return value if isinstance(value, Unreadable) else Unreadable(value)


def unreadable_fields(run: ModelRun) -> list[str]:
    """The names of the run's recorded values that cannot be read (corrupt), in order."""
    dates = [name for name in RUN_DATE_FIELDS if _unreadable(getattr(run, name))]
    values = [name for name in RUN_JSON_FIELDS if isinstance(run_json(run, name), Unreadable)]
    return dates + values


def _unreadable(value: object) -> bool:
    return isinstance(value, Unreadable)


_warned: set[tuple[int | None, str]] = set()
_warned_lock = threading.Lock()


def _warn_once(run_id: int | None, name: str, value: object) -> None:
    with _warned_lock:
        if (run_id, name) in _warned:
            return
        _warned.add((run_id, name))
    logger.warning("model run %s: its %s is unreadable (%r)", run_id, name, value)


# ---------------------------------------------------------------------------------------
# Training a run


def train(
    engine: Engine,
    settings: Settings,
    as_of: date,
    *,
    force: bool = False,
    progress: ProgressCallback | None = None,
    stages: Sequence[tuple[str, str]] | None = None,
    clock: Clock = utc_now,
) -> RunResult:
    """One run's whole life as of `as_of` (see the module docstring), without the lock.

    `force` activates the run even when a champion/challenger check rejects it.
    `stages` replaces the standard stage list (e.g. a subset when profiling).
    Its outcome and each step's duration are counted in `crmbot.core.metrics`.
    """
    with without_memory_map():  # a run reads every table once: see the function
        result = _train(
            engine, settings, as_of, force=force, progress=progress, stages=stages, clock=clock
        )
    metrics.training_finished(result.status, result.timings)
    return result


def _train(
    engine: Engine,
    settings: Settings,
    as_of: date,
    *,
    force: bool,
    progress: ProgressCallback | None,
    stages: Sequence[tuple[str, str]] | None,
    clock: Clock,
) -> RunResult:
    from crmbot.training import pipeline  # pandas and the models: only when training

    stage_list = list(pipeline.STAGES if stages is None else stages)
    notify = progress or (lambda _event: None)
    total_steps = pipeline.step_count(stage_list)
    close_abandoned_runs(engine, settings, clock)
    run_id = _create_run(engine, as_of, forced=force, clock=clock)
    record = _RunRecord(engine, run_id, as_of, clock)
    try:
        try:
            previous_run_id, previous = _live_scores(engine)
            ctx = pipeline.fit(
                engine,
                settings,
                as_of,
                previous=previous,
                stages=stage_list,
                notify=notify,
                timings=record.timings,
                row_counts=record.row_counts,
            )
        except pipeline.StageError as failed:
            return record.fail(failed.step, failed.cause, notify, total_steps)
        except Exception as exc:
            return record.fail("load", exc, notify, total_steps)
        record.params, record.metrics = ctx.params, ctx.metrics
        try:
            _write(engine, run_id, ctx, record, notify, total_steps)
        except Exception as exc:
            return record.fail("write", exc, notify, total_steps)
        try:
            result = _judge_and_finish(
                engine, settings, record, previous_run_id, stage_list, force, notify, total_steps
            )
        except Exception as exc:
            return record.fail("activate", exc, notify, total_steps)
        if result.activated:
            prune_after_retrain(engine, settings)  # never raises: logs its own failure
        return result
    finally:
        gc.unfreeze()


def train_exclusively(
    engine: Engine,
    settings: Settings,
    *,
    holder: str,
    as_of: date,
    force: bool = False,
    progress: ProgressCallback | None = None,
    clock: Clock | None = None,
    unless_started_since: datetime | None = None,
) -> RunResult:
    """`train` while holding the training lock: never two runs at once.

    Raises `TrainingInProgress` (and starts nothing) when another run holds the lock, and
    `RunAlreadyStarted` when `unless_started_since` is given and a run started at or after
    it (a scheduled slot another scheduler already took). A failed run comes back as a
    `RunResult` with status "failed" and the previous model stays active.
    """
    run_clock = as_clock(clock)
    with acquire_training_lock(
        engine, holder, lease_seconds=settings.training_lock_lease_seconds, now=run_clock
    ):
        if unless_started_since is not None:
            earlier = _run_started_since(engine, unless_started_since)
            if earlier is not None:
                raise RunAlreadyStarted(earlier)
        logger.info("training as of %s started by %s", as_of, holder)
        return train(engine, settings, as_of, force=force, progress=progress, clock=run_clock)


def _run_started_since(engine: Engine, moment: datetime) -> ModelRun | None:
    with read_session(engine) as session:
        return session.execute(
            select(ModelRun)
            .where(col(ModelRun.started_at) >= moment)
            .order_by(col(ModelRun.id))
            .limit(1)
        ).scalar_one_or_none()


@dataclass
class _RunRecord:
    """What one run has measured so far, and how to record its end."""

    engine: Engine
    run_id: int
    as_of: date
    clock: Clock
    started: float = field(default_factory=time.perf_counter)
    timings: dict[str, float] = field(default_factory=dict)
    row_counts: dict[str, int] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def result(self, status: str, *, activated: bool, error: str | None) -> RunResult:
        return RunResult(
            run_id=self.run_id,
            as_of=self.as_of,
            status=status,
            activated=activated,
            error=error,
            timings=self.timings,
            row_counts=self.row_counts,
            params=self.params,
            metrics=self.metrics,
        )

    def fail(
        self, step: str, exc: Exception, notify: ProgressCallback, total_steps: int
    ) -> RunResult:
        from crmbot.training.pipeline import StageEvent, describe_failure, expected_failure

        error = describe_failure(step, exc)
        logger.warning(
            "model run %s failed: %s", self.run_id, error, exc_info=not expected_failure(exc)
        )
        self.timings["total"] = time.perf_counter() - self.started
        notify(StageEvent(step, "failed", 0, total_steps, note=error))
        _fail_run(self, error=error)
        return self.result("failed", activated=False, error=error)


def _write(
    engine: Engine,
    run_id: int,
    ctx: Any,
    record: _RunRecord,
    notify: ProgressCallback,
    total_steps: int,
) -> None:
    from crmbot.training.pipeline import StageEvent
    from crmbot.training.scores import write_offers, write_scores

    notify(StageEvent("write", "start", total_steps - 1, total_steps))
    t0 = time.perf_counter()
    record.row_counts["offers"] = write_offers(engine, run_id, ctx.offers)
    record.row_counts["scores"] = write_scores(engine, run_id, ctx.scores)
    # Before it can go live (see crmbot.core.run_summary); BEGIN IMMEDIATE on SQLite, so
    # the build waits for the commands' audit writes instead of failing on them.
    with bulk_write_connection(engine) as connection:
        run_summary.build(connection, run_id)
    record.timings["write"] = time.perf_counter() - t0
    notify(StageEvent("write", "done", total_steps - 1, total_steps, record.timings["write"]))


def _judge_and_finish(
    engine: Engine,
    settings: Settings,
    record: _RunRecord,
    previous_run_id: int | None,
    stages: Sequence[tuple[str, str]],
    force: bool,
    notify: ProgressCallback,
    total_steps: int,
) -> RunResult:
    """The champion/challenger check, then the run's end: live, or rejected."""
    from crmbot.training.pipeline import StageEvent

    notify(StageEvent("activate", "start", total_steps, total_steps))
    verdict, note = None, None
    if previous_run_id is not None:
        verdict, note = _challenge(engine, settings, record, previous_run_id, stages)
    record.params["run"] = {
        "as_of": record.as_of.isoformat(),
        "previous_run_id": previous_run_id,
        "forced": force,
        "rejected_because": verdict,
    }
    if note:
        record.params["run"]["note"] = note
    record.timings["total"] = time.perf_counter() - record.started
    activate_now = verdict is None or force
    status = "succeeded" if activate_now else "rejected"
    error = None if activate_now else f"not activated: {verdict}"
    _finish_run(record, status=status, activate=activate_now, error=error)
    notify(StageEvent("activate", "done", total_steps, total_steps, note=verdict))
    return record.result(status, activated=activate_now, error=error)


def _challenge(
    engine: Engine,
    settings: Settings,
    record: _RunRecord,
    champion_id: int,
    stages: Sequence[tuple[str, str]],
) -> tuple[str | None, str | None]:
    """The champion/challenger verdict against the live run, and a note when the live run's
    metrics could not be read or compared: a corrupt champion never blocks a new run."""
    from crmbot.training.pipeline import challenger_verdict

    champion = _run_metrics(engine, champion_id)
    skipped = "went live without the champion/challenger check"
    if isinstance(champion, Unreadable):
        return None, f"the previous run {champion_id}'s metrics are unreadable; {skipped}"
    try:
        return challenger_verdict(record.metrics, champion, settings, stages), None
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        # The new run's metrics come from the stages; the stored champion's may be anything.
        logger.warning("model run %s: its metrics cannot be compared: %r", champion_id, exc)
        return None, f"the previous run {champion_id}'s metrics could not be compared; {skipped}"


def _live_scores(engine: Engine) -> tuple[int | None, pd.DataFrame | None]:
    """The live run's id and the scores a new run compares with, or (None, None)."""
    from crmbot.training.pipeline import previous_scores

    with read_session(engine) as session:
        run_id = active_run_id(session=session)
    if run_id is None:
        return None, None
    return run_id, previous_scores(engine, run_id)


# ---------------------------------------------------------------------------------------
# Activation


def activate(engine: Engine, run_id: int, *, clock: Clock = utc_now) -> ModelRun:
    """Make `run_id` the run readers see (e.g. to roll back), in one transaction.

    A run that finished with its scores written may be activated — a `rejected` one too
    (that is what forcing a challenger means); a failed or still-running run may not.
    """
    with write_session(engine) as session:
        # Locked, so retention cannot mark this run for pruning between the check of its
        # status below and the switch (its marking UPDATE waits, then sees the run is live).
        run = session.get(ModelRun, run_id, with_for_update=True)
        if run is None:
            raise RunNotActivatable(f"there is no model run {run_id}; see `crmbot model list`")
        if run.status not in ("succeeded", "rejected"):
            detail = f" ({run.error})" if run.error else ""
            raise RunNotActivatable(
                f"model run {run_id} is {run.status}{detail}; only a finished run can be activated"
            )
        if _unreadable(run.as_of):
            raise RunNotActivatable(
                f"model run {run_id}'s data date (as_of) is unreadable (the record is "
                "corrupt); it cannot serve"
            )
        if run_score_count(session=session, run_id=run_id) == 0:
            raise RunNotActivatable(f"model run {run_id} has no scores to serve")
        now = clock()
        _point_active_run(session, run_id, now)
        run.activated_at = now
        if run.status == "rejected":
            run.status = "succeeded"
            run.forced = True
        session.flush()
        return run


def _point_active_run(session: Session, run_id: int, now: datetime) -> None:
    # The live run's summary goes live with it (questions about groups read it).
    run_summary.keep_only(session.connection(), run_id)
    current = session.get(ActiveRun, SCORES_SLOT, with_for_update=True)
    if current is None:
        session.add(ActiveRun(slot=SCORES_SLOT, run_id=run_id, activated_at=now))
    else:
        current.run_id = run_id
        current.activated_at = now


# ---------------------------------------------------------------------------------------
# The run's record


def _create_run(engine: Engine, as_of: date, *, forced: bool, clock: Clock) -> int:
    with write_session(engine) as session:
        run = ModelRun(as_of=as_of, started_at=clock(), status="running", forced=forced)
        session.add(run)
        session.flush()
        assert run.id is not None
        return run.id


def close_dead_runs_at_startup(
    engine: Engine, settings: Settings, *, holder: str, clock: Clock = utc_now
) -> list[int]:
    """At start-up (the bot, the scheduler): mark every run a dead process left "running"
    as failed (abandoned), so `/crm model` never shows it running for ever.

    Training always holds the training lock, so while this takes the lock no run can be
    in progress: every run still "running" is dead, however recent. When someone else
    holds the lock (a live retrain), only runs older than a whole lease are closed. Never
    raises: start-up goes on, and the next training closes what is left.
    """
    from crmbot.runs.lock import TrainingInProgress

    try:
        with acquire_training_lock(
            engine, holder, lease_seconds=settings.training_lock_lease_seconds, now=clock
        ):
            return close_abandoned_runs(engine, settings, clock, started_before=clock())
    except TrainingInProgress:
        try:
            return close_abandoned_runs(engine, settings, clock)
        except Exception as exc:
            logger.warning("could not check for abandoned model runs: %s", exc)
    except Exception as exc:
        logger.warning("could not check for abandoned model runs: %s", exc)
    return []


def close_abandoned_runs(
    engine: Engine,
    settings: Settings,
    clock: Clock = utc_now,
    *,
    started_before: datetime | None = None,
) -> list[int]:
    """Mark runs left "running" by a process that died (e.g. SIGKILL) as failed; their ids.

    A run still "running" after a whole training-lock lease cannot have a live holder (the
    holder renews the lease while it works); its partial score rows were never read and are
    deleted. `started_before` replaces that cutoff for a caller that holds the training
    lock itself (nobody else can be training).
    """
    cutoff = started_before or clock() - timedelta(seconds=settings.training_lock_lease_seconds)
    with write_session(engine) as session:
        stale = list(
            session.execute(
                select(col(ModelRun.id)).where(
                    col(ModelRun.status) == "running", col(ModelRun.started_at) < cutoff
                )
            ).scalars()
        )
        if not stale:
            return []
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
    return stale


def _recorded(record: _RunRecord) -> dict[str, Any]:
    """The run's measurements as the JSON columns store them."""
    from crmbot.training.scores import jsonable

    return {
        "timings": jsonable({k: round(v, 4) for k, v in record.timings.items()}),
        "row_counts": jsonable(record.row_counts),
        "params": jsonable(record.params),
        "metrics": jsonable(record.metrics),
    }


def _finish_run(record: _RunRecord, *, status: str, activate: bool, error: str | None) -> None:
    now = record.clock()
    values = _recorded(record)
    with write_session(record.engine) as session:
        run = session.get(ModelRun, record.run_id)
        assert run is not None
        run.status = status
        run.finished_at = now
        run.error = error
        run.timings = values["timings"]
        run.row_counts = values["row_counts"]
        run.params = values["params"]
        run.metrics = values["metrics"]
        if activate:
            # Same transaction: the run is marked live and ActiveRun points at it.
            run.activated_at = now
            _point_active_run(session, record.run_id, now)
        else:
            # Not read unless it is forced live later, which builds them again.
            run_summary.discard(session.connection(), record.run_id)


def _fail_run(record: _RunRecord, *, error: str) -> None:
    with write_session(record.engine) as session:
        # Rows of a run that will never be read only take space.
        session.execute(delete(CustomerScore).where(col(CustomerScore.run_id) == record.run_id))
        session.execute(delete(RunOffer).where(col(RunOffer.run_id) == record.run_id))
        run_summary.discard(session.connection(), record.run_id)
        session.execute(
            update(ModelRun)
            .where(col(ModelRun.id) == record.run_id)
            .values(
                status="failed", finished_at=record.clock(), error=error[:4000], **_recorded(record)
            )
        )


def _run_metrics(engine: Engine, run_id: int) -> dict[str, Any] | Unreadable:
    with read_session(engine) as session:
        run = get_run(session=session, run_id=run_id)
        return run_json(run, "metrics") if run is not None else {}
