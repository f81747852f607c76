"""`crmbot scheduler` (the schedule alone, in the foreground) and `crmbot digest send`."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import typer

from crmbot.cli import common

log = logging.getLogger(__name__)

DIGEST_KINDS = {"at-risk": "at-risk", "atrisk": "at-risk", "influencers": "influencers"}
DIGEST_KINDS["influencer"] = "influencers"

digest_app = typer.Typer(
    help="Channel digests: the accounts at risk and the influencers.", no_args_is_help=True
)


def scheduler() -> None:
    """Run the retraining and digest schedule alone, in the foreground.

    For deployments with several bot replicas: run them with `crmbot run
    --no-scheduler` and exactly one `crmbot scheduler`. Stops on Ctrl-C or SIGTERM,
    letting a running job finish.
    """
    from crmbot.core.cron import CronError
    from crmbot.scheduler import start_scheduler, stop_scheduler
    from crmbot.slack.delivery import configured_poster

    settings = common.settings()
    engine = common.engine()
    if not settings.slack_bot_token:
        common.err_console.print(
            "[yellow]warning:[/yellow] SLACK_BOT_TOKEN is not set: retraining runs, "
            "but digests and admin notices cannot be posted."
        )
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping the scheduler", signum)
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        running = start_scheduler(settings, engine, configured_poster(engine, settings))
    except (CronError, ValueError, KeyError) as exc:
        common.fail(f"the schedule in the settings is not valid: {exc}")
    for job in sorted(running.get_jobs(jobstore="default"), key=lambda j: j.id):
        when = job.next_run_time.strftime("%Y-%m-%d %H:%M %Z") if job.next_run_time else "paused"
        common.console.print(f"  {job.id:<18} next run {when}", highlight=False)
    common.console.print(
        f"crmbot scheduler running (time zone {settings.timezone}); Ctrl-C stops it."
    )
    while not stop.wait(1.0):
        pass
    stop_scheduler(running, wait=True)
    common.console.print("crmbot scheduler stopped.")


def register(app: typer.Typer) -> None:
    app.add_typer(digest_app, name="digest")
    app.command("scheduler")(scheduler)


@digest_app.command("send")
def send(
    kind: str = typer.Argument(..., help="at-risk or influencers"),
    channel: str = typer.Option(
        "",
        "--channel",
        help="Slack channel id (C…); default: the digest's configured channel.",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the digest as the shell shows it; post nothing."
    ),
    period: str = typer.Option(
        "",
        "--period",
        help="The period it counts for (default: today's date for at-risk, this ISO week "
        "for influencers). A digest is posted once per kind, channel and period.",
    ),
) -> None:
    """Post a digest now (once per period), or print it with --dry-run."""
    from crmbot.digests import send_digest
    from crmbot.scheduler import effective_schedule
    from crmbot.shell.text import render
    from crmbot.slack.delivery import configured_poster

    digest_kind = DIGEST_KINDS.get(kind.lower(), "")
    if not digest_kind:
        common.fail(f"'{kind}' is not a digest; choose at-risk or influencers")
    settings = common.settings()
    engine = common.engine()
    job_id = "at-risk-digest" if digest_kind == "at-risk" else "influencer-digest"
    target = channel or effective_schedule(engine, settings, job_id).channel or ""
    if not target and not dry_run:
        common.fail(
            "no channel: give --channel C0123ABCD, or set CRMBOT_AT_RISK_CHANNEL / "
            "CRMBOT_INFLUENCER_CHANNEL (or /crm schedule channel)"
        )
    poster = None
    if not dry_run:
        poster = configured_poster(engine, settings)
        if poster is None:
            common.fail("SLACK_BOT_TOKEN is not set, so nothing can be posted (try --dry-run)")
    outcome = send_digest(
        engine, settings, poster, digest_kind, target, period=period or None, dry_run=dry_run
    )
    if outcome.status == "dry_run" and outcome.reply is not None:
        # The header, then each row's message as it would be posted.
        typer.echo("\n\n".join(render(reply) for reply in [outcome.reply, *outcome.rows]))
        return
    if outcome.status in ("failed", "no_model", "no_channel"):
        common.fail(outcome.describe())
    common.console.print(outcome.describe(), highlight=False, soft_wrap=True)
