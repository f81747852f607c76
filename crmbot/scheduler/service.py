"""The APScheduler scheduler: its job store, building, starting and stopping it, keeping
its jobs in line with the effective schedules, and reading the schedule without it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
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
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import text
from sqlalchemy.engine import Engine

from crmbot import digests
from crmbot.core.clock import utc_now
from crmbot.core.config import Settings
from crmbot.core.cron import CronError, parse_cron
from crmbot.runs import close_dead_runs_at_startup, default_holder
from crmbot.scheduler.jobs import (
    JOBS,
    JOBSTORE_TABLE,
    MISFIRE_GRACE_SECONDS,
    SYNC_JOB_ID,
    SYNC_SECONDS,
    JobSchedule,
    effective_schedules,
)
from crmbot.scheduler.runtime import (
    Clock,
    SchedulerRuntime,
    bind_runtime,
    current_runtime,
    forget_live,
    live_scheduler,
    register_live,
)
from crmbot.scheduler.work import notify_admins

log = logging.getLogger(__name__)


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
    poster: digests.Poster | None = None,
    *,
    clock: Clock | None = None,
    holder: str | None = None,
) -> BackgroundScheduler:
    """A BackgroundScheduler over the database's job store; not started, no jobs added.

    `poster` posts digests and admin notices (Slack's: `crmbot.slack.delivery.slack_poster`,
    with its retries). `clock` (naive UTC) is what jobs take as "now".
    """
    runtime = SchedulerRuntime(
        engine=engine,
        settings=settings,
        poster=poster,
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
                pool_kwargs={"initializer": bind_runtime, "initargs": (runtime,)},
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
    register_live(scheduler, runtime)
    return scheduler


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
    poster: digests.Poster | None = None,
    *,
    clock: Clock | None = None,
    holder: str | None = None,
    paused: bool = False,
) -> BackgroundScheduler:
    """Build, install the jobs (settings + overrides) and start the scheduler.

    `crmbot run` and `crmbot scheduler` call this. `paused=True` starts it without running
    anything until `scheduler.resume()`. First, runs a dead process left "running" are
    marked abandoned (`close_dead_runs_at_startup`).
    """
    close_dead_runs_at_startup(
        engine,
        settings,
        holder=f"{holder or default_holder('scheduler')} start-up",
        clock=clock or utc_now,
    )
    scheduler = build_scheduler(settings, engine, poster, clock=clock, holder=holder)
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
    forget_live(scheduler)


def sync_schedule_job() -> None:
    """Apply /crm schedule changes made in other processes to this scheduler."""
    runtime = current_runtime()
    if runtime.scheduler is not None:
        sync_jobs(runtime.scheduler, runtime.engine, runtime.settings)


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


# ---------------------------------------------------------------------------------------
# For /crm schedule, wherever it runs (the scheduler's process or a bot replica)


def runs_here() -> bool:
    """Whether a scheduler runs in this process (`crmbot run`, `crmbot scheduler`)."""
    return live_scheduler() is not None


def apply_changes(engine: Engine, settings: Settings) -> bool:
    """Apply saved schedule changes to the scheduler in this process; False when there is
    none (the one that runs elsewhere picks them up within SYNC_SECONDS)."""
    scheduler = live_scheduler()
    if scheduler is None:
        return False
    sync_jobs(scheduler, engine, settings)
    return True


def next_run_time(engine: Engine, settings: Settings, schedule: JobSchedule) -> datetime | None:
    """When `schedule`'s job runs next (aware): as the live scheduler has it, else as the job
    store has it, else as its cron says; None when paused or never."""
    if schedule.paused:
        return None
    scheduler = live_scheduler()
    if scheduler is not None:
        job = scheduler.get_job(schedule.job_id)
        if job is not None and job.next_run_time is not None:
            return job.next_run_time  # type: ignore[no-any-return]
    stored = stored_next_runs(engine).get(schedule.job_id)
    if stored is not None:
        return stored
    try:
        trigger = parse_cron(schedule.cron, settings.timezone)
    except CronError:
        return None
    return trigger.get_next_fire_time(None, datetime.now(ZoneInfo(settings.timezone)))  # type: ignore[no-any-return]
