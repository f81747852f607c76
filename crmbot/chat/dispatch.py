"""One path for every chat request, whatever the transport: parse, check access, run the
command, audit. Errors a user can cause come back as sentences, never as tracebacks.

Access is decided here and nowhere else (`access_denial`): transports never re-check, and
`/crm help` asks the same function which commands to list.

Work per request is bounded here too: a user has at most CRMBOT_REQUESTS_PER_USER commands
running at once (one more is answered "one at a time, please"), and a command's database
statements end CRMBOT_STATEMENT_TIMEOUT_SECONDS after it started (`crmbot.core.timeouts`),
answered "that took too long". Every request is counted in `crmbot.core.metrics`.
"""

from __future__ import annotations

import logging
import re
import shlex
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

from sqlalchemy.engine import Engine

from crmbot.chat.registry import Command, Request, find_command, load_commands, load_views
from crmbot.core import audit, metrics
from crmbot.core.config import Settings
from crmbot.core.db import DatabaseUnavailable
from crmbot.core.timeouts import StatementTimeout, statement_deadline
from crmbot.digests import Poster
from crmbot.reply import Reply
from crmbot.runs import RunUnreadable

log = logging.getLogger(__name__)

MAX_INPUT_CHARS = 2000
# Control characters (NUL above all, which PostgreSQL refuses in text) carry no meaning in
# a chat command; tabs and newlines stay.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# The audit row of a request is written within this many seconds (or the statement
# timeout, when shorter), or skipped and logged: a slow database must not hold the answer
# long after the command itself gave up.
AUDIT_SECONDS = 5.0


@dataclass(frozen=True)
class ParsedText:
    command: str
    args: list[str]
    text: str
    share: bool
    export: bool = False


# Flags any command takes: --share (post in the channel, masked), --csv (every row as a
# CSV file, `crmbot.reply.export`).
SHARE_FLAG = "--share"
EXPORT_FLAG = "--csv"


def parse(text: str, slash_command: str = "/crm") -> ParsedText:
    """Split "/crm customer Ada Lovelace --share" into command, arguments and flags."""
    text = text.strip()
    if text.lower().startswith(slash_command.lower()):
        text = text[len(slash_command) :].strip()
    words = _split(text)
    flags = {flag for flag in (SHARE_FLAG, EXPORT_FLAG) if flag in words}
    for flag in flags:
        words = [w for w in words if w != flag]
        text = " ".join(text.replace(flag, " ").split())
    share, export = SHARE_FLAG in flags, EXPORT_FLAG in flags
    if not words:
        return ParsedText(command="help", args=[], text="", share=share, export=export)
    name = words[0].lower()
    rest = text[len(text.split(maxsplit=1)[0]) :].strip() if text else ""
    return ParsedText(command=name, args=words[1:], text=rest, share=share, export=export)


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
    # With an allow-list, a Slack request runs in a listed conversation (channel, private
    # channel, group DM or DM, by id) or in the asker's own DM with the bot; a DM between
    # people or a group DM that is not listed is refused like any unlisted channel, since
    # an answer shared there (--share) reaches people the list was meant to keep out. The
    # App Home has no channel.
    if (
        settings.allowed_channels
        and request.transport == "slack"
        and request.channel_id
        and not request.in_bot_dm
        and request.channel_id not in settings.allowed_channels
    ):
        return (
            "crmbot isn't enabled in this conversation. Ask in your direct message with "
            "crmbot or in an allowed channel."
        )
    return None


class Dispatcher:
    """Runs chat text as a command for a user; shared by the Slack and shell transports."""

    def __init__(self, engine: Engine, settings: Settings, poster: Poster | None = None) -> None:
        self.engine = engine
        self.settings = settings
        self.poster = poster
        self.commands = load_commands()
        self.views = load_views()
        # Commands running per user: user id -> names of the commands, oldest first.
        self._running: dict[str, list[str]] = {}
        self._running_lock = threading.Lock()

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
            export=parsed.export,
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
        self._finish(request, view_name, reply, started, request_id)
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
            self._finish(request, "oversized", reply, started, request_id)
            return reply
        request, cmd = self.build_request(
            text, user_id=user_id, channel_id=channel_id, transport=transport, **extra
        )
        name = cmd.name if cmd else request.command
        with self._one_at_a_time(user_id, f"`{cmd.name}`" if cmd else "a command") as running:
            if running:
                reply = Reply.error(
                    f"You already have {running} running — one at a time, please. "
                    "Ask again when it has answered.",
                    outcome="busy",
                )
            else:
                reply = self.run(request, cmd)
        self._finish(request, name, reply, started, request_id, known=cmd is not None)
        return reply

    @contextmanager
    def _one_at_a_time(self, user_id: str, name: str) -> Iterator[str | None]:
        """Takes one of the user's CRMBOT_REQUESTS_PER_USER places for the block, and
        yields None; when every place is taken, yields what the user has running (as
        said in the answer)."""
        with self._running_lock:
            running = self._running.setdefault(user_id, [])
            if len(running) >= self.settings.requests_per_user:
                yield running[0]
                return
            running.append(name)
        try:
            yield None
        finally:
            with self._running_lock:
                running.remove(name)
                if not running:
                    del self._running[user_id]

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
        # Slow commands (retrain, schedule) say so when acknowledged and run for minutes.
        limit = None if cmd.slow else self.settings.statement_timeout_seconds
        try:
            with statement_deadline(limit):
                reply = cmd.handler(replace(request, command=cmd.name))
        except StatementTimeout as timeout:
            log.warning("%s took longer than %ss: %s", cmd.name, limit, timeout)
            metrics.ERRORS.labels(kind="timeout").inc()
            return Reply.error(StatementTimeout.user_message, outcome="timeout")
        except DatabaseUnavailable:
            log.warning("database unreachable while running %s", cmd.name)
            metrics.ERRORS.labels(kind="database_unavailable").inc()
            return Reply.error(DatabaseUnavailable.user_message)
        except RunUnreadable as unreadable:  # logged once where it was found
            return Reply.error(str(unreadable))
        except Exception:
            log.exception("command %s failed", cmd.name)
            metrics.ERRORS.labels(kind="command").inc()
            return Reply.error(
                f"Sorry, `{cmd.name}` failed on my side. The error is logged; "
                "an admin can find it under this time in the bot's log."
            )
        if request.share:
            reply.private = False
        return reply

    def _finish(
        self,
        request: Request,
        command_name: str,
        reply: Reply,
        started: float,
        request_id: str | None,
        *,
        known: bool = True,
    ) -> None:
        """Count the request (an unknown command's name is not a label: what a user typed
        could make any number of them) and write its audit row."""
        metrics.request_answered(
            command_name if known else "unknown",
            request.transport,
            reply.outcome,
            time.perf_counter() - started,
        )
        self._audit(request, command_name, reply, started, request_id)

    def _audit(
        self,
        request: Request,
        command_name: str,
        reply: Reply,
        started: float,
        request_id: str | None,
    ) -> None:
        limit = self.settings.statement_timeout_seconds
        try:
            with statement_deadline(min(AUDIT_SECONDS, limit) if limit else AUDIT_SECONDS):
                audit.record(
                    self.engine,
                    transport=request.transport,
                    user_id=request.user_id,
                    channel_id=request.channel_id,
                    command=command_name,
                    arguments=f"{request.text} {EXPORT_FLAG}" if request.export else request.text,
                    outcome=reply.outcome,
                    customer_ids=reply.customer_ids,
                    detail=reply.text[:200] if reply.outcome != "ok" else None,
                    duration_ms=(time.perf_counter() - started) * 1000,
                    request_id=request_id,
                )
        except DatabaseUnavailable:
            log.warning("audit skipped: database unreachable")
        except StatementTimeout:
            log.warning("audit skipped: the database did not answer in time")
