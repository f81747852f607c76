"""Statement timeouts: the database work of one command ends when its time is up.

    with statement_deadline(settings.statement_timeout_seconds):
        reply = command.handler(request)      # StatementTimeout once the time is up

A deadline is set for the current thread (a context variable); every engine made by
`crmbot.core.db.make_engine` then limits each statement to the time that is left, in the
database's own way, so a slow or locked database ends the statement instead of holding a
listener thread:

* PostgreSQL: `SET LOCAL statement_timeout` before each statement (it ends with the
  transaction, so a pooled connection never keeps it);
* MariaDB: the statement runs as `SET STATEMENT max_statement_time=… FOR …` (MySQL, which
  has no such clause, only gets the check between statements);
* SQLite: a progress handler, installed on every connection, interrupts a statement past
  the deadline, and the busy timeout is cut to the time left, so waiting for a writer's
  lock ends in time too.

A statement that runs out of time, or one that would start after the deadline, raises
`StatementTimeout`: the dispatcher answers "that took too long". Outside a deadline
nothing changes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

_DEADLINE: ContextVar[float | None] = ContextVar("crmbot_statement_deadline", default=None)
# SQLite calls the progress handler every this many virtual machine instructions (well
# under a millisecond of work; a check costs a fraction of a microsecond).
SQLITE_PROGRESS_STEPS = 10_000
# How long a SQLite statement waits for another connection's write lock, outside a deadline.
SQLITE_BUSY_TIMEOUT_MS = 30_000
# A database's own cancellation, told apart from other errors: PostgreSQL's SQLSTATE
# query_canceled, MariaDB's "max_statement_time exceeded", SQLite's interrupt.
_PG_QUERY_CANCELED = "57014"
_MARIADB_INTERRUPTED = 1969


class StatementTimeout(RuntimeError):
    """A statement ran past the command's deadline (or would have started after it)."""

    user_message = (
        "That took too long — the database did not answer in time, so I stopped. "
        "Try again in a minute, or ask for something narrower."
    )


@contextmanager
def statement_deadline(seconds: float | None) -> Iterator[None]:
    """Statements run inside the block end `seconds` from now at the latest (None or 0: no
    limit). Nested deadlines keep the earlier one."""
    if not seconds or seconds <= 0:
        yield
        return
    deadline = time.monotonic() + seconds
    outer = _DEADLINE.get()
    token = _DEADLINE.set(deadline if outer is None else min(outer, deadline))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def time_left() -> float | None:
    """Seconds until the current deadline (negative once past it); None without one."""
    deadline = _DEADLINE.get()
    return None if deadline is None else deadline - time.monotonic()


def sqlite_progress() -> int:
    """SQLite's progress handler: non-zero interrupts the statement that is running."""
    deadline = _DEADLINE.get()
    return 1 if deadline is not None and time.monotonic() > deadline else 0


def install(engine: Engine) -> None:
    """Limit every statement `engine` runs inside a `statement_deadline`."""
    dialect = engine.dialect.name
    sqlite = dialect == "sqlite"

    @event.listens_for(engine, "before_cursor_execute", retval=True)
    def _before(
        conn: Any,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> tuple[str, Any]:
        left = time_left()
        if left is None:
            return statement, parameters
        if left <= 0:
            raise StatementTimeout("the deadline passed before the statement started")
        milliseconds = max(1, int(left * 1000))
        if dialect == "postgresql":
            # On the driver's connection, not `cursor`, which may be a server-side one.
            conn.connection.driver_connection.execute(
                f"SET LOCAL statement_timeout = {milliseconds}"
            )
        elif dialect in ("mysql", "mariadb"):
            if getattr(conn.dialect, "is_mariadb", False) and not executemany:
                statement = f"SET STATEMENT max_statement_time={left:.3f} FOR {statement}"
        elif sqlite and milliseconds < _sqlite_busy_ms():
            driver = conn.connection.driver_connection
            driver.execute(f"PRAGMA busy_timeout={milliseconds}")
            conn.info["crmbot_busy_cut"] = True
        return statement, parameters

    if sqlite:

        @event.listens_for(engine, "after_cursor_execute")
        def _after(conn: Any, *_args: Any) -> None:
            _restore_busy_timeout(conn)

    @event.listens_for(engine, "handle_error")
    def _on_error(context: Any) -> None:
        if sqlite and context.connection is not None:
            _restore_busy_timeout(context.connection)
        left = time_left()
        if left is None:
            return
        original = context.original_exception
        if left <= 0.05 or _is_cancellation(original):
            raise StatementTimeout(str(original)) from original


def _sqlite_busy_ms() -> int:
    return SQLITE_BUSY_TIMEOUT_MS


def _restore_busy_timeout(conn: Any) -> None:
    if conn.info.pop("crmbot_busy_cut", False):
        # A closed connection (the error that brought us here) is not handed out again.
        with contextlib.suppress(Exception):
            conn.connection.driver_connection.execute(f"PRAGMA busy_timeout={_sqlite_busy_ms()}")


def _is_cancellation(exc: BaseException) -> bool:
    if getattr(exc, "sqlstate", None) == _PG_QUERY_CANCELED:
        return True
    args = getattr(exc, "args", ())
    if args and args[0] == _MARIADB_INTERRUPTED:
        return True
    return "interrupted" in str(exc).lower()
