"""The database goes away under the running server: `crmbot run` (uvicorn, a subprocess) on
PostgreSQL reached through a TCP proxy on loopback that is cut and restored.

tests/slack/test_slack_safety.py proves the sentence users get and the recovery on the Bolt app in
process; here it is the deployed shape: the process stays up, keeps acknowledging within
Slack's deadline, its health check turns 503 for the load balancer and back to 200, and
the next command after the database returns is answered from it.
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from crmbot.core.db import make_engine, read_session, upgrade
from crmbot.core.models import AuditLog
from tests.support.slack_fake import SlackFake
from tests.support.slack_requests import command_body, signed_headers
from tests.support.small_crm import seed
from tests.support.tcp_proxy import TcpProxy

SECRET = "outage-signing-secret-0123"
TOKEN = "xoxb-0000-outage-test-token"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _request(
    port: int, method: str, path: str, body: str = "", headers: dict[str, str] | None = None
) -> tuple[tuple[int, str], float]:
    """(status, body) of one HTTP request to the bot, and how long it took."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    started = time.monotonic()
    connection.request(method, path, body=body.encode(), headers=headers or {})
    response = connection.getresponse()
    answer = response.status, response.read().decode()
    connection.close()
    return answer, time.monotonic() - started


def _answer(slack: SlackFake, path: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for recorded in list(slack.requests):
            if recorded.path == path:
                return json.dumps(recorded.params, ensure_ascii=False)
        time.sleep(0.02)
    raise AssertionError(f"no answer at {path}")


@pytest.mark.slow  # starts `crmbot run` (a few seconds of imports)
def test_crmbot_run_survives_the_database_going_away_and_coming_back(
    tmp_path: Path, server_databases: dict[str, str]
) -> None:
    if "postgres" not in server_databases:
        pytest.skip("PostgreSQL is not reachable")
    url = make_url(server_databases["postgres"])
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    proxy.start()
    through_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    engine = make_engine(through_proxy, connect_args={"connect_timeout": 3})
    with engine.begin() as connection:  # whatever another test left: the migrations rebuild
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    upgrade(engine)
    seed(engine)
    engine.dispose()

    port = _free_port()
    log_path = tmp_path / "crmbot-run.log"
    with SlackFake() as slack, log_path.open("w") as log_file:
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "DATABASE_URL": through_proxy,
            "SLACK_BOT_TOKEN": TOKEN,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_BASE_URL": slack.base_url,
        }
        crmbot = str(Path(sys.executable).parent / "crmbot")
        bot = subprocess.Popen(
            [crmbot, "run", "--host", "127.0.0.1", "--port", str(port), "--no-scheduler"],
            cwd=tmp_path,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                assert bot.poll() is None, log_path.read_text()
                try:
                    if _request(port, "GET", "/healthz")[0][0] == 200:
                        break
                except OSError:
                    pass
                assert time.monotonic() < deadline, "crmbot run did not start"
                time.sleep(0.1)

            def command(text: str, path: str) -> str:
                body = command_body(text, response_url=f"{slack.url}{path}")
                (status, said), took = _request(
                    port, "POST", "/slack/events", body, signed_headers(SECRET, body)
                )
                assert status == 200 and said == "" and took < 3, (status, said, took)
                return _answer(slack, path)

            assert "Ada Lovelace" in command("customer C001", "/respond/before")

            proxy.stop()  # the database goes away
            (status, health), _ = _request(port, "GET", "/healthz")
            assert (status, json.loads(health)) == (503, {"ok": False, "database": "unreachable"})
            said = command("customer C001", "/respond/during")
            assert "the CRM database is not reachable right now" in said, said
            assert "Ada Lovelace" not in said
            assert bot.poll() is None  # still serving

            proxy.start()  # ...and comes back on the same address
            (status, health), _ = _request(port, "GET", "/healthz")
            assert (status, json.loads(health)) == (200, {"ok": True, "database": "ok"})
            assert "Ada Lovelace" in command("customer C001", "/respond/after")
        finally:
            bot.send_signal(signal.SIGTERM)
            try:
                bot.wait(timeout=30)
            except subprocess.TimeoutExpired:
                bot.kill()
                bot.wait()
            proxy.stop()
            proxy.start()

    output = log_path.read_text()
    assert "Traceback" not in output, output[-3000:]
    assert TOKEN not in output and SECRET not in output
    check = make_engine(through_proxy, connect_args={"connect_timeout": 3})
    with read_session(check) as session:
        audited = list(session.execute(select(AuditLog.command)).scalars())
    # Answered before and after; the command during the outage could not be audited.
    assert audited == ["customer", "customer"]
    check.dispose()
    proxy.stop()
