"""The command registry: every module in the `commands` package declares its commands with
`@command`, and crmbot finds them at start-up without importing any one by name.

    @command("at-risk", usage="at-risk [N] [segment | region | mine]")
    def at_risk(request: Request) -> Reply:
        \"\"\"The accounts most worth saving: value at risk = CLV x churn risk.\"\"\"

The docstring's first line is the help text; `admin_only=True` restricts it to admins and
is enforced in one place, `crmbot.chat.dispatch`.

A *view* (`@view("app-home")`) is registered the same way and runs through the same
dispatcher — access check, audit — but is opened by a transport (Slack's App Home tab),
not typed: it is not in `/crm help` and no text finds it.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from crmbot.core.config import Settings
    from crmbot.digests import Poster
    from crmbot.reply import Reply


@dataclass
class Request:
    """A parsed chat request, the same from Slack and from the shell."""

    user_id: str
    channel_id: str | None
    command: str
    args: list[str]
    text: str  # the arguments as typed, after the command name
    engine: Engine
    settings: Settings
    transport: str = "shell"  # shell | slack
    share: bool = False  # --share: post in the channel (masked) instead of ephemerally
    export: bool = False  # --csv: every row as a CSV file (`crmbot.reply.export`)
    is_admin: bool = False
    # The day "today" means; injected so replies are reproducible in tests.
    today: date = field(default_factory=lambda: datetime.now(UTC).date())
    # Slack's progress callback for slow commands; the shell prints.
    progress: Callable[[str], None] | None = None
    # Other names the asker goes by as an account owner, when the transport knows them
    # (Slack: users.info email and handle), so "mine" matches customers whose `owner` is
    # the account manager's email or handle rather than their user id.
    user_aliases: tuple[str, ...] = ()
    # True only when the request comes from the asker's own direct message with the bot
    # (Slack: its Messages tab), as the transport established it: the one conversation
    # CRMBOT_ALLOWED_CHANNELS does not have to list. A DM between people is not one.
    in_bot_dm: bool = False
    # Delivers digests when a command sends one now (`/crm schedule run`); None without Slack.
    poster: Poster | None = None
    # Finds a channel's id from its name as typed ("#sales"), when the transport can
    # (Slack: conversations.list, cached); None in the shell.
    find_channel: Callable[[str], str | None] | None = None


Handler = Callable[[Request], "Reply"]


@dataclass(frozen=True)
class Command:
    name: str
    usage: str
    handler: Handler
    admin_only: bool = False
    aliases: tuple[str, ...] = ()
    slow: bool = False  # answered after the acknowledgement (Slack lazy listener)

    @property
    def help(self) -> str:
        doc = inspect.getdoc(self.handler) or ""
        return doc.splitlines()[0] if doc else ""

    @property
    def description(self) -> str:
        return inspect.getdoc(self.handler) or ""


_COMMANDS: dict[str, Command] = {}
_VIEWS: dict[str, Command] = {}


def command(
    name: str,
    *,
    usage: str,
    admin_only: bool = False,
    aliases: tuple[str, ...] = (),
    slow: bool = False,
) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        _COMMANDS[name] = Command(
            name=name,
            usage=usage,
            handler=handler,
            admin_only=admin_only,
            aliases=aliases,
            slow=slow,
        )
        return handler

    return register


def view(name: str, *, admin_only: bool = False) -> Callable[[Handler], Handler]:
    """Register a view: a Reply a transport shows without being asked in words."""

    def register(handler: Handler) -> Handler:
        _VIEWS[name] = Command(name=name, usage="", handler=handler, admin_only=admin_only)
        return handler

    return register


def _import_all(package: str) -> None:
    module = importlib.import_module(package)
    for info in pkgutil.iter_modules(module.__path__, prefix=f"{package}."):
        importlib.import_module(info.name)


def load_commands(package: str = "commands") -> dict[str, Command]:
    """Import every module of `package` once, so their `@command`s register."""
    _import_all(package)
    return dict(sorted(_COMMANDS.items()))


def load_views(package: str = "commands") -> dict[str, Command]:
    """The `@view`s registered by the modules of `package` (imported once)."""
    _import_all(package)
    return dict(sorted(_VIEWS.items()))


def find_command(name: str, commands: dict[str, Command]) -> Command | None:
    name = name.lower()
    if name in commands:
        return commands[name]
    for cmd in commands.values():
        if name in cmd.aliases:
            return cmd
    return None
