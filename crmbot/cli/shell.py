"""`crmbot shell`: chat with the bot in the terminal."""

from __future__ import annotations

import typer

from crmbot.cli import common


def shell(
    user: str = typer.Option(
        "shell", "--user", help="Whom to act as (a Slack user id from the admin list is admin)."
    ),
) -> None:
    """Chat with crmbot locally: `/crm help`. Reads commands from stdin when piped."""
    from crmbot.chat.dispatch import Dispatcher
    from crmbot.shell.repl import run_shell
    from crmbot.slack.delivery import configured_poster
    from crmbot.slack.people import configured_directory

    engine = common.engine()
    settings = common.settings()
    run_shell(
        Dispatcher(engine, settings, configured_poster(engine, settings)),
        user_id=user,
        people=configured_directory(settings),
    )


def register(app: typer.Typer) -> None:
    app.command("shell")(shell)
