"""crmbot's Slack app served over real HTTP on loopback, in this process or as `crmbot run`."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from slack_sdk import WebClient
from sqlmodel import SQLModel

from crmbot.core.config import Settings
from crmbot.core.db import make_engine
from crmbot.slack.app import build_app
from crmbot.slack.http import BackgroundServer
from tests.support.slack_fake import SlackFake
from tests.support.small_crm import seed


@contextmanager
def served_small_crm(
    settings: Settings, tmp_path: Path
) -> Iterator[tuple[BackgroundServer, SlackFake]]:
    """The small CRM in a SQLite file, its Bolt app behind the HTTP server, and the fake of
    Slack's Web API it talks to."""
    engine = make_engine(f"sqlite:///{tmp_path / 'crm.db'}")
    SQLModel.metadata.create_all(engine)
    seed(engine)
    with SlackFake() as slack:
        client = WebClient(token=settings.slack_bot_token, base_url=slack.base_url)
        app = build_app(settings, engine, client=client)
        with BackgroundServer(app, engine) as server:
            yield server, slack
    engine.dispose()


def wait_until_healthy(process: subprocess.Popen[str], port: int, *, seconds: float = 60) -> None:
    """Wait for a `crmbot run` child to answer /healthz; fail with its output if it dies."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if process.poll() is not None:
            output = process.stdout or process.stderr
            raise AssertionError(output.read() if output is not None else "crmbot run exited")
        assert time.monotonic() < deadline, "crmbot run did not start"
        time.sleep(0.1)
