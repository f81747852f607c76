"""Shared fixtures: real databases, fresh for every run.

* `engine`: an in-memory SQLite database with the current schema (fast; most tests).
* `storage_engine`: parametrised over SQLite (a WAL file), PostgreSQL and MariaDB. Servers
  come from TEST_POSTGRES_URL / TEST_MYSQL_URL (defaults: the local services) and are
  skipped when they do not answer, unless CRMBOT_REQUIRE_SERVERS names them (CI sets it).
  Each run creates its own database on each server and drops it at the end, so nothing an
  earlier run left behind can leak in.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url
from sqlmodel import SQLModel

from crmbot.config import Settings
from crmbot.db import make_engine, upgrade

SERVER_URLS = {
    "postgres": os.environ.get(
        "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    ),
    "mariadb": os.environ.get("TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test"),
}
REQUIRED_SERVERS = {
    s.strip() for s in os.environ.get("CRMBOT_REQUIRE_SERVERS", "").split(",") if s.strip()
}


def _admin_engine(kind: str) -> Engine | None:
    url = make_url(SERVER_URLS[kind])
    connect_args = {"connect_timeout": 3}
    try:
        engine = make_engine(url.render_as_string(hide_password=False),
                             connect_args=connect_args, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return engine
    except Exception as exc:
        if kind in REQUIRED_SERVERS:
            raise RuntimeError(f"{kind} is required (CRMBOT_REQUIRE_SERVERS) but: {exc}") from exc
        return None


@pytest.fixture(scope="session")
def server_databases() -> Iterator[dict[str, str]]:
    """A fresh, uniquely named database on every reachable server; dropped afterwards."""
    created: dict[str, tuple[Engine, str, str]] = {}
    name = f"crmbot_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    for kind in SERVER_URLS:
        admin = _admin_engine(kind)
        if admin is None:
            continue
        quoted = f'"{name}"' if kind == "postgres" else f"`{name}`"
        with admin.connect() as connection:
            connection.execute(text(f"CREATE DATABASE {quoted}"))
        url = make_url(SERVER_URLS[kind]).set(database=name)
        created[kind] = (admin, quoted, url.render_as_string(hide_password=False))
    yield {kind: url for kind, (_a, _q, url) in created.items()}
    for kind, (admin, quoted, _url) in created.items():
        with admin.connect() as connection:
            if kind == "postgres":
                connection.execute(text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
            else:
                connection.execute(text(f"DROP DATABASE IF EXISTS {quoted}"))
        admin.dispose()


def _reset(engine: Engine) -> None:
    SQLModel.metadata.drop_all(engine)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
        connection.execute(text("DROP TABLE IF EXISTS apscheduler_jobs"))


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def storage_engine(
    request: pytest.FixtureRequest, server_databases: dict[str, str], tmp_path: Path
) -> Iterator[Engine]:
    """The same test on SQLite and on every reachable server, schema built by migrations."""
    kind = request.param
    if kind == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'crm.db'}")
    elif kind in server_databases:
        engine = make_engine(server_databases[kind])
        _reset(engine)
    else:
        pytest.skip(f"{kind} is not reachable at {make_url(SERVER_URLS[kind])!r}")
    upgrade(engine)
    yield engine
    if kind != "sqlite":
        _reset(engine)
    engine.dispose()


@pytest.fixture
def engine() -> Iterator[Engine]:
    """An empty in-memory SQLite database with the current schema."""
    engine = make_engine("sqlite://")
    SQLModel.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings isolated from the developer's environment and .env file."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url="sqlite://",
        slack_bot_token="xoxb-test-token",
        slack_signing_secret="test-signing-secret",
        admin_users=["UADMIN"],
        chart_dir=str(tmp_path / "charts"),
    )
