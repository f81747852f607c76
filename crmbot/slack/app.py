"""The Slack transport: a Bolt app built by a factory, nothing registered at import time.

    app = build_app(settings, engine)            # or client=WebClient(base_url=fake)

* `/crm ...` (settings.slash_command): `ack()` at once — with a "working on it" note for
  slow commands — then a lazy listener runs the command through the dispatcher (access
  check, audit) and answers through `respond` (the response_url): ephemeral by default,
  in the channel with `--share` (masked of emails and phones).
* @mentions and DMs: the same commands; free text goes to `ask` when that command exists.
* Buttons (`crm_why`, `crm_similar`, `crm_at_risk`, ...) run the command they name with
  the button's value as arguments, answered to the person who clicked.
* Account buttons ("Log a touch", "Follow-up", "Follow", "Snooze 7 days"), their modals
  and the "Look up a customer" shortcut: `crmbot.slack.acting`.
* App Home: the account manager's own book — their at-risk accounts, top value, model
  freshness — published with views.publish when they open the tab.
* Slack delivers again when it thinks a delivery failed (`X-Slack-Retry-Num`), and a
  signed request can be replayed; every request has an id (trigger id, event id) that is
  claimed once in the database before anything runs (`crmbot.core.claims`), so a retried
  or replayed request never acts twice, also after a restart, and each duplicate skipped
  is audited with the outcome "duplicate".
* Charts are drawn with matplotlib and uploaded with files_upload_v2 beside the reply
  they belong to: into the channel (and thread) when the reply is shared, else into the
  asker's DM with the bot. A chart Slack refuses (e.g. `not_in_channel`) is said to the
  asker instead of being lost.
* A CSV export (`--csv`, the "Export all N as CSV" button) is uploaded like a chart, to
  the asker's DM with the bot unless shared, then deleted from the bot's disk.
* Threads: a mention or DM inside a thread is answered in that thread; a top-level
  mention is answered in a new thread under it; a button on a message in a conversation
  (a digest, a shared card) answers in that message's thread. An answer only the asker
  sees cannot open a thread (Slack shows an ephemeral message in a thread only once the
  thread exists), so a short public note naming the asker opens it first.
* People: account owners (a Slack user id or an email) are shown as mentions, and by
  name in tables, through `crmbot.slack.people.SlackDirectory` (users.info,
  users.lookupByEmail, cached with expiry); it also finds a channel typed as `#sales`.
* Deep links: with CRMBOT_CUSTOMER_URL_TEMPLATE, a link to a customer's page pasted where
  the bot is (`link_shared`) unfurls as the customer card, masked, through chat.unfurl.
* Every Web API call and response_url answer goes through one retry policy
  (`crmbot.slack.retries.retrying_client`): 429 after Retry-After, 500/503 with back-off,
  and a reply that may have landed is looked for before it is posted again.

The app runs with `process_before_response=True`: the HTTP response is the `ack()`, sent
before any database work, and everything slow happens in lazy listeners on a thread pool.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from slack_bolt import Ack, App, BoltRequest, Respond
from slack_bolt.error import BoltError
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from sqlalchemy.engine import Engine

from crmbot.chat.dispatch import Dispatcher, parse
from crmbot.chat.registry import find_command
from crmbot.core import audit, claims, metrics, redact
from crmbot.core.clock import utc_now
from crmbot.core.config import Settings
from crmbot.core.db import DatabaseUnavailable
from crmbot.core.timeouts import StatementTimeout, statement_deadline
from crmbot.reply import Reply
from crmbot.reply.links import customer_id_in
from crmbot.reply.people import owner_ref
from crmbot.slack import blocks
from crmbot.slack.acting import Acting
from crmbot.slack.delivery import slack_poster
from crmbot.slack.people import SlackDirectory
from crmbot.slack.retries import (
    REPLY_EVENT,
    RetryingWebClient,
    retrying_client,
    retrying_webhook,
)

log = logging.getLogger(__name__)

ACTION_PREFIX = "crm_"
ACTION_PATTERN = re.compile(r"^crm_[a-z0-9_]+(\.\d+)?$")
LINK_ACTION_PATTERN = re.compile(r"^link_[a-z0-9_]+(\.\d+)?$")
LEADING_MENTION = re.compile(r"^\s*<@[A-Z0-9]+(\|[^>]*)?>[\s:,]*")
# A response_url takes five answers in 30 minutes; progress may use three of them.
MAX_PROGRESS_MESSAGES = 3
MIN_PROGRESS_INTERVAL_SECONDS = 2.0
# Commands answered at once per process. Few on purpose: they share one GIL with the HTTP
# acknowledgements, and more threads doing Python work make every ack wait longer for it
# (benchmarks/run.py, concurrency 20: 16 threads, ack p99 125-165 ms; 4, 80-90 ms). Scale out
# with replicas, not threads.
LISTENER_THREADS = 4
HOME_VIEW = "app-home"
# Links unfurled from one message at most (each runs a card lookup).
MAX_UNFURLS = 5
# A claim that the database cannot record this fast is given up (the request still runs).
CLAIM_SECONDS = 5.0


class RequestLedger:
    """Which Slack request ids were already acted on.

    Claimed in the database (`crmbot.core.claims`) before the request runs, so a retry or a
    replay is recognised whether it overlaps the first delivery or arrives after a restart
    or at another replica. A small in-memory set answers repeats within this process
    without a write, and keeps them out while the database is unreachable. Claims older
    than a day are deleted every few minutes, in bounded batches.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        max_entries: int = 50_000,
        prune_every_seconds: float = 600,
        clock: Callable[[], datetime] = utc_now,
    ):
        self.engine = engine
        self.max_entries = max_entries
        self.prune_every = prune_every_seconds
        self.clock = clock
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._next_prune = time.monotonic()

    def claim(self, request_id: str) -> bool:
        """True the first time `request_id` is seen; False for any repeat."""
        with self._lock:
            if request_id in self._seen:
                return False
            self._seen[request_id] = None
            while len(self._seen) > self.max_entries:
                self._seen.popitem(last=False)
        try:
            with statement_deadline(CLAIM_SECONDS):
                first = claims.claim(self.engine, request_id, now=self.clock())
        except (DatabaseUnavailable, StatementTimeout):
            return True  # better to answer twice than to stay silent
        self._prune_now_and_then()
        return first

    def _prune_now_and_then(self) -> None:
        with self._lock:
            if time.monotonic() < self._next_prune:
                return
            self._next_prune = time.monotonic() + self.prune_every
        try:
            deleted = claims.prune(self.engine, now=self.clock())
        except Exception as exc:  # pruning is housekeeping: the next round tries again
            log.warning("pruning old request claims failed: %s", exc)
            return
        if deleted:
            log.info("pruned %d request claims older than %s", deleted, claims.KEEP_FOR)


def action_command_text(action_id: str, value: str) -> str:
    """`crm_at_risk` + "EMEA" -> "at-risk EMEA"; a `.N` suffix (unique ids) is dropped."""
    base = action_id.split(".", 1)[0]
    name = base[len(ACTION_PREFIX) :].replace("_", "-")
    return f"{name} {value}".strip()


def strip_mention(text: str) -> str:
    return LEADING_MENTION.sub("", text or "", count=1).strip()


class SlackBot:
    """The listeners, holding what they share: dispatcher, client, ledger, directory."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        client: RetryingWebClient,
        *,
        today: Callable[[], date] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.settings = settings
        self.today = today or (lambda: datetime.now(UTC).date())
        # Naive UTC "now" of what people do (a touch's time, a follow-up's earliest day).
        self.clock = clock or utc_now
        self.engine = engine
        self.client = client
        # `/crm schedule run` posts digests through the same Web API as the replies.
        self.dispatcher = Dispatcher(engine, settings, slack_poster(engine, settings, client))
        self.ledger = RequestLedger(engine)
        self.directory = SlackDirectory(client)

    # -- registration ----------------------------------------------------------------

    def register(self, app: App) -> None:
        app.command(self.settings.slash_command)(ack=self.ack_command, lazy=[self.answer_command])
        app.event("app_mention")(ack=self.ack_event, lazy=[self.answer_mention])
        app.event("message", matchers=[_is_direct_message])(
            ack=self.ack_event, lazy=[self.answer_direct_message]
        )
        # Other message events (edits, joins, the bot's own posts) are acknowledged and
        # dropped, so Slack does not retry them.
        app.event("message")(self.ack_event)
        app.event("app_home_opened")(ack=self.ack_event, lazy=[self.publish_home])
        app.action(ACTION_PATTERN)(ack=self.ack_event, lazy=[self.answer_action])
        # Log a touch, follow-up, follow, snooze; the "Look up a customer" shortcut.
        Acting(self).register(app)
        # A link button ("Open in CRM") opens its page; Slack reports the click all the same.
        app.action(LINK_ACTION_PATTERN)(self.ack_event)
        app.event("link_shared")(ack=self.ack_event, lazy=[self.unfurl_links])

    # -- acknowledgements (no database, no Web API: well inside 3 seconds) ---------------

    def ack_event(self, ack: Ack) -> None:
        ack()
        metrics.ACKS.labels(kind="event").inc()

    def ack_command(self, ack: Ack, body: dict[str, Any]) -> None:
        metrics.ACKS.labels(kind="command").inc()
        request, cmd = self.dispatcher.build_request(
            body.get("text") or "",
            user_id=body.get("user_id") or "",
            channel_id=body.get("channel_id"),
            transport="slack",
        )
        if cmd is not None and cmd.slow and self.dispatcher.may_run(cmd, request):
            ack(
                text=f"Working on `{cmd.name}` — this takes a while; progress and the "
                "result will appear here."
            )
        else:
            ack()

    # -- slash command -----------------------------------------------------------------

    def answer_command(self, body: dict[str, Any], respond: Respond, request: BoltRequest) -> None:
        user_id = body.get("user_id") or ""
        channel_id = body.get("channel_id")
        request_id = _request_id("cmd", body.get("trigger_id"), request)
        if not self.ledger.claim(request_id):
            self._skip_duplicate(
                request_id,
                request,
                text=body.get("text") or "",
                user_id=user_id,
                channel_id=channel_id,
            )
            return
        outbox = ResponseOutbox(self, respond=respond, user_id=user_id, channel_id=channel_id)
        reply = self._run(
            body.get("text") or "",
            user_id=user_id,
            channel_id=channel_id,
            request_id=request_id,
            progress=outbox.progress,
        )
        outbox.deliver(reply)

    # -- mentions and direct messages --------------------------------------------------

    def answer_mention(
        self, event: dict[str, Any], body: dict[str, Any], request: BoltRequest
    ) -> None:
        self._answer_event(event, body, request, direct=False)

    def answer_direct_message(
        self, event: dict[str, Any], body: dict[str, Any], request: BoltRequest
    ) -> None:
        self._answer_event(event, body, request, direct=True)

    def _answer_event(
        self, event: dict[str, Any], body: dict[str, Any], request: BoltRequest, *, direct: bool
    ) -> None:
        user_id = event.get("user") or ""
        channel_id = event.get("channel")
        if not user_id or not channel_id:
            return
        request_id = _request_id("evt", body.get("event_id"), request)
        text = self._route_free_text(strip_mention(event.get("text") or ""))
        if not self.ledger.claim(request_id):
            self._skip_duplicate(
                request_id, request, text=text, user_id=user_id, channel_id=channel_id
            )
            return
        # Inside a thread: answered there. A top-level mention: in a new thread under it.
        # A top-level DM: in the DM itself.
        in_thread = event.get("thread_ts")
        outbox = MessageOutbox(
            self,
            user_id=user_id,
            channel_id=channel_id,
            direct=direct,
            thread_ts=in_thread or (None if direct else event.get("ts")),
            thread_open=bool(in_thread),
            request_id=request_id,
        )
        # message.im events come only from the bot's own DMs.
        self._answer_into(outbox, text, channel_id=channel_id, in_bot_dm=direct)

    def _route_free_text(self, text: str) -> str:
        """Words that are not a command go to `ask` when it exists (else: usage reply)."""
        parsed = parse(text, self.settings.slash_command)
        commands = self.dispatcher.commands
        if text and find_command(parsed.command, commands) is None and "ask" in commands:
            return f"ask {text}"
        return text

    # -- buttons -------------------------------------------------------------------------

    def answer_action(self, body: dict[str, Any], respond: Respond, request: BoltRequest) -> None:
        actions = body.get("actions") or []
        if not actions:
            return
        action = actions[0]
        user_id = (body.get("user") or {}).get("id") or ""
        channel_id = (body.get("channel") or {}).get("id")
        request_id = _request_id("act", body.get("trigger_id") or action.get("action_ts"), request)
        text = action_command_text(action.get("action_id", ""), action.get("value") or "")
        if not self.ledger.claim(request_id):
            self._skip_duplicate(
                request_id, request, text=text, user_id=user_id, channel_id=channel_id
            )
            return
        outbox: Outbox
        thread = _message_thread(body)
        if thread is not None and channel_id and not channel_id.startswith("D"):
            # A button on a message in a channel (a digest row, a shared card): answered
            # in that message's thread. (In a DM the answer stays beside the message.)
            thread_ts, thread_open = thread
            outbox = self._thread_outbox(
                user_id=user_id,
                channel_id=channel_id,
                thread_ts=thread_ts,
                thread_open=thread_open,
                request_id=request_id,
                respond=respond,
            )
        elif respond is not None and respond.response_url:
            outbox = ResponseOutbox(
                self,
                respond=respond,
                user_id=user_id,
                channel_id=channel_id,
                replace_original=False,
            )
        else:  # a button on the App Home: answer in the user's DM with the bot
            outbox = MessageOutbox(
                self, user_id=user_id, channel_id=None, direct=True, request_id=request_id
            )
        # A button's answer is for the one who clicked, even under a shared message.
        reply = self._run(
            text,
            user_id=user_id,
            channel_id=channel_id,
            request_id=request_id,
            progress=outbox.progress,
        )
        reply.private = True
        outbox.deliver(reply)

    # -- App Home ----------------------------------------------------------------------

    def publish_home(
        self, event: dict[str, Any], body: dict[str, Any], request: BoltRequest
    ) -> None:
        if event.get("tab", "home") != "home":
            return
        user_id = event.get("user") or ""
        request_id = _request_id("home", body.get("event_id"), request)
        if not user_id:
            return
        if not self.ledger.claim(request_id):
            self._skip_duplicate(
                request_id, request, text="", user_id=user_id, channel_id=None, name=HOME_VIEW
            )
            return
        # The App Home is a registered view: built through the dispatcher (access check,
        # audit) from the same read side as the commands; here it is only rendered.
        reply = self.dispatcher.show(
            HOME_VIEW,
            user_id=user_id,
            transport="slack",
            request_id=request_id,
            today=self.today(),
            user_aliases=self.directory.aliases(user_id),
        )
        try:
            self.client.views_publish(user_id=user_id, view=blocks.home(reply, self.directory))
        except (SlackApiError, SlackClientError, OSError) as exc:
            log.warning("views.publish for %s failed: %s", user_id, exc)

    # -- duplicates --------------------------------------------------------------------

    def _skip_duplicate(
        self,
        request_id: str,
        request: BoltRequest,
        *,
        text: str,
        user_id: str,
        channel_id: str | None,
        name: str | None = None,
    ) -> None:
        """A delivery of a request already acted on: not run again, audited as such."""
        retry = (request.headers.get("x-slack-retry-num") or [""])[0]
        reason = (request.headers.get("x-slack-retry-reason") or [""])[0]
        how = f"Slack retry {retry}" + (f" ({reason})" if reason else "") if retry else "replay"
        log.info("request %s already handled; %s not run again", request_id, how)
        try:
            audit.record(
                self.engine,
                transport="slack",
                user_id=user_id,
                channel_id=channel_id,
                command=name or parse(text, self.settings.slash_command).command or "?",
                arguments=text,
                outcome="duplicate",
                detail=f"{how} of {request_id}: already handled, not run again",
            )
        except DatabaseUnavailable:
            log.warning("audit of duplicate %s skipped: database unreachable", request_id)

    # -- running a command -------------------------------------------------------------

    def _run(
        self,
        text: str,
        *,
        user_id: str,
        channel_id: str | None,
        request_id: str,
        progress: Callable[[str], None],
        in_bot_dm: bool = False,
    ) -> Reply:
        try:
            return self.dispatcher.handle(
                text,
                user_id=user_id,
                channel_id=channel_id,
                transport="slack",
                request_id=request_id,
                progress=progress,
                user_aliases=self.directory.aliases(user_id) if user_id else (),
                in_bot_dm=in_bot_dm or self.is_bot_dm(user_id, channel_id),
                find_channel=self.directory.channel_id,
            )
        except Exception:  # the dispatcher catches command errors; this is a last resort
            log.exception("request %s failed outside the command", request_id)
            metrics.ERRORS.labels(kind="listener").inc()
            return Reply.error("Sorry, something failed on my side. The error is logged.")

    def answer_in_dm(self, text: str, *, user_id: str, request_id: str) -> None:
        """Run `text` for `user_id` and answer in their DM with the bot (the lookup
        shortcut, which comes from no channel)."""
        outbox = MessageOutbox(
            self, user_id=user_id, channel_id=None, direct=True, request_id=request_id
        )
        self._answer_into(outbox, text, channel_id=None, in_bot_dm=True)

    def _answer_into(
        self, outbox: MessageOutbox, text: str, *, channel_id: str | None, in_bot_dm: bool
    ) -> None:
        """Run `text` for the outbox's asker and deliver the reply through it."""
        reply = self._run(
            text,
            user_id=outbox.user_id,
            channel_id=channel_id,
            request_id=outbox.request_id,
            progress=outbox.progress,
            in_bot_dm=in_bot_dm,
        )
        outbox.deliver(reply)

    def answer_in_thread(
        self,
        reply: Reply,
        *,
        user_id: str,
        channel_id: str,
        thread_ts: str,
        thread_open: bool,
        request_id: str,
    ) -> None:
        """`reply` to `user_id` alone, in the thread `thread_ts` of a channel message (the
        thread opened for it with a public line when it has no replies yet)."""
        self._thread_outbox(
            user_id=user_id,
            channel_id=channel_id,
            thread_ts=thread_ts,
            thread_open=thread_open,
            request_id=request_id,
        ).deliver(reply)

    def _thread_outbox(
        self,
        *,
        user_id: str,
        channel_id: str,
        thread_ts: str,
        thread_open: bool,
        request_id: str,
        respond: Respond | None = None,
    ) -> MessageOutbox:
        """Answers for `user_id` in the thread `thread_ts` of a channel message."""
        return MessageOutbox(
            self,
            user_id=user_id,
            channel_id=channel_id,
            direct=False,
            thread_ts=thread_ts,
            thread_open=thread_open,
            request_id=request_id,
            respond=respond,
        )

    def is_bot_dm(self, user_id: str, channel_id: str | None) -> bool:
        """Whether `channel_id` is the asker's DM with the bot rather than a DM between
        people (both are D…; a slash command or a button can come from either)."""
        if not user_id or not channel_id or not channel_id.startswith("D"):
            return False
        return self.directory.bot_dm(user_id) == channel_id

    # -- charts --------------------------------------------------------------------------

    def upload_chart(
        self,
        reply: Reply,
        *,
        user_id: str,
        channel_id: str | None,
        thread_ts: str | None = None,
    ) -> str | None:
        """Upload the reply's chart beside it: in the channel (and thread) when shared,
        else in the asker's DM (in its thread when asked in a DM thread). None when done
        (or nothing to upload), else what went wrong, in words for the asker."""
        if reply.chart is None:
            return None
        from crmbot.reply.charts import draw  # matplotlib only when a chart is asked for

        in_dm = reply.private or not channel_id
        try:
            if in_dm:
                target = self.directory.bot_dm(user_id)
                if target is None:
                    return "I couldn't open our direct message to send the chart."
                if channel_id != target:
                    thread_ts = None  # the thread is elsewhere; the chart goes to the DM
            else:
                target = str(channel_id)
            with tempfile.TemporaryDirectory(prefix="crmbot-chart-") as folder:
                path = draw(reply.chart, Path(folder) / "chart.png")
                self.client.files_upload_v2(
                    channel=target,
                    thread_ts=thread_ts,
                    file=str(path),
                    filename="chart.png",
                    title=blocks.fit(reply.chart.title, 200),
                )
        except (SlackApiError, SlackClientError, OSError, KeyError) as exc:
            log.warning("chart upload failed: %s", exc)
            return _chart_problem(exc, in_dm=bool(in_dm))
        return None

    # -- link unfurls --------------------------------------------------------------------

    def unfurl_links(
        self, event: dict[str, Any], body: dict[str, Any], request: BoltRequest
    ) -> None:
        """Links to customers' pages in the company's CRM, pasted where the bot is, unfurl
        as the customer card: run as the person who pasted (access, own book, audit) and
        masked, since everyone in the conversation sees it."""
        template = self.settings.customer_url_template
        user_id = event.get("user") or ""
        if not template or not user_id:
            return
        found = [
            (str(link.get("url")), customer_id_in(template, str(link.get("url") or "")))
            for link in event.get("links") or []
        ]
        links = [(url, customer) for url, customer in found if customer][:MAX_UNFURLS]
        if not links:
            return
        request_id = _request_id("unfurl", body.get("event_id"), request)
        channel_id = event.get("channel")
        if not self.ledger.claim(request_id):
            self._skip_duplicate(
                request_id, request, text="customer", user_id=user_id, channel_id=channel_id
            )
            return
        unfurls: dict[str, Any] = {}
        for number, (url, customer_id) in enumerate(links):
            reply = self._run(
                f"customer {customer_id}",
                user_id=user_id,
                channel_id=channel_id,
                request_id=f"{request_id}#{number}",
                progress=lambda _message: None,
            )
            if reply.outcome != "ok":
                continue  # unknown, outside the asker's book, or refused: no card
            reply.private = False
            unfurls[url] = {
                "blocks": blocks.render_blocks(reply, shared=True, people=self.directory)
            }
        if not unfurls:
            return
        where: dict[str, Any] = (
            {"unfurl_id": event["unfurl_id"], "source": event["source"]}
            if event.get("unfurl_id") and event.get("source")
            else {"channel": channel_id, "ts": event.get("message_ts")}
        )
        try:
            self.client.chat_unfurl(unfurls=unfurls, **where)
        except (SlackApiError, SlackClientError, OSError) as exc:
            log.warning("chat.unfurl failed: %s", exc)

    def upload_attachment(self, reply: Reply, *, user_id: str, channel_id: str | None) -> bool:
        """Upload the reply's file (a CSV export) like a chart: to the asker's DM with the
        bot, or the channel when shared; the file is deleted either way. False when Slack
        did not take it."""
        attachment = reply.attachment
        if attachment is None:
            return True
        path = Path(attachment.path)
        try:
            if reply.private or not channel_id:
                target = self.directory.bot_dm(user_id)
                if target is None:
                    return False
            else:
                target = channel_id
            self.client.files_upload_v2(
                channel=target,
                file=str(path),
                filename=attachment.filename,
                title=blocks.fit(attachment.title, 200),
            )
            return True
        except (SlackApiError, SlackClientError, OSError) as exc:
            log.warning("file upload failed: %s", exc)
            return False
        finally:
            path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                path.parent.rmdir()  # the export's own temporary folder, now empty


class Outbox:
    """Where a reply (and progress) goes; chooses masking from the reply's privacy."""

    def __init__(
        self, bot: SlackBot, *, user_id: str, channel_id: str | None, request_id: str = ""
    ) -> None:
        self.bot = bot
        self.user_id = user_id
        self.channel_id = channel_id
        self.request_id = request_id
        self._progress_sent = 0
        self._last_progress = 0.0
        self._posts = 0

    def message(self, reply: Reply, *, shared: bool) -> dict[str, Any]:
        """`text` and `blocks`, owners resolved to Slack users."""
        return blocks.message(reply, shared=shared, people=self.bot.directory)

    def metadata(self) -> dict[str, Any]:
        """chat.postMessage metadata naming this post, so that a retry after a lost answer
        finds it in the conversation instead of posting it twice."""
        if not self.request_id:
            return {}
        self._posts += 1
        key = f"{self.request_id}#{self._posts}"
        return {"metadata": {"event_type": REPLY_EVENT, "event_payload": {"reply": key}}}

    def tell(self, text: str) -> None:
        """A note for the asker alone (e.g. the chart could not be posted)."""
        raise NotImplementedError

    def progress(self, message: str) -> None:
        now = time.monotonic()
        if self._progress_sent >= MAX_PROGRESS_MESSAGES or (
            self._progress_sent and now - self._last_progress < MIN_PROGRESS_INTERVAL_SECONDS
        ):
            log.info("progress for %s: %s", self.user_id, message)
            return
        self._progress_sent += 1
        self._last_progress = now
        self.send_progress(Reply(title="", text=f"⏳ {message}"))

    def upload(self, reply: Reply, *, channel_id: str | None, thread_ts: str | None = None) -> None:
        """The reply's chart and file; a chart Slack did not take is said to the asker, a
        file in a DM."""
        problem = self.bot.upload_chart(
            reply, user_id=self.user_id, channel_id=channel_id, thread_ts=thread_ts
        )
        if problem:
            self.tell(problem)
        if not self.bot.upload_attachment(reply, user_id=self.user_id, channel_id=channel_id):
            self._direct_message(
                Reply.error("Slack did not take the CSV file. Ask again in a minute.")
            )

    def send_progress(self, reply: Reply) -> None:
        raise NotImplementedError

    def deliver(self, reply: Reply) -> None:
        raise NotImplementedError

    def _direct_message(self, reply: Reply) -> None:
        """Last resort and App Home answers: a message in the user's DM with the bot."""
        try:
            self.bot.client.chat_postMessage(
                channel=self.user_id, **self.message(reply, shared=False), **self.metadata()
            )
        except (SlackApiError, SlackClientError, OSError) as exc:
            log.warning("could not reach %s by DM either: %s", self.user_id, exc)


class ResponseOutbox(Outbox):
    """Answers through a response_url (slash commands, message buttons)."""

    def __init__(
        self,
        bot: SlackBot,
        *,
        respond: Respond,
        user_id: str,
        channel_id: str | None,
        replace_original: bool | None = None,
    ) -> None:
        super().__init__(bot, user_id=user_id, channel_id=channel_id)
        self.respond = respond
        self.replace_original = replace_original

    def _send(self, reply: Reply) -> bool:
        shared = not reply.private
        payload = self.message(reply, shared=shared)
        answer: dict[str, Any] = {
            "text": payload["text"],
            "blocks": payload["blocks"],
            "response_type": "in_channel" if shared else "ephemeral",
        }
        if self.replace_original is not None:
            answer["replace_original"] = self.replace_original
        url = self.respond.response_url
        if not url:
            return False
        try:
            # Retried like every Web API call (429, 500/503); never after a lost answer.
            response = retrying_webhook(url, self.bot.client.check).send_dict(answer)
        except (SlackClientError, OSError, ValueError) as exc:
            log.warning("respond failed: %s", exc)
            return False
        if response.status_code != 200:
            log.warning("respond answered %s", response.status_code)
            return False
        return True

    def send_progress(self, reply: Reply) -> None:
        self._send(reply)

    def tell(self, text: str) -> None:
        note = Reply(title="", text=text)
        if not self._send(note):
            self._direct_message(note)

    def deliver(self, reply: Reply) -> None:
        if not self._send(reply):
            # The response_url expired or was used up: fall back to a DM (masked if shared).
            self._direct_message(reply)
        self.upload(reply, channel_id=self.channel_id)


class MessageOutbox(Outbox):
    """Answers with the Web API (mentions, DMs, buttons on messages and the App Home), in
    `thread_ts`'s thread when given. `thread_open` says whether that thread already has
    replies: an ephemeral answer shows in a thread only then, so a private answer to a
    message without replies first opens the thread with a public note naming the asker."""

    def __init__(
        self,
        bot: SlackBot,
        *,
        user_id: str,
        channel_id: str | None,
        direct: bool,
        thread_ts: str | None = None,
        thread_open: bool = True,
        request_id: str = "",
        respond: Respond | None = None,
    ) -> None:
        super().__init__(bot, user_id=user_id, channel_id=channel_id, request_id=request_id)
        self.direct = direct
        self.thread_ts = thread_ts
        self.thread_open = thread_open or not thread_ts
        self.respond = respond

    def _open_thread(self) -> None:
        """A public line that starts the thread, so the private answer can show in it."""
        note = Reply(
            title="",
            text=f"Answered for {owner_ref(self.user_id)} in this thread, visible to them only.",
            private=False,
        )
        self.bot.client.chat_postMessage(
            channel=str(self.channel_id),
            thread_ts=self.thread_ts,
            **self.message(note, shared=True),
            **self.metadata(),
        )
        self.thread_open = True

    def _send(self, reply: Reply) -> None:
        client = self.bot.client
        try:
            if self.direct or not self.channel_id:
                # Only the asker reads their DM with the bot: private, nothing to mask.
                client.chat_postMessage(
                    channel=self.channel_id or self.user_id,
                    thread_ts=self.thread_ts,
                    **self.message(reply, shared=False),
                    **self.metadata(),
                )
            elif reply.private:
                if not self.thread_open:
                    self._open_thread()
                client.chat_postEphemeral(
                    channel=self.channel_id,
                    user=self.user_id,
                    thread_ts=self.thread_ts,
                    **self.message(reply, shared=False),
                )
            else:
                client.chat_postMessage(
                    channel=self.channel_id,
                    thread_ts=self.thread_ts,
                    **self.message(reply, shared=True),
                    **self.metadata(),
                )
                self.thread_open = True
        except SlackApiError as exc:
            log.warning("posting the reply in %s failed: %s", self.channel_id, exc)
            self._fall_back(reply)
        except (SlackClientError, OSError) as exc:
            # No answer at all: it may have landed, so it is not sent again elsewhere.
            log.warning("posting the reply in %s: no answer from Slack: %s", self.channel_id, exc)

    def _fall_back(self, reply: Reply) -> None:
        """Slack refused the post (e.g. the bot is not in the channel): the response_url
        when there is one, else the asker's DM."""
        if self.respond is not None and self.respond.response_url:
            through_url = ResponseOutbox(
                self.bot,
                respond=self.respond,
                user_id=self.user_id,
                channel_id=self.channel_id,
                replace_original=False,
            )
            if through_url._send(reply):
                return
        if not self.direct and self.channel_id:
            self._direct_message(reply)

    def send_progress(self, reply: Reply) -> None:
        self._send(reply)

    def tell(self, text: str) -> None:
        self._send(Reply(title="", text=text))

    def deliver(self, reply: Reply) -> None:
        self._send(reply)
        self.upload(reply, channel_id=self.channel_id, thread_ts=self.thread_ts)


def _message_thread(body: dict[str, Any]) -> tuple[str, bool] | None:
    """For a button on a message that everyone in the conversation sees: the thread to
    answer in (the message's own, or the thread it is in) and whether it already has
    replies. None for a button on an ephemeral answer, a view or the App Home."""
    container = body.get("container") or {}
    if container.get("type") != "message" or container.get("is_ephemeral"):
        return None
    message = body.get("message") or {}
    ts = container.get("thread_ts") or message.get("thread_ts") or container.get("message_ts")
    if not ts:
        return None
    has_replies = bool(message.get("thread_ts") or message.get("reply_count"))
    return str(ts), has_replies


def _chart_problem(exc: Exception, *, in_dm: bool) -> str:
    """Why a chart did not arrive, and what to do, for the asker."""
    error = exc.response.get("error") if isinstance(exc, SlackApiError) else None
    where = "in our direct message" if in_dm else "in this conversation"
    if error in ("not_in_channel", "channel_not_found"):
        return (
            f"I couldn't post the chart {where}: I'm not a member of it. Invite me "
            "(`/invite @crmbot`), or ask without --share to get the chart by direct message."
        )
    reason = f" (Slack said `{error}`)" if error else ""
    return f"I couldn't post the chart {where}{reason}. The answer above is complete without it."


def _is_direct_message(body: dict[str, Any]) -> bool:
    event = body.get("event") or {}
    return (
        event.get("channel_type") == "im"
        and not event.get("subtype")
        and not event.get("bot_id")
        and bool(event.get("user"))
    )


def _request_id(kind: str, slack_id: str | None, request: BoltRequest) -> str:
    """A stable id for one user action, the same on every delivery of it."""
    if slack_id:
        return f"{kind}:{slack_id}"[:120]
    # No id in the payload: the signed timestamp and the body identify the delivery.
    timestamp = (request.headers.get("x-slack-request-timestamp") or [""])[0]
    digest = hashlib.sha256(request.raw_body.encode("utf-8", "replace")).hexdigest()[:24]
    return f"{kind}:{timestamp}:{digest}"


class SlackRefused(RuntimeError):
    """Slack would not accept the app's credentials (e.g. a revoked or mistyped token)."""


def build_app(
    settings: Settings,
    engine: Engine,
    client: WebClient | None = None,
    *,
    today: Callable[[], date] | None = None,
    clock: Callable[[], datetime] | None = None,
) -> App:
    """A Bolt app answering crmbot's commands, events, buttons and App Home.

    `client` replaces the Web API client (tests pass one pointed at a local fake); by
    default it uses SLACK_BOT_TOKEN and SLACK_API_BASE_URL. Raises `SlackRefused` when Slack
    rejects the token.
    """
    # Every call on a user's behalf under the one retry policy (crmbot.slack.delivery).
    client = retrying_client(
        token=client.token if client is not None else settings.slack_bot_token,
        base_url=client.base_url if client is not None else settings.slack_api_base_url,
    )
    secrets = [
        settings.slack_bot_token,
        settings.slack_signing_secret,
        settings.slack_app_token,
        settings.llm_api_key,
        client.token or "",
    ]
    bolt_logger = logging.getLogger("crmbot.slack.bolt")
    redact.install(secrets, extra_loggers=[bolt_logger])
    try:
        app = _bolt_app(settings, client, bolt_logger)
    except BoltError as exc:
        raise SlackRefused(str(exc)) from exc
    SlackBot(settings, engine, client, today=today, clock=clock).register(app)
    # Listener loggers are created while registering; scrub them too.
    redact.install(secrets)
    return app


def _bolt_app(settings: Settings, client: WebClient, bolt_logger: logging.Logger) -> App:
    return App(
        name="crmbot",
        logger=bolt_logger,
        client=client,
        signing_secret=settings.slack_signing_secret,
        process_before_response=True,
        listener_executor=ThreadPoolExecutor(
            max_workers=LISTENER_THREADS, thread_name_prefix="crmbot-listener"
        ),
    )


__all__ = ["RequestLedger", "SlackBot", "SlackRefused", "action_command_text", "build_app"]
