"""Engine, sessions and schema migrations.

SQLite gets WAL (readers never wait for the writer), a busy timeout (writers queue rather
than fail with "database is locked") and foreign keys. Writers that must not interleave
open their transaction with BEGIN IMMEDIATE through `write_session`. A database file
crmbot creates gets `auto_vacuum=INCREMENTAL`, so the pages of pruned model runs can be
given back to the file system (`crmbot.core.storage`); one created before keeps its mode
until `crmbot db vacuum`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, create_engine

from crmbot.core import timeouts
from crmbot.core.timeouts import SQLITE_BUSY_TIMEOUT_MS

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

SQLITE_MMAP_BYTES = 2**31
# Set by `without_memory_map` for the connections checked out inside it.
_memory_map_off: ContextVar[bool] = ContextVar("sqlite_memory_map_off", default=False)


@contextmanager
def without_memory_map() -> Iterator[None]:
    """SQLite connections checked out inside read with read(), not through the memory map.

    For a training run, which reads every table once: mapped, each page it reads counts
    as this process's own memory (resident) for as long as the map lasts, about 1 GiB
    more at a million customers, where a page read() lives in the system's cache only.
    """
    token = _memory_map_off.set(True)
    try:
        yield
    finally:
        _memory_map_off.reset(token)


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached; users get a plain sentence, never a traceback."""

    user_message = "the CRM database is not reachable right now — please try again in a minute"


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def refresh_statistics(engine: Engine, *tables: str) -> None:
    """Refresh the query planner's statistics of `tables` after a bulk write.

    On PostgreSQL and MariaDB a plan is chosen from the table's statistics; right after a
    bulk import or a new run's scores, they describe the table as it was (autovacuum may
    be minutes away, or off), and a ranked read like `/crm at-risk` sorts every row instead
    of walking its index (100k scores: 190 ms instead of under 1 ms). SQLite plans without
    them: nothing to do.
    """
    if is_sqlite(engine) or not tables:
        return
    quote = engine.dialect.identifier_preparer.quote
    names = ", ".join(quote(table) for table in tables)
    statement = (
        f"ANALYZE {names}" if engine.dialect.name == "postgresql" else f"ANALYZE TABLE {names}"
    )
    with engine.begin() as connection:
        connection.exec_driver_sql(statement)


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """An engine for `url`, with the per-dialect settings crmbot relies on.

    The engine is built from the parsed URL object, never from its string: SQLAlchemy
    writes a URL's password as `***` when it turns it into one.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        connect_args = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        if parsed.database in (None, "", ":memory:"):
            # One shared connection, or every session would see its own empty database.
            kwargs.setdefault("poolclass", StaticPool)
        engine = create_engine(parsed, connect_args=connect_args, **kwargs)
        _configure_sqlite(engine, in_memory=parsed.database in (None, "", ":memory:"))
        timeouts.install(engine)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "mysql" and parsed.drivername == "mysql":
        parsed = parsed.set(drivername="mysql+pymysql")
    kwargs.setdefault("pool_pre_ping", True)
    engine = create_engine(parsed, **kwargs)
    timeouts.install(engine)
    return engine


def shown_url(url: str | URL) -> str:
    """`url` as it may be printed or logged: the password as `***`."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparseable DATABASE_URL)"


def url_secrets(url: str | URL) -> list[str]:
    """The forms in which `url`'s password could appear in a message: as it is and as
    written in the URL (quoted), for the log scrubber and error messages."""
    try:
        password = make_url(url).password
    except Exception:
        return []
    if not password:
        return []
    from urllib.parse import quote, quote_plus

    return sorted({str(password), quote(str(password), safe=""), quote_plus(str(password))})


def _configure_sqlite(engine: Engine, *, in_memory: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # First, so that every statement below waits for a writer instead of failing; for a
        # connection opened inside a command's deadline, no longer than the time left.
        left = timeouts.time_left()
        wait_ms = SQLITE_BUSY_TIMEOUT_MS if left is None else max(1, int(left * 1000))
        cursor.execute(f"PRAGMA busy_timeout={min(wait_ms, SQLITE_BUSY_TIMEOUT_MS)}")
        # auto_vacuum takes effect only while the file is empty (so before WAL, which writes
        # the header), or at a VACUUM; setting it on a database in use would take a lock.
        if cursor.execute("PRAGMA page_count").fetchone()[0] == 0:
            cursor.execute("PRAGMA auto_vacuum=INCREMENTAL")
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            # Pages read through the file's memory map instead of a read() each: a question
            # about 66,000 customers' orders took half the time (the OS keeps the pages
            # either way). SQLite caps it at its own maximum, 2 GB in most builds.
            cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
            record.info["mmap_size"] = SQLITE_MMAP_BYTES
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()
        # Interrupts a statement that runs past its command's deadline (`timeouts`).
        dbapi_connection.set_progress_handler(
            timeouts.sqlite_progress, timeouts.SQLITE_PROGRESS_STEPS
        )

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if "mmap_size" not in record.info:
            return  # in memory: nothing mapped
        wanted = 0 if _memory_map_off.get() else SQLITE_MMAP_BYTES
        if record.info["mmap_size"] != wanted:
            dbapi_connection.execute(f"PRAGMA mmap_size={wanted}")
            record.info["mmap_size"] = wanted

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """A session for reading; database outages become `DatabaseUnavailable`."""
    try:
        with Session(engine, expire_on_commit=False) as session:
            yield session
    except (OperationalError, DBAPIError) as exc:
        if _is_connection_problem(exc):
            raise DatabaseUnavailable(str(exc.orig)) from exc
        raise


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """A session whose transaction commits on success and rolls back on any error.

    On SQLite the transaction starts with BEGIN IMMEDIATE, so two writers queue on the busy
    timeout instead of one failing half-way with "database is locked".
    """
    bind: Any = engine
    if is_sqlite(engine):
        bind = engine.execution_options(sqlite_begin="IMMEDIATE")
    try:
        with Session(bind, expire_on_commit=False) as session, session.begin():
            yield session
    except (OperationalError, DBAPIError) as exc:
        if _is_connection_problem(exc):
            raise DatabaseUnavailable(str(exc.orig)) from exc
        raise


@contextmanager
def bulk_write_connection(
    engine: Engine, *, check_foreign_keys: bool = True
) -> Iterator[Connection]:
    """A Core connection in one write transaction, for bulk loads (imports, erasure).

    Commits on success, rolls back on any error; BEGIN IMMEDIATE on SQLite, as in
    `write_session`. `check_foreign_keys=False` switches off SQLite's per-row foreign-key
    checks for this one transaction (they cost as much as the insert itself); only for
    callers that looked up every referenced row inside the same transaction, which holds
    SQLite's write lock, so no reference can go missing in between.
    """
    sqlite = is_sqlite(engine)
    relax = sqlite and not check_foreign_keys
    try:
        with engine.connect() as connection:
            if sqlite:
                connection.execution_options(sqlite_begin="IMMEDIATE")
            if relax:
                # The pragma is a no-op inside a transaction, so it goes first, on the driver.
                connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
            try:
                with connection.begin():
                    yield connection
            finally:
                if relax:
                    connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]
    except (OperationalError, DBAPIError) as exc:
        if _is_connection_problem(exc):
            raise DatabaseUnavailable(str(exc.orig)) from exc
        raise


def _is_connection_problem(exc: DBAPIError) -> bool:
    if exc.connection_invalidated:
        return True
    text = str(exc.orig).lower()
    return any(
        phrase in text
        for phrase in (
            "could not connect",
            "connection refused",
            "server closed the connection",
            "can't connect",
            "lost connection",
            "unable to open database file",
            "terminating connection",
            "connection is closed",
            "connection timed out",
        )
    )


def alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # configparser reads `%` as interpolation: a quoted password or a path with `%` in it
    # must be written as `%%` (get_main_option gives back the URL as it was).
    url = engine.url.render_as_string(hide_password=False)
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` (default: the newest). Safe to run on every start."""
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def connect(url: str | URL, *, migrate: bool = True) -> Engine:
    """The engine for `url` with its schema brought up to date."""
    engine = make_engine(url)
    if migrate:
        upgrade(engine)
    return engine
