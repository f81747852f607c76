"""The jobs' work: retrain, post a digest, report failures to the admin channel; and
running a job now (`/crm schedule run`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.engine import Engine

from crmbot import digests, runs
from crmbot.core.clock import utc_now
from crmbot.core.config import Settings
from crmbot.core.cron import parse_cron
from crmbot.core.db import read_session
from crmbot.digests import direct
from crmbot.runs import backtest, default_holder
from crmbot.scheduler.jobs import JOBS, effective_schedule, latest_fire_time
from crmbot.scheduler.runtime import (
    Clock,
    SchedulerRuntime,
    current_runtime,
    live_scheduler,
    runtime_of,
)

log = logging.getLogger(__name__)


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
    if not channel or runtime.poster is None:
        log.warning("no admin channel to report to (CRMBOT_ADMIN_CHANNEL): %s", message)
        return False
    try:
        runtime.poster.post_notice(channel, message)
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
    if result.activated:
        message += " " + _send_alerts(runtime)
    _keep_backtest(runtime)
    return JobResult("retrain", "ok", message)


def _keep_backtest(runtime: SchedulerRuntime) -> None:
    """Measure the newest past run against what happened, now rather than in the first
    `/crm model` after (which has a command's time limit). A failure is logged and never
    fails the retrain: `/crm model` and `crmbot model backtest` measure it on demand."""
    try:
        backtest.keep_latest_backtest(
            runtime.engine, default_horizon=runtime.settings.churn_horizon_days
        )
    except Exception:
        log.exception("measuring the latest backtest after the retrain failed")


def _send_alerts(runtime: SchedulerRuntime) -> str:
    """The new run's alerts, at once (the `notify` job sends what quiet hours held, and
    what a retrain outside the scheduler made live). A failure here never fails the
    retrain: it is reported, and the next `notify` round tries again."""
    schedule = effective_schedule(runtime.engine, runtime.settings, "notify")
    try:
        report = direct.send_alerts(
            runtime.engine,
            runtime.settings,
            runtime.poster,
            clock=runtime.clock,
            channel=schedule.channel or "",
        )
    except Exception as exc:
        log.exception("alerts after the retrain failed")
        notify_admins(runtime, f":warning: Alerts after the retrain failed: {exc}")
        return f"Alerts failed: {exc}"
    if not report.ok:
        notify_admins(runtime, f":warning: {report.describe()}")
    return report.describe()


def run_notify(runtime: SchedulerRuntime) -> JobResult:
    """Follow-ups due today to their assignees, and the live run's alerts not sent yet
    (held by quiet hours, or made live outside the scheduler), each once."""
    schedule = effective_schedule(runtime.engine, runtime.settings, "notify")
    follow_ups = direct.send_follow_ups(
        runtime.engine, runtime.settings, runtime.poster, clock=runtime.clock
    )
    alerts = direct.send_alerts(
        runtime.engine,
        runtime.settings,
        runtime.poster,
        clock=runtime.clock,
        channel=schedule.channel or "",
    )
    message = f"{follow_ups.describe()} {alerts.describe()}"
    if not (follow_ups.ok and alerts.ok):
        log.error(message)
        notify_admins(runtime, f":warning: {message}")
        return JobResult("notify", "failed", message)
    log.info(message)
    return JobResult("notify", "ok", message)


def _latest_slot(engine: Engine, settings: Settings, now: datetime) -> datetime | None:
    """The retrain's latest scheduled time at or before `now` (naive UTC), if any."""
    schedule = effective_schedule(engine, settings, "retrain")
    trigger = parse_cron(schedule.cron, settings.timezone)
    slot = latest_fire_time(trigger, now.replace(tzinfo=UTC))
    return None if slot is None else slot.astimezone(UTC).replace(tzinfo=None)


def _active_model_sentence(engine: Engine) -> str:
    with read_session(engine) as session:
        try:
            run = runs.active_run(session=session)
        except runs.RunUnreadable as unreadable:
            return str(unreadable)
    if run is None:
        return "There is still no active model."
    return f"The active model (run {run.id}, data as of {run.as_of:%Y-%m-%d}) stays live."


def run_digest(runtime: SchedulerRuntime, kind: str, job_id: str) -> JobResult:
    """Post one digest to its channel (once per period); failures go to the admin channel."""
    schedule = effective_schedule(runtime.engine, runtime.settings, job_id)
    if runtime.poster is None:
        message = f"The {kind} digest cannot be posted: SLACK_BOT_TOKEN is not set."
        log.error(message)
        return JobResult(job_id, "failed", message)
    outcome = digests.send_digest(
        runtime.engine,
        runtime.settings,
        runtime.poster,
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
    runtime = current_runtime()
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


def notify_job() -> str:
    """Follow-ups due and held alerts (the `notify` job)."""
    return _guarded("notify", run_notify)


def run_job_now(
    job_id: str,
    engine: Engine,
    settings: Settings,
    *,
    requested_by: str,
    poster: digests.Poster | None = None,
    clock: Clock = utc_now,
) -> JobResult:
    """Run one job right now, in this process (`/crm schedule run`, `crmbot ...`).

    Digests go out through `poster`, else the live scheduler's in this process.

    Goes through the same training lock and digest log as the scheduled runs, so it never
    trains beside another run and never posts a digest twice.
    """
    spec = JOBS[job_id]
    live = live_scheduler()
    live_runtime = runtime_of(live) if live is not None else None
    if poster is None and live_runtime is not None:
        poster = live_runtime.poster
    runtime = SchedulerRuntime(
        engine=engine,
        settings=settings,
        poster=poster,
        clock=clock,
        holder=default_holder(f"{job_id} run by {requested_by}"),
    )
    if spec.job_id == "notify":
        return run_notify(runtime)
    if spec.digest_kind is None:
        return run_retrain(runtime, scheduled=False)
    return run_digest(runtime, spec.digest_kind, job_id)
