"""The jobs and their schedules: what runs, when (settings, then admins' overrides)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import select
from sqlalchemy.engine import Engine

from crmbot import digests
from crmbot.core.config import Settings
from crmbot.core.db import read_session, write_session
from crmbot.core.models import ScheduleOverride

JOBSTORE_TABLE = "apscheduler_jobs"
# How late a missed run may still start (after downtime): 12 hours. Later than that, the
# slot is reported as missed and the job waits for its next one.
MISFIRE_GRACE_SECONDS = 12 * 3600
# How often a scheduler looks for /crm schedule changes made in other processes.
SYNC_SECONDS = 60
SYNC_JOB_ID = "schedule-sync"


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
        # Follow-ups due today and alerts held by quiet hours; CRMBOT_ALERT_CHANNEL (or
        # `/crm schedule channel notify #x`) also gets each run's alerts.
        JobSpec(
            "notify",
            "Follow-ups due and held alerts",
            "crmbot.scheduler:notify_job",
            "notify_cron",
            "alert_channel",
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
    "follow-ups": "notify",
    "followups": "notify",
    "alerts": "notify",
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
