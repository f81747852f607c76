"""`crmbot run` (the Slack bot) and `crmbot manifest` (the Slack app manifest)."""

from __future__ import annotations

import logging

import typer

from crmbot.cli import common

log = logging.getLogger(__name__)


def run(
    port: int = typer.Option(3000, "--port", help="HTTP port for Slack's requests."),
    host: str = typer.Option("0.0.0.0", "--host", help="Interface to listen on."),
    http: bool = typer.Option(False, "--http", help="Serve HTTP even when SLACK_APP_TOKEN is set."),
    scheduler: bool = typer.Option(
        True,
        "--scheduler/--no-scheduler",
        help="Also run the retraining and digest schedule (one process per database "
        "should; replicas run --no-scheduler and one `crmbot scheduler`).",
    ),
) -> None:
    """Start the Slack bot: Socket Mode when SLACK_APP_TOKEN is set, else HTTP on
    --port at /slack/events (uvicorn)."""
    from crmbot.core import redact
    from crmbot.core.config import PLACEHOLDER_SECRETS

    settings = common.settings()
    # The app token from .env.example left as it is means "no Socket Mode", not a typo.
    app_token = settings.slack_app_token.strip()
    socket_mode = app_token.lower() not in PLACEHOLDER_SECRETS and not http
    problems = settings.slack_problems(socket_mode=socket_mode)
    if problems:
        common.fail(
            "crmbot cannot start the Slack bot:\n"
            + "\n".join(f"  - {problem}" for problem in problems)
            + "\nSet the real values in .env or the environment (see .env.example); "
            "`crmbot manifest` prints the app to create in Slack first."
        )
    # Again now that the Slack and server loggers exist.
    redact.install(common.secret_values(settings))
    engine = common.engine()
    if not scheduler:  # the scheduler does it when it starts
        from crmbot.runs import close_dead_runs_at_startup, default_holder

        close_dead_runs_at_startup(engine, settings, holder=default_holder("crmbot run"))

    from crmbot.slack.app import SlackRefused, build_app
    from crmbot.slack.http import serve_http, serve_socket_mode

    try:
        bolt_app = build_app(settings, engine)
    except SlackRefused as exc:
        common.fail(
            f"Slack refused the bot token ({exc}). Check SLACK_BOT_TOKEN "
            "(Slack app -> OAuth & Permissions -> Bot User OAuth Token)."
        )
    running_scheduler = None
    if scheduler:
        from crmbot.scheduler import start_scheduler, stop_scheduler
        from crmbot.slack.delivery import slack_poster

        poster = slack_poster(engine, settings, bolt_app.client)
        running_scheduler = start_scheduler(settings, engine, poster)
    try:
        if socket_mode:
            common.console.print("crmbot: connecting to Slack in Socket Mode")
            serve_socket_mode(
                bolt_app,
                settings.slack_app_token,
                on_started=lambda: log.info("connected to Slack (Socket Mode)"),
            )
        else:
            common.console.print(f"crmbot: serving Slack at http://{host}:{port}/slack/events")
            serve_http(
                bolt_app,
                engine,
                host=host,
                port=port,
                log_level=settings.log_level,
                json_logs=settings.log_format == "json",
            )
    finally:
        if running_scheduler is not None:
            stop_scheduler(running_scheduler, wait=False)


def manifest(
    url: str = typer.Option(
        "",
        "--url",
        help="Public base URL of `crmbot run` in HTTP mode, e.g. https://crm.example.com "
        "(…/slack/events is added). Without it: a Socket Mode manifest.",
    ),
    name: str = typer.Option("crmbot", "--name", help="The app's and bot's name."),
) -> None:
    """Print the Slack app manifest (YAML): paste it at api.slack.com/apps."""
    from crmbot.slack.manifest import manifest_yaml

    request_url = None
    if url:
        if not url.startswith("https://"):
            common.fail("Slack only calls https:// URLs; give --url https://your-host")
        request_url = url.rstrip("/")
        if not request_url.endswith("/slack/events"):
            request_url += "/slack/events"
    text = manifest_yaml(
        common.settings(),
        request_url=request_url,
        socket_mode=request_url is None,
        name=name,
    )
    typer.echo(text, nl=False)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("manifest")(manifest)
