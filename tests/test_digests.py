"""Digests: what they say, and that each is posted exactly once — through rate limits,
server errors, dropped connections, crashes and restarts — against a local Slack fake."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from slack_sdk import WebClient
from slack_sdk.http_retry import FixedValueRetryIntervalCalculator
from sqlalchemy import select
from sqlalchemy.engine import Engine

from crmbot.core.config import Settings
from crmbot.core.db import read_session, write_session
from crmbot.core.models import DigestLog
from crmbot.core.privacy import contains_pii
from crmbot.digests import (
    AT_RISK,
    AT_RISK_DM,
    INFLUENCERS,
    STALE_PENDING,
    DigestOutcome,
    digest_key,
    digest_period,
    local_day,
    message_key,
    send_digest,
)
from crmbot.shell.text import render
from crmbot.slack.delivery import SlackPoster, slack_poster
from crmbot.slack.retries import SLACK_RETRIES
from tests.support.scored_data import Account, add_customers, add_run, book
from tests.support.slack_fake import ACCEPT_THEN_DROP, DROP, Reply, SlackFake

DAY1 = datetime(2026, 6, 29, 8, 0)  # a Monday, 08:00 UTC
DAY2 = DAY1 + timedelta(days=1)
CHANNEL = "CRISK"
# The at-risk digest of `scored` (digest_size 4): its header, then one message per account.
ROWS = ["C000", "C001", "C002", "C003"]
MESSAGES = 1 + len(ROWS)


@pytest.fixture
def slack() -> Iterator[SlackFake]:
    with SlackFake() as fake:
        yield fake


@pytest.fixture
def digest_settings(settings: Settings, slack: SlackFake) -> Settings:
    return settings.model_copy(
        update={"slack_api_base_url": slack.base_url, "digest_size": 4, "admin_channel": "CADMIN"}
    )


def fast_poster(engine: Engine, settings: Settings) -> SlackPoster:
    # Real retry handlers; only the back-off between 5xx/connection retries is shortened.
    return slack_poster(
        engine, settings, interval=FixedValueRetryIntervalCalculator(0.01), timeout=5
    )


@pytest.fixture
def scored(engine: Engine) -> dict[str, int]:
    accounts = book(6)
    pks = add_customers(engine, accounts)
    add_run(engine, accounts, pks, as_of=date(2026, 6, 28))
    return pks


def log_rows(engine: Engine) -> list[DigestLog]:
    with read_session(engine) as session:
        return list(session.execute(select(DigestLog).order_by(DigestLog.id)).scalars())


def send(
    engine: Engine,
    settings: Settings,
    kind: str = AT_RISK,
    *,
    at: datetime = DAY1,
    **kwargs: object,
) -> DigestOutcome:
    return send_digest(
        engine, settings, fast_poster(engine, settings), kind, CHANNEL, clock=lambda: at, **kwargs
    )


# -- what a digest says -------------------------------------------------------------------


def test_at_risk_digest_is_a_header_then_one_message_per_account(
    engine: Engine, digest_settings: Settings, scored: dict[str, int], slack: SlackFake
) -> None:
    outcome = send(engine, digest_settings)
    assert outcome.status == "posted", outcome.describe()
    reply = outcome.reply
    assert reply is not None and reply.table is None and reply.buttons == []
    assert "First digest here" in reply.text
    assert "One message per account follows" in reply.text
    # Owners by name in each row's heading (no mention: nobody is notified), masked.
    assert [m["text"] for m in slack.messages(CHANNEL)] == [
        "Accounts at risk · 2026-06-29",
        "1. Customer 0 (C000) · u0am1",
        "2. Customer 1 (C001) · m•••@e•••",
        "3. Customer 2 (C002) · u0am1",
        "4. Customer 3 (C003) · m•••@e•••",
    ]
    assert "<@" not in slack.posted_text()
    assert all("no order for 120 days" in r.text for r in outcome.rows)
    # Posted to the channel: the header, then each account at the top level (no
    # thread_ts), so each has a thread of its own.
    header, *rows = slack.messages(CHANNEL)
    assert len(rows) == 4 and all("thread_ts" not in m for m in [header, *rows])
    assert header["blocks"][0]["type"] == "header"
    assert not [b for b in header["blocks"] if b["type"] == "actions"]
    assert "Accounts at risk · 2026-06-29" in header["text"]
    for message, cid in zip(rows, ["C000", "C001", "C002", "C003"], strict=True):
        [actions] = [b for b in message["blocks"] if b["type"] == "actions"]
        # "Why?", then "Log a touch", "Follow-up", "Follow", "Snooze 7 days": this row's.
        assert [e["action_id"] for e in actions["elements"]] == [
            "crm_why",
            "act_touch",
            "act_follow_up",
            "act_follow",
            "act_snooze",
        ]
        assert [e["value"] for e in actions["elements"]][:4] == [cid] * 4
        assert f"({cid})" in message["text"]
        assert message["metadata"]["event_payload"]["digest"] == message_key(
            AT_RISK, CHANNEL, "2026-06-29", cid
        )
    assert header["metadata"]["event_payload"]["digest"] == digest_key(
        AT_RISK, CHANNEL, "2026-06-29"
    )
    [row] = log_rows(engine)
    assert (row.kind, row.channel, row.period, row.status) == (
        AT_RISK,
        CHANNEL,
        "2026-06-29",
        "posted",
    )
    assert row.message_ts == header["ts"] == outcome.ts
    assert row.customer_ids == ["C000", "C001", "C002", "C003"]
    assert row.summary is not None and len(row.summary["messages"]) == 5
    assert outcome.messages == 5 and "4 account rows after it" in outcome.describe()


def test_the_next_digest_says_what_changed(
    engine: Engine, digest_settings: Settings, slack: SlackFake
) -> None:
    accounts = book(6)
    pks = add_customers(engine, accounts)
    add_run(engine, accounts, pks, as_of=date(2026, 6, 28))
    assert send(engine, digest_settings, at=DAY1).status == "posted"

    # Next day: C000 recovered (risk 90% -> 10%), C003's risk rose, C005 entered the top 4.
    changed = {a.customer_id: a for a in book(6)}
    changed["C000"].churn_risk = 0.10
    changed["C003"].churn_risk = 0.85
    changed["C005"].churn_risk = 0.99
    changed["C005"].clv = 9_500
    add_run(engine, list(changed.values()), pks, as_of=date(2026, 6, 29))
    second = send(engine, digest_settings, at=DAY2)
    assert second.status == "posted"
    assert second.reply is not None
    text = second.reply.text
    assert "Since the last digest (2026-06-29): 1 new on the list, 1 with risk up, 1 recovered" in (
        text
    )
    assert "Customer 0 (C000) 90% → 10%" in text
    changes = {r.customer_ids[0]: r.text for r in second.rows}
    assert "*Change:* new" in changes["C005"]
    assert "*Change:* ▲ 10 pts" in changes["C003"]
    assert "Change" not in changes["C001"]
    summary = log_rows(engine)[-1].summary
    assert summary is not None
    assert summary["changes"] == {"new": ["C005"], "risk_up": ["C003"], "recovered": ["C000"]}

    # Day 3: C004's value soars; whoever it pushes off the list was overtaken, not saved.
    changed["C004"].clv = 50_000
    add_run(engine, list(changed.values()), pks, as_of=date(2026, 6, 30))
    third = send(engine, digest_settings, at=DAY2 + timedelta(days=1))
    assert third.reply is not None
    assert "1 new on the list, 0 with risk up, 0 recovered, 1 overtaken by others" in (
        third.reply.text
    )


def test_digests_are_masked_of_pii(
    engine: Engine, digest_settings: Settings, slack: SlackFake
) -> None:
    accounts = [
        Account("C900", "ada@example.com", 0.9, 50_000, owner="bob@example.com"),
        Account("C901", "Call +44 20 7946 0958", 0.8, 40_000, owner="U0AM1"),
    ]
    pks = add_customers(engine, accounts)
    add_run(engine, accounts, pks, as_of=date(2026, 6, 28))
    outcome = send(engine, digest_settings)
    assert outcome.status == "posted"
    assert not contains_pii(slack.posted_text())
    assert outcome.reply is not None and len(outcome.rows) == 2
    for reply in [outcome.reply, *outcome.rows]:
        assert not contains_pii(render(reply))


def test_influencer_digest_shows_newcomers_and_communities(
    engine: Engine, digest_settings: Settings, slack: SlackFake
) -> None:
    accounts = book(6)
    pks = add_customers(engine, accounts)
    add_run(engine, accounts, pks, as_of=date(2026, 6, 28))
    first = send(engine, digest_settings, INFLUENCERS, at=DAY1)
    assert first.status == "posted" and first.period == "2026-W27"
    assert first.reply is not None and first.reply.table is not None
    top = first.reply.table.rows[0]
    assert top[1] == "Customer 0 (C000)"
    assert top[5] == "hub of 40 (mostly EMEA)"
    # Masking leaves the numbers of neighbouring columns alone (they are not a phone).
    assert "10        9             10,000" in render(first.reply)
    assert [b.action_id for b in first.reply.buttons] == ["crm_customer"] * 4

    # A week later, C005 became the most influential customer.
    changed = book(6)
    changed[5].influence = 0.9
    add_run(engine, changed, pks, as_of=date(2026, 7, 5))
    second = send(engine, digest_settings, INFLUENCERS, at=DAY1 + timedelta(days=7))
    assert second.status == "posted" and second.period == "2026-W28"
    assert second.reply is not None
    assert "New on the list since 2026-W27: Customer 5 (C005)" in second.reply.text
    assert len(slack.messages(CHANNEL)) == 2


def test_owners_get_one_dm_with_only_their_accounts(
    engine: Engine, digest_settings: Settings, scored: dict[str, int], slack: SlackFake
) -> None:
    dm_settings = digest_settings.model_copy(update={"digest_dm_owners": True})
    outcome = send(engine, dm_settings)
    assert outcome.status == "posted"
    # Only the owner whose `owner` is a Slack user id; an email owner cannot be DMed.
    assert [dm.channel for dm in outcome.owner_dms] == ["U0AM1"]
    assert outcome.owner_dms[0].status == "posted"
    dm, *rows = slack.messages("D0AM1")
    assert dm["metadata"]["event_payload"]["digest"] == digest_key(
        AT_RISK_DM, "U0AM1", "2026-06-29"
    )
    # Each of the owner's accounts in a message of its own, without the owner's name.
    assert [m["text"] for m in rows] == [
        "1. Customer 0 (C000)",
        "2. Customer 2 (C002)",
        "3. Customer 4 (C004)",
    ]
    dm_row = [r for r in log_rows(engine) if r.kind == AT_RISK_DM][0]
    assert dm_row.customer_ids == ["C000", "C002", "C004"]  # U0AM1's accounts only
    # Run again: neither the channel digest nor the DM goes out twice.
    again = send(engine, dm_settings)
    assert again.status == "already_posted"
    assert [dm.status for dm in again.owner_dms] == ["already_posted"]
    assert len(slack.messages("D0AM1")) == 4 and len(slack.messages(CHANNEL)) == 5


def test_dry_run_builds_without_posting_or_logging(
    engine: Engine, digest_settings: Settings, scored: dict[str, int], slack: SlackFake
) -> None:
    outcome = send(engine, digest_settings, dry_run=True)
    assert outcome.status == "dry_run"
    assert outcome.reply is not None
    assert "Accounts at risk · 2026-06-29" in render(outcome.reply)
    assert "1. Customer 0 (C000)" in render(outcome.rows[0]) and len(outcome.rows) == 4
    assert slack.requests == []
    assert log_rows(engine) == []


def test_no_model_means_no_digest(
    engine: Engine, digest_settings: Settings, slack: SlackFake
) -> None:
    outcome = send(engine, digest_settings)
    assert outcome.status == "no_model"
    assert "no model has been trained" in outcome.describe()
    assert slack.calls("chat.postMessage") == []


def test_periods_follow_the_scheduler_time_zone() -> None:
    late_sunday_utc = datetime(2026, 6, 28, 23, 30)
    assert local_day(late_sunday_utc, "UTC") == date(2026, 6, 28)
    assert local_day(late_sunday_utc, "Europe/Berlin") == date(2026, 6, 29)
    assert digest_period(AT_RISK, date(2026, 6, 29)) == "2026-06-29"
    assert digest_period(INFLUENCERS, date(2026, 6, 29)) == "2026-W27"
    assert digest_period(INFLUENCERS, date(2027, 1, 1)) == "2026-W53"


# -- exactly once ---------------------------------------------------------------------------


def test_a_digest_retried_after_a_429_and_a_500_is_posted_exactly_once(
    engine: Engine, digest_settings: Settings, scored: dict[str, int], slack: SlackFake
) -> None:
    slack.script("chat.postMessage", Reply(429, headers={"Retry-After": "1"}), Reply(500))
    outcome = send(engine, digest_settings)
    assert outcome.status == "posted", outcome.describe()
    assert [c.answered for c in slack.calls("chat.postMessage")] == [429, 500] + [200] * MESSAGES
    # Retry-After was honoured: the retry came at least a second after the 429.
    first, second, *_ = slack.calls("chat.postMessage")
    assert second.at - first.at >= 1.0
    assert len(slack.messages(CHANNEL)) == MESSAGES
    [row] = log_rows(engine)
    assert row.status == "posted" and row.message_ts == outcome.ts


def test_503_and_a_dropped_connection_are_retried(
    engine: Engine, digest_settings: Settings, scored: dict[str, int], slack: SlackFake
) -> None:
    slack.script("chat.postMessage", Reply(503), DROP, Reply(500))
    outcome = send(engine, digest_settings)
    assert outcome.status == "posted", outcome.describe()
    assert [c.answered for c in slack.calls("chat.postMessage")] == [
        503,
        "dropped",
        500,
    ] + [200] * MESSAGES
    assert len(slack.messages(CHANNEL)) == MESSAGES


def test_a_timeout_is_retried(
    engine: Engine, digest_settings: Settings, scored: dict[str, int], slack: SlackFake
) -> None:
    slack.script("chat.postMessage", Reply(500, delay=1.5))
    poster = slack_poster(
        engine, digest_settings, interval=FixedValueRetryIntervalCalculator(0.01), timeout=1
    )
    outcome = send_digest(engine, digest_settings, poster, AT_RISK, CHANNEL, clock=lambda: DAY1)
    assert outcome.status == "posted", outcome.describe()
    assert len(slack.calls("chat.postMessage")) == 1 + MESSAGES
    assert len(slack.messages(CHANNEL)) == MESSAGES


def test_a_post_slack_accepted_before_the_connection_dropped_is_not_repeated(
    engine: Engine, digest_settings: Settings, scored: dict[str, int], slack: SlackFake
) -> None:
    slack.script("chat.postMessage", ACCEPT_THEN_DROP)
    outcome = send(engine, digest_settings)
    message, *_ = slack.messages(CHANNEL)
    assert outcome.status == "posted", outcome.describe()
    assert outcome.ts == message["ts"]
    # Looked, found it, did not re-post; then the rows.
    assert len(slack.calls("chat.postMessage")) == MESSAGES
    assert len(slack.messages(CHANNEL)) == MESSAGES
    assert log_rows(engine)[0].message_ts == message["ts"]


def test_a_row_message_slack_accepted_before_the_connection_dropped_is_not_repeated(
    storage_engine: Engine, digest_settings: Settings, slack: SlackFake
) -> None:
    engine = storage_engine
    accounts = book(6)
    add_run(engine, accounts, add_customers(engine, accounts), as_of=date(2026, 6, 28))
    # The header and row 1 go through; row 2 lands but its answer is lost.
    slack.script("chat.postMessage", Reply(), Reply(), ACCEPT_THEN_DROP)
    outcome = send(engine, digest_settings)
    assert outcome.status == "posted", outcome.describe()
    messages = slack.messages(CHANNEL)
    keys = [m["metadata"]["event_payload"]["digest"] for m in messages]
    period = "2026-06-29"
    assert keys == [digest_key(AT_RISK, CHANNEL, period)] + [
        message_key(AT_RISK, CHANNEL, period, cid) for cid in ROWS
    ]  # row 2 once, and the rows in order
    assert [c.answered for c in slack.calls("chat.postMessage")] == [200, 200, "dropped"] + [
        200
    ] * 2
    # The retry handler looked in the channel's history instead of repeating it.
    assert slack.calls("conversations.history")
    [row] = log_rows(engine)
    assert row.summary is not None
    assert (
        row.summary["messages"][message_key(AT_RISK, CHANNEL, period, "C001")]
        == (messages[2]["ts"])
    )


def test_a_digest_that_failed_part_way_posts_only_its_missing_rows_later(
    storage_engine: Engine, digest_settings: Settings, slack: SlackFake
) -> None:
    engine = storage_engine  # what went out is kept in the row's JSON: on each database
    accounts = book(6)
    add_run(engine, accounts, add_customers(engine, accounts), as_of=date(2026, 6, 28))
    refused = Reply(200, body={"ok": False, "error": "msg_too_long"})
    slack.script("chat.postMessage", Reply(), Reply(), Reply(), refused)
    first = send(engine, digest_settings)
    assert first.status == "failed"
    assert "3 of its 5 messages went out" in (first.error or "")
    assert len(slack.messages(CHANNEL)) == 3  # the header, rows 1 and 2
    # An hour later, without the history scope: the digest log knows what went out.
    slack.script("conversations.history", Reply(200, body={"ok": False, "error": "missing_scope"}))
    later = send(engine, digest_settings, at=DAY1 + timedelta(hours=1))
    assert later.status == "posted", later.describe()
    texts = [m["text"] for m in slack.messages(CHANNEL)]
    assert len(texts) == MESSAGES and len(set(texts)) == MESSAGES
    assert texts[3].startswith("3. Customer 2 (C002)") and texts[4].startswith("4. Customer 3")
    [row] = log_rows(engine)
    assert row.status == "posted" and row.attempts == 2 and row.message_ts == first.ts
    assert row.summary is not None and row.summary["entries"]  # the next digest compares
    again = send(engine, digest_settings, at=DAY1 + timedelta(hours=2))
    assert again.status == "already_posted" and len(slack.messages(CHANNEL)) == MESSAGES


def test_a_permanently_failing_slack_records_the_digest_as_failed(
    engine: Engine, digest_settings: Settings, scored: dict[str, int], slack: SlackFake
) -> None:
    slack.fail_always("chat.postMessage", Reply(500))
    outcome = send(engine, digest_settings)
    assert outcome.status == "failed"
    assert "Slack answered 500" in (outcome.error or "")
    assert len(slack.calls("chat.postMessage")) == SLACK_RETRIES + 1  # bounded
    assert slack.messages(CHANNEL) == []
    [row] = log_rows(engine)
    assert row.status == "failed" and row.message_ts is None
    assert "Slack answered 500" in (row.error or "")
    assert "could not be posted" in outcome.describe()


def test_an_api_error_is_not_retried_and_is_recorded(
    engine: Engine, digest_settings: Settings, scored: dict[str, int], slack: SlackFake
) -> None:
    slack.script("chat.postMessage", Reply(200, body={"ok": False, "error": "channel_not_found"}))
    outcome = send(engine, digest_settings)
    assert outcome.status == "failed"
    assert "channel_not_found" in (outcome.error or "")
    assert len(slack.calls("chat.postMessage")) == 1


def test_a_failed_digest_is_posted_by_a_later_run_in_the_same_period(
    engine: Engine, digest_settings: Settings, scored: dict[str, int], slack: SlackFake
) -> None:
    slack.fail_always("chat.postMessage", Reply(503), times=SLACK_RETRIES + 1)
    assert send(engine, digest_settings).status == "failed"
    retried = send(engine, digest_settings, at=DAY1 + timedelta(hours=1))
    assert retried.status == "posted"
    assert len(slack.messages(CHANNEL)) == MESSAGES
    [row] = log_rows(engine)
    assert row.status == "posted" and row.attempts == 2 and row.error is None


def test_a_restart_after_a_posted_digest_does_not_post_again(
    engine: Engine, digest_settings: Settings, scored: dict[str, int], slack: SlackFake
) -> None:
    assert send(engine, digest_settings).status == "posted"
    # A new process (new client), later the same day: the log says it is done.
    again = send(engine, digest_settings, at=DAY1 + timedelta(hours=3))
    assert again.status == "already_posted"
    assert "not posting it twice" in again.describe()
    assert len(slack.calls("chat.postMessage")) == MESSAGES


def _pending_row(engine: Engine, created_at: datetime) -> None:
    with write_session(engine) as session:
        session.add(
            DigestLog(
                kind=AT_RISK,
                channel=CHANNEL,
                period="2026-06-29",
                status="pending",
                attempts=1,
                created_at=created_at,
            )
        )


def test_a_digest_being_posted_elsewhere_is_left_alone(
    engine: Engine, digest_settings: Settings, scored: dict[str, int], slack: SlackFake
) -> None:
    _pending_row(engine, DAY1 - timedelta(minutes=1))
    outcome = send(engine, digest_settings)
    assert outcome.status == "in_progress"
    assert slack.calls("chat.postMessage") == []


def test_a_crash_after_posting_is_recovered_without_a_second_post(
    engine: Engine, digest_settings: Settings, scored: dict[str, int], slack: SlackFake
) -> None:
    # The process posted, then died before marking the row: the messages are in the channel.
    _pending_row(engine, DAY1 - STALE_PENDING - timedelta(minutes=1))
    keys = [digest_key(AT_RISK, CHANNEL, "2026-06-29")] + [
        message_key(AT_RISK, CHANNEL, "2026-06-29", cid) for cid in ROWS
    ]
    client = WebClient(token="xoxb-test", base_url=slack.base_url)
    for key in keys:
        client.chat_postMessage(
            channel=CHANNEL,
            text=key,
            metadata={"event_type": "crmbot_digest", "event_payload": {"digest": key}},
        )
    outcome = send(engine, digest_settings)
    assert outcome.status == "already_posted"
    assert len(slack.messages(CHANNEL)) == MESSAGES
    [row] = log_rows(engine)
    assert row.status == "posted" and row.message_ts == slack.messages(CHANNEL)[0]["ts"]


def test_a_crash_part_way_through_the_rows_posts_only_the_rest(
    storage_engine: Engine, digest_settings: Settings, slack: SlackFake
) -> None:
    engine = storage_engine
    accounts = book(6)
    add_run(engine, accounts, add_customers(engine, accounts), as_of=date(2026, 6, 28))
    # The process posted the header and row 1, then died.
    _pending_row(engine, DAY1 - STALE_PENDING - timedelta(minutes=1))
    client = WebClient(token="xoxb-test", base_url=slack.base_url)
    for key in [
        digest_key(AT_RISK, CHANNEL, "2026-06-29"),
        message_key(AT_RISK, CHANNEL, "2026-06-29", "C000"),
    ]:
        client.chat_postMessage(
            channel=CHANNEL,
            text=key,
            metadata={"event_type": "crmbot_digest", "event_payload": {"digest": key}},
        )
    outcome = send(engine, digest_settings)
    assert outcome.status == "posted", outcome.describe()
    assert outcome.ts == slack.messages(CHANNEL)[0]["ts"]
    # One read of the history for all five messages; rows 2 to 4 posted.
    assert len(slack.calls("conversations.history")) == 1
    assert [m["text"][:2] for m in slack.messages(CHANNEL)[2:]] == ["2.", "3.", "4."]
    assert len(slack.messages(CHANNEL)) == MESSAGES


def test_a_crash_before_posting_is_recovered_by_posting_once(
    engine: Engine, digest_settings: Settings, scored: dict[str, int], slack: SlackFake
) -> None:
    _pending_row(engine, DAY1 - STALE_PENDING - timedelta(minutes=1))
    outcome = send(engine, digest_settings)
    assert outcome.status == "posted"
    assert len(slack.messages(CHANNEL)) == MESSAGES
    assert log_rows(engine)[0].attempts == 2


def test_a_crash_with_unreadable_history_is_reported_not_reposted(
    engine: Engine, digest_settings: Settings, scored: dict[str, int], slack: SlackFake
) -> None:
    _pending_row(engine, DAY1 - STALE_PENDING - timedelta(minutes=1))
    slack.script("conversations.history", Reply(200, body={"ok": False, "error": "missing_scope"}))
    outcome = send(engine, digest_settings)
    assert outcome.status == "failed"
    assert (outcome.error or "").startswith("outcome unknown")
    assert "missing_scope" in (outcome.error or "")
    assert slack.calls("chat.postMessage") == []
    assert log_rows(engine)[0].status == "failed"


def test_two_processes_sending_the_same_digest_post_it_once(
    storage_engine: Engine, digest_settings: Settings, slack: SlackFake
) -> None:
    accounts = book(6)
    pks = add_customers(storage_engine, accounts)
    add_run(storage_engine, accounts, pks, as_of=date(2026, 6, 28))
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def run() -> None:
        barrier.wait(timeout=10)
        outcome = send(storage_engine, digest_settings)
        outcomes.append(outcome.status)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(slack.messages(CHANNEL)) == 1 + 4  # the header and its rows, once each
    assert outcomes.count("posted") == 1
    assert set(outcomes) <= {"posted", "in_progress", "already_posted"}


# -- the command line -------------------------------------------------------------------------


def test_digest_send_cli_dry_run_and_post(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slack: SlackFake
) -> None:
    from typer.testing import CliRunner

    from crmbot.cli.main import app
    from crmbot.core.config import get_settings
    from crmbot.core.db import connect

    url = f"sqlite:///{tmp_path / 'crm.db'}"
    engine = connect(url)
    accounts = book(4)
    add_run(engine, accounts, add_customers(engine, accounts), as_of=date(2026, 6, 28))
    engine.dispose()
    for name, value in {
        "DATABASE_URL": url,
        "SLACK_BOT_TOKEN": "xoxb-test-token",
        "SLACK_API_BASE_URL": slack.base_url,
        "CRMBOT_AT_RISK_CHANNEL": "CRISK",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # no .env from the working tree
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        dry = runner.invoke(app, ["digest", "send", "at-risk", "--dry-run"])
        assert dry.exit_code == 0, dry.output
        assert "== Accounts at risk ·" in dry.output and "Customer 0 (C000)" in dry.output
        assert slack.requests == []
        posted = runner.invoke(app, ["digest", "send", "at-risk", "--period", "2026-06-29"])
        assert posted.exit_code == 0, posted.output
        assert "was posted to CRISK" in posted.output
        again = runner.invoke(app, ["digest", "send", "at-risk", "--period", "2026-06-29"])
        assert "not posting it twice" in again.output
        assert len(slack.messages("CRISK")) == 1 + 4  # the header and each account
        wrong = runner.invoke(app, ["digest", "send", "payroll"])
        assert wrong.exit_code == 1 and "choose at-risk or influencers" in wrong.output
    finally:
        get_settings.cache_clear()
