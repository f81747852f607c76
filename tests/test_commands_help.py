"""Every registered command is in `/crm help` and in the README (a command nobody can find
is a command nobody uses)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine

from crmbot.chat.dispatch import Dispatcher
from crmbot.chat.registry import load_commands
from crmbot.core.config import Settings
from crmbot.shell.text import render

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_command_is_in_help(engine: Engine, settings: Settings) -> None:
    commands = load_commands()
    text = render(Dispatcher(engine, settings).handle("help", user_id="UADMIN"))
    for command in commands.values():
        assert f"`/crm {command.usage}` — {command.help}" in text, command.name
        assert command.help, f"{command.name} has no docstring"
        explained = render(Dispatcher(engine, settings).handle(f"help {command.name}", user_id="U"))
        assert command.usage in explained


def test_every_command_is_in_the_readme() -> None:
    readme = README.read_text(encoding="utf-8")
    missing = [name for name in load_commands() if f"/crm {name}" not in readme]
    assert not missing, f"README.md does not document: {', '.join(missing)}"


def test_help_lists_only_what_the_asker_may_run(engine: Engine, settings: Settings) -> None:
    admin_only = [c for c in load_commands().values() if c.admin_only]
    assert admin_only, "no admin command to hide"
    member = render(Dispatcher(engine, settings).handle("help", user_id="UAM1"))
    admin = render(Dispatcher(engine, settings).handle("help", user_id="UADMIN"))
    for command in admin_only:
        assert f"`/crm {command.usage}`" not in member, command.name
        assert f"`/crm {command.usage}`" in admin, command.name
    assert "`/crm customer" in member
