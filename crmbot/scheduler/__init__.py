"""Scheduled work: nightly retraining and the channel digests (APScheduler 3).

Jobs live in APScheduler's `SQLAlchemyJobStore`, in the same database as everything else
(table `apscheduler_jobs`, which Alembic leaves alone), under fixed ids:

    retrain             CRMBOT_RETRAIN_CRON           (default 02:00 daily)
    at-risk-digest      CRMBOT_AT_RISK_DIGEST_CRON    -> CRMBOT_AT_RISK_CHANNEL
    influencer-digest   CRMBOT_INFLUENCER_DIGEST_CRON -> CRMBOT_INFLUENCER_CHANNEL

Every trigger is a `CronTrigger` in the configured time zone (CRMBOT_TIMEZONE). Jobs are
added with `replace_existing=True` on every start, so a restart neither loses nor
duplicates them; a job whose schedule did not change keeps its stored next run time, so a
run missed while the process was down still happens after the restart — once
(`coalesce`), if it is no later than `MISFIRE_GRACE_SECONDS` (`max_instances=1`: never
two of the same job at once).

Admins change schedules with `/crm schedule` (persisted as `ScheduleOverride` rows).
Overrides are applied on start, immediately when the command runs in the scheduler's own
process, and otherwise within `SYNC_SECONDS` by a small in-memory sync job.

Job functions are module-level and referenced by their textual path ("crmbot.scheduler:
retrain_job"), so the persistent store can serialise them; what they work with (engine,
settings, Slack client, clock) is bound to the scheduler's worker threads. A failing job
is logged with its cause and reported to CRMBOT_ADMIN_CHANNEL; it never stops the
scheduler.

Several schedulers on one database (which APScheduler 3 does not coordinate) are safe but
pointless: a retrain is guarded by the training lock and skipped when a run already
started since its scheduled time, and a digest is posted once per (kind, channel,
period). Multi-replica deployments run exactly one `crmbot scheduler`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobEvent,
    JobExecutionEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_STOPPED
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from slack_sdk import WebClient
from sqlalchemy import select, text
from sqlalchemy.engine import Engine

from crmbot import digests, runs
from crmbot.core.clock import utc_now
from crmbot.core.config import Settings
from crmbot.core.cron import parse_cron
from crmbot.core.db import read_session, write_session
from crmbot.core.models import ScheduleOverride
from crmbot.core.privacy import mask_pii
from crmbot.runs import default_holder

log = logging.getLogger(__name__)

JOBSTORE_TABLE = "apscheduler_jobs"
# How late a missed run may still start (after downtime): 12 hours. Later than that, the
# slot is reported as missed and the job waits for its next one.
MISFIRE_GRACE_SECONDS = 12 * 3600
# How often a scheduler looks for /crm schedule changes made in other processes.
SYNC_SECONDS = 60
SYNC_JOB_ID = "schedule-sync"

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class JobSpec:
    job_id: str
    title: str
    func: str  # textual reference, so SQLAlchemyJobStore can store the job
    cron_setting: str  # the Settings field with the default schedule
    channel_setting: str | None = None
    digest_kind: str | None = None


JOBS: dict[str, JobSpec] = {
    spec.job_id: spec
    for spec in (
        JobSpec("retrain", "Retrain the models", "crmbot.scheduler:retrain_job", "retrain_cron"),
        JobSpec(
            "at-risk-digest",
            "At-risk digest",
            "crmbot.scheduler:at_risk_digest_job",
            "at_risk_digest_cron",
            "at_risk_channel",
            digests.AT_RISK,
        ),
        JobSpec(
            "influencer-digest",
            "Influencer digest",
            "crmbot.scheduler:influencer_digest_job",
            "influencer_digest_cron",
            "influencer_channel",
            digests.INFLUENCERS,
        ),
    )
}
JOB_ALIASES = {
    "train": "retrain",
    "retraining": "retrain",
    "at-risk": "at-risk-digest",
    "atrisk": "at-risk-digest",
    "risk": "at-risk-digest",
    "influencers": "influencer-digest",
    "influencer": "influencer-digest",
}


def find_job(name: str) -> JobSpec | None:
    name = name.strip().lower()
    return JOBS.get(name) or JOBS.get(JOB_ALIASES.get(name, ""))


def latest_fire_time(trigger: CronTrigger, now: datetime) -> datetime | None:
    """The trigger's last fire time at or before `now` (aware), within the misfire grace."""
    moment = trigger.get_next_fire_time(None, now - timedelta(seconds=MISFIRE_GRACE_SECONDS))
    latest = None
    while moment is not None and moment <= now:
        latest = moment
        moment = trigger.get_next_fire_time(moment, moment + timedelta(seconds=1))
    return latest


# ---------------------------------------------------------------------------------------
# Effective schedules: settings, overridden by admins


@dataclass
class JobSchedule:
    spec: JobSpec
    cron: str
    channel: str | None
    paused: bool
    override: ScheduleOverride | None = None

    @property
    def job_id(self) -> str:
        return self.spec.job_id


def effective_schedules(engine: Engine, settings: Settings) -> list[JobSchedule]:
    """Each job's schedule, channel and paused state: settings, then /crm schedule changes."""
    with read_session(engine) as session:
        overrides = {o.job_id: o for o in session.execute(select(ScheduleOverride)).scalars()}
    schedules = []
    for spec in JOBS.values():
        override = overrides.get(spec.job_id)
        cron = (override.cron if override and override.cron else None) or getattr(
            settings, spec.cron_setting
        )
        channel = None
        if spec.channel_setting:
            channel = (override.channel if override and override.channel else None) or (
                getattr(settings, spec.channel_setting) or None
            )
        schedules.append(
            JobSchedule(spec, cron, channel, bool(override and override.paused), override)
        )
    return schedules


def effective_schedule(engine: Engine, settings: Settings, job_id: str) -> JobSchedule:
    return next(s for s in effective_schedules(engine, settings) if s.job_id == job_id)


def save_override(
    engine: Engine,
    job_id: str,
    *,
    by: str,
    now: datetime,
    cron: str | None = None,
    channel: str | None = None,
    paused: bool | None = None,
) -> None:
    """Persist an admin's change to `job_id` (only the given fields change)."""
    with write_session(engine) as session:
        row = session.get(ScheduleOverride, job_id, with_for_update=True)
        if row is None:
            row = ScheduleOverride(job_id=job_id)
            session.add(row)
        if cron is not None:
            row.cron = cron
        if channel is not None:
            row.channel = channel
        if paused is not None:
            row.paused = paused
        row.updated_by = by[:64]
        row.updated_at = now


def reset_override(engine: Engine, job_id: str) -> bool:
    """Drop an admin's changes to `job_id`: back to the settings. False if there were none."""
    with write_session(engine) as session:
        row = session.get(ScheduleOverride, job_id)
        if row is None:
            return False
        session.delete(row)
        return True


# ---------------------------------------------------------------------------------------
# What a job works with, bound to the scheduler's worker threads


@dataclass
class SchedulerRuntime:
    engine: Engine
    settings: Settings
    client: WebClient | None  # posts digests and admin notices (with retries)
    clock: Clock = utc_now
    holder: str = field(default_factory=lambda: default_holder("scheduler"))
    scheduler: BackgroundScheduler | None = None


_bound = threading.local()
_live_lock = threading.Lock()
_live: list[tuple[BackgroundScheduler, SchedulerRuntime]] = []


def _bind_runtime(runtime: SchedulerRuntime) -> None:
    # The executor's thread initializer: every job run by this scheduler sees its runtime.
    _bound.runtime = runtime


def _current_runtime() -> SchedulerRuntime:
    runtime = getattr(_bound, "runtime", None)
    if runtime is None:
        with _live_lock:
            if _live:
                return _live[-1][1]
        raise RuntimeError("a scheduled job ran outside a crmbot scheduler")
    return runtime  # type: ignore[no-any-return]


def live_scheduler() -> BackgroundScheduler | None:
    """The scheduler running in this process (`crmbot run`, `crmbot scheduler`), if any."""
    with _live_lock:
        for scheduler, _runtime in reversed(_live):
            if scheduler.running:
                return scheduler
    return None


def runtime_of(scheduler: BackgroundScheduler) -> SchedulerRuntime | None:
    with _live_lock:
        return next((rt for s, rt in _live if s is scheduler), None)


# ---------------------------------------------------------------------------------------
# The jobs


@dataclass
class JobResult:
    job_id: str
    status: str  # ok | skipped | failed
    message: str


class JobFailed(RuntimeError):
    """A job that did not do its work; `reported` once the admin channel was told."""

    def __init__(self, job_id: str, message: str, *, reported: bool) -> None:
        super().__init__(f"{job_id}: {message}")
        self.job_id = job_id
        self.reported = reported


def notify_admins(runtime: SchedulerRuntime, message: str) -> bool:
    """Post `message` to CRMBOT_ADMIN_CHANNEL (masked); False when it could not."""
    channel = runtime.settings.admin_channel
    if not channel or runtime.client is None:
        log.warning("no admin channel to report to (CRMBOT_ADMIN_CHANNEL): %s", message)
        return False
    try:
        runtime.client.chat_postMessage(
            channel=channel, text=mask_pii(message), unfurl_links=False, unfurl_media=False
        )
    except Exception as exc:
        log.error("could not report to the admin channel %s: %s", channel, exc)
        return False
    return True


def run_retrain(runtime: SchedulerRuntime, *, scheduled: bool = True) -> JobResult:
    """Train as of the run's date under the training lock.

    A scheduled run is skipped when another run holds the lock, or when a run already
    started since this slot's scheduled time (another scheduler got there first). A failed
    run leaves the active model live and is reported to the admin channel.
    """
    settings, engine = runtime.settings, runtime.engine
    now = runtime.clock()
    as_of = digests.local_day(now, settings.timezone)
    try:
        result = runs.train_exclusively(
            engine,
            settings,
            holder=runtime.holder,
            as_of=as_of,
            clock=runtime.clock,
            unless_started_since=_latest_slot(engine, settings, now) if scheduled else None,
        )
    except runs.RunAlreadyStarted as earlier:
        log.info(str(earlier))
        return JobResult("retrain", "skipped", str(earlier))
    except runs.TrainingInProgress as busy:
        log.info("retrain not started: %s", busy.user_message)
        return JobResult("retrain", "skipped", busy.user_message)
    if result.status == "failed":
        message = (
            f":warning: Retrain as of {as_of:%Y-%m-%d} failed (run {result.run_id}): "
            f"{result.error}. {_active_model_sentence(engine)}"
        )
        log.error(message)
        notify_admins(runtime, message)
        return JobResult("retrain", "failed", message)
    if result.status == "rejected":
        message = (
            f"Retrain as of {as_of:%Y-%m-%d} finished (run {result.run_id}) but was not "
            f"activated: {result.error}. {_active_model_sentence(engine)} "
            f"`{settings.slash_command} model` compares them."
        )
        notify_admins(runtime, message)
        return JobResult("retrain", "ok", message)
    message = f"Retrain as of {as_of:%Y-%m-%d} succeeded: run {result.run_id} is live."
    log.info(message)
    return JobResult("retrain", "ok", message)


def _latest_slot(engine: Engine, settings: Settings, now: datetime) -> datetime | None:
    """The retrain's latest scheduled time at or before `now` (naive UTC), if any."""
    schedule = effective_schedule(engine, settings, "retrain")
    trigger = parse_cron(schedule.cron, settings.timezone)
    slot = latest_fire_time(trigger, now.replace(tzinfo=UTC))
    return None if slot is None else slot.astimezone(UTC).replace(tzinfo=None)


def _active_model_sentence(engine: Engine) -> str:
    with read_session(engine) as session:
        run = runs.active_run(session=session)
    if run is None:
        return "There is still no active model."
    return f"The active model (run {run.id}, data as of {run.as_of:%Y-%m-%d}) stays live."


def run_digest(runtime: SchedulerRuntime, kind: str, job_id: str) -> JobResult:
    """Post one digest to its channel (once per period); failures go to the admin channel."""
    schedule = effective_schedule(runtime.engine, runtime.settings, job_id)
    if runtime.client is None:
        message = f"The {kind} digest cannot be posted: SLACK_BOT_TOKEN is not set."
        log.error(message)
        return JobResult(job_id, "failed", message)
    outcome = digests.send_digest(
        runtime.engine,
        runtime.settings,
        runtime.client,
        kind,
        schedule.channel or "",
        clock=runtime.clock,
    )
    message = outcome.describe()
    if outcome.status in ("no_channel", "no_model", "in_progress"):
        log.warning(message)
        return JobResult(job_id, "skipped", message)
    if not outcome.ok:
        log.error(message)
        notify_admins(runtime, f":warning: {message}")
        return JobResult(job_id, "failed", message)
    log.info(message)
    return JobResult(job_id, "ok", message)


def _guarded(job_id: str, work: Callable[[SchedulerRuntime], JobResult]) -> str:
    """Run a job's work: any failure is logged with its cause and reported, then raised
    as `JobFailed` so APScheduler records the error (and carries on)."""
    runtime = _current_runtime()
    try:
        result = work(runtime)
    except Exception as exc:
        cause = f"{type(exc).__name__}: {exc}"
        log.exception("scheduled job %s failed: %s", job_id, cause)
        reported = notify_admins(runtime, f":warning: Scheduled job `{job_id}` failed: {cause}")
        raise JobFailed(job_id, cause, reported=reported) from exc
    if result.status == "failed":
        raise JobFailed(job_id, result.message, reported=True)
    return result.message


def retrain_job() -> str:
    """Scheduled retraining (the `retrain` job)."""
    return _guarded("retrain", run_retrain)


def at_risk_digest_job() -> str:
    """The scheduled at-risk digest (the `at-risk-digest` job)."""
    return _guarded("at-risk-digest", lambda rt: run_digest(rt, digests.AT_RISK, "at-risk-digest"))


def influencer_digest_job() -> str:
    """The scheduled influencer digest (the `influencer-digest` job)."""
    return _guarded(
        "influencer-digest",
        lambda rt: run_digest(rt, digests.INFLUENCERS, "influencer-digest"),
    )


def sync_schedule_job() -> None:
    """Apply /crm schedule changes made in other processes to this scheduler."""
    runtime = _current_runtime()
    if runtime.scheduler is not None:
        sync_jobs(runtime.scheduler, runtime.engine, runtime.settings)


def run_job_now(
    job_id: str,
    engine: Engine,
    settings: Settings,
    *,
    requested_by: str,
    client: WebClient | None = None,
    clock: Clock = utc_now,
) -> JobResult:
    """Run one job right now, in this process (`/crm schedule run`, `crmbot ...`).

    Goes through the same training lock and digest log as the scheduled runs, so it never
    trains beside another run and never posts a digest twice.
    """
    spec = JOBS[job_id]
    live = live_scheduler()
    live_runtime = runtime_of(live) if live is not None else None
    if client is None and live_runtime is not None:
        client = live_runtime.client
    if client is None and spec.digest_kind and settings.slack_bot_token:
        client = digests.slack_client(settings)
    runtime = SchedulerRuntime(
        engine=engine,
        settings=settings,
        client=client,
        clock=clock,
        holder=default_holder(f"{job_id} run by {requested_by}"),
    )
    if spec.digest_kind is None:
        return run_retrain(runtime, scheduled=False)
    return run_digest(runtime, spec.digest_kind, job_id)


# ---------------------------------------------------------------------------------------
# The scheduler


class _JobStore(SQLAlchemyJobStore):
    """APScheduler's SQLAlchemy job store on crmbot's own engine.

    The engine outlives the scheduler (the bot keeps answering after a scheduler stops),
    so shutting the store down must not dispose of it.
    """

    def shutdown(self) -> None:
        pass


class _Scheduler(BackgroundScheduler):
    """A BackgroundScheduler that does not process jobs once it is shutting down.

    APScheduler 3's main loop runs one more round after `shutdown()` has set the state to
    stopped; a job due at that moment would be handed to the already stopped executor and
    its run lost (its next run time moves on). Checking the state first closes that gap.
    """

    def _process_jobs(self) -> float | None:
        if self.state == STATE_STOPPED:
            return None
        return super()._process_jobs()  # type: ignore[no-any-return]


def _on_job_event(runtime: SchedulerRuntime) -> Callable[[JobEvent], None]:
    def listener(event: JobEvent) -> None:
        try:
            if isinstance(event, JobExecutionEvent) and event.code == EVENT_JOB_ERROR:
                error = event.exception
                log.error(
                    "job %s failed at its %s run: %s", event.job_id, event.scheduled_run_time, error
                )
                if not getattr(error, "reported", False):
                    notify_admins(
                        runtime, f":warning: Scheduled job `{event.job_id}` failed: {error}"
                    )
            elif event.code == EVENT_JOB_MISSED:
                run_time = getattr(event, "scheduled_run_time", None)
                message = (
                    f"Scheduled job `{event.job_id}` missed its run at {run_time}: the "
                    f"scheduler was down for longer than {MISFIRE_GRACE_SECONDS // 3600} h. "
                    "It runs again at its next scheduled time."
                )
                log.warning(message)
                notify_admins(runtime, f":warning: {message}")
            elif event.code == EVENT_JOB_MAX_INSTANCES:
                log.warning("job %s is still running; this run was skipped", event.job_id)
        except Exception:  # a listener must never take the scheduler down
            log.exception("error while handling a scheduler event")

    return listener


def build_scheduler(
    settings: Settings,
    engine: Engine,
    client: WebClient | None = None,
    *,
    clock: Clock | None = None,
    holder: str | None = None,
) -> BackgroundScheduler:
    """A BackgroundScheduler over the database's job store; not started, no jobs added.

    `client` posts digests and admin notices; it is wrapped with crmbot's retry handlers
    (`digests.slack_client`). `clock` (naive UTC) is what jobs take as "now".
    """
    runtime = SchedulerRuntime(
        engine=engine,
        settings=settings,
        client=_digest_client(settings, client),
        clock=clock or utc_now,
        holder=holder or default_holder("scheduler"),
    )
    scheduler = _Scheduler(
        jobstores={
            "default": _JobStore(engine=engine, tablename=JOBSTORE_TABLE),
            "internal": MemoryJobStore(),
        },
        executors={
            "default": ThreadPoolExecutor(
                max_workers=4,
                pool_kwargs={"initializer": _bind_runtime, "initargs": (runtime,)},
            )
        },
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": MISFIRE_GRACE_SECONDS,
        },
        timezone=ZoneInfo(settings.timezone),
    )
    runtime.scheduler = scheduler
    scheduler.add_listener(
        _on_job_event(runtime), EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES
    )
    with _live_lock:
        _live.append((scheduler, runtime))
    return scheduler


def _digest_client(settings: Settings, client: WebClient | None) -> WebClient | None:
    if client is None and not settings.slack_bot_token:
        return None
    if client is not None and digests.has_retry_handlers(client):
        return client
    return digests.slack_client(settings, client)


def install_jobs(scheduler: BackgroundScheduler, engine: Engine, settings: Settings) -> None:
    """Add every job with its fixed id (`replace_existing=True`), as settings and overrides
    say. A job whose trigger did not change keeps its stored next run time, so a run
    missed while no scheduler ran still happens (once)."""
    known = set(JOBS)
    for job in scheduler.get_jobs(jobstore="default"):
        if job.id not in known:  # left by an older version
            log.info("removing unknown scheduled job %s", job.id)
            scheduler.remove_job(job.id, jobstore="default")
    for schedule in effective_schedules(engine, settings):
        trigger = parse_cron(schedule.cron, settings.timezone)
        existing = scheduler.get_job(schedule.job_id, jobstore="default")
        options: dict[str, Any] = {}
        if schedule.paused:
            options["next_run_time"] = None
        elif (
            existing is not None
            and existing.next_run_time is not None
            and repr(existing.trigger) == repr(trigger)
        ):
            options["next_run_time"] = existing.next_run_time
        scheduler.add_job(
            schedule.spec.func,
            trigger=trigger,
            id=schedule.job_id,
            name=schedule.spec.title,
            jobstore="default",
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=MISFIRE_GRACE_SECONDS,
            **options,
        )


def sync_jobs(scheduler: BackgroundScheduler, engine: Engine, settings: Settings) -> list[str]:
    """Bring the live jobs in line with settings and overrides; what changed, in words."""
    changes = []
    for schedule in effective_schedules(engine, settings):
        trigger = parse_cron(schedule.cron, settings.timezone)
        job = scheduler.get_job(schedule.job_id, jobstore="default")
        if job is None:
            install_jobs(scheduler, engine, settings)
            return [f"{schedule.job_id}: added"]
        if repr(job.trigger) != repr(trigger):
            job = scheduler.reschedule_job(schedule.job_id, jobstore="default", trigger=trigger)
            changes.append(f"{schedule.job_id}: now '{schedule.cron}'")
        if schedule.paused and job.next_run_time is not None:
            scheduler.pause_job(schedule.job_id, jobstore="default")
            changes.append(f"{schedule.job_id}: paused")
        elif not schedule.paused and job.next_run_time is None:
            scheduler.resume_job(schedule.job_id, jobstore="default")
            changes.append(f"{schedule.job_id}: resumed")
    for change in changes:
        log.info("schedule change applied: %s", change)
    return changes


def start_scheduler(
    settings: Settings,
    engine: Engine,
    client: WebClient | None = None,
    *,
    clock: Clock | None = None,
    holder: str | None = None,
    paused: bool = False,
) -> BackgroundScheduler:
    """Build, install the jobs (settings + overrides) and start the scheduler.

    `crmbot run` and `crmbot scheduler` call this. `paused=True` starts it without running
    anything until `scheduler.resume()`.
    """
    scheduler = build_scheduler(settings, engine, client, clock=clock, holder=holder)
    # Start paused: the job store must be open to read the stored jobs, and nothing may
    # run before they are installed.
    scheduler.start(paused=True)
    try:
        install_jobs(scheduler, engine, settings)
        scheduler.add_job(
            "crmbot.scheduler:sync_schedule_job",
            trigger=IntervalTrigger(seconds=SYNC_SECONDS, timezone=ZoneInfo(settings.timezone)),
            id=SYNC_JOB_ID,
            name="Apply /crm schedule changes",
            jobstore="internal",
            replace_existing=True,
        )
    except Exception:
        stop_scheduler(scheduler, wait=False)
        raise
    if not paused:
        scheduler.resume()
    for job in scheduler.get_jobs(jobstore="default"):
        log.info("scheduled %s: next run %s", job.id, job.next_run_time or "paused")
    return scheduler


def stop_scheduler(scheduler: BackgroundScheduler, *, wait: bool = True) -> None:
    """Shut the scheduler down (waiting for running jobs unless `wait=False`)."""
    if scheduler.running:
        scheduler.shutdown(wait=wait)
    with _live_lock:
        _live[:] = [(s, rt) for s, rt in _live if s is not scheduler]


# ---------------------------------------------------------------------------------------
# Reading the schedule without a scheduler (for /crm schedule in a bot replica)


def stored_next_runs(engine: Engine) -> dict[str, datetime | None]:
    """Next run times (aware, UTC) as the job store has them; {} before any scheduler ran."""
    try:
        with engine.connect() as connection:
            rows = connection.execute(text(f"SELECT id, next_run_time FROM {JOBSTORE_TABLE}")).all()
    except Exception:  # no scheduler has created the table yet
        return {}
    return {
        str(job_id): datetime.fromtimestamp(float(ts), UTC) if ts is not None else None
        for job_id, ts in rows
    }
