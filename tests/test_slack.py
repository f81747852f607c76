"""The real Bolt app, driven by signed HTTP requests, against a local fake of the Slack Web
API (port 0). Every answer is read back from what the fake received: response_url posts,
chat.postMessage / chat.postEphemeral, views.publish, file uploads.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from slack_bolt import App, BoltRequest, BoltResponse
from slack_fake import Recorded, SlackFake
from slack_requests import action_body, command_body, event_body, signed_headers
from slack_sdk import WebClient
from slack_sdk.models.blocks import Block
from small_crm import TODAY, SmallCrm, seed
from sqlalchemy import select
from sqlalchemy.engine import Engine, make_url
from sqlmodel import SQLModel

from crmbot.core.config import Settings
from crmbot.core.db import make_engine, read_session
from crmbot.core.models import AuditLog
from crmbot.core.privacy import EMAIL_PATTERN, contains_pii
from crmbot.slack.app import action_command_text, build_app, strip_mention

SECRET = "test-signing-secret"
_responses = itertools.count(1)


@dataclass
class Bot:
    app: App
    slack: SlackFake
    settings: Settings
    engine: Engine

    # -- sending -----------------------------------------------------------------------

    def dispatch(self, body: str, headers: dict[str, str]) -> BoltResponse:
        return self.app.dispatch(BoltRequest(body=body, headers=headers))

    def command(
        self,
        text: str,
        *,
        user: str = "UAM1",
        channel: str = "C0CRM",
        trigger_id: str | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> tuple[BoltResponse, str]:
        """Send `/crm text`; the response and the response_url path it will answer on."""
        path = f"/respond/{next(_responses)}"
        body = command_body(
            text,
            user_id=user,
            channel_id=channel,
            response_url=f"{self.slack.url}{path}",
            trigger_id=trigger_id,
        )
        return self.dispatch(body, signed_headers(SECRET, body, extra=extra_headers)), path

    def event(self, event: dict[str, Any], **kwargs: Any) -> BoltResponse:
        body = event_body(event, **kwargs)
        headers = signed_headers(SECRET, body, content_type="application/json")
        return self.dispatch(body, headers)

    def click(self, action_id: str, value: str, **kwargs: Any) -> tuple[BoltResponse, str]:
        path = f"/respond/{next(_responses)}"
        if kwargs.pop("from_home", False):
            body = action_body(action_id, value, channel_id=None, **kwargs)
        else:
            body = action_body(action_id, value, response_url=f"{self.slack.url}{path}", **kwargs)
        return self.dispatch(body, signed_headers(SECRET, body)), path

    # -- reading back ------------------------------------------------------------------

    def wait_for(
        self, predicate: Callable[[list[Recorded]], list[Recorded]], timeout: float = 10.0
    ) -> list[Recorded]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = predicate(list(self.slack.requests))
            if found:
                return found
            time.sleep(0.01)
        raise AssertionError(
            f"nothing arrived; the fake saw {[r.method for r in self.slack.requests]}"
        )

    def answer(self, path: str, timeout: float = 10.0) -> dict[str, Any]:
        """The (first) message posted to a response_url."""
        return self.wait_for(lambda rs: [r for r in rs if r.path == path], timeout)[0].params

    def answers(self, path: str) -> list[dict[str, Any]]:
        return [r.params for r in self.slack.requests if r.path == path]

    def audit_rows(self) -> list[AuditLog]:
        with read_session(self.engine) as session:
            return list(session.execute(select(AuditLog).order_by(AuditLog.id)).scalars())


def text_of(message: dict[str, Any]) -> str:
    return json.dumps(message.get("blocks"), ensure_ascii=False) + message.get("text", "")


@pytest.fixture
def slack() -> Iterator[SlackFake]:
    with SlackFake() as fake:
        yield fake


@pytest.fixture
def crm(tmp_path: Path) -> Iterator[SmallCrm]:
    # A database file, as in production: lazy listeners run on several threads at once,
    # each with its own connection (the in-memory fixture shares one connection).
    engine = make_engine(f"sqlite:///{tmp_path / 'crm.db'}")
    SQLModel.metadata.create_all(engine)
    yield seed(engine)
    engine.dispose()


def make_bot(settings: Settings, engine: Engine, slack: SlackFake) -> Bot:
    client = WebClient(token=settings.slack_bot_token, base_url=slack.base_url)
    app = build_app(settings, engine, client=client, today=lambda: TODAY)
    return Bot(app=app, slack=slack, settings=settings, engine=engine)


@pytest.fixture
def bot(settings: Settings, crm: SmallCrm, slack: SlackFake) -> Bot:
    return make_bot(settings, crm.engine, slack)


# -- commands ------------------------------------------------------------------------------


def test_a_command_is_acknowledged_empty_then_answered_ephemerally(bot: Bot) -> None:
    response, path = bot.command("customer ada lovelace")
    assert response.status == 200 and not response.body
    answer = bot.answer(path)
    assert answer["response_type"] == "ephemeral"
    text = text_of(answer)
    assert "Ada Lovelace (C001)" in text and "Champions (moved from Loyal)" in text
    assert "ada@analytical.example" in text  # private: only the asker sees it
    actions = [b for b in answer["blocks"] if b["type"] == "actions"][0]["elements"]
    assert [a["action_id"] for a in actions][:3] == ["crm_why", "crm_similar", "crm_history"]
    for block in answer["blocks"]:
        Block.parse(block).validate_json()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "crmbot commands"),
        ("help at-risk", "value at risk"),
        ("at-risk 3", "Top 3 accounts at risk"),
        ("at-risk emea", "region EMEA"),
        ("at-risk mine", "Grace Hopper"),
        ("segment", "Segments — 11 customers"),
        ("segment cant lose", "Segment Can't lose them"),
        ("influencers 2", "Margaret Hamilton"),
        ("why C002", "two unresolved tickets"),
        ("similar C001", "Customers similar to Ada Lovelace"),
        ("history C001", "Order history — Ada Lovelace"),
        ("model", "roc_auc 0.810"),
        ("customer john smith", "matches more than one customer"),
        ("customer Tim Bernard", "did you mean Tim Berners-Lee"),
        ("frobnicate", "I don't know the command"),
    ],
)
def test_each_command_answers(bot: Bot, text: str, expected: str) -> None:
    _, path = bot.command(text)
    assert expected in text_of(bot.answer(path))


def test_share_posts_in_the_channel_with_pii_masked(bot: Bot) -> None:
    _, path = bot.command("customer C001 --share")
    answer = bot.answer(path)
    assert answer["response_type"] == "in_channel"
    text = text_of(answer)
    assert "Ada Lovelace" in text and not contains_pii(text)
    assert "a•••@a•••" in text


def test_charts_are_uploaded_to_the_askers_dm_when_private(bot: Bot) -> None:
    _, path = bot.command("segment")
    bot.answer(path)
    completed = bot.wait_for(
        lambda rs: [r for r in rs if r.method == "files.completeUploadExternal"]
    )
    assert completed[0].params["channel_id"] == "DAM1"  # conversations.open with UAM1
    uploads = [r for r in bot.slack.requests if r.path.startswith("/upload/")]
    assert len(uploads) == 1 and int(uploads[0].headers["Content-Length"]) > 1000  # a PNG


def test_shared_charts_go_to_the_channel(bot: Bot) -> None:
    bot.command("history C001 --share")
    completed = bot.wait_for(
        lambda rs: [r for r in rs if r.method == "files.completeUploadExternal"]
    )
    assert completed[0].params["channel_id"] == "C0CRM"


# -- slow work -----------------------------------------------------------------------------


def test_a_slow_command_is_acknowledged_at_once_and_answered_later(bot: Bot) -> None:
    started = time.perf_counter()
    response, path = bot.command("retrain", user="UADMIN")
    acked_in = time.perf_counter() - started
    assert response.status == 200 and acked_in < 1.0
    assert "Working on `retrain`" in (response.body or "")
    assert not [
        r
        for r in bot.slack.requests
        if r.path == path and "Retrain" in text_of(r.params) and "finished" in text_of(r.params)
    ]
    # The first answer that is not a progress note is the result.
    final = bot.wait_for(
        lambda rs: [r for r in rs if r.path == path and "⏳" not in text_of(r.params)],
        timeout=120,
    )
    said = text_of(final[0].params)
    assert "Retrain failed" in said or "Retrain finished" in said, said
    assert final[0].params["response_type"] == "ephemeral"
    progress = [p for p in bot.answers(path) if "⏳" in text_of(p)]
    assert 1 <= len(progress) <= 3  # a response_url takes five answers; keep room
    rows = [r for r in bot.audit_rows() if r.command == "retrain"]
    assert len(rows) == 1 and rows[0].user_id == "UADMIN"


# -- signatures ----------------------------------------------------------------------------


def _unsigned_cases(bot: Bot) -> dict[str, tuple[str, dict[str, str]]]:
    body = command_body("customer C001", response_url=f"{bot.slack.url}/respond/bad")
    now = int(time.time())
    return {
        "bad signature": (body, signed_headers("not-the-secret", body)),
        "stale timestamp": (body, signed_headers(SECRET, body, timestamp=now - 6 * 60)),
        "future timestamp": (body, signed_headers(SECRET, body, timestamp=now + 6 * 60)),
        "no signature": (body, {"content-type": "application/x-www-form-urlencoded"}),
        "tampered body": (
            body.replace("C001", "C002"),
            signed_headers(SECRET, body),
        ),
    }


def test_unsigned_or_stale_requests_get_401_and_run_nothing(bot: Bot) -> None:
    for name, (body, headers) in _unsigned_cases(bot).items():
        response = bot.dispatch(body, headers)
        assert response.status == 401, name
    time.sleep(0.3)  # a lazy listener, had one started, would have answered by now
    assert not [r for r in bot.slack.requests if r.path.startswith("/respond/")]
    assert bot.audit_rows() == []


def test_a_timestamp_within_five_minutes_is_accepted(bot: Bot) -> None:
    body = command_body("model", response_url=f"{bot.slack.url}/respond/ok")
    response = bot.dispatch(body, signed_headers(SECRET, body, timestamp=int(time.time()) - 240))
    assert response.status == 200
    assert "Model run" in text_of(bot.answer("/respond/ok"))


# -- access ---------------------------------------------------------------------------------


def test_unlisted_users_are_denied_politely_and_audited(
    settings: Settings, crm: SmallCrm, slack: SlackFake
) -> None:
    settings.allowed_users = ["UAM1"]
    bot = make_bot(settings, crm.engine, slack)
    _, path = bot.command("customer C001", user="USTRANGER")
    text = text_of(bot.answer(path))
    assert "not on crmbot's list of users" in text and "Ada" not in text
    rows = bot.audit_rows()
    assert [(r.user_id, r.command, r.outcome) for r in rows] == [
        ("USTRANGER", "customer", "denied")
    ]


def test_channels_outside_the_allow_list_are_denied_but_dms_work(
    settings: Settings, crm: SmallCrm, slack: SlackFake
) -> None:
    settings.allowed_channels = ["C0CRM"]
    bot = make_bot(settings, crm.engine, slack)
    _, elsewhere = bot.command("at-risk", channel="C0RANDOM")
    _, dm = bot.command("at-risk", channel="D0AM1")
    assert "isn't enabled in this channel" in text_of(bot.answer(elsewhere))
    assert "accounts at risk" in text_of(bot.answer(dm))
    outcomes = {r.channel_id: r.outcome for r in bot.audit_rows()}
    assert outcomes == {"C0RANDOM": "denied", "D0AM1": "ok"}


def test_admin_commands_need_the_admin_list(bot: Bot) -> None:
    _, denied = bot.command("audit 5", user="UAM1")
    assert "for crmbot admins only" in text_of(bot.answer(denied))
    _, allowed = bot.command("audit 5", user="UADMIN")
    text = text_of(bot.answer(allowed))
    assert "Audit log" in text and "denied" in text
    response, retrain = bot.command("retrain", user="UAM1")
    assert not response.body  # no "working on it" for someone who may not run it
    assert "for crmbot admins only" in text_of(bot.answer(retrain))


def test_own_book_only_hides_other_owners_customers(
    settings: Settings, crm: SmallCrm, slack: SlackFake
) -> None:
    settings.own_book_only = True
    slack.user_emails["UMARIA"] = "maria@crm.example"
    bot = make_bot(settings, crm.engine, slack)
    _, mine = bot.command("customer C003", user="UMARIA")  # owner recorded by email
    _, theirs = bot.command("customer C004", user="UMARIA")
    assert "Alan Turing" in text_of(bot.answer(mine))
    assert "No customer 'C004'" in text_of(bot.answer(theirs))


# -- privacy -------------------------------------------------------------------------------


def test_nothing_posted_in_a_channel_carries_an_email_or_phone(bot: Bot) -> None:
    for text in [
        "customer C001 --share",
        "why C002 --share",
        "at-risk --share",
        "segment --share",
        "similar C003 --share",
        "customer C009 --share",
        "customer C001",
        "influencers --share",
    ]:
        bot.command(text)
    bot.event(
        {
            "type": "app_mention",
            "user": "UAM1",
            "channel": "C0CRM",
            "text": "<@UBOT> customer grace --share",
            "ts": "1.000001",
        }
    )
    bot.event(
        {
            "type": "app_mention",
            "user": "UAM1",
            "channel": "C0CRM",
            "text": "<@UBOT> customer grace",
            "ts": "1.000002",
        }
    )
    bot.wait_for(lambda rs: [r for r in rs if r.method == "chat.postEphemeral"])
    bot.wait_for(lambda rs: [r for r in rs if r.method == "chat.postMessage"])
    bot.wait_for(lambda rs: [r for r in rs if r.path.startswith("/respond/")][7:])
    time.sleep(0.3)
    public = [
        r
        for r in bot.slack.requests
        if (r.path.startswith("/respond/") and r.params.get("response_type") == "in_channel")
        or (r.method == "chat.postMessage" and not str(r.params.get("channel")).startswith("D"))
    ]
    assert len(public) >= 8
    for request in public:
        text = json.dumps(request.params, ensure_ascii=False)
        assert not contains_pii(text), text[:300]
    private = [r for r in bot.slack.requests if r.params.get("response_type") == "ephemeral"]
    assert any(EMAIL_PATTERN.search(json.dumps(r.params)) for r in private)


def test_markup_in_data_and_input_is_never_live(bot: Bot) -> None:
    _, path = bot.command("customer C009")
    text = text_of(bot.answer(path))
    assert "&lt;!channel&gt;" in text and "<!channel>" not in text and "<@U0HACK>" not in text
    _, path = bot.command("<!channel> <@U123> hello")
    text = text_of(bot.answer(path))
    assert "<!channel>" not in text and "<@U123>" not in text


# -- mentions, DMs, buttons, App Home ------------------------------------------------------


def test_mentions_answer_ephemerally_in_the_channel(bot: Bot) -> None:
    response = bot.event(
        {
            "type": "app_mention",
            "user": "UAM1",
            "channel": "C0CRM",
            "text": "<@UBOT> why C002",
            "ts": "1.1",
        }
    )
    assert response.status == 200
    posted = bot.wait_for(lambda rs: [r for r in rs if r.method == "chat.postEphemeral"])
    assert posted[0].params["user"] == "UAM1" and posted[0].params["channel"] == "C0CRM"
    assert "two unresolved tickets" in text_of(posted[0].params)


def test_direct_messages_answer_in_the_dm(bot: Bot) -> None:
    bot.event(
        {
            "type": "message",
            "channel_type": "im",
            "user": "UAM1",
            "channel": "D0AM1",
            "text": "customer grace@cobol.example",
            "ts": "1.2",
        }
    )
    posted = bot.wait_for(lambda rs: [r for r in rs if r.method == "chat.postMessage"])
    assert posted[0].params["channel"] == "D0AM1"
    assert "grace@cobol.example" in text_of(posted[0].params)  # a DM is private


def test_bot_messages_and_edits_are_acknowledged_and_ignored(bot: Bot) -> None:
    for event in [
        {
            "type": "message",
            "channel_type": "im",
            "bot_id": "B1",
            "user": "UBOT",
            "channel": "D0AM1",
            "text": "help",
            "ts": "1.3",
        },
        {
            "type": "message",
            "subtype": "message_changed",
            "channel_type": "im",
            "channel": "D0AM1",
            "ts": "1.4",
        },
    ]:
        assert bot.event(event).status == 200
    time.sleep(0.3)
    assert not bot.slack.calls("chat.postMessage") and bot.audit_rows() == []


def test_buttons_run_their_command_for_the_clicker(bot: Bot) -> None:
    response, path = bot.click("crm_why", "C002")
    assert response.status == 200
    answer = bot.answer(path)
    assert "Why: Grace Hopper (C002)" in text_of(answer)
    assert answer["response_type"] == "ephemeral" and answer["replace_original"] is False
    _, path = bot.click("crm_at_risk.1", "")
    assert "accounts at risk" in text_of(bot.answer(path))
    _, path = bot.click("crm_similar", "C001")
    assert "similar to Ada Lovelace" in text_of(bot.answer(path))
    commands = [r.command for r in bot.audit_rows()]
    assert commands == ["why", "at-risk", "similar"]


def test_buttons_on_the_app_home_answer_by_dm(bot: Bot) -> None:
    bot.click("crm_customer", "C010", from_home=True)
    posted = bot.wait_for(lambda rs: [r for r in rs if r.method == "chat.postMessage"])
    assert posted[0].params["channel"] == "UAM1"
    assert "Margaret Hamilton" in text_of(posted[0].params)


def test_app_home_shows_the_users_own_book(bot: Bot) -> None:
    bot.event({"type": "app_home_opened", "user": "UAM1", "channel": "D0AM1", "tab": "home"})
    published = bot.wait_for(lambda rs: [r for r in rs if r.method == "views.publish"])
    params = published[0].params
    assert params["user_id"] == "UAM1"
    view = json.loads(params["view"]) if isinstance(params["view"], str) else params["view"]
    text = json.dumps(view, ensure_ascii=False)
    assert view["type"] == "home"
    assert "Grace Hopper" in text and "Margaret Hamilton" in text  # at risk / top value
    assert "Alan Turing" not in text  # maria's customer, not UAM1's
    assert "data as of 2026-06-30 (3 days old)" in text
    assert len(view["blocks"]) <= 100
    deadline = time.monotonic() + 5
    while not (home := [r for r in bot.audit_rows() if r.command == "app-home"]):
        assert time.monotonic() < deadline, "the App Home visit was not audited"
        time.sleep(0.02)
    assert len(home) == 1 and "C002" in (home[0].customer_ids or [])


def test_app_home_for_an_owner_known_by_email(bot: Bot) -> None:
    bot.slack.user_emails["UMARIA"] = "maria@crm.example"
    bot.event({"type": "app_home_opened", "user": "UMARIA", "channel": "D0M", "tab": "home"})
    published = bot.wait_for(lambda rs: [r for r in rs if r.method == "views.publish"])
    assert "Alan Turing" in json.dumps(published[0].params)


# -- retries -------------------------------------------------------------------------------


def test_a_retried_command_acts_once(bot: Bot) -> None:
    retry = {"x-slack-retry-num": "1", "x-slack-retry-reason": "http_timeout"}
    _, first = bot.command("why C002", trigger_id="123.456.same")
    _, again = bot.command("why C002", trigger_id="123.456.same", extra_headers=retry)
    bot.answer(first)
    time.sleep(0.4)
    assert bot.answers(again) == []
    assert len(bot.audit_rows()) == 1


def test_a_retried_event_acts_once(bot: Bot) -> None:
    event = {
        "type": "app_mention",
        "user": "UAM1",
        "channel": "C0CRM",
        "text": "<@UBOT> model",
        "ts": "2.1",
    }
    bot.event(event, event_id="EvSAME")
    body = event_body(event, event_id="EvSAME")
    headers = signed_headers(
        SECRET, body, content_type="application/json", extra={"x-slack-retry-num": "2"}
    )
    assert bot.dispatch(body, headers).status == 200
    bot.wait_for(lambda rs: [r for r in rs if r.method == "chat.postEphemeral"])
    time.sleep(0.4)
    assert len(bot.slack.calls("chat.postEphemeral")) == 1
    assert len(bot.audit_rows()) == 1


def test_a_retry_after_a_restart_is_recognised_from_the_audit_log(
    settings: Settings, crm: SmallCrm, slack: SlackFake
) -> None:
    first = make_bot(settings, crm.engine, slack)
    _, path = first.command("model", trigger_id="999.1.restart")
    first.answer(path)
    restarted = make_bot(settings, crm.engine, slack)  # empty in-memory ledger
    _, again = restarted.command(
        "model", trigger_id="999.1.restart", extra_headers={"x-slack-retry-num": "1"}
    )
    time.sleep(0.4)
    assert restarted.answers(again) == [] and len(restarted.audit_rows()) == 1


# -- logs ----------------------------------------------------------------------------------


def test_tokens_secrets_and_pii_never_reach_the_logs(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = command_body("customer ada@analytical.example", response_url=f"{bot.slack.url}/r/x")
    assert bot.dispatch(body, signed_headers("wrong-secret", body)).status == 401
    _, path = bot.command("customer ada@analytical.example")
    bot.answer(path)
    time.sleep(0.2)
    logged = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert "Invalid request signature" in logged  # Bolt did log the rejection...
    for secret in (SECRET, bot.settings.slack_bot_token, "legacy-verification-token-value"):
        assert secret not in logged
    assert not EMAIL_PATTERN.search(logged), "an email reached the logs"
    assert "Sending a request" in logged  # ...and slack_sdk logged its calls, scrubbed


# -- helpers -------------------------------------------------------------------------------


def test_action_ids_map_to_commands() -> None:
    assert action_command_text("crm_at_risk", "") == "at-risk"
    assert action_command_text("crm_why.2", "C1") == "why C1"
    assert strip_mention("<@UBOT> customer 1") == "customer 1"
    assert strip_mention("<@UBOT|crmbot>: help") == "help"


# -- hostile input -------------------------------------------------------------------------

COMMAND_WORDS = [
    "customer",
    "at-risk",
    "segment",
    "influencers",
    "why",
    "similar",
    "history",
    "model",
    "help",
    "audit",
    "cust",
    "risk",
    "",
]
HOSTILE = [
    "<!channel>",
    "<!here>",
    "<@U0HACK>",
    "<#C1|x>",
    "' OR 1=1 --",
    "%",
    "\\",
    '"',
    "'",
    "--share",
    "&amp;",
    "```",
    "\u202e",
    "🙂",
    "Robert'); DROP TABLE customer;--",
    "a@b.co",
    "+1 555 010 9999",
    "\x00",
    "ｃｕｓｔｏｍｅｒ",
]


@hypothesis_settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    word=st.sampled_from(COMMAND_WORDS),
    parts=st.lists(st.one_of(st.sampled_from(HOSTILE), st.text(max_size=40)), max_size=6),
    padding=st.sampled_from([0, 0, 0, 3000, 10_000]),
)
def test_any_command_text_gets_a_valid_reply_and_nothing_live(
    bot: Bot, word: str, parts: list[str], padding: int
) -> None:
    text = " ".join([word, *parts]) + "x" * padding
    response, path = bot.command(text)
    assert response.status == 200
    answer = bot.answer(path)
    blocks_ = answer["blocks"]
    assert 1 <= len(blocks_) <= 50
    for block in blocks_:
        Block.parse(block).validate_json()  # type: ignore[union-attr]
    rendered = text_of(answer)
    assert "<!" not in rendered and "<@" not in rendered and "<#" not in rendered
    assert "failed on my side" not in rendered, rendered[:300]
    if answer.get("response_type") == "in_channel":
        assert not contains_pii(rendered)


# -- the database goes away ----------------------------------------------------------------


class TcpProxy:
    """A TCP forwarder that can be cut and restored on the same port: the database
    'goes away' for the bot without touching the server."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = 0
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
            listener, self._listener = self._listener, None
        for sock in [*sockets, *([listener] if listener else [])]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            with self._lock:
                self._sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                target.shutdown(socket.SHUT_RDWR)


def test_database_unreachable_is_said_plainly_and_the_bot_recovers(
    settings: Settings, slack: SlackFake, server_databases: dict[str, str]
) -> None:
    if "postgres" not in server_databases:
        pytest.skip("PostgreSQL is not reachable")
    url = make_url(server_databases["postgres"])
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    proxy.start()
    engine = make_engine(
        url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False),
        connect_args={"connect_timeout": 3},
    )
    SQLModel.metadata.drop_all(engine)
    SQLModel.metadata.create_all(engine)
    try:
        seed(engine)
        bot = make_bot(settings, engine, slack)
        _, before = bot.command("customer C001")
        assert "Ada Lovelace" in text_of(bot.answer(before))

        proxy.stop()  # the database goes away mid-life
        _, during = bot.command("customer C001")
        said = text_of(bot.answer(during))
        assert "the CRM database is not reachable right now" in said, said
        bot.event({"type": "app_home_opened", "user": "UAM1", "channel": "D1", "tab": "home"})
        home = bot.wait_for(lambda rs: [r for r in rs if r.method == "views.publish"])
        assert "not reachable" in json.dumps(home[0].params)

        proxy.start()  # ...and comes back on the same address
        _, after = bot.command("customer C001")
        said = text_of(bot.answer(after))
        assert "Ada Lovelace" in said, said
        assert [r.command for r in bot.audit_rows()] == ["customer", "customer"]
    finally:
        proxy.stop()
        proxy.start()
        SQLModel.metadata.drop_all(engine)
        engine.dispose()
        proxy.stop()


def test_free_text_in_a_dm_goes_to_ask(bot: Bot) -> None:
    bot.event(
        {
            "type": "message",
            "channel_type": "im",
            "user": "UAM1",
            "channel": "D0AM1",
            "text": "which customers in EMEA have churn risk over 50%?",
            "ts": "3.1",
        }
    )
    posted = bot.wait_for(lambda rs: [r for r in rs if r.method == "chat.postMessage"])
    assert "I don't know the command" not in text_of(posted[0].params)
    assert [r.command for r in bot.audit_rows()] == ["ask"]
