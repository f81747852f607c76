"""Shared fixtures: real databases, fresh for every run.

* `engine`: an in-memory SQLite database with the current schema (fast; most tests).
* `storage_engine`: parametrised over SQLite (a WAL file), PostgreSQL and MariaDB. Servers
  come from TEST_POSTGRES_URL / TEST_MYSQL_URL (defaults: the local services) and are
  skipped when they do not answer, unless CRMBOT_REQUIRE_SERVERS names them (CI sets it).
  Each run creates its own database on each server and drops it at the end, so nothing an
  earlier run left behind can leak in; between tests its tables are emptied (ids restart).
* `crm` / `bot`: the small hand-made CRM of `tests.support.small_crm.seed` and a chat bot
  over it.
* `sample_company` (session): the demo's sample company (~800 customers) imported into a
  SQLite file and trained as of its as_of; `.engine`, `.truth`, `.as_of`, `.settings`.
* `cdnow_book` (session): the real CDNOW log (`benchmarks.real_books`) in a SQLite file,
  trained as of 1997-09-30 with the real months after held out; `.engine`, `.as_of`, `.run`.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine, make_url
from sqlmodel import SQLModel

import crmbot.core.models  # noqa: F401  (every table in SQLModel.metadata)
from crmbot.core.config import Settings
from crmbot.core.db import connect, make_engine, upgrade
from tests.support.small_crm import ChatBot, SmallCrm, seed

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
        engine = make_engine(
            url.render_as_string(hide_password=False),
            connect_args=connect_args,
            isolation_level="AUTOCOMMIT",
        )
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


def _holds_current_schema(engine: Engine) -> bool:
    """Whether the database has exactly the migrated tables at the head revision."""
    from alembic.script import ScriptDirectory

    from crmbot.core.db import alembic_config, current_revision

    expected = set(SQLModel.metadata.tables) | {"alembic_version"}
    if set(inspect(engine).get_table_names()) != expected:
        return False
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    return current_revision(engine) == head


def _empty_tables(engine: Engine, kind: str) -> None:
    """Delete every row and restart the id counters: a fresh database, minus the DDL.

    Creating the schema costs seconds on MariaDB (InnoDB writes each table's files);
    emptying it costs milliseconds, so the schema a test leaves intact is reused.
    """
    tables = [table.name for table in reversed(SQLModel.metadata.sorted_tables)]
    with engine.begin() as connection:
        if kind == "postgres":
            quoted = ", ".join(f'"{name}"' for name in tables)
            connection.execute(text(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE"))
            return
        connection.execute(text("SET FOREIGN_KEY_CHECKS=0"))
        for name in tables:
            connection.execute(text(f"DELETE FROM `{name}`"))
        used = connection.execute(
            text(
                "SELECT TABLE_NAME FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE() AND AUTO_INCREMENT > 1"
            )
        ).scalars()
        for name in list(used):
            connection.execute(text(f"ALTER TABLE `{name}` AUTO_INCREMENT = 1"))
        connection.execute(text("SET FOREIGN_KEY_CHECKS=1"))


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
        # The per-run database is dropped when the session ends; between tests it is
        # emptied, or rebuilt when a test left a schema other than the migrated one.
        if _holds_current_schema(engine):
            _empty_tables(engine, kind)
        else:
            _reset(engine)
    else:
        pytest.skip(f"{kind} is not reachable at {make_url(SERVER_URLS[kind])!r}")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def engine() -> Iterator[Engine]:
    """An empty in-memory SQLite database with the current schema."""
    engine = make_engine("sqlite://")
    SQLModel.metadata.create_all(engine)
    yield engine
    engine.dispose()


def isolated_settings(database_url: str, directory: Path, **overrides: Any) -> Settings:
    """Settings isolated from the developer's environment and .env file: the test bot's
    token, secret and admin, charts under `directory`."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        slack_bot_token="xoxb-test-token",
        slack_signing_secret="test-signing-secret",
        admin_users=["UADMIN"],
        chart_dir=str(directory / "charts"),
        **overrides,
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings isolated from the developer's environment and .env file."""
    # Tests send a user's commands in a batch and read the answers afterwards; the limit of
    # one at a time per user (the default) has its own tests (test_bounded_work.py).
    return isolated_settings("sqlite://", tmp_path, requests_per_user=50)


@dataclass
class SampleCompany:
    """The trained sample company: what `sample_company` yields."""

    engine: Engine
    truth: Any  # crmbot.demo.DemoTruth: the planted hubs, affinities and churners
    as_of: date
    settings: Settings
    directory: Path  # the CSV files it was imported from
    run: Any  # crmbot.runs.RunResult of the training run


@pytest.fixture(scope="session")
def sample_company(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SampleCompany]:
    """~800 customers generated, imported into a SQLite file and trained as of the demo's
    as_of, once per test session. Read-only for tests: it is shared."""
    from crmbot.demo import generate_company, load_demo
    from crmbot.runs import train

    directory = tmp_path_factory.mktemp("sample_company")
    truth = generate_company(directory / "csv", customers=800, seed=7)
    url = f"sqlite:///{directory / 'crm.db'}"
    engine = connect(url)
    reports = load_demo(engine, directory / "csv")
    problems = [report.summary() for report in reports.values() if not report.ok]
    assert not problems, problems
    settings = isolated_settings(url, directory, requests_per_user=50)  # as in `settings`
    run = train(engine, settings, truth.as_of)
    assert run.status == "succeeded", run.error
    yield SampleCompany(
        engine=engine,
        truth=truth,
        as_of=truth.as_of,
        settings=settings,
        directory=directory / "csv",
        run=run,
    )
    engine.dispose()


@dataclass
class RealBook:
    """A real public book trained as of `as_of`: what `cdnow_book` yields."""

    engine: Engine
    as_of: date
    settings: Settings
    run: Any  # crmbot.runs.RunResult of the training run


CDNOW_AS_OF = date(1997, 9, 30)


@pytest.fixture(scope="session")
def cdnow_book(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealBook]:
    """CDNOW's 23,570 customers trained as of 1997-09-30 through the real pipeline, once per
    test session (about 6 s). Read-only for tests: it is shared."""
    from benchmarks.real_books import cdnow_transactions, load_cdnow
    from crmbot.runs import train

    directory = tmp_path_factory.mktemp("cdnow")
    url = f"sqlite:///{directory / 'crm.db'}"
    engine = make_engine(url)
    SQLModel.metadata.create_all(engine)
    load_cdnow(engine, cdnow_transactions())
    settings = isolated_settings(url, directory)
    run = train(engine, settings, CDNOW_AS_OF)
    assert run.status == "succeeded", run.error
    yield RealBook(engine=engine, as_of=CDNOW_AS_OF, settings=settings, run=run)
    engine.dispose()


def copy_of_sample(sample_company: SampleCompany, directory: Path) -> Engine:
    """A private copy of the shared sample company, for tests that write to it."""
    target = directory / "crm.db"
    source, copy = sqlite3.connect(str(sample_company.engine.url.database)), sqlite3.connect(target)
    try:
        source.backup(copy)
    finally:
        source.close()
        copy.close()
    return make_engine(f"sqlite:///{target}")


@pytest.fixture
def crm(engine: Engine) -> SmallCrm:
    return seed(engine)


@pytest.fixture
def bot(crm: SmallCrm, settings: Settings, tmp_path: Path) -> ChatBot:
    return ChatBot(crm.engine, settings, tmp_path / "charts")
