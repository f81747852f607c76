"""The production server: Bolt's ASGI adapter under uvicorn, over real HTTP on loopback —
in-process on port 0, and as `crmbot run` in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from slack_sdk import WebClient
from sqlmodel import SQLModel

from crmbot.core.config import Settings
from crmbot.core.db import make_engine, upgrade
from crmbot.slack.app import build_app
from crmbot.slack.http import EVENTS_PATH, BackgroundServer, serve_socket_mode
from tests.support.http_serving import served_small_crm, wait_until_healthy
from tests.support.slack_fake import Reply, SlackFake
from tests.support.slack_requests import command_body, signed_headers
from tests.support.small_crm import seed
from tests.support.socket_mode_fake import SocketModeFake

SECRET = "test-signing-secret"


def post(url: str, body: str | bytes, headers: dict[str, str]) -> tuple[int, str]:
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait_for_path(slack: SlackFake, path: str, timeout: float = 15.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for recorded in list(slack.requests):
            if recorded.path == path:
                return recorded.params
        time.sleep(0.02)
    raise AssertionError(f"no answer at {path}; saw {[r.path for r in slack.requests]}")


@pytest.fixture
def served(settings: Settings, tmp_path: Path) -> Iterator[tuple[BackgroundServer, SlackFake]]:
    with served_small_crm(settings, tmp_path) as (server, slack):
        yield server, slack


def test_a_signed_command_over_http(served: tuple[BackgroundServer, SlackFake]) -> None:
    server, slack = served
    body = command_body("customer C001", response_url=f"{slack.url}/respond/http")
    started = time.perf_counter()
    status, text = post(f"{server.url}{EVENTS_PATH}", body, signed_headers(SECRET, body))
    acked_in = time.perf_counter() - started
    assert status == 200 and text == "" and acked_in < 3
    answer = wait_for_path(slack, "/respond/http")
    assert "Ada Lovelace" in json.dumps(answer)


def test_unsigned_requests_get_401_over_http(served: tuple[BackgroundServer, SlackFake]) -> None:
    server, slack = served
    body = command_body("customer C001", response_url=f"{slack.url}/respond/no")
    status, _ = post(f"{server.url}{EVENTS_PATH}", body, {"content-type": "text/plain"})
    assert status == 401
    stale = signed_headers(SECRET, body, timestamp=int(time.time()) - 600)
    assert post(f"{server.url}{EVENTS_PATH}", body, stale)[0] == 401
    time.sleep(0.3)
    assert not [r for r in slack.requests if r.path == "/respond/no"]


def test_health_other_paths_and_oversized_bodies(
    served: tuple[BackgroundServer, SlackFake],
) -> None:
    server, _ = served
    status, text = get(f"{server.url}/healthz")
    assert status == 200 and json.loads(text) == {"ok": True, "database": "ok"}
    assert get(f"{server.url}/")[0] == 404
    assert post(f"{server.url}/other", "x", {})[0] == 404
    huge = b"text=" + b"x" * 2_000_000
    assert post(f"{server.url}{EVENTS_PATH}", huge, signed_headers(SECRET, "x"))[0] == 413


# -- `crmbot run` as a user starts it ------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def crmbot_env(tmp_path: Path, **values: str) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    env.update(values)
    return env


CRMBOT = str(Path(sys.executable).parent / "crmbot")


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({}, "SLACK_BOT_TOKEN is empty"),
        (
            {"SLACK_BOT_TOKEN": "xoxb-your-token", "SLACK_SIGNING_SECRET": "real-looking-secret"},
            "SLACK_BOT_TOKEN is empty or still the placeholder",
        ),
        (
            {"SLACK_BOT_TOKEN": "xoxb-1-real", "SLACK_SIGNING_SECRET": "changeme"},
            "SLACK_SIGNING_SECRET is empty or still the placeholder",
        ),
        (
            # The placeholder app token means HTTP mode, which needs the signing secret.
            {"SLACK_BOT_TOKEN": "xoxb-1-real", "SLACK_APP_TOKEN": "xapp-your-token"},
            "SLACK_SIGNING_SECRET is empty or still the placeholder",
        ),
    ],
)
def test_run_refuses_placeholder_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, values: dict[str, str], complaint: str
) -> None:
    from typer.testing import CliRunner

    from crmbot.cli.main import app
    from crmbot.core.config import get_settings

    monkeypatch.chdir(tmp_path)  # no .env here
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    get_settings.cache_clear()
    try:
        done = CliRunner().invoke(app, ["run", "--port", str(free_port()), "--no-scheduler"])
    finally:
        get_settings.cache_clear()
    assert done.exit_code == 1
    output = " ".join(done.output.split())  # the console wraps long lines
    assert complaint in output and ".env.example" in output
    assert done.exception is None or isinstance(done.exception, SystemExit)
    assert not (tmp_path / "x.db").exists()  # refused before touching anything


def test_crmbot_run_serves_slack_over_http(tmp_path: Path) -> None:
    database = tmp_path / "crm.db"
    engine = make_engine(f"sqlite:///{database}")
    upgrade(engine)
    seed(engine)
    engine.dispose()
    port = free_port()
    token = "xoxb-0000-live-looking-token"
    with SlackFake() as slack:
        env = crmbot_env(
            tmp_path,
            DATABASE_URL=f"sqlite:///{database}",
            SLACK_BOT_TOKEN=token,
            SLACK_SIGNING_SECRET=SECRET,
            SLACK_API_BASE_URL=slack.base_url,
            CRMBOT_LOG_LEVEL="DEBUG",
        )
        process = subprocess.Popen(
            [CRMBOT, "run", "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            wait_until_healthy(process, port)
            body = command_body("why grace", response_url=f"{slack.url}/respond/run")
            status, _ = post(
                f"http://127.0.0.1:{port}/slack/events", body, signed_headers(SECRET, body)
            )
            assert status == 200
            assert "two unresolved tickets" in json.dumps(wait_for_path(slack, "/respond/run"))
            bad = post(f"http://127.0.0.1:{port}/slack/events", body, signed_headers("wrong", body))
            assert bad[0] == 401
        finally:
            process.send_signal(signal.SIGTERM)
            output, _ = process.communicate(timeout=30)
    # uvicorn shuts down gracefully on SIGTERM, then exits by that same signal.
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "Shutting down" in output and "Traceback" not in output
    # Debug logging was on: requests, bodies and Web API calls were logged, scrubbed.
    assert "Invalid request signature" in output
    for secret in (SECRET, token, "legacy-verification-token-value"):
        assert secret not in output


# -- Socket Mode ---------------------------------------------------------------------------


def test_socket_mode_answers_a_slash_command(settings: Settings, tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'crm.db'}")
    SQLModel.metadata.create_all(engine)
    seed(engine)
    settings.slack_signing_secret = ""  # Socket Mode needs none: no request is signed
    stop = threading.Event()
    with SlackFake() as slack, SocketModeFake() as ws:
        slack.script("apps.connections.open", Reply(body={"ok": True, "url": ws.url}))
        client = WebClient(token=settings.slack_bot_token, base_url=slack.base_url)
        app = build_app(settings, engine, client=client)
        server = threading.Thread(
            target=serve_socket_mode,
            args=(app, "xapp-1-socket-mode-test"),
            kwargs={"stop": stop},
            daemon=True,
        )
        server.start()
        try:
            ws.wait_connected()
            envelope = ws.send_envelope(
                "slash_commands",
                {
                    "command": "/crm",
                    "text": "customer grace",
                    "user_id": "UAM1",
                    "channel_id": "C0CRM",
                    "team_id": "T0001",
                    "trigger_id": "1.socket.trigger",
                    "response_url": f"{slack.url}/respond/socket",
                },
            )
            ack = ws.wait_ack(envelope)
            assert ack["envelope_id"] == envelope
            answer = wait_for_path(slack, "/respond/socket")
            assert "Grace Hopper (C002)" in json.dumps(answer)
            opened = slack.calls("apps.connections.open")
            assert opened and "xapp-1-socket-mode-test" in opened[0].headers["Authorization"]
        finally:
            stop.set()
            server.join(timeout=10)
    engine.dispose()
