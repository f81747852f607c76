"""Scheduled work: nightly retraining and the channel digests (APScheduler 3).

Jobs live in APScheduler's `SQLAlchemyJobStore`, in the same database as everything else
(table `apscheduler_jobs`, which Alembic leaves alone), under fixed ids:

    retrain             CRMBOT_RETRAIN_CRON           (default 02:00 daily)
    at-risk-digest      CRMBOT_AT_RISK_DIGEST_CRON    -> CRMBOT_AT_RISK_CHANNEL
    influencer-digest   CRMBOT_INFLUENCER_DIGEST_CRON -> CRMBOT_INFLUENCER_CHANNEL
    notify              CRMBOT_NOTIFY_CRON            (follow-ups due, alerts held;
                                                       alerts also -> CRMBOT_ALERT_CHANNEL)

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
settings, digest poster, clock) is bound to the scheduler's worker threads. A failing job
is logged with its cause and reported to CRMBOT_ADMIN_CHANNEL; it never stops the
scheduler.

Several schedulers on one database (which APScheduler 3 does not coordinate) are safe but
pointless: a retrain is guarded by the training lock and skipped when a run already
started since its scheduled time, and a digest is posted once per (kind, channel,
period). Multi-replica deployments run exactly one `crmbot scheduler`.

    jobs      the jobs and their effective schedules (settings, then admins' overrides)
    runtime   what a job works with, bound to the worker threads; the live schedulers
    work      the jobs' work (retrain, post a digest, tell the admins), and run-it-now
    service   the APScheduler scheduler: build, start, stop, sync; the schedule without it
"""

from crmbot.scheduler.jobs import (
    JOB_ALIASES,
    JOBS,
    JOBSTORE_TABLE,
    MISFIRE_GRACE_SECONDS,
    SYNC_JOB_ID,
    SYNC_SECONDS,
    JobSchedule,
    JobSpec,
    effective_schedule,
    effective_schedules,
    find_job,
    latest_fire_time,
    reset_override,
    save_override,
)
from crmbot.scheduler.runtime import SchedulerRuntime
from crmbot.scheduler.runtime import bind_runtime as _bind_runtime
from crmbot.scheduler.service import (
    apply_changes,
    build_scheduler,
    install_jobs,
    next_run_time,
    runs_here,
    start_scheduler,
    stop_scheduler,
    stored_next_runs,
    sync_jobs,
    sync_schedule_job,
)
from crmbot.scheduler.work import (
    JobFailed,
    JobResult,
    at_risk_digest_job,
    influencer_digest_job,
    notify_admins,
    notify_job,
    retrain_job,
    run_digest,
    run_job_now,
    run_retrain,
)

# The job store keeps each job as a textual reference ("crmbot.scheduler:retrain_job"), so
# the job functions stay importable from here whatever module they live in.
__all__ = [
    "JOBS",
    "JOBSTORE_TABLE",
    "JOB_ALIASES",
    "MISFIRE_GRACE_SECONDS",
    "SYNC_JOB_ID",
    "SYNC_SECONDS",
    "JobFailed",
    "JobResult",
    "JobSchedule",
    "JobSpec",
    "SchedulerRuntime",
    "_bind_runtime",
    "apply_changes",
    "at_risk_digest_job",
    "build_scheduler",
    "effective_schedule",
    "effective_schedules",
    "find_job",
    "influencer_digest_job",
    "install_jobs",
    "latest_fire_time",
    "next_run_time",
    "notify_admins",
    "notify_job",
    "reset_override",
    "retrain_job",
    "run_digest",
    "run_job_now",
    "run_retrain",
    "runs_here",
    "save_override",
    "start_scheduler",
    "stop_scheduler",
    "stored_next_runs",
    "sync_jobs",
    "sync_schedule_job",
]
