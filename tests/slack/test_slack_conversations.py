"""Conversations where they happen (issue #18 items 1, 4, 5, 7, 8), through signed requests
against the real Bolt app and the local Web API fake: threads, charts beside their reply,
owners as people, deep links and their unfurls, replies that survive a 429 storm, and a
channel typed by name. Tests that read the CRM run on SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient
from sqlalchemy.engine import Engine

from crmbot.core.config import Settings
from crmbot.core.privacy import contains_pii
from crmbot.digests import build_at_risk_digest
from crmbot.slack.delivery import slack_poster
from crmbot.slack.people import TtlCache
from tests.support.slack_bot import Bot, make_bot, text_of
from tests.support.slack_fake import ACCEPT_THEN_DROP, Recorded, Reply, SlackFake
from tests.support.small_crm import seed

CRM_URL = "https://crm.example.com/customers/{id}"


@pytest.fixture
def bot3(storage_engine: Engine, settings: Settings, slack: SlackFake) -> Iterator[Bot]:
    """The Bolt app over the small CRM on each of the three databases."""
    seed(storage_engine)
    settings = settings.model_copy(update={"customer_url_template": CRM_URL})
    yield make_bot(settings, storage_engine, slack)


def calls(bot: Bot, method: str, count: int = 1, timeout: float = 15.0) -> list[Recorded]:
    """The first `count` accepted calls of `method`, waiting for them."""
    found = bot.wait_for(
        lambda rs: (
            hits
            if len(hits := [r for r in rs if r.method == method and r.answered == 200]) >= count
            else []
        ),
        timeout,
    )
    return found


def settle(bot: Bot, seconds: float = 0.4) -> None:
    """Let the lazy listeners finish anything they still had to send."""
    time.sleep(seconds)


def mention(text: str, *, ts: str, thread_ts: str | None = None) -> dict[str, Any]:
    event = {"type": "app_mention", "user": "UAM1", "channel": "C0CRM", "text": text, "ts": ts}
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


# -- threads -------------------------------------------------------------------------------


def test_a_mention_inside_a_thread_is_answered_in_that_thread(bot: Bot) -> None:
    bot.event(mention("<@UBOT> why C002", ts="20.2", thread_ts="20.1"))
    posted = calls(bot, "chat.postEphemeral")[0].params
    assert posted["thread_ts"] == "20.1" and posted["user"] == "UAM1"
    assert "two unresolved tickets" in text_of(posted)
    settle(bot)
    # The thread already exists: nothing public is posted to open it.
    assert bot.slack.calls("chat.postMessage") == []


def test_a_top_level_mention_is_answered_in_a_new_thread_under_it(bot: Bot) -> None:
    bot.event(mention("<@UBOT> customer C001", ts="21.1"))
    private = calls(bot, "chat.postEphemeral")[0].params
    opener = calls(bot, "chat.postMessage")[0].params
    # An ephemeral answer shows in a thread only once it has a reply: a public line opens
    # it, naming the asker (a mention) and nothing about the customer.
    assert opener["thread_ts"] == "21.1" and "<@UAM1>" in text_of(opener)
    assert "Ada" not in text_of(opener) and not contains_pii(text_of(opener))
    assert private["thread_ts"] == "21.1"
    assert "ada@analytical.example" in text_of(private)  # only the asker sees it


def test_a_shared_answer_to_a_mention_opens_the_thread_itself(bot: Bot) -> None:
    bot.event(mention("<@UBOT> customer C001 --share", ts="22.1"))
    posted = calls(bot, "chat.postMessage")[0].params
    assert posted["thread_ts"] == "22.1"
    assert "Ada Lovelace" in text_of(posted) and not contains_pii(text_of(posted))
    settle(bot)
    assert len(bot.slack.calls("chat.postMessage")) == 1
    assert bot.slack.calls("chat.postEphemeral") == []


def test_direct_messages_answer_in_their_thread_or_at_the_top(bot: Bot) -> None:
    dm = {"type": "message", "channel_type": "im", "user": "UAM1", "channel": "D0AM1"}
    bot.event({**dm, "text": "why C002", "ts": "23.2", "thread_ts": "23.1"})
    threaded = calls(bot, "chat.postMessage")[0].params
    assert threaded["channel"] == "D0AM1" and threaded["thread_ts"] == "23.1"
    bot.event({**dm, "text": "why C002", "ts": "23.3"})
    top = calls(bot, "chat.postMessage", 2)[1].params
    assert top["channel"] == "D0AM1" and not top.get("thread_ts")


def _buttons(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A posted message's buttons by action id."""
    return {
        element["action_id"]: element
        for block in message["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
    }


def test_each_digest_row_is_a_message_whose_buttons_answer_in_its_own_thread(
    bot3: Bot, settings: Settings
) -> None:
    bot = bot3
    poster = slack_poster(
        bot.engine, settings, WebClient(token="xoxb-test", base_url=bot.slack.base_url)
    )
    digest = build_at_risk_digest(bot.engine, settings, channel="C0CRM", period="2026-07-03")
    assert digest is not None and len(digest.rows) >= 3
    outcome = poster.post_digest(digest, channel="C0CRM")
    assert outcome.status == "posted" and outcome.ts
    header, *rows = bot.slack.messages("C0CRM")
    assert header["ts"] == outcome.ts and len(rows) == len(digest.rows)
    # Every row at the channel's top level, with its own buttons: a thread of its own.
    assert all("thread_ts" not in m for m in [header, *rows])
    assert _buttons(header) == {}
    row2 = rows[1]
    why = _buttons(row2)["crm_why"]
    assert why["value"] == digest.rows[1].key and f"({why['value']})" in row2["text"]
    # A click on row 2's "Why?" answers in row 2's thread, to the clicker.
    _, path = bot.click("crm_why", why["value"], message_ts=row2["ts"])
    answer = calls(bot, "chat.postEphemeral")[0].params
    # The thread opened for it, by a public line (a private answer shows in a thread only
    # once the thread has replies).
    [opener] = [c.params for c in bot.slack.calls("chat.postMessage") if c.params.get("thread_ts")]
    assert answer["thread_ts"] == row2["ts"] and opener["thread_ts"] == row2["ts"]
    assert answer["channel"] == "C0CRM" and answer["user"] == "UAM1"
    assert "Why: " in text_of(answer) and why["value"] in text_of(answer)
    # Row 1's "Why?" answers in row 1's thread, not row 2's nor the header's.
    row1 = rows[0]
    bot.click("crm_why", _buttons(row1)["crm_why"]["value"], message_ts=row1["ts"])
    first = calls(bot, "chat.postEphemeral", 2)[1].params
    assert first["thread_ts"] == row1["ts"] and digest.rows[0].key in text_of(first)
    # A second click on row 2, now that its thread has replies: straight into it.
    bot.click("crm_why", why["value"], message_ts=row2["ts"], reply_count=1)
    second = calls(bot, "chat.postEphemeral", 3)[2].params
    assert second["thread_ts"] == row2["ts"]
    # A follow-up question asked in row 2's thread is answered there.
    bot.event(mention("<@UBOT> history C001", ts="24.5", thread_ts=str(row2["ts"])))
    follow_up = calls(bot, "chat.postEphemeral", 4)[3].params
    assert follow_up["thread_ts"] == row2["ts"]
    settle(bot)
    # The digest's messages, and each row's thread opened once (rows 2 and 1).
    openers = [c.params["thread_ts"] for c in bot.slack.calls("chat.postMessage")[1 + len(rows) :]]
    assert openers == [row2["ts"], row1["ts"]]
    assert bot.answers(path) == []  # not answered at the channel's top level
    # The row's other buttons answer in its thread too: "Snooze" on row 3.
    row3 = rows[2]
    snooze = _buttons(row3)["act_snooze"]
    bot.click("act_snooze", snooze["value"], message_ts=row3["ts"])
    snoozed = calls(bot, "chat.postEphemeral", 5)[4].params
    assert snoozed["thread_ts"] == row3["ts"] and snoozed["user"] == "UAM1"
    assert "is snoozed for you" in text_of(snoozed) and digest.rows[2].key in text_of(snoozed)
    settle(bot)
    opened = [c.params.get("thread_ts") for c in bot.slack.calls("chat.postMessage")]
    assert opened[1 + len(rows) :] == [row2["ts"], row1["ts"], row3["ts"]]


def test_a_button_on_a_private_answer_still_answers_through_its_response_url(bot: Bot) -> None:
    _, path = bot.click("crm_why", "C002")
    assert "Why: Grace Hopper (C002)" in text_of(bot.answer(path))
    assert bot.slack.calls("chat.postEphemeral") == []


# -- charts --------------------------------------------------------------------------------


def test_a_shared_chart_lands_in_the_thread_of_its_reply(bot: Bot) -> None:
    bot.event(mention("<@UBOT> segment --share", ts="25.2", thread_ts="25.1"))
    reply = calls(bot, "chat.postMessage")[0].params
    chart = calls(bot, "files.completeUploadExternal")[0].params
    assert reply["thread_ts"] == "25.1"
    assert chart["channel_id"] == "C0CRM" and chart["thread_ts"] == "25.1"


def test_a_private_chart_asked_in_a_dm_thread_lands_in_that_thread(bot: Bot) -> None:
    bot.event(
        {
            "type": "message",
            "channel_type": "im",
            "user": "UAM1",
            "channel": "DAM1",  # the fake's DM with UAM1
            "text": "history C001",
            "ts": "26.2",
            "thread_ts": "26.1",
        }
    )
    chart = calls(bot, "files.completeUploadExternal")[0].params
    assert chart["channel_id"] == "DAM1" and chart["thread_ts"] == "26.1"


def test_a_chart_slack_refuses_is_said_to_the_asker(bot: Bot) -> None:
    bot.slack.script(
        "files.completeUploadExternal", Reply(200, {"ok": False, "error": "not_in_channel"})
    )
    _, path = bot.command("segment --share", channel="C0NOTIN")
    answered = bot.wait_for(lambda rs: [r for r in rs if r.path == path][1:])
    notice = answered[0].params
    assert notice["response_type"] == "ephemeral"
    assert "couldn't post the chart" in text_of(notice) and "not a member" in text_of(notice)


# -- people --------------------------------------------------------------------------------


def test_owners_are_mentions_on_the_card_and_names_in_lists(bot3: Bot) -> None:
    bot3.slack.user_emails["UMARIA"] = "maria@crm.example"
    bot3.slack.user_names.update({"UMARIA": "Maria Garcia", "UAM1": "Ann Moss", "UAM2": "Bo Li"})
    _, by_id = bot3.command("customer C001")
    _, by_email = bot3.command("customer C003")
    assert '"*Owner*\\n<@UAM1>"' in json.dumps(bot3.answer(by_id)["blocks"])
    assert '"*Owner*\\n<@UMARIA>"' in json.dumps(bot3.answer(by_email)["blocks"])
    _, again = bot3.command("customer C006", user="UMARIA")  # Maria's too, by email
    bot3.answer(again)
    # Looked up once, then cached.
    assert len(bot3.slack.calls("users.lookupByEmail")) == 1
    # A list shows owners by name (a code block renders no mention).
    _, listed = bot3.command("segment cant lose")
    table = text_of(bot3.answer(listed))
    assert "Ann Moss" in table or "Bo Li" in table or "Maria Garcia" in table
    assert "<@U" not in table and "\u2063" not in table


def test_mine_covers_owners_recorded_by_email(bot3: Bot) -> None:
    bot3.slack.user_emails["UMARIA"] = "maria@crm.example"
    _, path = bot3.command("at-risk mine", user="UMARIA")
    text = text_of(bot3.answer(path))
    assert "Alan Turing" in text and "Grace Hopper" not in text


def test_an_owner_nobody_matches_shows_as_stored_and_masked_when_shared(bot: Bot) -> None:
    _, path = bot.command("customer C003")  # maria@crm.example, unknown to Slack
    assert "maria@crm.example" in text_of(bot.answer(path))  # private: as stored
    _, shared = bot.command("customer C003 --share")
    text = text_of(bot.answer(shared))
    assert "maria@crm.example" not in text and "m•••@c•••" in text


def test_the_cache_forgets_after_its_time() -> None:
    now = [0.0]
    cache: TtlCache[str, str | None] = TtlCache(60, clock=lambda: now[0])
    loads: list[str] = []

    def load() -> str:
        loads.append("x")
        return f"value {len(loads)}"

    assert cache.cached("k", load) == "value 1"
    now[0] = 59.0
    assert cache.cached("k", load) == "value 1"
    now[0] = 60.0
    assert cache.cached("k", load) == "value 2"
    assert cache.cached("miss", lambda: None, miss_ttl=5) is None
    now[0] = 64.0
    assert cache.cached("miss", lambda: "found") is None
    now[0] = 65.0
    assert cache.cached("miss", lambda: "found") == "found"


# -- deep links ----------------------------------------------------------------------------


def test_the_card_opens_the_customer_in_the_crm(bot3: Bot) -> None:
    _, path = bot3.command("customer C001")
    buttons = [
        element
        for block in bot3.answer(path)["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
    ]
    link = next(b for b in buttons if b["text"]["text"] == "Open in CRM")
    assert link["url"] == "https://crm.example.com/customers/C001"
    # Slack reports the click on a link button; it is acknowledged and runs nothing.
    response, clicked = bot3.click(link["action_id"], link["value"])
    assert response.status == 200
    settle(bot3)
    assert bot3.answers(clicked) == []


def test_a_pasted_link_unfurls_as_a_masked_card(bot3: Bot) -> None:
    bot3.event(
        {
            "type": "link_shared",
            "user": "UAM1",
            "channel": "C0CRM",
            "message_ts": "30.1",
            "links": [
                {"url": "https://crm.example.com/customers/C001", "domain": "crm.example.com"},
                {"url": "https://crm.example.com/customers/NOPE", "domain": "crm.example.com"},
                {"url": "https://crm.example.com/reports/7", "domain": "crm.example.com"},
            ],
        }
    )
    unfurl = calls(bot3, "chat.unfurl")[0].params
    assert unfurl["channel"] == "C0CRM" and unfurl["ts"] == "30.1"
    unfurls = unfurl["unfurls"]
    unfurls = json.loads(unfurls) if isinstance(unfurls, str) else unfurls
    assert list(unfurls) == ["https://crm.example.com/customers/C001"]
    card = json.dumps(unfurls, ensure_ascii=False)
    assert "Ada Lovelace" in card and not contains_pii(card)


def test_a_link_still_in_the_message_composer_unfurls_by_its_unfurl_id(bot3: Bot) -> None:
    link = {"url": "https://crm.example.com/customers/C002", "domain": "crm.example.com"}
    bot3.event(
        {
            "type": "link_shared",
            "user": "UAM1",
            "channel": "COMPOSER",
            "message_ts": "UU1",
            "unfurl_id": "Uxyz.abc",
            "source": "composer",
            "links": [link],
        }
    )
    unfurl = calls(bot3, "chat.unfurl")[0].params
    assert unfurl["unfurl_id"] == "Uxyz.abc" and unfurl["source"] == "composer"
    assert "channel" not in unfurl and "Grace Hopper" in json.dumps(unfurl)


def test_a_link_outside_the_pasters_book_does_not_unfurl(
    storage_engine: Engine, settings: Settings, slack: SlackFake
) -> None:
    seed(storage_engine)
    settings = settings.model_copy(update={"customer_url_template": CRM_URL, "own_book_only": True})
    bot = make_bot(settings, storage_engine, slack)
    link = {"url": "https://crm.example.com/customers/C004", "domain": "crm.example.com"}
    bot.event(
        {
            "type": "link_shared",
            "user": "UAM1",
            "channel": "C0CRM",
            "message_ts": "31.1",
            "links": [link],
        }
    )
    deadline = time.monotonic() + 10
    while not [r for r in bot.audit_rows() if r.command == "customer"]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    settle(bot)
    assert bot.slack.calls("chat.unfurl") == []


# -- reliable replies ----------------------------------------------------------------------


def storm(times: int) -> list[Reply]:
    return [Reply(429, headers={"Retry-After": "0"}) for _ in range(times)]


def test_a_429_storm_loses_no_reply_and_doubles_none(bot: Bot) -> None:
    slack = bot.slack
    slack.script("chat.postEphemeral", *storm(3))
    slack.script("chat.postMessage", *storm(3))
    slack.script("views.publish", *storm(2))
    slack.script("files.completeUploadExternal", *storm(2))
    slack.script("/respond/storm", *storm(2))
    bot.event(mention("<@UBOT> why C002", ts="40.2", thread_ts="40.1"))  # ephemeral
    dm = {"type": "message", "channel_type": "im", "user": "UAM1", "channel": "D0AM1"}
    bot.event({**dm, "text": "why C001", "ts": "40.3"})  # chat.postMessage
    bot.event({"type": "app_home_opened", "user": "UAM1", "channel": "D0AM1", "tab": "home"})
    bot.event(mention("<@UBOT> segment --share", ts="40.5", thread_ts="40.1"))  # + a chart
    # A response_url answer under the same storm.
    from tests.support.slack_requests import command_body, signed_headers

    body = command_body("why C003", response_url=f"{slack.url}/respond/storm")
    bot.dispatch(body, signed_headers("test-signing-secret", body))
    ephemeral = calls(bot, "chat.postEphemeral", 1, timeout=30)
    posted = calls(bot, "chat.postMessage", 2, timeout=30)
    calls(bot, "views.publish", 1, timeout=30)
    calls(bot, "files.completeUploadExternal", 1, timeout=30)
    answered = bot.wait_for(
        lambda rs: [r for r in rs if r.path == "/respond/storm" and r.answered == 200], 30
    )
    settle(bot, 1.5)
    assert len(ephemeral) == len(bot.slack.calls("chat.postEphemeral")) - 3 == 1
    accepted = [r for r in slack.requests if r.answered == 200]
    assert len([r for r in accepted if r.method == "chat.postMessage"]) == 2
    assert len([r for r in accepted if r.method == "views.publish"]) == 1
    assert len([r for r in accepted if r.method == "files.completeUploadExternal"]) == 1
    assert len(answered) == 1 and "Alan Turing" in text_of(answered[0].params)
    assert {p.params["text"] for p in posted} >= {"Why: Ada Lovelace (C001)"}
    # Every 429 was waited out and retried: nothing was answered twice.
    rate_limited = [r for r in slack.requests if r.answered == 429]
    assert len(rate_limited) == 3 + 3 + 2 + 2 + 2


def test_a_reply_that_landed_before_the_connection_dropped_is_not_posted_again(
    bot: Bot,
) -> None:
    bot.slack.script("chat.postMessage", ACCEPT_THEN_DROP)
    dm = {"type": "message", "channel_type": "im", "user": "UAM1", "channel": "D0AM1"}
    bot.event({**dm, "text": "why C001", "ts": "41.2", "thread_ts": "41.1"})
    bot.wait_for(lambda rs: [r for r in rs if r.method == "conversations.replies"])
    settle(bot, 1.0)
    # Looked for in its thread by its metadata, found, and not repeated.
    assert len(bot.slack.messages("D0AM1")) == 1
    assert bot.slack.messages("D0AM1")[0]["metadata"]["event_type"] == "crmbot_reply"


def test_a_reply_refused_with_500_is_retried_once_it_is_known_missing(bot: Bot) -> None:
    bot.slack.script("chat.postMessage", Reply(500))
    dm = {"type": "message", "channel_type": "im", "user": "UAM1", "channel": "D0AM1"}
    bot.event({**dm, "text": "why C001", "ts": "42.1"})
    calls(bot, "chat.postMessage")
    settle(bot, 0.5)
    assert len(bot.slack.messages("D0AM1")) == 1


# -- a channel typed by name ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "saved"),
    [("#sales", "C0SALES"), ("sales", "C0SALES"), ("<#C0SALES|sales>", "C0SALES")],
)
def test_schedule_channel_takes_the_channel_as_typed(bot3: Bot, typed: str, saved: str) -> None:
    bot3.slack.channels.update({"C0GENERAL": "general", "C0SALES": "sales"})
    _, path = bot3.command(f"schedule channel at-risk {typed}", user="UADMIN")
    assert f"now posts to channel {saved}" in text_of(bot3.answer(path))
    _, listed = bot3.command("schedule", user="UADMIN")
    assert saved in text_of(bot3.answer(listed))


def test_schedule_channel_says_when_no_channel_has_that_name(bot: Bot) -> None:
    bot.slack.channels.update({"C0SALES": "sales"})
    _, path = bot.command("schedule channel at-risk #nowhere", user="UADMIN")
    assert "can't find a channel '#nowhere'" in text_of(bot.answer(path))


def test_the_shell_shows_owners_by_name_through_the_directory(
    bot: Bot, settings: Settings, tmp_path: Path
) -> None:
    from crmbot.chat.dispatch import Dispatcher
    from crmbot.shell.repl import Shell
    from crmbot.slack.people import SlackDirectory

    bot.slack.user_emails["UMARIA"] = "maria@crm.example"
    bot.slack.user_names.update({"UMARIA": "Maria Garcia", "UAM1": "Ann Moss"})
    directory = SlackDirectory(WebClient(token="xoxb-test", base_url=bot.slack.base_url))
    named = Shell(
        Dispatcher(bot.engine, settings), user_id="UADMIN", chart_dir=tmp_path, people=directory
    )
    assert "Owner             : Ann Moss" in named.ask("customer C001")
    assert "Owner             : Maria Garcia" in named.ask("customer C003")
    # Without a directory (no bot token), the owner as stored.
    plain = Shell(Dispatcher(bot.engine, settings), user_id="UADMIN", chart_dir=tmp_path)
    text = plain.ask("customer C003")
    assert "Owner             : maria@crm.example" in text and "\u2063" not in text


def test_the_digest_names_owners_in_its_rows(bot: Bot, settings: Settings) -> None:
    bot.slack.user_names.update({"UAM1": "Ann Moss", "UAM2": "Bo Li"})
    poster = slack_poster(
        bot.engine, settings, WebClient(token="xoxb-test", base_url=bot.slack.base_url)
    )
    digest = build_at_risk_digest(bot.engine, settings, channel="C0CRM", period="2026-07-04")
    assert digest is not None
    assert poster.post_digest(digest, channel="C0CRM").status == "posted"
    # Each row's heading names its owner (a name, not a mention: nobody is notified).
    rows = "".join(text_of(m) for m in bot.slack.messages("C0CRM")[1:])
    assert "Ann Moss" in rows and "UAM1" not in rows and "<@" not in rows
    assert "m•••@c•••" in rows  # maria@crm.example: unknown to Slack, masked in a channel


def test_customer_123_exists_on_the_sample_company(sample_company: Any) -> None:
    with SlackFake() as slack:
        bot = make_bot(sample_company.settings, sample_company.engine, slack)
        _, path = bot.command("customer 123", user="UADMIN")
        text = text_of(bot.answer(path))
    assert "(123)" in text and "No customer" not in text
