"""The real Bolt app over a `SlackFake`, driven by signed HTTP requests: `make_bot` builds
it on a database, `Bot` sends commands, events and clicks and reads back what the fake
received, `text_of` flattens a posted message for assertions."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt import App, BoltRequest, BoltResponse
from slack_sdk import WebClient
from sqlalchemy import select
from sqlalchemy.engine import Engine

from crmbot.core.config import Settings
from crmbot.core.db import read_session
from crmbot.core.models import AuditLog
from crmbot.slack.app import build_app
from tests.support.slack_fake import Recorded, SlackFake
from tests.support.slack_requests import action_body, command_body, event_body, signed_headers
from tests.support.small_crm import TODAY

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


def make_bot(settings: Settings, engine: Engine, slack: SlackFake) -> Bot:
    client = WebClient(token=settings.slack_bot_token, base_url=slack.base_url)
    app = build_app(settings, engine, client=client, today=lambda: TODAY)
    return Bot(app=app, slack=slack, settings=settings, engine=engine)
