"""Events through the real Bolt app: mentions, direct messages, buttons, the App Home,
free text in a DM, and Slack's retries of commands and events.
"""

from __future__ import annotations

import json
import time

from crmbot.core.config import Settings
from tests.support.slack_bot import SECRET, Bot, make_bot, text_of
from tests.support.slack_fake import SlackFake
from tests.support.slack_requests import event_body, signed_headers
from tests.support.small_crm import SmallCrm

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


# -- retries -------------------------------------------------------------------------------


def test_a_retried_command_acts_once(bot: Bot) -> None:
    retry = {"x-slack-retry-num": "1", "x-slack-retry-reason": "http_timeout"}
    _, first = bot.command("why C002", trigger_id="123.456.same")
    _, again = bot.command("why C002", trigger_id="123.456.same", extra_headers=retry)
    bot.answer(first)
    time.sleep(0.4)
    assert bot.answers(again) == []
    # Run and audited once; the retry is audited as the duplicate it is.
    assert sorted(row.outcome for row in bot.audit_rows()) == ["duplicate", "ok"]


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
    assert sorted(row.outcome for row in bot.audit_rows()) == ["duplicate", "ok"]


def test_a_retry_after_a_restart_is_recognised(
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
    assert restarted.answers(again) == []
    assert [row.outcome for row in restarted.audit_rows()] == ["ok", "duplicate"]
