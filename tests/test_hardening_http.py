"""Garbage at the HTTP door: nothing parses a body before its size and its Slack signature
are checked. Every case goes over real HTTP on loopback to the production server and gets
a 4xx with a short text; the log has one warning line per refusal and nothing at ERROR."""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier
from sqlmodel import SQLModel

from crmbot.core.config import Settings
from crmbot.core.db import make_engine
from crmbot.slack.app import build_app
from crmbot.slack.http import EVENTS_PATH, MAX_BODY_BYTES, BackgroundServer
from tests.support.http_serving import served_small_crm
from tests.support.slack_fake import SlackFake
from tests.support.slack_requests import command_body, signed_headers

SECRET = "test-signing-secret"
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def post(url: str, body: str | bytes, headers: dict[str, str]) -> tuple[int, str]:
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def forged(body: str | bytes, content_type: str, **overrides: str) -> dict[str, str]:
    """Headers an attacker can send: a fresh timestamp and a signature made up."""
    headers = {
        "content-type": content_type,
        "x-slack-request-timestamp": str(int(time.time())),
        "x-slack-signature": "v0=" + "0" * 64,
    }
    headers.update(overrides)
    return headers


def signed(body: str, content_type: str) -> dict[str, str]:
    return signed_headers(SECRET, body, content_type=content_type)


NESTED = "[" * (MAX_BODY_BYTES - 10)  # just under the size limit: it reaches the parser


def garbage() -> dict[str, tuple[str | bytes, dict[str, str], int]]:
    """name -> (body, headers, expected status), signed when the test runs: a signature made
    when the module was imported goes stale once a long run takes more than five minutes."""
    return {
        "malformed json": ('{"type": "event_callback", ', forged("{", JSON), 401),
        "payload that is not json": ("payload=%7Bnot-json", forged("", FORM), 401),
        "1 MB of nested brackets": (NESTED, forged("", JSON), 401),
        "a non-numeric timestamp": (
            "text=hi",
            {
                "content-type": FORM,
                "x-slack-request-timestamp": "soon",
                "x-slack-signature": SignatureVerifier(SECRET).generate_signature(
                    timestamp="soon", body="text=hi"
                )
                or "",
            },
            401,
        ),
        "a timestamp far in the future": (
            "text=hi",
            signed_headers(SECRET, "text=hi", timestamp=int(time.time()) + 10**9),
            401,
        ),
        "no headers at all": ("{bad", {"content-type": JSON}, 401),
        "bytes that are not utf-8": (b"\xff\xfe\x00payload=\x80", forged("", FORM), 401),
        "more than the size limit": (b"[" * (MAX_BODY_BYTES + 1), forged("", JSON), 413),
        # Signed with the real secret (only Slack could): still never a 500.
        "signed malformed json": ('{"type": ', signed('{"type": ', JSON), 400),
        "signed payload that is not json": (
            "payload=%7Bnot-json",
            signed("payload=%7Bnot-json", FORM),
            400,
        ),
        "signed nested brackets": ("[" * 200_000, signed("[" * 200_000, JSON), 400),
    }


@pytest.fixture
def served(settings: Settings, tmp_path: Path) -> Iterator[tuple[BackgroundServer, SlackFake]]:
    with served_small_crm(settings, tmp_path) as (server, slack):
        yield server, slack


@pytest.fixture
def log_records(served: tuple[BackgroundServer, SlackFake]) -> Iterator[list[logging.LogRecord]]:
    """Every record from crmbot, Bolt and uvicorn ("uvicorn" does not propagate to the root;
    the server configured its loggers when it was built, so the handler goes on after)."""
    recorder = Recorder()
    loggers = [logging.getLogger(), logging.getLogger("uvicorn")]
    for logger in loggers:
        logger.addHandler(recorder)
    previous = logging.getLogger().level
    logging.getLogger().setLevel(logging.INFO)
    yield recorder.records
    logging.getLogger().setLevel(previous)
    for logger in loggers:
        logger.removeHandler(recorder)


@pytest.mark.parametrize("case", list(garbage()))
def test_garbage_gets_a_short_4xx_and_no_traceback(
    case: str,
    served: tuple[BackgroundServer, SlackFake],
    log_records: list[logging.LogRecord],
) -> None:
    server, slack = served
    body, headers, expected = garbage()[case]
    status, text = post(f"{server.url}{EVENTS_PATH}", body, headers)
    assert status == expected, (status, text)
    assert len(text) < 40 and "Traceback" not in text
    errors = [r for r in log_records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
    assert not [r for r in log_records if r.exc_info]
    refusals = [r for r in log_records if r.name == "crmbot.slack.http"]
    assert len(refusals) == 1 and refusals[0].levelno == logging.WARNING
    assert "\n" not in refusals[0].getMessage()
    assert str(expected) in refusals[0].getMessage()
    assert not [r for r in slack.requests if r.method != "auth.test"]  # nothing ran


def test_a_signed_request_still_works_beside_the_garbage(
    served: tuple[BackgroundServer, SlackFake], log_records: list[logging.LogRecord]
) -> None:
    server, slack = served
    for body, headers, _ in garbage().values():
        post(f"{server.url}{EVENTS_PATH}", body, headers)
    body = command_body("customer C001", response_url=f"{slack.url}/respond/after-garbage")
    status, text = post(f"{server.url}{EVENTS_PATH}", body, signed_headers(SECRET, body))
    assert (status, text) == (200, "")
    deadline = time.monotonic() + 15
    while not [r for r in slack.requests if r.path == "/respond/after-garbage"]:
        assert time.monotonic() < deadline, "the signed command was not answered"
        time.sleep(0.02)
    answer = next(r for r in slack.requests if r.path == "/respond/after-garbage")
    assert "Ada Lovelace" in json.dumps(answer.params)
    assert not [r for r in log_records if r.levelno >= logging.ERROR]


def test_without_a_signing_secret_every_request_is_refused(
    settings: Settings, tmp_path: Path
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'crm.db'}")
    SQLModel.metadata.create_all(engine)
    settings.slack_signing_secret = ""
    with SlackFake() as slack:
        client = WebClient(token=settings.slack_bot_token, base_url=slack.base_url)
        app = build_app(settings, engine, client=client)
        with BackgroundServer(app, engine) as server:
            body = command_body("model", response_url=f"{slack.url}/respond/x")
            assert post(f"{server.url}{EVENTS_PATH}", body, forged(body, FORM))[0] == 401
            assert not [r for r in slack.requests if r.method != "auth.test"]
    engine.dispose()
