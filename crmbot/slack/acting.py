"""Acting on an account from Slack: the buttons of `crmbot.reply.acting`, their forms
(modals), and the "Look up a customer" shortcut.

* "Log a touch" and "Follow-up" open a modal (`views.open` with the click's trigger id).
  Its submission (`view_submission`) is checked in the acknowledgement — a wrong field is
  shown in the modal (`response_action: errors`), no database needed — then stored by a
  lazy listener through `crmbot.actions` and confirmed to the person who clicked: in the
  thread of the message they clicked in when that is their DM with the bot (an alert, a
  reminder), privately in the thread of a message everyone in a channel sees (an account
  of a digest, a shared card: as its other buttons answer), in their DM from the App
  Home.
* "Follow" / "Unfollow" / "Snooze 7 days" act at once and confirm the same way.
* The global shortcut "Look up a customer" opens a modal with one field; its submission
  answers with the customer card in the asker's DM with the bot (a shortcut has no
  channel, and the card carries the email and phone only its reader may see there).

Every action goes through the same access check as a command (`access_denial`), acts only
on a customer the asker may see (`reader_scope`: under CRMBOT_OWN_BOOK_ONLY an account
outside their book is answered like one that does not exist), is audited, and is claimed
once by its request id (a replayed submission never logs a touch twice).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from slack_bolt import Ack, App, BoltRequest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from sqlalchemy.engine import Engine

from crmbot import queries
from crmbot.actions import InvalidAction
from crmbot.actions.follows import follow, snooze, unfollow
from crmbot.actions.followups import add_follow_up
from crmbot.actions.touches import log_touch
from crmbot.chat.commandkit import reader_scope
from crmbot.chat.dispatch import Dispatcher, access_denial
from crmbot.chat.registry import Command
from crmbot.core import audit, metrics
from crmbot.core.config import Settings
from crmbot.core.db import DatabaseUnavailable, read_session, write_session
from crmbot.core.models import TOUCH_KINDS, TOUCH_OUTCOME_WORDS, TOUCH_OUTCOMES, Customer
from crmbot.reply import Reply
from crmbot.reply.acting import FOLLOW, FOLLOW_UP, LOG_TOUCH, SNOOZE, UNFOLLOW, snooze_value
from crmbot.reply.format import day
from crmbot.reply.people import SLACK_USER_ID
from crmbot.reply.rows import customer_label
from crmbot.slack import blocks
from crmbot.slack.people import SlackDirectory


class Ledger(Protocol):
    def claim(self, request_id: str) -> bool: ...


class Host(Protocol):
    """What the account buttons need of the Slack app (`crmbot.slack.app.SlackBot`, which
    registers them): a protocol, so that this module does not import the app back."""

    @property
    def settings(self) -> Settings: ...
    @property
    def engine(self) -> Engine: ...
    @property
    def client(self) -> WebClient: ...
    @property
    def clock(self) -> Callable[[], datetime]: ...
    @property
    def directory(self) -> SlackDirectory: ...
    @property
    def dispatcher(self) -> Dispatcher: ...
    @property
    def ledger(self) -> Ledger: ...

    def is_bot_dm(self, user_id: str, channel_id: str | None) -> bool: ...

    def answer_in_dm(self, text: str, *, user_id: str, request_id: str) -> None: ...

    def answer_in_thread(
        self,
        reply: Reply,
        *,
        user_id: str,
        channel_id: str,
        thread_ts: str,
        thread_open: bool,
        request_id: str,
    ) -> None: ...


log = logging.getLogger(__name__)

TOUCH_FORM = "crm_touch_form"
FOLLOW_UP_FORM = "crm_follow_up_form"
LOOKUP_FORM = "crm_lookup_form"
LOOKUP_SHORTCUT = "crm_lookup"
FORM_ACTIONS = re.compile(rf"^({LOG_TOUCH}|{FOLLOW_UP})(\.\d+)?$")
AT_ONCE_ACTIONS = re.compile(rf"^({FOLLOW}|{UNFOLLOW}|{SNOOZE})(\.\d+)?$")
MAX_NOTE = 2000
MAX_FOLLOW_UP_DAYS = 366
KIND_LABELS = {"call": "Call", "email": "Email", "meeting": "Meeting", "note": "Note"}


@dataclass(frozen=True)
class Origin:
    """Where a button was clicked: the conversation and message (None: the App Home or a
    shortcut), so the confirmation lands beside it."""

    user_id: str
    channel_id: str | None = None
    message_ts: str | None = None
    thread_ts: str | None = None
    # The clicked message already has a thread (replies): a private answer shows in it.
    thread_open: bool = False

    def dump(self, customer_id: str) -> str:
        return json.dumps(
            {
                "customer": customer_id,
                "channel": self.channel_id,
                "ts": self.message_ts,
                "thread": self.thread_ts,
                "open": self.thread_open,
            }
        )

    @classmethod
    def load(cls, user_id: str, metadata: str) -> tuple[Origin, str]:
        try:
            data = json.loads(metadata or "{}")
        except ValueError:
            data = {}
        data = data if isinstance(data, dict) else {}
        origin = cls(
            user_id, data.get("channel"), data.get("ts"), data.get("thread"), bool(data.get("open"))
        )
        return origin, str(data.get("customer") or "")


# ---------------------------------------------------------------------------------------
# The forms (Block Kit views) and what a submission holds


def _option(value: str, label: str) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": label}, "value": value}


def _input(block_id: str, label: str, element: dict[str, Any], *, optional: bool = False) -> dict:
    return {
        "type": "input",
        "block_id": block_id,
        "label": {"type": "plain_text", "text": label},
        "element": {**element, "action_id": "value"},
        "optional": optional,
    }


def _note_input(placeholder: str) -> dict[str, Any]:
    return _input(
        "note",
        "Note",
        {
            "type": "plain_text_input",
            "multiline": True,
            "max_length": MAX_NOTE,
            "placeholder": {"type": "plain_text", "text": placeholder},
        },
        optional=True,
    )


def _modal(callback_id: str, title: str, submit: str, body: list[dict], metadata: str) -> dict:
    return {
        "type": "modal",
        "callback_id": callback_id,
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": submit},
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": metadata,
        "blocks": body,
    }


def _about(customer: Customer) -> dict[str, Any]:
    text = blocks.escape(customer_label(customer, 60))
    return {"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*"}}


def touch_form(customer: Customer, metadata: str) -> dict[str, Any]:
    """The "Log a touch" modal: kind, outcome and a note."""
    kinds = [_option(kind, KIND_LABELS.get(kind, kind.title())) for kind in TOUCH_KINDS]
    outcomes = [_option(outcome, TOUCH_OUTCOME_WORDS[outcome]) for outcome in TOUCH_OUTCOMES]
    return _modal(
        TOUCH_FORM,
        "Log a touch",
        "Log it",
        [
            _about(customer),
            _input(
                "kind",
                "What did you do?",
                {"type": "static_select", "options": kinds, "initial_option": kinds[0]},
            ),
            _input(
                "outcome",
                "How did it go?",
                {"type": "static_select", "options": outcomes},
                optional=True,
            ),
            _note_input("What was said, what comes next"),
        ],
        metadata,
    )


def follow_up_form(customer: Customer, metadata: str, *, today: date, user_id: str) -> dict:
    """The "Follow-up" modal: a due day, who does it (the clicker unless changed), a note."""
    return _modal(
        FOLLOW_UP_FORM,
        "Follow-up",
        "Set it",
        [
            _about(customer),
            _input(
                "due",
                "When?",
                {"type": "datepicker", "initial_date": (today + timedelta(days=1)).isoformat()},
            ),
            _input("assignee", "Who?", {"type": "users_select", "initial_user": user_id}),
            _note_input("What to do"),
        ],
        metadata,
    )


def lookup_form() -> dict[str, Any]:
    """The "Look up a customer" modal: one field, an id, an email or a name."""
    return _modal(
        LOOKUP_FORM,
        "Look up a customer",
        "Show the card",
        [
            _input(
                "customer",
                "Customer",
                {
                    "type": "plain_text_input",
                    "max_length": 200,
                    "placeholder": {"type": "plain_text", "text": "An id, an email or a name"},
                },
            )
        ],
        "{}",
    )


def _value(values: dict[str, Any], block_id: str) -> str:
    """The submitted value of `block_id`'s element, whatever its type."""
    element = (values.get(block_id) or {}).get("value") or {}
    for key in ("selected_date", "selected_user", "value"):
        if element.get(key):
            return str(element[key]).strip()
    option = element.get("selected_option") or {}
    return str(option.get("value") or "").strip()


@dataclass(frozen=True)
class TouchEntry:
    kind: str
    outcome: str | None
    note: str


@dataclass(frozen=True)
class FollowUpEntry:
    due_on: date
    assignee: str
    note: str


def read_touch(values: dict[str, Any]) -> TouchEntry | dict[str, str]:
    """The touch a submission holds, or the errors to show by block id."""
    kind, outcome, note = _value(values, "kind"), _value(values, "outcome"), _value(values, "note")
    errors = {}
    if kind not in TOUCH_KINDS:
        errors["kind"] = "Pick what you did: a call, an email, a meeting or a note."
    if outcome and outcome not in TOUCH_OUTCOMES:
        errors["outcome"] = "Pick one of the outcomes, or leave it empty."
    if len(note) > MAX_NOTE:
        errors["note"] = f"Keep the note under {MAX_NOTE:,} characters."
    if errors:
        return errors
    return TouchEntry(kind, outcome or None, note)


def read_follow_up(values: dict[str, Any], *, today: date) -> FollowUpEntry | dict[str, str]:
    """The follow-up a submission holds, or the errors to show by block id."""
    due, assignee, note = _value(values, "due"), _value(values, "assignee"), _value(values, "note")
    errors = {}
    due_on = None
    try:
        due_on = date.fromisoformat(due)
    except ValueError:
        errors["due"] = "Pick the day it is due."
    if due_on is not None and due_on < today:
        errors["due"] = f"{day(due_on)} has passed: pick today or a later day."
    elif due_on is not None and due_on > today + timedelta(days=MAX_FOLLOW_UP_DAYS):
        errors["due"] = "Pick a day within a year."
    if not SLACK_USER_ID.fullmatch(assignee):
        errors["assignee"] = "Pick who will do it."
    if len(note) > MAX_NOTE:
        errors["note"] = f"Keep the note under {MAX_NOTE:,} characters."
    if errors or due_on is None:
        return errors
    return FollowUpEntry(due_on, assignee, note)


# ---------------------------------------------------------------------------------------
# The listeners


# The access check is the dispatcher's, for a command of this name (none is admin-only).
def _as_command(name: str) -> Command:
    return Command(name=name, usage="", handler=lambda _request: Reply(title=""))


class Acting:
    """The account buttons, their forms and the lookup shortcut, on the Slack app."""

    def __init__(self, bot: Host) -> None:
        self.bot = bot

    @property
    def today(self) -> date:
        now = self.bot.clock().replace(tzinfo=UTC)
        return now.astimezone(ZoneInfo(self.bot.settings.timezone)).date()

    def register(self, app: App) -> None:
        app.action(FORM_ACTIONS)(ack=self.ack, lazy=[self.open_form])
        app.action(AT_ONCE_ACTIONS)(ack=self.ack, lazy=[self.act_at_once])
        app.view(TOUCH_FORM)(ack=self.ack_touch, lazy=[self.save_touch])
        app.view(FOLLOW_UP_FORM)(ack=self.ack_follow_up, lazy=[self.save_follow_up])
        app.shortcut(LOOKUP_SHORTCUT)(ack=self.ack, lazy=[self.open_lookup])
        app.view(LOOKUP_FORM)(ack=self.ack_lookup, lazy=[self.show_customer])

    # -- acknowledgements: no database, well inside 3 seconds -----------------------------

    def ack(self, ack: Ack) -> None:
        ack()
        metrics.ACKS.labels(kind="action").inc()

    def ack_touch(self, ack: Ack, view: dict[str, Any]) -> None:
        self._ack_form(ack, read_touch(_values(view)))

    def ack_follow_up(self, ack: Ack, view: dict[str, Any]) -> None:
        self._ack_form(ack, read_follow_up(_values(view), today=self.today))

    def ack_lookup(self, ack: Ack, view: dict[str, Any]) -> None:
        query = _value(_values(view), "customer")
        errors = {} if query else {"customer": "Give an id, an email or a name."}
        self._ack_form(ack, errors or query)

    def _ack_form(self, ack: Ack, read: object) -> None:
        metrics.ACKS.labels(kind="view").inc()
        if isinstance(read, dict):
            ack(response_action="errors", errors=read)
        else:
            ack()  # closes the modal

    # -- buttons -------------------------------------------------------------------------

    def open_form(self, body: dict[str, Any], request: BoltRequest) -> None:
        action = (body.get("actions") or [{}])[0]
        origin = _origin(body)
        customer_id = str(action.get("value") or "")
        name = "log" if action.get("action_id", "").startswith(LOG_TOUCH) else "follow-up"
        found = self._customer(origin, name, customer_id)
        if isinstance(found, Reply):
            self._audit(origin, name, customer_id, found)
            self._confirm(origin, found)
            return
        metadata = origin.dump(found.customer_id)
        view = (
            touch_form(found, metadata)
            if name == "log"
            else follow_up_form(found, metadata, today=self.today, user_id=origin.user_id)
        )
        try:
            self.bot.client.views_open(trigger_id=body.get("trigger_id"), view=view)
        except (SlackApiError, SlackClientError, OSError) as exc:
            # The trigger id lives 3 seconds: a slow click cannot open the form.
            log.warning("views.open for %s failed: %s", origin.user_id, exc)
            self._confirm(
                origin,
                Reply.error(
                    "The form did not open in time; click again. From the keyboard: "
                    f"`{self.bot.settings.slash_command} log {found.customer_id} <note>`."
                ),
            )

    def act_at_once(self, body: dict[str, Any], request: BoltRequest) -> None:
        action = (body.get("actions") or [{}])[0]
        action_id = str(action.get("action_id") or "").split(".", 1)[0]
        origin = _origin(body)
        request_id = _request_id("act", body.get("trigger_id") or action.get("action_ts"))
        value = str(action.get("value") or "")
        customer_id, days = snooze_value(value) if action_id == SNOOZE else (value, 0)
        name = {FOLLOW: "follow", UNFOLLOW: "unfollow", SNOOZE: "snooze"}[action_id]
        if not self.bot.ledger.claim(request_id):
            return
        found = self._customer(origin, name, customer_id)
        if isinstance(found, Reply):
            reply = found
        else:
            reply = self._write(
                lambda session, pk: _at_once(
                    session, name, pk, origin.user_id, found, days, self.bot.clock(), self.today
                ),
                found,
            )
        self._audit(origin, name, customer_id, reply, request_id=request_id)
        self._confirm(origin, reply)

    # -- form submissions -----------------------------------------------------------------

    def save_touch(self, body: dict[str, Any], view: dict[str, Any]) -> None:
        entry = read_touch(_values(view))
        if isinstance(entry, dict):
            return  # shown in the modal by the acknowledgement
        self._save(
            body,
            view,
            "log",
            lambda session, pk, origin, customer: _touch(
                session, pk, origin, customer, entry, self.bot.clock()
            ),
        )

    def save_follow_up(self, body: dict[str, Any], view: dict[str, Any]) -> None:
        entry = read_follow_up(_values(view), today=self.today)
        if isinstance(entry, dict):
            return
        self._save(
            body,
            view,
            "follow-up",
            lambda session, pk, origin, customer: _follow_up(
                session, pk, origin, customer, entry, self.bot.clock(), self.today
            ),
        )

    def _save(self, body: dict[str, Any], view: dict[str, Any], name: str, write: Any) -> None:
        user_id = (body.get("user") or {}).get("id") or ""
        origin, customer_id = Origin.load(user_id, view.get("private_metadata") or "")
        request_id = _request_id("view", view.get("id"))
        if not self.bot.ledger.claim(request_id):
            return
        found = self._customer(origin, name, customer_id)
        if isinstance(found, Reply):
            reply = found
        else:
            reply = self._write(lambda session, pk: write(session, pk, origin, found), found)
        self._audit(origin, name, customer_id, reply, request_id=request_id)
        self._confirm(origin, reply)

    # -- the lookup shortcut --------------------------------------------------------------

    def open_lookup(self, body: dict[str, Any]) -> None:
        try:
            self.bot.client.views_open(trigger_id=body.get("trigger_id"), view=lookup_form())
        except (SlackApiError, SlackClientError, OSError) as exc:
            log.warning("views.open (lookup) failed: %s", exc)

    def show_customer(
        self, body: dict[str, Any], view: dict[str, Any], request: BoltRequest
    ) -> None:
        """The card for what was typed, through the dispatcher (access, scope, audit), in
        the asker's DM with the bot."""
        query = _value(_values(view), "customer")
        user_id = (body.get("user") or {}).get("id") or ""
        request_id = _request_id("view", view.get("id"))
        if not query or not user_id or not self.bot.ledger.claim(request_id):
            return
        self.bot.answer_in_dm(f"customer {query}", user_id=user_id, request_id=request_id)

    # -- shared ---------------------------------------------------------------------------

    def _customer(self, origin: Origin, name: str, customer_id: str) -> Customer | Reply:
        """The customer the button names, if the clicker may act on it; else the answer."""
        request, _ = self.bot.dispatcher.build_request(
            name,
            user_id=origin.user_id,
            channel_id=origin.channel_id,
            transport="slack",
            user_aliases=self.bot.directory.aliases(origin.user_id),
            in_bot_dm=origin.channel_id is None
            or self.bot.is_bot_dm(origin.user_id, origin.channel_id),
        )
        denial = access_denial(_as_command(name), request)
        if denial:
            return Reply.error(denial, outcome="denied")
        scope = reader_scope(request)
        try:
            with read_session(self.bot.engine) as session:
                lookup = queries.find_customer(
                    session=session, query=customer_id, owners=scope.owners
                )
        except DatabaseUnavailable:
            return Reply.error(DatabaseUnavailable.user_message)
        if lookup.customer is None or lookup.customer.customer_id != customer_id:
            return Reply.error(f"No customer '{customer_id[:60]}'.", outcome="not_found")
        return lookup.customer

    def _write(self, write: Any, customer: Customer) -> Reply:
        try:
            with write_session(self.bot.engine) as session:
                return write(session, customer.id)  # type: ignore[no-any-return]
        except InvalidAction as problem:
            return Reply.error(str(problem), outcome="usage")
        except DatabaseUnavailable:
            return Reply.error(DatabaseUnavailable.user_message)
        except Exception:
            log.exception("acting on %s failed", customer.customer_id)
            metrics.ERRORS.labels(kind="listener").inc()
            return Reply.error("Sorry, that failed on my side. The error is logged.")

    def _audit(
        self,
        origin: Origin,
        name: str,
        customer_id: str,
        reply: Reply,
        *,
        request_id: str | None = None,
    ) -> None:
        try:
            audit.record(
                self.bot.engine,
                transport="slack",
                user_id=origin.user_id,
                channel_id=origin.channel_id,
                command=name,
                arguments=customer_id,
                outcome=reply.outcome,
                customer_ids=[customer_id] if reply.outcome == "ok" else [],
                detail=reply.text[:200] if reply.outcome != "ok" else None,
                request_id=request_id,
            )
        except DatabaseUnavailable:
            log.warning("audit of %s skipped: database unreachable", name)

    def _confirm(self, origin: Origin, reply: Reply) -> None:
        """The answer, to the clicker alone: in the thread of the clicked message in their
        DM with the bot, privately in the thread of a message in a channel (opened for it
        when it has no replies yet, as the other buttons' answers are), ephemerally beside
        a message in a DM between people, else in their DM."""
        client, user = self.bot.client, origin.user_id
        reply.private = True
        payload = blocks.message(reply, shared=False)
        channel = origin.channel_id
        try:
            if channel and self.bot.is_bot_dm(user, channel):
                client.chat_postMessage(
                    channel=channel, thread_ts=origin.thread_ts or origin.message_ts, **payload
                )
                return
            thread = origin.thread_ts or origin.message_ts
            if channel and thread and not channel.startswith("D"):
                self.bot.answer_in_thread(
                    reply,
                    user_id=user,
                    channel_id=channel,
                    thread_ts=thread,
                    thread_open=origin.thread_open,
                    # Names the line that opens the thread, so a retry does not open it twice.
                    request_id=f"act:{user}:{thread}",
                )
                return
            if channel:
                client.chat_postEphemeral(
                    channel=channel, user=user, thread_ts=origin.thread_ts, **payload
                )
                return
        except (SlackApiError, SlackClientError, OSError) as exc:
            log.info("confirmation in %s failed (%s); sending it by DM", channel, exc)
        try:
            client.chat_postMessage(channel=user, **payload)
        except (SlackApiError, SlackClientError, OSError) as exc:
            log.warning("could not confirm to %s: %s", user, exc)


def _values(view: dict[str, Any]) -> dict[str, Any]:
    return ((view or {}).get("state") or {}).get("values") or {}


def _origin(body: dict[str, Any]) -> Origin:
    user_id = (body.get("user") or {}).get("id") or ""
    container = body.get("container") or {}
    channel = (body.get("channel") or {}).get("id") or container.get("channel_id")
    message = body.get("message") or {}
    return Origin(
        user_id,
        channel or None,
        container.get("message_ts") or message.get("ts"),
        container.get("thread_ts") or message.get("thread_ts"),
        bool(message.get("thread_ts") or message.get("reply_count")),
    )


def _request_id(kind: str, slack_id: object) -> str:
    return f"{kind}:{slack_id}"[:120]


# ---------------------------------------------------------------------------------------
# The writes, each in the session `Acting._write` opened


def _touch(
    session: Any, pk: int, origin: Origin, customer: Customer, entry: TouchEntry, now: datetime
) -> Reply:
    log_touch(
        session=session,
        customer_pk=pk,
        kind=entry.kind,
        author=origin.user_id,
        now=now,
        note=entry.note,
        outcome=entry.outcome,
    )
    how = f" — {TOUCH_OUTCOME_WORDS[entry.outcome]}" if entry.outcome else ""
    return Reply(
        title="",
        text=f"Logged: {entry.kind} with {customer_label(customer, 60)}{how}.",
        customer_ids=[customer.customer_id],
    )


def _follow_up(
    session: Any,
    pk: int,
    origin: Origin,
    customer: Customer,
    entry: FollowUpEntry,
    now: datetime,
    today: date,
) -> Reply:
    add_follow_up(
        session=session,
        customer_pk=pk,
        assignee=entry.assignee,
        due_on=entry.due_on,
        created_by=origin.user_id,
        now=now,
        today=today,
        note=entry.note,
    )
    who = "you" if entry.assignee == origin.user_id else entry.assignee
    return Reply(
        title="",
        text=(
            f"Follow-up on {customer_label(customer, 60)} set for {day(entry.due_on)}: "
            f"{who} will get it by DM that day."
        ),
        customer_ids=[customer.customer_id],
    )


def _at_once(
    session: Any,
    name: str,
    pk: int,
    user_id: str,
    customer: Customer,
    days: int,
    now: datetime,
    today: date,
) -> Reply:
    label = customer_label(customer, 60)
    if name == "follow":
        new = follow(session=session, customer_pk=pk, user_id=user_id, now=now)
        text = (
            f"You follow {label}: you'll get its alerts." if new else f"You already follow {label}."
        )
    elif name == "unfollow":
        gone = unfollow(session=session, customer_pk=pk, user_id=user_id)
        text = f"You no longer follow {label}." if gone else f"You did not follow {label}."
    else:
        until = snooze(session=session, customer_pk=pk, user_id=user_id, days=days, as_of=today)
        text = f"{label} is snoozed for you until {day(until)}: no alerts or digest rows."
    return Reply(title="", text=text, customer_ids=[customer.customer_id])
