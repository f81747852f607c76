"""A DATABASE_URL with a password works, and the password is never shown.

SQLAlchemy 2 masks the password when a URL is turned into a string (`***`), and a `%` in
a URL (a quoted password, a path) breaks Alembic's configparser. On PostgreSQL and MariaDB
each test makes a role with a password that needs quoting in a URL, gives it a fresh
database, and runs crmbot's own commands through that URL, with and without an explicit
driver; the password must reach the server and nothing else: not the output, not a log
record at DEBUG. SQLite files (also under a path with `%`) work as before.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from click.testing import Result
from sqlalchemy import event, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner

from crmbot.cli.main import app
from crmbot.core.config import get_settings
from crmbot.core.db import connect, make_engine, upgrade

PASSWORD = "p@ss:w/rd%40x#1"
# How the password may show up: as typed, quoted for a URL, quoted for a form.
PASSWORD_FORMS = (PASSWORD, quote(PASSWORD, safe=""), quote_plus(PASSWORD), "w/rd%40x", "rd%2540")

Run = Callable[..., Result]


def shows_password(text_: str) -> bool:
    """Whether `text_` holds the password, also across a line the terminal wrapped."""
    return any(form in seen for form in PASSWORD_FORMS for seen in (text_, text_.replace("\n", "")))


def _create_account(kind: str, admin_url: str, name: str) -> None:
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    # `\:` keeps text() from reading ":w" as a bind parameter.
    secret = PASSWORD.replace(":", "\\:")
    with admin.connect() as connection:
        if kind == "postgres":
            connection.execute(text(f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{secret}'"))
            connection.execute(text(f'CREATE DATABASE "{name}" OWNER "{name}"'))
        else:
            connection.execute(text(f"CREATE DATABASE `{name}`"))
            for host in ("%", "localhost"):
                connection.execute(text(f"CREATE USER '{name}'@'{host}' IDENTIFIED BY '{secret}'"))
                connection.execute(text(f"GRANT ALL PRIVILEGES ON `{name}`.* TO '{name}'@'{host}'"))
    admin.dispose()


def _drop_account(kind: str, admin_url: str, name: str) -> None:
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        if kind == "postgres":
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'DROP ROLE IF EXISTS "{name}"'))
        else:
            connection.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
            for host in ("%", "localhost"):
                connection.execute(text(f"DROP USER IF EXISTS '{name}'@'{host}'"))
    admin.dispose()


@pytest.fixture(params=["postgres", "mariadb"])
def password_url(request: pytest.FixtureRequest, server_databases: dict[str, str]) -> Iterator[URL]:
    """A fresh database on the server, owned by a fresh role whose password needs quoting;
    the URL to it (explicit driver). Role and database are dropped afterwards."""
    kind = request.param
    if kind not in server_databases:
        pytest.skip(f"{kind} is not reachable")
    admin_url = server_databases[kind]
    name = f"crmbot_pw_{uuid.uuid4().hex[:10]}"
    _create_account(kind, admin_url, name)
    try:
        yield make_url(admin_url).set(username=name, password=PASSWORD, database=name)
    finally:
        _drop_account(kind, admin_url, name)


@pytest.fixture
def crmbot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Result]]:
    """Run `crmbot ARGS` with DATABASE_URL set to the given URL string, as from a shell."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(url: str, *args: str) -> Result:
        monkeypatch.setenv("DATABASE_URL", url)
        get_settings.cache_clear()
        return runner.invoke(app, list(args))

    yield run
    get_settings.cache_clear()


@pytest.fixture
def driver_passwords() -> Iterator[list[str | None]]:
    """The password each new connection hands the driver (the servers here may trust
    127.0.0.1, so a connection that works does not prove the password arrived)."""
    seen: list[str | None] = []

    def record(_dialect: object, _record: object, _cargs: object, cparams: dict[str, Any]) -> None:
        seen.append(cparams.get("password", cparams.get("passwd")))

    event.listen(Engine, "do_connect", record)
    yield seen
    event.remove(Engine, "do_connect", record)


def _bare_driver(url: URL) -> URL:
    """`postgresql://` or `mysql://`, the form most people write."""
    return url.set(drivername=url.get_backend_name())


def test_a_password_that_needs_quoting_works_and_is_never_shown(
    password_url: URL,
    crmbot: Callable[..., Result],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    driver_passwords: list[str | None],
) -> None:
    caplog.set_level(logging.DEBUG)
    customers = tmp_path / "customers.csv"
    customers.write_text("customer_id,name\nC1,Ann Example\nC2,Bob Example\n")
    for url in (password_url, _bare_driver(password_url)):
        as_typed = url.render_as_string(hide_password=False)
        assert quote(PASSWORD, safe="") in as_typed  # the URL carries the quoted password
        imported = crmbot(as_typed, "import", "customers", str(customers))
        assert not shows_password(imported.output), imported.output
        assert imported.exit_code == 0, imported.output
        assert "2 rows read" in imported.output
        upgraded = crmbot(as_typed, "db", "upgrade")
        assert upgraded.exit_code == 0, upgraded.output
        assert "database schema is up to date at revision" in upgraded.output

    # The demo empties the database, imports, trains and prints how to open the shell there.
    demo = crmbot(
        "sqlite://",
        "demo",
        "--customers",
        "40",
        "--no-shell",
        "--fresh",
        "--dir",
        str(tmp_path / "demo"),
        "--database-url",
        _bare_driver(password_url).render_as_string(hide_password=False),
    )
    assert not shows_password(demo.output), demo.output
    assert demo.exit_code == 0, demo.output
    assert "DATABASE_URL=" in demo.output

    engine = make_engine(password_url.render_as_string(hide_password=False))
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM customer")).scalar_one() == 40
    engine.dispose()
    assert driver_passwords and set(driver_passwords) == {PASSWORD}

    logged = caplog.text + "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert not shows_password(logged), logged


def test_a_wrong_password_is_refused_without_showing_it(
    password_url: URL, crmbot: Callable[..., Result], caplog: pytest.LogCaptureFixture
) -> None:
    wrong = password_url.set(password=PASSWORD[::-1])
    probe = make_engine(wrong)
    try:
        with probe.connect():
            pytest.skip("the server does not check passwords from here (trust)")
    except OperationalError:
        pass
    finally:
        probe.dispose()
    caplog.set_level(logging.DEBUG)
    for url in (_bare_driver(wrong), wrong):
        result = crmbot(url.render_as_string(hide_password=False), "db", "current")
        assert result.exit_code == 1
        assert "Traceback" not in result.output
        for form in (PASSWORD[::-1], quote(PASSWORD[::-1], safe="")):
            assert form not in result.output
            assert form not in caplog.text


def test_engines_and_migrations_take_url_objects_and_quoted_passwords(
    password_url: URL, driver_passwords: list[str | None]
) -> None:
    """Below the CLI: make_engine and connect take the URL object or its string."""
    for url in (password_url, password_url.render_as_string(hide_password=False)):
        engine = connect(url)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT 1")).scalar_one() == 1
        assert engine.url.password == PASSWORD
        engine.dispose()
    assert driver_passwords and set(driver_passwords) == {PASSWORD}


def test_sqlite_is_unaffected_also_under_a_path_with_a_percent(tmp_path: Path) -> None:
    folder = tmp_path / "100% crm"
    folder.mkdir()
    for url in ("sqlite://", f"sqlite:///{folder / 'crm.db'}"):
        engine = make_engine(url)
        upgrade(engine)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM customer")).scalar_one() == 0
        engine.dispose()
    assert (folder / "crm.db").exists()


def test_the_log_scrubber_knows_the_database_password() -> None:
    from crmbot.cli.common import secret_values
    from crmbot.core.config import Settings
    from crmbot.core.redact import LogScrubber

    url = URL.create("postgresql", "crm", PASSWORD, "db.example", 5432, "crm")
    settings = Settings(_env_file=None, database_url=url.render_as_string(hide_password=False))  # type: ignore[call-arg]
    scrubber = LogScrubber()
    scrubber.add_secrets(secret_values(settings))
    for form in PASSWORD_FORMS[:3]:
        assert not shows_password(scrubber.scrub(f"connection to db.example failed: {form}"))
