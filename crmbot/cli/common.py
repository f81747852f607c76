"""What every CLI command shares: settings, the engine, the console, friendly failures."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from typing import NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from sqlalchemy.engine import Engine

from crmbot.core.config import Settings, get_settings
from crmbot.core.db import DatabaseUnavailable, connect, shown_url, url_secrets

console = Console()
err_console = Console(stderr=True)


def settings() -> Settings:
    """The settings, or a clear exit naming each invalid one (no traceback)."""
    from pydantic import ValidationError

    try:
        return get_settings()
    except ValidationError as exc:
        problems = [
            f"  - {'.'.join(str(part) for part in error['loc'])}: "
            f"{error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors()
        ]
        fail("the settings are not valid (.env or the environment):\n" + "\n".join(problems))


def engine(migrate: bool = True) -> Engine:
    """The configured database with its schema up to date, or a clear exit."""
    url = settings().database_url
    try:
        return connect(url, migrate=migrate)
    except DatabaseUnavailable as exc:
        fail(f"{DatabaseUnavailable.user_message}\n({without_password(str(exc), url)})")
    except Exception as exc:  # a bad URL, a missing driver, an unreachable server
        fail(f"cannot open the database {shown_url(url)}: {without_password(str(exc), url)}")


def without_password(message: str, url: str) -> str:
    """`message` (a driver's or a library's error) with `url`'s password taken out."""
    for secret in sorted(url_secrets(url), key=len, reverse=True):
        message = message.replace(secret, "***")
    return message


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


def parse_day(value: str | None) -> date:
    """A YYYY-MM-DD option, or today (UTC) when not given."""
    if not value:
        return datetime.now(UTC).date()
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"'{value}' is not a date; use YYYY-MM-DD, e.g. 2026-03-31")


def secret_values(current: Settings) -> list[str]:
    """Every secret the settings hold, for the log scrubber."""
    return [
        current.slack_bot_token,
        current.slack_signing_secret,
        current.slack_app_token,
        current.llm_api_key,
        *url_secrets(current.database_url),
    ]


def progress_bar() -> Progress:
    """The progress bar long CLI steps share: what is running, how far, how long."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


OWN_LOGGERS = ("crmbot", "commands")


def setup_logging() -> None:
    """Logging for every CLI command, scrubbed of secrets and personal data."""
    from crmbot.core import redact

    current = settings()
    level = getattr(logging, current.log_level.upper(), logging.INFO)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if current.log_format == "json":
        from crmbot.core.logs import use_json

        use_json(logging.getLogger().handlers)
    # crmbot's own loggers speak at the configured level; libraries (matplotlib's font
    # cache, Alembic's migration chatter...) only when something is wrong, unless DEBUG asks
    # for everything. Their INFO lines otherwise land in the middle of a shell answer.
    logging.getLogger().setLevel(level if level <= logging.DEBUG else logging.WARNING)
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(level)
    # Not only `crmbot run`: the scheduler and digest commands log training errors and
    # Slack responses too.
    redact.install(secret_values(current))
