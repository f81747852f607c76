"""One training at a time, across threads, processes and machines sharing a database.

* PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock`) taken on a connection
  dedicated to the run and held until it ends. The server frees it the moment that
  connection goes away, so a crashed or killed holder never blocks the next run. A
  `TrainingLock` row beside it records who holds the lock and since when, for the
  "already running" message; it is informational only.
* SQLite and MariaDB: the `TrainingLock` row *is* the lock, with a lease (`expires_at`).
  The holder renews the lease from a background thread while it works; a holder that dies
  stops renewing, and once the lease has run out the next caller takes the lock over.
  Taking and taking over are single conditional statements (an UPDATE guarded by
  `expires_at <= now`, else an INSERT guarded by the primary key), so two callers racing
  for the lock cannot both win.

    with acquire_training_lock(engine, "scheduler@host", lease_seconds=3600):
        train(...)

raises `TrainingInProgress` (who holds it, since when) when another run holds the lock.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import delete, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from crmbot.core.clock import utc_now
from crmbot.core.db import DatabaseUnavailable, read_session, write_session
from crmbot.core.models import TrainingLock

log = logging.getLogger(__name__)

TRAINING_LOCK = "training"
# The advisory lock key on PostgreSQL: a fixed 63-bit number ("crmbottr" in ASCII), so every
# crmbot process sharing the database contends for the same lock.
ADVISORY_KEY = int.from_bytes(b"crmbottr", "big")
# Holders are told apart by a random suffix, so two holders with the same description
# (two threads of one process) never release or renew each other's lease.
_SUFFIX_SEPARATOR = " #"

Clock = Callable[[], datetime]


def default_holder(role: str = "crmbot") -> str:
    """ "<role>@<host>:<pid>": enough for an admin to find the process."""
    return f"{role}@{socket.gethostname()}:{os.getpid()}"


class TrainingInProgress(RuntimeError):
    """Another training run holds the lock."""

    def __init__(
        self, holder: str, since: datetime | None, expires_at: datetime | None = None
    ) -> None:
        self.holder = holder
        self.since = since
        self.expires_at = expires_at
        super().__init__(self.user_message)

    @property
    def user_message(self) -> str:
        since = f" since {self.since:%Y-%m-%d %H:%M} UTC" if self.since else ""
        return (
            f"A training run is already in progress (started by {self.holder}{since}); "
            "not starting a second one. Its result will be live when it finishes."
        )


@dataclass
class TrainingLease:
    """What `acquire_training_lock` yields: the lock held by this caller."""

    holder: str
    acquired_at: datetime
    expires_at: datetime | None  # None: held by the connection (PostgreSQL), not a lease
    backend: Literal["advisory", "lease"]
    engine: Engine = field(repr=False)
    lease_seconds: float = field(repr=False, default=3600)
    clock: Clock = field(repr=False, default=utc_now)
    key: str = field(repr=False, default="")
    lost: bool = False  # the lease ran out and someone else took the lock over

    def renew(self) -> bool:
        """Push the lease's end `lease_seconds` past now; False when it was lost."""
        if self.backend != "lease":
            return True
        expires = self.clock() + timedelta(seconds=self.lease_seconds)
        with write_session(self.engine) as session:
            renewed = _rowcount(
                session.execute(
                    update(TrainingLock)
                    .where(TrainingLock.name == TRAINING_LOCK, TrainingLock.holder == self.key)  # type: ignore[arg-type]
                    .values(expires_at=expires)
                )
            )
        if renewed:
            self.expires_at = expires
            return True
        if not self.lost:
            log.error(
                "the training lock's lease of %s ran out and was taken over; "
                "another run may now be training at the same time",
                self.holder,
            )
        self.lost = True
        return False


def as_clock(now: datetime | Clock | None) -> Clock:
    if now is None:
        return utc_now
    if isinstance(now, datetime):
        fixed = now.replace(tzinfo=None) if now.tzinfo is None else _naive_utc(now)
        return lambda: fixed
    return lambda: _naive_utc(now())


def _naive_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def _rowcount(result: object) -> int:
    # Rows an UPDATE matched (CursorResult.rowcount; the ORM's Result type hides it).
    return int(getattr(result, "rowcount", 0) or 0)


def _display(key: str) -> str:
    return key.rsplit(_SUFFIX_SEPARATOR, 1)[0]


def current_holder(
    engine: Engine, now: datetime | Clock | None = None
) -> TrainingInProgress | None:
    """Who holds the training lock (as the error `acquire` would raise), or None.

    On the lease backend a lease that has run out by `now` counts as free; on PostgreSQL
    the advisory lock itself is asked.
    """
    with read_session(engine) as session:
        row = session.get(TrainingLock, TRAINING_LOCK)
        if row is None:
            info = None
        else:
            info = TrainingInProgress(_display(row.holder), row.acquired_at, row.expires_at)
    if engine.dialect.name == "postgresql":
        with _connect(engine) as connection:
            held = connection.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND granted AND ((classid::bigint << 32) | objid::bigint) = :key"
                ),
                {"key": ADVISORY_KEY},
            ).scalar()
        if not held:
            return None
        return info or TrainingInProgress("another process", None)
    if info is None or (info.expires_at is not None and info.expires_at <= as_clock(now)()):
        return None
    return info


@contextmanager
def acquire_training_lock(
    engine: Engine,
    holder: str,
    lease_seconds: float = 3600,
    now: datetime | Clock | None = None,
    *,
    renew_every: float | None = None,
) -> Iterator[TrainingLease]:
    """Hold the training lock for the `with` block, or raise `TrainingInProgress`.

    `holder` says who is training (shown to whoever is refused). `now` is the clock (a
    callable, or a fixed naive-UTC datetime) used for `acquired_at` and the lease; the
    lease is renewed every `renew_every` seconds of real time (default a third of the
    lease) until the block ends.
    """
    clock = as_clock(now)
    key = f"{holder[:100]}{_SUFFIX_SEPARATOR}{uuid.uuid4().hex[:8]}"
    if engine.dialect.name == "postgresql":
        with _advisory_lock(engine, key, holder, lease_seconds, clock) as lease:
            yield lease
        return
    lease = _take_lease(engine, key, holder, lease_seconds, clock)
    stop = threading.Event()
    interval = renew_every if renew_every is not None else max(1.0, lease_seconds / 3)
    renewer = threading.Thread(
        target=_keep_renewing, args=(lease, stop, interval), name="training-lock-renew", daemon=True
    )
    renewer.start()
    try:
        yield lease
    finally:
        stop.set()
        renewer.join(timeout=10)
        _release_lease(engine, key)


def _keep_renewing(lease: TrainingLease, stop: threading.Event, interval: float) -> None:
    while not stop.wait(interval):
        try:
            if not lease.renew():
                return
        except Exception:  # a database hiccup: try again at the next tick
            log.warning("could not renew the training lock's lease", exc_info=True)


def _take_lease(
    engine: Engine, key: str, holder: str, lease_seconds: float, clock: Clock
) -> TrainingLease:
    now = clock()
    expires = now + timedelta(seconds=lease_seconds)
    with write_session(engine) as session:
        previous = session.get(TrainingLock, TRAINING_LOCK)
        stale = (previous.holder, previous.expires_at) if previous is not None else None
        taken = _rowcount(
            session.execute(
                update(TrainingLock)
                .where(TrainingLock.name == TRAINING_LOCK, TrainingLock.expires_at <= now)  # type: ignore[arg-type,operator]
                .values(holder=key, acquired_at=now, expires_at=expires)
            )
        )
    if taken:
        if stale is not None:
            log.warning(
                "took over the training lock from %s, whose lease ran out at %s "
                "(it stopped renewing: crashed or killed)",
                _display(stale[0]),
                stale[1],
            )
    else:
        try:
            with write_session(engine) as session:
                session.add(
                    TrainingLock(
                        name=TRAINING_LOCK, holder=key, acquired_at=now, expires_at=expires
                    )
                )
        except (IntegrityError, OperationalError) as exc:
            # The row exists and its lease runs (or a racer inserted it first; MariaDB may
            # report that race as a deadlock). Either way someone else holds the lock.
            busy = _holder_row(engine)
            if busy is None:  # released between our two statements: one more go
                if isinstance(exc, OperationalError) and "deadlock" not in str(exc).lower():
                    raise
                return _take_lease(engine, key, holder, lease_seconds, clock)
            raise busy from None
    log.info("training lock taken by %s until %s", holder, expires)
    return TrainingLease(
        holder=holder,
        acquired_at=now,
        expires_at=expires,
        backend="lease",
        engine=engine,
        lease_seconds=lease_seconds,
        clock=clock,
        key=key,
    )


def _holder_row(engine: Engine) -> TrainingInProgress | None:
    with read_session(engine) as session:
        row = session.get(TrainingLock, TRAINING_LOCK)
        if row is None:
            return None
        return TrainingInProgress(_display(row.holder), row.acquired_at, row.expires_at)


def _release_lease(engine: Engine, key: str) -> None:
    try:
        with write_session(engine) as session:
            session.execute(
                delete(TrainingLock).where(
                    TrainingLock.name == TRAINING_LOCK,  # type: ignore[arg-type]
                    TrainingLock.holder == key,  # type: ignore[arg-type]
                )
            )
    except Exception:
        # The lease runs out on its own; nobody waits longer than that.
        log.warning("could not release the training lock; it frees itself when the lease ends")


@contextmanager
def _advisory_lock(
    engine: Engine, key: str, holder: str, lease_seconds: float, clock: Clock
) -> Iterator[TrainingLease]:
    connection = _connect(engine)
    try:
        got = connection.execute(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_KEY}
        ).scalar()
        # End the implicit transaction: the session-level lock outlives it, and an idle
        # connection must not hold a snapshot open for the whole run.
        connection.commit()
    except Exception as exc:
        connection.invalidate()
        connection.close()
        if isinstance(exc, OperationalError):
            raise DatabaseUnavailable(str(exc.orig)) from exc
        raise
    if not got:
        connection.close()
        raise _holder_row(engine) or TrainingInProgress("another process", None)
    now = clock()
    try:
        _write_holder_row(engine, key, now, lease_seconds)
        yield TrainingLease(
            holder=holder,
            acquired_at=now,
            expires_at=None,
            backend="advisory",
            engine=engine,
            lease_seconds=lease_seconds,
            clock=clock,
            key=key,
        )
    finally:
        _unlock_advisory(connection)
        try:
            _release_lease(engine, key)
        except Exception:  # informational row only
            log.debug("training lock row not removed", exc_info=True)


def _connect(engine: Engine) -> Connection:
    """A connection of its own (the advisory lock lives on it). A server that cannot be
    reached is `DatabaseUnavailable`, as in every session, so the user is told so."""
    try:
        return engine.connect()
    except OperationalError as exc:
        raise DatabaseUnavailable(str(exc.orig)) from exc


def _write_holder_row(engine: Engine, key: str, now: datetime, lease_seconds: float) -> None:
    # Only the advisory lock's holder writes this row, so replace-by-delete is race-free.
    with write_session(engine) as session:
        session.execute(delete(TrainingLock).where(TrainingLock.name == TRAINING_LOCK))  # type: ignore[arg-type]
        session.add(
            TrainingLock(
                name=TRAINING_LOCK,
                holder=key,
                acquired_at=now,
                expires_at=now + timedelta(seconds=lease_seconds),
            )
        )


def _unlock_advisory(connection: Connection) -> None:
    try:
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_KEY})
        connection.commit()
    except Exception:
        # Closing the server connection frees a session lock for certain.
        log.warning("advisory unlock failed; dropping the connection to free the lock")
        connection.invalidate()
    finally:
        connection.close()
