"""An account manager's whole day, through signed HTTP requests against the real Bolt app
and the local Slack Web API fake, on a real database (SQLite, PostgreSQL, MariaDB):

retrain → the owner gets an alert DM with reasons and buttons → "Log a touch" on the alert
opens the modal (views.open) → the submission stores the touch, confirmed in the alert's
thread → "Follow-up" through its modal (a past day is refused in the modal) → a second
retrain of the same day's data sends no duplicate → on the due day the follow-up arrives
by DM, once → the card shows the last touch.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from slack_bolt import BoltRequest, BoltResponse
from slack_sdk import WebClient
from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlmodel import col

from crmbot.core.config import Settings
from crmbot.core.db import read_session, write_session
from crmbot.core.models import AlertDelivery, Customer, FollowUp, Touch
from crmbot.demo import generate_company, load_demo
from crmbot.reply.acting import FOLLOW_UP, LOG_TOUCH
from crmbot.scheduler import run_job_now
from crmbot.slack.acting import FOLLOW_UP_FORM, TOUCH_FORM
from crmbot.slack.app import build_app
from crmbot.slack.delivery import slack_poster
from tests.support.slack_bot import SECRET, text_of
from tests.support.slack_fake import Recorded, SlackFake
from tests.support.slack_requests import (
    action_body,
    command_body,
    signed_headers,
    view_submission_body,
)

OWNER = "UAM1"
OWNER_DM = "DAM1"  # the fake's DM channel with UAM1


class Clock:
    """The day's time, moved by the test (naive UTC)."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def company(storage_engine: Engine, tmp_path: Path) -> tuple[Engine, date]:
    """The sample company (300 customers), Maria's accounts owned by Slack user UAM1."""
    truth = generate_company(tmp_path / "csv", customers=300, seed=7)
    reports = load_demo(storage_engine, tmp_path / "csv")
    assert all(report.ok for report in reports.values())
    with write_session(storage_engine) as session:
        session.execute(update(Customer).where(col(Customer.owner) == "maria").values(owner=OWNER))
    return storage_engine, truth.as_of


def _wait(slack: SlackFake, found: Callable[[list[Recorded]], list[Any]]) -> list[Any]:
    import time

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        hits = found(list(slack.requests))
        if hits:
            return hits
        time.sleep(0.02)
    raise AssertionError(f"nothing arrived; the fake saw {[r.method for r in slack.requests]}")


def _dms(slack: SlackFake, key_prefix: str) -> list[dict[str, Any]]:
    """The bot's messages in the owner's DM whose metadata key starts with `key_prefix`."""
    return [
        m
        for m in slack.messages(OWNER_DM)
        if str(((m.get("metadata") or {}).get("event_payload") or {}).get("digest", "")).startswith(
            key_prefix
        )
    ]


def _buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        element
        for block in message.get("blocks") or []
        for element in ([block.get("accessory")] if block.get("accessory") else [])
        + list(block.get("elements") or [])
        if element.get("type") == "button"
    ]


def test_an_account_managers_day(
    company: tuple[Engine, date], settings: Settings, tmp_path: Path
) -> None:
    engine, as_of = company
    settings = settings.model_copy(
        update={"churn_auc_margin": 1.0, "alert_rise_points": 10, "database_url": str(engine.url)}
    )
    clock = Clock(
        datetime.combine(as_of - timedelta(days=30), datetime.min.time()) + timedelta(hours=2)
    )
    with SlackFake() as slack:
        client = WebClient(token=settings.slack_bot_token, base_url=slack.base_url)
        app = build_app(settings, engine, client=client, today=lambda: clock().date(), clock=clock)
        poster = slack_poster(engine, settings, client)

        def send(body: str) -> BoltResponse:
            return app.dispatch(BoltRequest(body=body, headers=signed_headers(SECRET, body)))

        def retrain() -> str:
            result = run_job_now(
                "retrain", engine, settings, requested_by="test", poster=poster, clock=clock
            )
            assert result.status == "ok", result.message
            return result.message

        # The model a month ago, then tonight's retrain on today's data.
        retrain()
        assert not _dms(slack, "alert|")  # nothing to compare the first model with
        clock.at = datetime.combine(as_of, datetime.min.time()) + timedelta(hours=2)
        message = retrain()
        assert "Alerts: 1 sent" in message, message

        # One alert DM to the owner: grouped, with reasons and the buttons.
        alerts = _dms(slack, "alert|")
        assert len(alerts) == 1, message
        alert = alerts[0]
        text = text_of(alert)
        assert "Why now:" in text and "churn risk" in text
        buttons = _buttons(alert)
        touch_buttons = [b for b in buttons if b["action_id"] == LOG_TOUCH]
        assert touch_buttons and any(b["action_id"] == FOLLOW_UP for b in buttons)
        with read_session(engine) as session:
            claimed = (
                session.execute(select(AlertDelivery).where(col(AlertDelivery.recipient) == OWNER))
                .scalars()
                .all()
            )
        detailed = [row for row in claimed if not row.reason.startswith("more: ")]
        assert 0 < len(detailed) <= settings.alert_daily_cap
        assert len(touch_buttons) == len(detailed)
        customer_id = touch_buttons[0]["value"]

        # The next `notify` round finds nothing more to send for this run.
        again = run_job_now(
            "notify", engine, settings, requested_by="t", poster=poster, clock=clock
        )
        assert "Alerts: 0 sent" in again.message, again.message
        assert len(_dms(slack, "alert|")) == 1

        # "Log a touch" on the alert opens the modal...
        assert (
            send(
                action_body(LOG_TOUCH, customer_id, channel_id=OWNER_DM, message_ts=alert["ts"])
            ).status
            == 200
        )
        opened = _wait(slack, lambda rs: [r for r in rs if r.method == "views.open"])[0]
        view = _view(opened)
        assert view["callback_id"] == TOUCH_FORM
        assert customer_id in json.dumps(view["blocks"])
        # ... and its submission stores the touch, confirmed in the alert's thread.
        response = send(
            view_submission_body(
                view,
                {
                    "kind": {"type": "static_select", "selected_option": {"value": "call"}},
                    "outcome": {"type": "static_select", "selected_option": {"value": "reached"}},
                    "note": {
                        "type": "plain_text_input",
                        "value": "Talked to them; sending a quote",
                    },
                },
                user_id=OWNER,
            )
        )
        assert response.status == 200 and not response.body  # the modal closes
        confirmed = _wait(
            slack,
            lambda rs: [
                r
                for r in rs
                if r.method == "chat.postMessage" and "Logged: call" in json.dumps(r.params)
            ],
        )[0]
        assert confirmed.params.get("thread_ts") == alert["ts"]
        with read_session(engine) as session:
            touches = session.execute(select(Touch)).scalars().all()
        assert [(t.kind, t.outcome, t.author) for t in touches] == [("call", "reached", OWNER)]

        # "Follow-up": a day already past is refused in the modal; tomorrow is set.
        send(action_body(FOLLOW_UP, customer_id, channel_id=OWNER_DM, message_ts=alert["ts"]))
        opened = _wait(
            slack,
            lambda rs: [r for r in rs if r.method == "views.open" and r is not opened],
        )[-1]
        form = _view(opened)
        assert form["callback_id"] == FOLLOW_UP_FORM
        due = clock().date() + timedelta(days=1)

        def follow_up(day: date) -> BoltResponse:
            return send(
                view_submission_body(
                    form,
                    {
                        "due": {"type": "datepicker", "selected_date": day.isoformat()},
                        "assignee": {"type": "users_select", "selected_user": OWNER},
                        "note": {"type": "plain_text_input", "value": "Did the quote land?"},
                    },
                    user_id=OWNER,
                )
            )

        refused = follow_up(clock().date() - timedelta(days=1))
        assert json.loads(refused.body)["response_action"] == "errors"
        assert "due" in json.loads(refused.body)["errors"]
        assert follow_up(due).status == 200
        _wait(
            slack,
            lambda rs: [r for r in rs if "Follow-up on" in json.dumps(r.params)],
        )
        with read_session(engine) as session:
            follow_ups = session.execute(select(FollowUp)).scalars().all()
        assert [(f.assignee, f.due_on, f.sent_at) for f in follow_ups] == [(OWNER, due, None)]

        # A second retrain of the same day's data: nothing changed, no duplicate alert.
        clock.at += timedelta(hours=6)
        retrain()
        assert len(_dms(slack, "alert|")) == 1

        # Not yet due: nothing. On the due day: the follow-up, once.
        run_job_now("notify", engine, settings, requested_by="t", poster=poster, clock=clock)
        assert not _dms(slack, "follow-up|")
        clock.at = datetime.combine(due, datetime.min.time()) + timedelta(hours=9)
        for _ in range(2):
            result = run_job_now(
                "notify", engine, settings, requested_by="t", poster=poster, clock=clock
            )
            assert result.status == "ok", result.message
        reminders = _dms(slack, "follow-up|")
        assert len(reminders) == 1
        assert "Follow-up due today" in text_of(reminders[0]) and customer_id in text_of(
            reminders[0]
        )

        # The card shows the last touch.
        path = "/respond/card"
        send(
            command_body(
                f"customer {customer_id}", user_id=OWNER, response_url=f"{slack.url}{path}"
            )
        )
        card = _wait(slack, lambda rs: [r for r in rs if r.path == path])[0].params
        assert "Last touch" in text_of(card) and "call" in text_of(card)


def _view(opened: Recorded) -> dict[str, Any]:
    view = opened.params["view"]
    return json.loads(view) if isinstance(view, str) else view
