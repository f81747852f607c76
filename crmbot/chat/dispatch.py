"""One path for every chat request, whatever the transport: parse, check access, run the
command, audit. Errors a user can cause come back as sentences, never as tracebacks.

Access is decided here and nowhere else (`access_denial`): transports never re-check, and
`/crm help` asks the same function which commands to list.
"""

from __future__ import annotations

import logging
import re
import shlex
import time
from dataclasses import dataclass, replace

from sqlalchemy.engine import Engine

from crmbot.chat.registry import Command, Request, find_command, load_commands, load_views
from crmbot.core import audit
from crmbot.core.config import Settings
from crmbot.core.db import DatabaseUnavailable
from crmbot.digests import Poster
from crmbot.reply import Reply
from crmbot.runs import RunUnreadable

log = logging.getLogger(__name__)

MAX_INPUT_CHARS = 2000
# Control characters (NUL above all, which PostgreSQL refuses in text) carry no meaning in
# a chat command; tabs and newlines stay.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class ParsedText:
    command: str
    args: list[str]
    text: str
    share: bool


def parse(text: str, slash_command: str = "/crm") -> ParsedText:
    """Split "/crm customer Ada Lovelace --share" into command, arguments and flags."""
    text = text.strip()
    if text.lower().startswith(slash_command.lower()):
        text = text[len(slash_command) :].strip()
    share = False
    words = _split(text)
    if "--share" in words:
        share = True
        words = [w for w in words if w != "--share"]
        text = " ".join(text.replace("--share", " ").split())
    if not words:
        return ParsedText(command="help", args=[], text="", share=share)
    name = words[0].lower()
    rest = text[len(text.split(maxsplit=1)[0]) :].strip() if text else ""
    return ParsedText(command=name, args=words[1:], text=rest, share=share)


def _split(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:  # an unbalanced quote: take the words as they are
        return text.split()


def access_denial(command: Command, request: Request) -> str | None:
    """Why `request` may not run `command`, in words; None when it may."""
    settings = request.settings
    if command.admin_only and not request.is_admin:
        return f"`{command.name}` is for crmbot admins only. Ask an admin if you need it run."
    if request.is_admin:
        return None
    if settings.allowed_users and request.user_id not in settings.allowed_users:
        return "You are not on crmbot's list of users. An admin can add you (CRMBOT_ALLOWED_USERS)."
    if (
        settings.allowed_channels
        and request.transport == "slack"
        and request.channel_id
        and not request.channel_id.startswith("D")
        and request.channel_id not in settings.allowed_channels
    ):
        return "crmbot isn't enabled in this channel. Try a direct message or an allowed channel."
    return None


class Dispatcher:
    """Runs chat text as a command for a user; shared by the Slack and shell transports."""

    def __init__(self, engine: Engine, settings: Settings, poster: Poster | None = None) -> None:
        self.engine = engine
        self.settings = settings
        self.poster = poster
        self.commands = load_commands()
        self.views = load_views()

    def build_request(
        self,
        text: str,
        *,
        user_id: str,
        channel_id: str | None,
        transport: str,
        **extra: object,
    ) -> tuple[Request, Command | None]:
        parsed = parse(text[:MAX_INPUT_CHARS], self.settings.slash_command)
        request = Request(
            user_id=user_id,
            channel_id=channel_id,
            command=parsed.command,
            args=parsed.args,
            text=parsed.text,
            engine=self.engine,
            settings=self.settings,
            transport=transport,
            share=parsed.share,
            is_admin=self.settings.is_admin(user_id),
            poster=self.poster,
            **extra,  # type: ignore[arg-type]
        )
        return request, find_command(parsed.command, self.commands)

    def may_run(self, command: Command, request: Request) -> bool:
        """Whether `request`'s asker may run `command` (help lists only those)."""
        return access_denial(command, request) is None

    def show(
        self,
        view_name: str,
        *,
        user_id: str,
        channel_id: str | None = None,
        transport: str = "shell",
        request_id: str | None = None,
        **extra: object,
    ) -> Reply:
        """Build the registered view `view_name` (e.g. the App Home) for a user: the same
        access check, error handling and audit as a typed command."""
        started = time.perf_counter()
        request, _ = self.build_request(
            "", user_id=user_id, channel_id=channel_id, transport=transport, **extra
        )
        request = replace(request, command=view_name)
        view = self.views[view_name]
        reply = self.run(request, view)
        self._audit(request, view_name, reply, started, request_id)
        return reply

    def handle(
        self,
        text: str,
        *,
        user_id: str,
        channel_id: str | None = None,
        transport: str = "shell",
        request_id: str | None = None,
        **extra: object,
    ) -> Reply:
        started = time.perf_counter()
        text = _CONTROL_CHARACTERS.sub("", text)
        if len(text) > MAX_INPUT_CHARS:
            reply = Reply.usage(
                f"That message is {len(text):,} characters; crmbot reads at most "
                f"{MAX_INPUT_CHARS:,}. Try `{self.settings.slash_command} help`."
            )
            request, cmd = self.build_request(
                "", user_id=user_id, channel_id=channel_id, transport=transport, **extra
            )
            self._audit(request, "oversized", reply, started, request_id)
            return reply
        request, cmd = self.build_request(
            text, user_id=user_id, channel_id=channel_id, transport=transport, **extra
        )
        reply = self.run(request, cmd)
        self._audit(request, cmd.name if cmd else request.command, reply, started, request_id)
        return reply

    def run(self, request: Request, cmd: Command | None) -> Reply:
        if cmd is None:
            reply = Reply.usage(
                f"I don't know the command `{request.command[:40]}`. "
                f"Try `{self.settings.slash_command} help` for the list."
            )
            return reply
        denial = access_denial(cmd, request)
        if denial:
            return Reply.error(denial, outcome="denied")
        try:
            reply = cmd.handler(replace(request, command=cmd.name))
        except DatabaseUnavailable:
            log.warning("database unreachable while running %s", cmd.name)
            return Reply.error(DatabaseUnavailable.user_message)
        except RunUnreadable as unreadable:  # logged once where it was found
            return Reply.error(str(unreadable))
        except Exception:
            log.exception("command %s failed", cmd.name)
            return Reply.error(
                f"Sorry, `{cmd.name}` failed on my side. The error is logged; "
                "an admin can find it under this time in the bot's log."
            )
        if request.share:
            reply.private = False
        return reply

    def _audit(
        self,
        request: Request,
        command_name: str,
        reply: Reply,
        started: float,
        request_id: str | None,
    ) -> None:
        try:
            audit.record(
                self.engine,
                transport=request.transport,
                user_id=request.user_id,
                channel_id=request.channel_id,
                command=command_name,
                arguments=request.text,
                outcome=reply.outcome,
                customer_ids=reply.customer_ids,
                detail=reply.text[:200] if reply.outcome != "ok" else None,
                duration_ms=(time.perf_counter() - started) * 1000,
                request_id=request_id,
            )
        except DatabaseUnavailable:
            log.warning("audit skipped: database unreachable")
