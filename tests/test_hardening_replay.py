"""A delivery acts once, also across a restart: the request id is claimed in the database
before anything runs, so a retry or a replay that reaches a freshly built app (the same
database) is acknowledged, not run again, and audited as a duplicate. On SQLite,
PostgreSQL and MariaDB."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from crmbot.core import claims
from crmbot.core.config import Settings
from crmbot.core.db import read_session
from crmbot.core.models import AuditLog, RequestClaim
from tests.support.slack_bot import SECRET, Bot, make_bot
from tests.support.slack_fake import SlackFake
from tests.support.slack_requests import command_body, event_body, signed_headers
from tests.support.small_crm import seed

RETRY = {"x-slack-retry-num": "1", "x-slack-retry-reason": "http_timeout"}


@pytest.fixture
def slack() -> Iterator[SlackFake]:
    with SlackFake() as fake:
        yield fake


@pytest.fixture
def database(storage_engine: Engine) -> Engine:
    seed(storage_engine)
    return storage_engine


def audit_rows(engine: Engine) -> list[AuditLog]:
    with read_session(engine) as session:
        return list(session.execute(select(AuditLog).order_by(AuditLog.id)).scalars())  # type: ignore[arg-type]


def wait_for_audit(engine: Engine, outcome: str, count: int = 1, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while sum(row.outcome == outcome for row in audit_rows(engine)) < count:
        assert time.monotonic() < deadline, [(r.command, r.outcome) for r in audit_rows(engine)]
        time.sleep(0.02)


def test_a_slash_command_replayed_after_a_restart_runs_once(
    settings: Settings, database: Engine, slack: SlackFake
) -> None:
    first = make_bot(settings, database, slack)
    body = command_body(
        "model", response_url=f"{slack.url}/respond/once", trigger_id="777.T0001.replayed"
    )
    assert first.dispatch(body, signed_headers(SECRET, body)).status == 200
    first.answer("/respond/once")

    restarted = make_bot(settings, database, slack)  # a new process: nothing in memory
    # The same delivery again, as a replay (no retry header) and as Slack's retry.
    assert restarted.dispatch(body, signed_headers(SECRET, body)).status == 200
    assert restarted.dispatch(body, signed_headers(SECRET, body, extra=RETRY)).status == 200
    wait_for_audit(database, "duplicate", count=2)

    assert len(restarted.answers("/respond/once")) == 1
    rows = audit_rows(database)
    assert [(r.command, r.outcome) for r in rows] == [
        ("model", "ok"),
        ("model", "duplicate"),
        ("model", "duplicate"),
    ]
    assert rows[0].request_id == "cmd:777.T0001.replayed"
    # The two duplicates run on listener threads, in either order.
    assert sorted((r.detail or "").split(":")[0] for r in rows[1:]) == [
        "Slack retry 1 (http_timeout) of cmd",
        "replay of cmd",
    ]
    assert all("cmd:777.T0001.replayed" in (r.detail or "") for r in rows[1:])


def test_an_event_retried_after_a_restart_is_acknowledged_and_not_run_again(
    settings: Settings, database: Engine, slack: SlackFake
) -> None:
    mention = {
        "type": "app_mention",
        "user": "UAM1",
        "channel": "C0CRM",
        "text": "<@UBOT> model",
        "ts": "5.1",
    }
    body = event_body(mention, event_id="EvRESTART")
    first = make_bot(settings, database, slack)
    assert first.dispatch(body, signed_headers(SECRET, body, content_type="application/json"))
    first.wait_for(lambda rs: [r for r in rs if r.method == "chat.postEphemeral"])
    wait_for_audit(database, "ok")

    restarted = make_bot(settings, database, slack)
    headers = signed_headers(SECRET, body, content_type="application/json", extra=RETRY)
    assert restarted.dispatch(body, headers).status == 200
    wait_for_audit(database, "duplicate")

    assert len(slack.calls("chat.postEphemeral")) == 1
    assert [(r.command, r.outcome) for r in audit_rows(database)] == [
        ("model", "ok"),
        ("model", "duplicate"),
    ]


def test_a_retry_of_a_request_whose_process_died_mid_command_is_not_run(
    settings: Settings, database: Engine, slack: SlackFake
) -> None:
    """The first delivery was claimed and then its process died: no answer, no audit row.
    Slack's retry reaches the restarted bot, which must not run it a second time (a slow
    command such as a retrain would start twice)."""
    assert claims.claim(database, "cmd:888.T0001.died")
    bot: Bot = make_bot(settings, database, slack)
    body = command_body(
        "model", response_url=f"{slack.url}/respond/died", trigger_id="888.T0001.died"
    )
    assert bot.dispatch(body, signed_headers(SECRET, body, extra=RETRY)).status == 200
    wait_for_audit(database, "duplicate")
    time.sleep(0.2)
    assert bot.answers("/respond/died") == []


def test_old_claims_are_pruned_in_batches(database: Engine) -> None:
    now = datetime(2026, 7, 3, 12)
    for index in range(25):
        claims.claim(database, f"evt:old{index}", now=now - timedelta(days=2))
    claims.claim(database, "evt:recent", now=now - timedelta(hours=1))
    assert claims.prune(database, now=now, batch=10) == 25
    with read_session(database) as session:
        left = list(session.execute(select(RequestClaim.request_id)).scalars())  # type: ignore[call-overload]
        assert left == ["evt:recent"]
        assert session.execute(select(func.count()).select_from(RequestClaim)).scalar_one() == 1
    # A pruned id is a day old: Slack no longer retries it, and a replay's signature is stale.
    assert claims.claim(database, "evt:old0", now=now)
    assert not claims.claim(database, "evt:recent", now=now)
