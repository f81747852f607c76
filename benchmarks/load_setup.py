"""The database and the processes of the load benchmark (`benchmarks.load`): a trained
sample company in a SQLite file or on a database server (PostgreSQL, MariaDB), the scores
and audit rows read back from it, `crmbot run` serving HTTP and `crmbot train --force`
retraining beside it, each a subprocess.

A database is a `Path` (a SQLite file) or a SQLAlchemy URL (`str`) of a server database."""

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
from typing import Any

from sqlalchemy import Date, TextClause, bindparam, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from tests.support.slack_fake import SlackFake

SECRET = "load-signing-secret-0123456789"
TOKEN = "xoxb-0000-load-test-token"
CRMBOT = str(Path(sys.executable).parent / "crmbot")


# ---------------------------------------------------------------------------------------
# The database


Database = Path | str  # a SQLite file, or the URL of a server database


def database_url(database: Database) -> str:
    """The DATABASE_URL crmbot is given for `database`."""
    return f"sqlite:///{database}" if isinstance(database, Path) else database


def _rows(database: Database, sql: str | TextClause, **params: Any) -> list[Any]:
    from crmbot.core.db import make_engine

    engine = make_engine(database_url(database), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            statement = text(sql) if isinstance(sql, str) else sql
            return list(connection.execute(statement, params))
    finally:
        engine.dispose()


def ensure_server_database(url: str) -> bool:
    """Create the database `url` names on its server unless it exists (True: created).

    The server is reached through the same URL with a database that is always there
    (`postgres` on PostgreSQL, `information_schema` on MariaDB).
    """
    from crmbot.core.db import make_engine

    parsed = make_url(url)
    name = parsed.database
    backend = parsed.get_backend_name()
    if not name or backend not in ("postgresql", "mysql"):
        raise SystemExit(
            "--database-url takes a PostgreSQL or MariaDB URL with a database name, e.g. "
            "postgresql+psycopg://postgres@127.0.0.1:5432/crmbot_load (SQLite is the default)"
        )
    if backend == "postgresql":
        admin_url = parsed.set(database="postgres")
        exists = "SELECT 1 FROM pg_database WHERE datname = :name"
    else:
        admin_url = parsed.set(database="information_schema")
        exists = "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = :name"
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as connection:
            if connection.execute(text(exists), {"name": name}).first() is not None:
                return False
            quoted = admin.dialect.identifier_preparer.quote(name)
            connection.execute(text(f"CREATE DATABASE {quoted}"))
            return True
    finally:
        admin.dispose()


def build_company(
    directory: Path, *, customers: int, seed: int, url: str | None = None
) -> tuple[Database, date]:
    """Generate the sample company, import it through crmbot's import and train it: into
    `directory/crm.db`, or into the server database `url` (which must exist; what it
    already holds stays, the company's rows are upserted and its run goes live)."""
    from crmbot.core.config import Settings
    from crmbot.core.db import connect
    from crmbot.demo import generate_company, load_demo
    from crmbot.runs import train

    truth = generate_company(directory / "csv", customers=customers, seed=seed)
    database: Database = url if url is not None else directory / "crm.db"
    engine = connect(database_url(database))
    load_demo(engine, directory / "csv")
    settings = Settings(_env_file=None, database_url=database_url(database))  # type: ignore[call-arg]
    # force: on a database used before, the run replaces whatever an earlier load left live.
    result = train(engine, settings, truth.as_of, force=url is not None)
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


def active_run(database: Database) -> tuple[int, date]:
    ((run_id, as_of),) = _rows(
        database,
        "SELECT r.id, r.as_of FROM active_run a JOIN model_run r ON r.id = a.run_id "
        "WHERE a.slot = 'scores'",
    )
    return int(run_id), date.fromisoformat(str(as_of)[:10])


@dataclass(frozen=True)
class Score:
    name: str
    segment: str | None
    clv: float | None


def scores_of_run(database: Database, run_id: int) -> dict[str, Score]:
    """customer_id -> what the customer card of that run shows."""
    rows = _rows(
        database,
        "SELECT c.customer_id, c.name, s.segment, s.clv FROM customer_score s "
        "JOIN customer c ON c.id = s.customer_pk "
        "WHERE s.run_id = :run AND c.erased_at IS NULL",
        run=run_id,
    )
    return {str(cid): Score(str(name), segment, clv) for cid, name, segment, clv in rows}


def signed_up_by(database: Database, day: date) -> set[str]:
    """Customers a retrain as of `day` scores too: signed up by then."""
    query = text("SELECT customer_id FROM customer WHERE signed_up_at <= :day")
    rows = _rows(database, query.bindparams(bindparam("day", type_=Date)), day=day)
    return {str(cid) for (cid,) in rows}


def audit_counts(database: Database, prefix: str) -> tuple[Counter[str], Counter[str]]:
    """Audit rows per request id, and their outcomes, for ids starting with `prefix`."""
    rows = _rows(
        database,
        "SELECT request_id, outcome FROM audit_log WHERE request_id LIKE :prefix",
        prefix=prefix + "%",
    )
    return Counter(r for r, _ in rows), Counter(o for _, o in rows)


# ---------------------------------------------------------------------------------------
# The processes


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def bot_environment(database: Database, workdir: Path, slack: SlackFake) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "DATABASE_URL": database_url(database),
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
