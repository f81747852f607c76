"""The database and the processes of the load benchmark (`benchmarks.load`): a trained
sample company in a SQLite file, the scores and audit rows read back from it, `crmbot run`
serving HTTP and `crmbot train --force` retraining beside it, each a subprocess."""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from tests.support.slack_fake import SlackFake

SECRET = "load-signing-secret-0123456789"
TOKEN = "xoxb-0000-load-test-token"
CRMBOT = str(Path(sys.executable).parent / "crmbot")


# ---------------------------------------------------------------------------------------
# The database


def build_company(directory: Path, *, customers: int, seed: int) -> tuple[Path, date]:
    """Generate, import and train a sample company into `directory/crm.db`."""
    from crmbot.core.config import Settings
    from crmbot.core.db import connect
    from crmbot.demo import generate_company, load_demo
    from crmbot.runs import train

    truth = generate_company(directory / "csv", customers=customers, seed=seed)
    database = directory / "crm.db"
    engine = connect(f"sqlite:///{database}")
    load_demo(engine, directory / "csv")
    settings = Settings(_env_file=None, database_url=f"sqlite:///{database}")  # type: ignore[call-arg]
    result = train(engine, settings, truth.as_of)
    engine.dispose()
    if result.status != "succeeded":
        raise SystemExit(f"training the sample company failed: {result.error}")
    return database, truth.as_of


def copy_database(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database, even one in use (WAL): SQLite's backup."""
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


def active_run(database: Path) -> tuple[int, date]:
    with sqlite3.connect(database) as connection:
        run_id, as_of = connection.execute(
            "SELECT r.id, r.as_of FROM active_run a JOIN model_run r ON r.id = a.run_id "
            "WHERE a.slot = 'scores'"
        ).fetchone()
    return int(run_id), date.fromisoformat(str(as_of)[:10])


@dataclass(frozen=True)
class Score:
    name: str
    segment: str | None
    clv: float | None


def scores_of_run(database: Path, run_id: int) -> dict[str, Score]:
    """customer_id -> what the customer card of that run shows."""
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT c.customer_id, c.name, s.segment, s.clv FROM customer_score s "
            "JOIN customer c ON c.id = s.customer_pk WHERE s.run_id = ? AND c.erased_at IS NULL",
            (run_id,),
        ).fetchall()
    return {str(cid): Score(str(name), segment, clv) for cid, name, segment, clv in rows}


def audit_counts(database: Path, prefix: str) -> tuple[Counter[str], Counter[str]]:
    """Audit rows per request id, and their outcomes, for ids starting with `prefix`."""
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT request_id, outcome FROM audit_log WHERE request_id LIKE ?", (prefix + "%",)
        ).fetchall()
    return Counter(r for r, _ in rows), Counter(o for _, o in rows)


# ---------------------------------------------------------------------------------------
# The processes


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def bot_environment(database: Path, workdir: Path, slack: SlackFake) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "DATABASE_URL": f"sqlite:///{database}",
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_BASE_URL": slack.base_url,
        "CRMBOT_CHART_DIR": str(workdir / "charts"),
    }


class Bot:
    """`crmbot run` serving HTTP on a free loopback port; output kept in a file."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "crmbot-run.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [CRMBOT, "run", "--host", "127.0.0.1", "--port", str(self.port), "--no-scheduler"],
            cwd=workdir,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_until_healthy(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"crmbot run exited:\n{self.output()}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"crmbot run did not answer /healthz:\n{self.output()}")

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


class Retrain:
    """`crmbot train --force` in a subprocess; its stage lines are timestamped as read."""

    def __init__(self, env: dict[str, str], workdir: Path, as_of: date) -> None:
        self.started = time.monotonic()
        self.stages: dict[str, float] = {}
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            [CRMBOT, "train", "--as-of", as_of.isoformat(), "--force"],
            cwd=workdir,
            env={**env, "COLUMNS": "200"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.finished: float | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip())
                found = re.search(r"✓ (\w+)", line)
                if found:
                    self.stages[found.group(1)] = time.monotonic()
                self._changed.notify_all()
        self.process.wait()
        with self._changed:
            self.finished = time.monotonic()
            self._changed.notify_all()

    def wait_for_stage(self, stage: str, timeout: float = 300.0) -> None:
        with self._changed:
            done = self._changed.wait_for(
                lambda: stage in self.stages or self.finished is not None, timeout
            )
        if not done or stage not in self.stages:
            raise RuntimeError(f"the retrain never finished stage {stage!r}:\n{self.output()}")

    def running(self) -> bool:
        return self.finished is None

    def wait(self, timeout: float = 300.0) -> int:
        self._reader.join(timeout)
        return self.process.wait(timeout=1)

    def output(self) -> str:
        return "\n".join(self.lines)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
