"""`/crm schedule ...`: see and change when crmbot retrains and posts its digests."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from crmbot import scheduler
from crmbot.chat.registry import Request, command
from crmbot.core.clock import utc_now
from crmbot.core.cron import CronError, parse_cron
from crmbot.reply import Reply, Table
from crmbot.reply.format import clip
from crmbot.scheduler import SYNC_SECONDS, JobSchedule, JobSpec

USAGE = (
    'schedule [set JOB "CRON" | channel JOB #channel | pause JOB | resume JOB | run JOB '
    "| reset JOB]"
)
JOB_NAMES = "retrain, at-risk, influencers, notify"
# Slack sends a channel picked from the menu as <#C0123|name>; an id may also be typed.
CHANNEL_REFERENCE = re.compile(r"^<#([CG][A-Z0-9]+)(?:\|[^>]*)?>$|^([CG][A-Z0-9]{4,})$")
# What Slack allows in a channel name: lower-case letters, digits, - and _, up to 80.
CHANNEL_NAME = re.compile(r"^[\w-]{1,80}$")
QUOTES = "\"'“”‘’"


@command("schedule", usage=USAGE, admin_only=True, slow=True, aliases=("schedules", "jobs"))
def schedule_command(request: Request) -> Reply:
    """See and change the retraining and digest schedules (admins only).

    `schedule` lists the jobs with their cron schedule, channel, state and next run.
    `schedule set at-risk "0 8 * * 1-5"` changes a schedule (minute hour day month weekday,
    in CRMBOT_TIMEZONE; weekdays 0-6 from Sunday, or mon-sun). `schedule channel at-risk
    #channel` moves a digest, `pause` / `resume` stop and restart a job, `run` runs it now
    (a digest already posted this period is not posted twice; a retrain never runs beside
    another), `reset` returns a job to the settings. Jobs: retrain, at-risk, influencers,
    notify (follow-ups due and alerts held by quiet hours; its channel gets the alerts too).
    Changes are kept in the database and reach the scheduler within a minute.
    """
    if not request.args or request.args[0].lower() in ("list", "ls", "show"):
        return _list(request)
    action = request.args[0].lower()
    if action not in ("set", "channel", "pause", "resume", "run", "reset"):
        return _usage(request, f"I don't know `schedule {action[:20]}`.")
    if len(request.args) < 2:
        return _usage(request, f"Which job? One of: {JOB_NAMES}.")
    spec = scheduler.find_job(request.args[1])
    if spec is None:
        return _usage(request, f"There is no job '{request.args[1][:40]}'. Jobs: {JOB_NAMES}.")
    rest = request.args[2:]
    if action == "set":
        return _set(request, spec, " ".join(rest).strip(QUOTES + " "))
    if action == "channel":
        return _channel(request, spec, rest)
    if rest:
        return _usage(request, f"`schedule {action} {spec.job_id}` takes nothing more.")
    if action == "run":
        return _run(request, spec)
    if action == "reset":
        changed = scheduler.reset_override(request.engine, spec.job_id)
        applied = _apply(request)
        if not changed:
            return Reply(title="", text=f"`{spec.job_id}` already follows the settings.")
        return _confirm(request, spec, "is back to the schedule in the settings", applied)
    paused = action == "pause"
    scheduler.save_override(
        request.engine, spec.job_id, by=request.user_id, now=utc_now(), paused=paused
    )
    applied = _apply(request)
    return _confirm(request, spec, "is paused" if paused else "is running again", applied)


def _usage(request: Request, problem: str) -> Reply:
    return Reply.usage(f"{problem} Usage: `{request.settings.slash_command} {USAGE}`")


def _apply(request: Request) -> bool:
    """Apply saved changes to the scheduler in this process; False when there is none."""
    return scheduler.apply_changes(request.engine, request.settings)


def _confirm(request: Request, spec: JobSpec, what: str, applied: bool) -> Reply:
    schedule = scheduler.effective_schedule(request.engine, request.settings, spec.job_id)
    where = (
        "Applied to the running scheduler."
        if applied
        else f"Saved; the scheduler picks it up within {SYNC_SECONDS} s (or when it starts)."
    )
    next_run = _next_run(request, schedule)
    return Reply(
        title="",
        text=f"`{spec.job_id}` {what}. Next run: {next_run}. {where}",
        fields=[("Schedule", f"{schedule.cron} ({request.settings.timezone})")],
    )


def _set(request: Request, spec: JobSpec, cron: str) -> Reply:
    if not cron:
        return _usage(request, 'Give the schedule in quotes, e.g. `"0 8 * * 1-5"`.')
    try:
        parse_cron(cron, request.settings.timezone)
    except CronError as problem:
        return Reply.usage(f"{problem}")
    scheduler.save_override(
        request.engine, spec.job_id, by=request.user_id, now=utc_now(), cron=cron
    )
    applied = _apply(request)
    return _confirm(request, spec, f"now runs at `{cron}`", applied)


def _channel_id(request: Request, typed: str) -> str | None:
    """The channel id `typed` names: Slack's escaped `<#C0123|sales>`, an id, or a name
    as typed (`#sales`, `sales`), found by the transport (`request.find_channel`)."""
    match = CHANNEL_REFERENCE.match(typed)
    if match is not None:
        return match.group(1) or match.group(2)
    name = typed.lstrip("#")
    if request.find_channel is None or not CHANNEL_NAME.match(name):
        return None
    return request.find_channel(name)


def _channel(request: Request, spec: JobSpec, rest: list[str]) -> Reply:
    if spec.channel_setting is None:
        return _usage(request, f"`{spec.job_id}` posts nothing, so it has no channel.")
    channel = _channel_id(request, rest[0].strip()) if len(rest) == 1 else None
    if channel is None:
        typed = clip(rest[0], 40) if len(rest) == 1 else ""
        known = f"I can't find a channel '{typed}' that I can see. " if typed else ""
        return _usage(
            request,
            f"{known}Name the channel as you would in Slack (#sales), or by its id "
            "(C0123ABCD, under the channel's details); a private channel needs me in it.",
        )
    scheduler.save_override(
        request.engine, spec.job_id, by=request.user_id, now=utc_now(), channel=channel
    )
    applied = _apply(request)
    return _confirm(request, spec, f"now posts to channel {channel}", applied)


def _run(request: Request, spec: JobSpec) -> Reply:
    if request.progress is not None:
        request.progress(f"Running `{spec.job_id}` now…")
    result = scheduler.run_job_now(
        spec.job_id,
        request.engine,
        request.settings,
        requested_by=request.user_id,
        poster=request.poster,
    )
    outcome = {"ok": "ok", "skipped": "ok", "failed": "error"}[result.status]
    return Reply(title="", text=result.message.removeprefix(":warning: "), outcome=outcome)


def _next_run(request: Request, schedule: JobSchedule) -> str:
    if schedule.paused:
        return "none (paused)"
    moment = scheduler.next_run_time(request.engine, request.settings, schedule)
    if moment is None:
        return "—"
    shown = moment.astimezone(ZoneInfo(request.settings.timezone)).strftime("%a %Y-%m-%d %H:%M %Z")
    if moment < datetime.now(UTC) - timedelta(minutes=5):
        shown += " (overdue: is a scheduler running?)"
    return shown


def _list(request: Request) -> Reply:
    schedules = scheduler.effective_schedules(request.engine, request.settings)
    rows = []
    for schedule in schedules:
        override = schedule.override
        changed = (
            f"{override.updated_by} {override.updated_at:%Y-%m-%d}"
            if override is not None and override.updated_at is not None
            else "settings"
        )
        rows.append(
            [
                schedule.job_id,
                schedule.cron,
                schedule.channel
                or ("—" if schedule.spec.channel_setting is None else "(none set)"),
                "paused" if schedule.paused else "active",
                _next_run(request, schedule),
                changed,
            ]
        )
    here = (
        "The scheduler runs in this process."
        if scheduler.runs_here()
        else "No scheduler runs in this process; the one that does (crmbot run or crmbot "
        f"scheduler) picks changes up within {SYNC_SECONDS} s."
    )
    missing = [s.job_id for s in schedules if s.spec.digest_kind and not s.channel]
    note = f" {', '.join(missing)} has no channel yet." if missing else ""
    return Reply(
        title="Scheduled jobs",
        text=f"Times are in {request.settings.timezone}. {here}{note}",
        table=Table(
            columns=["Job", "Schedule", "Channel", "State", "Next run", "Changed by"], rows=rows
        ),
        footer=f"`{request.settings.slash_command} schedule set|channel|pause|resume|run|reset "
        f"JOB` — jobs: {', '.join(scheduler.JOBS)}.",
    )
