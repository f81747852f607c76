"""What the real Bolt app refuses and keeps private: signatures, access lists, PII in
channel posts, markup, secrets in the logs, and a database that goes away.
"""

from __future__ import annotations

import json
import logging
import time

import pytest
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

from crmbot.core.config import Settings
from crmbot.core.db import make_engine
from crmbot.core.privacy import EMAIL_PATTERN, contains_pii
from tests.support.slack_bot import SECRET, Bot, make_bot, text_of
from tests.support.slack_fake import SlackFake
from tests.support.slack_requests import command_body, signed_headers
from tests.support.small_crm import SmallCrm, seed
from tests.support.tcp_proxy import TcpProxy

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


# With CRMBOT_ALLOWED_CHANNELS set: where a slash command from UAM1 runs. The fake Slack
# gives each user's DM with the bot the id D + their id without the U (UAM1: DAM1).
CONVERSATIONS = [
    ("C0CRM", "a listed channel", "ok"),
    ("C0RANDOM", "a channel not on the list", "denied"),
    ("DAM1", "the asker's own DM with the bot", "ok"),
    ("D0PEOPLE", "a DM between the asker and a colleague", "denied"),
    ("G0GROUP", "a group DM not on the list", "denied"),
    ("G0LISTED", "a group DM on the list", "ok"),
]


@pytest.mark.parametrize(("channel", "what", "outcome"), CONVERSATIONS)
def test_the_channel_allow_list_covers_every_kind_of_conversation(
    settings: Settings, crm: SmallCrm, slack: SlackFake, channel: str, what: str, outcome: str
) -> None:
    settings.allowed_channels = ["C0CRM", "G0LISTED"]
    bot = make_bot(settings, crm.engine, slack)
    _, path = bot.command("at-risk --share", channel=channel)
    answer = text_of(bot.answer(path))
    if outcome == "ok":
        assert "accounts at risk" in answer, what
    else:
        assert "crmbot isn't enabled in this" in answer, what
        assert "Grace Hopper" not in answer and "in_channel" not in json.dumps(bot.answers(path))
    assert [(r.channel_id, r.outcome) for r in bot.audit_rows()] == [(channel, outcome)]


def test_dm_events_buttons_and_admins_under_the_allow_list(
    settings: Settings, crm: SmallCrm, slack: SlackFake
) -> None:
    settings.allowed_channels = ["C0CRM"]
    bot = make_bot(settings, crm.engine, slack)

    def posted(count: int) -> None:
        bot.wait_for(lambda rs: [r for r in rs if r.method == "chat.postMessage"][count - 1 :])

    # A message in the bot's DM (message.im: only ever the bot's own DMs) is answered.
    bot.event(
        {
            "type": "message",
            "channel_type": "im",
            "user": "UAM1",
            "channel": "DAM1",
            "text": "at-risk",
            "ts": "1.1",
        }
    )
    posted(1)
    # A button under an answer in a DM between people is that DM's request: refused.
    _, clicked = bot.click("crm_why", "C002", channel_id="D0PEOPLE")
    assert "crmbot isn't enabled in this" in text_of(bot.answer(clicked))
    # A button on the App Home has no channel; its answer goes to the bot's DM.
    bot.click("crm_why", "C002", from_home=True)
    posted(2)
    # Admins are not held to the list.
    _, admin = bot.command("at-risk", user="UADMIN", channel="D0PEOPLE")
    assert "accounts at risk" in text_of(bot.answer(admin))
    outcomes = sorted((r.user_id, r.channel_id or "", r.outcome) for r in bot.audit_rows())
    assert outcomes == [
        ("UADMIN", "D0PEOPLE", "ok"),
        ("UAM1", "", "ok"),
        ("UAM1", "D0PEOPLE", "denied"),
        ("UAM1", "DAM1", "ok"),
    ]


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


# -- the database goes away ----------------------------------------------------------------


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
