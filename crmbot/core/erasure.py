"""Erasure of one customer's personal data ("right to be forgotten").

What goes, what stays, and why:
* The customer row stays, so orders keep their owner and totals, counts and segment sizes
  still add up; its name, email, phone and company are emptied and its `customer_id` is
  replaced by a pseudonym, `erased-` and 16 hex digits of SHA-256 of the old id. The
  pseudonym is the same every time for the same id, so a later import that brings the
  customer back from an old export is recognised and refused (see `crmbot.ingest`) instead
  of quietly restoring the data. `erased_at` records when.
* Ticket subjects and bodies and survey comments go (free text holds names, addresses,
  complaints); dates, channels and scores stay for the satisfaction aggregates.
* Other customers' tickets and survey comments that mention the person (their name, email,
  phone or id, as people write them) keep their text with each mention replaced by the
  pseudonym.
* Orders, order lines and referrals stay: amounts and dates, no personal data.
* Score rows of every model run go; training already leaves erased customers out.
* Touches, follow-ups, follows, snoozes and alert records about the customer go whole
  (`crmbot.actions`); other customers' touch and follow-up notes that mention the person
  are rewritten like their tickets.
* Audit and digest logs keep their rows, with the id, name, email and phone replaced by the
  pseudonym wherever they appear; ids inside model-run parameters and metrics are replaced
  too. An audit row about the person (its customer ids name them) also loses what was typed
  to find them: the parts of the name, misspelt ones included, and the id in any case.
* The erasure itself is audited, naming only the pseudonym.

All of it is one transaction, which no import of people can interleave with (see
`lock_out_imports`). Afterwards the database is asked to let go of the old copies: on
SQLite the rows were rewritten with `secure_delete` (freed space is zeroed) and the WAL
is checkpointed and truncated, so neither the file nor the WAL holds the old values; on
PostgreSQL the touched tables are vacuumed, which removes the old row versions; MariaDB
purges them itself. What a server still holds after that (its WAL or binlog, backups) is
in docs/operations.md.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, cast

from rapidfuzz import fuzz
from sqlalchemy import Table, delete, func, or_, select, update
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from crmbot.core import name_index, run_summary
from crmbot.core.db import bulk_write_connection
from crmbot.core.models import (
    AlertDelivery,
    AuditLog,
    Customer,
    CustomerScore,
    DigestLog,
    ErasureLock,
    Feedback,
    Follow,
    FollowUp,
    ModelRun,
    Snooze,
    Ticket,
    Touch,
)
from crmbot.core.privacy import mask_pii

log = logging.getLogger(__name__)


def _table(model: Any) -> Table:
    return cast(Table, model.__table__)


CUSTOMERS = _table(Customer)
TICKETS = _table(Ticket)
FEEDBACK = _table(Feedback)
SCORES = _table(CustomerScore)
AUDIT = _table(AuditLog)
DIGESTS = _table(DigestLog)
RUNS = _table(ModelRun)
GATE = _table(ErasureLock)
TOUCHES = _table(Touch)
FOLLOW_UPS = _table(FollowUp)
# What was done about the customer (`crmbot.actions`): their rows go whole.
ACTION_TABLES = (TOUCHES, FOLLOW_UPS, _table(Follow), _table(Snooze), _table(AlertDelivery))

PSEUDONYM_PREFIX = "erased-"
# Shorter texts (a first name like "Al") would match inside unrelated words.
MIN_FREE_TEXT_MATCH = 4
# A word typed in an audit row about the person this close to a part of their name
# (rapidfuzz's ratio, 0-100) is that part misspelt: "Pryia" for "Priya", "Rossi" for "Rosi".
TYPO_SIMILARITY = 80
# Phone numbers: digits with up to three of these between any two (spaces, non-breaking
# ones too, dots, dashes, slashes, parentheses), as `crmbot.core.privacy` reads them.
_PHONE_SEPARATORS = r"[\s().,/_\-\u2010-\u2015]{0,3}"
MIN_PHONE_DIGITS = 7
_WORD = re.compile(r"[^\W\d_]{4,}")
# Tables whose rows the erasure rewrites, vacuumed afterwards on PostgreSQL. The customer
# table's indexes hold the name and email, so its index entries are cleaned up however few
# rows died; the others' indexes hold no personal data. (Score rows hold none either: their
# table, the largest by far, is left to autovacuum.)
VACUUM_WITH_INDEXES = ("customer",)
VACUUM_TABLES = (
    "ticket",
    "feedback",
    "audit_log",
    "digest_log",
    "model_run",
    "touch",
    "follow_up",
)
# How long the vacuum may wait for a lock (another vacuum, a migration) before giving up.
VACUUM_LOCK_TIMEOUT = "5s"


class CustomerNotFound(LookupError):
    def __init__(self, customer_id: str) -> None:
        super().__init__(f"there is no customer {customer_id!r}")


@dataclass(frozen=True)
class ErasureResult:
    pseudonym: str
    already_erased: bool = False
    tickets: int = 0
    feedback: int = 0
    scores: int = 0
    audit_rows: int = 0
    digest_rows: int = 0
    model_runs: int = 0
    mentions: int = 0  # other customers' tickets and survey comments that named them
    # Whether the database let go of the old copies afterwards (SQLite: the WAL emptied;
    # PostgreSQL: the touched tables vacuumed); None where nothing is run (MariaDB).
    copies_released: bool | None = None
    # Touches, follow-ups, follows, snoozes and alert records about them, deleted; and
    # other customers' touch and follow-up notes that mentioned them, rewritten.
    actions: int = 0
    action_notes: int = 0

    def summary(self) -> str:
        if self.already_erased:
            text = f"{self.pseudonym} was already erased; nothing left to remove"
        else:
            text = (
                f"erased: customer is now {self.pseudonym}; emptied {self.tickets} tickets, "
                f"{self.feedback} survey comments; removed {self.scores} score rows; rewrote "
                f"{self.audit_rows} audit rows, {self.digest_rows} digest rows and "
                f"{self.model_runs} model runs that named them, and {self.mentions} other "
                "customers' tickets and survey comments that mentioned them"
            )
            if self.actions or self.action_notes:
                text += (
                    f"; removed {self.actions} touches, follow-ups, follows, snoozes and "
                    f"alert records about them, and rewrote {self.action_notes} other "
                    "customers' touch and follow-up notes that mentioned them"
                )
        if self.copies_released is False:
            text += (
                "; the database could not release the old copies yet (another connection "
                "was busy): run the erasure again later to finish"
            )
        return text


def pseudonym(customer_id: str) -> str:
    """The id an erased customer is known by; the same for the same original id."""
    return PSEUDONYM_PREFIX + hashlib.sha256(customer_id.encode("utf-8")).hexdigest()[:16]


# --- The lock between erasure and imports -------------------------------------------------
#
# An import checks that a customer was not erased and then writes their rows; an erasure
# that commits in between leaves the pseudonymised row *and* a new live one with the old
# name, email and phone (an upsert keyed by the old id finds nothing to update), or ticket
# text attached to the erased row. So an erasure and an import of people must not overlap.
#
# The mechanism is one row, `erasure_lock` (id 1), that both lock inside their own
# transaction, before reading anything: an erasure exclusively, an import of people shared
# (`lock_out_erasure`). It makes no import wait for another; an erasure waits for the
# imports running (and then sees what they wrote), and an import waits for a running
# erasure (and then sees the pseudonym, and refuses the person). It is a row lock, so it is
# the same on PostgreSQL (FOR SHARE / FOR UPDATE; in its default READ COMMITTED every later
# statement sees what committed before the lock was granted) and on MariaDB (the same row
# locks; the snapshot of its default REPEATABLE READ is taken by the first plain read, which
# comes after the lock), is released by commit or rollback, also when a process dies, and
# needs no per-person row that may not exist yet. Taken first, it cannot join a deadlock. The row is
# created when missing by an idempotent insert in the same transaction (so an emptied table
# heals itself). SQLite needs none of this: every writer holds the database's write lock
# from BEGIN IMMEDIATE to commit, so the two never overlap there.
#
# The price is coarse: one erasure at a time, and while one runs, imports of customers,
# tickets and surveys wait (erasures are rare and take a moment). On MariaDB a wait ends
# after innodb_lock_wait_timeout (50 s by default) with an error and nothing changed.

GATE_ROW = 1


def lock_out_erasure(connection: Connection) -> None:
    """Take the erasure lock shared: no erasure runs until this transaction ends.

    For imports that write customers or their words (see the comment above); call it as
    the transaction's first statement."""
    _take_gate(connection, exclusive=False)


def lock_out_imports(connection: Connection) -> None:
    """Take the erasure lock exclusively: no import of people runs until this transaction
    ends, and every one that ran has committed (or rolled back)."""
    _take_gate(connection, exclusive=True)


def _take_gate(connection: Connection, *, exclusive: bool) -> None:
    dialect = connection.dialect.name
    if dialect == "sqlite":
        return  # BEGIN IMMEDIATE already serialises writers
    # Create the row if it is missing; both forms leave an existing row as it is.
    # An erasure's form locks the row exclusively at once (an upsert that updates it), so
    # two erasures queue instead of both taking it shared and then deadlocking on the
    # upgrade to exclusive (MariaDB's INSERT IGNORE takes a shared lock on a duplicate).
    statement: Any
    if dialect == "postgresql":
        insert = postgresql.insert(GATE).values(id=GATE_ROW)
        statement = (
            insert.on_conflict_do_update(index_elements=["id"], set_={"id": insert.excluded.id})
            if exclusive
            else insert.on_conflict_do_nothing(index_elements=["id"])
        )
    else:
        insert_mysql = mysql.insert(GATE).values(id=GATE_ROW)
        statement = (
            insert_mysql.on_duplicate_key_update(id=insert_mysql.inserted.id)
            if exclusive
            else insert_mysql.prefix_with("IGNORE")
        )
    connection.execute(statement)
    locked = connection.execute(
        select(GATE.c.id).where(GATE.c.id == GATE_ROW).with_for_update(read=not exclusive)
    ).first()
    assert locked is not None  # inserted above, or there already


# --- How the person is written ------------------------------------------------------------


@dataclass(frozen=True)
class _Mentions:
    """What names the person in free text, and what replaces it (the pseudonym)."""

    alias: str
    # The id, the whole name (any case and spacing, also "Surname, Given"), the email (any
    # case) and the phone (any grouping): replaced in every log and in other customers' text.
    exact: list[re.Pattern[str]]
    # Also, in audit rows about the person: the id in any case, the email's local part and
    # each part of the name; and name parts misspelt (`typo_words`).
    typed: list[re.Pattern[str]]
    typo_words: list[str]
    # Lower-case fragments every exact mention contains, for a LIKE that finds the rows to
    # look at; None when some mention has none (a name without ASCII letters): scan them all.
    fragments: list[str] | None

    def scrub(self, value: Any) -> Any:
        return _scrub(value, self._exact)

    def scrub_typed(self, value: Any) -> Any:
        return _scrub(value, self._typed)

    def _exact(self, text: str) -> str:
        return self._outside_alias(text, self.exact)

    def _typed(self, text: str) -> str:
        text = self._outside_alias(text, [*self.exact, *self.typed])
        if self.typo_words:
            text = self._outside_alias(text, [_WORD], self._typo)
        # "erased-… erased-…" (a given name and a surname) reads as one mention.
        alias = re.escape(self.alias)
        return re.sub(rf"{alias}(?:[\s,.]+{alias})+", self.alias, text)

    def _outside_alias(
        self,
        text: str,
        patterns: Sequence[re.Pattern[str]],
        replacement: Callable[[re.Match[str]], str] | None = None,
    ) -> str:
        """Each pattern replaced, never inside a pseudonym already written (its hex digits
        could read as part of a phone number)."""
        for pattern in patterns:
            pieces = text.split(self.alias)
            text = self.alias.join(pattern.sub(replacement or self.alias, p) for p in pieces)
        return text

    def _typo(self, match: re.Match[str]) -> str:
        word = match.group(0).lower()
        if any(fuzz.ratio(word, part) >= TYPO_SIMILARITY for part in self.typo_words):
            return self.alias
        return match.group(0)


def _mentions(
    customer_id: str, alias: str, name: str | None, email: str | None, phone: str | None
) -> _Mentions:
    bounded_id = rf"(?<![\w-]){re.escape(customer_id)}(?![\w-])"
    # An id as long as a name is found in any case ("p-ann" for "P-ANN"); a short one
    # ("C1") only as written, or it would match unrelated words.
    long_id = len(customer_id) >= MIN_FREE_TEXT_MATCH
    exact = [re.compile(bounded_id, re.IGNORECASE if long_id else 0)]
    typed = [re.compile(bounded_id, re.IGNORECASE)]
    fragments: list[str] | None = [customer_id.lower()] if customer_id.isascii() else None
    typo_words: list[str] = []

    def need(fragment: str | None) -> None:
        nonlocal fragments
        fragments = None if fragment is None or fragments is None else [*fragments, fragment]

    parts = (name or "").split()
    if parts and len(" ".join(parts)) >= MIN_FREE_TEXT_MATCH:
        forms = [parts] + ([[parts[-1] + ","] + parts[:-1], parts[::-1]] if len(parts) > 1 else [])
        for form in forms:
            written = r"\s+".join(re.escape(part) for part in form)
            exact.append(re.compile(rf"(?<!\w){written}(?!\w)", re.IGNORECASE))
        need(_ascii_fragment(parts))
        for part in parts:
            if len(part) >= 2:
                typed.append(re.compile(rf"(?<!\w){re.escape(part)}(?!\w)", re.IGNORECASE))
            if len(part) >= MIN_FREE_TEXT_MATCH:
                typo_words.append(part.lower())
    email = (email or "").strip()
    if len(email) >= MIN_FREE_TEXT_MATCH:
        exact.append(re.compile(rf"(?<![\w.+-]){re.escape(email)}(?![\w-]|\.\w)", re.IGNORECASE))
        local = email.split("@")[0]
        need(_ascii_fragment([local]) or _ascii_fragment([email]))
        if len(local) >= 2:
            typed.append(re.compile(rf"(?<![\w.+-]){re.escape(local)}(?![\w+-])", re.IGNORECASE))
    digits = re.sub(r"\D", "", phone or "")
    if len(digits) >= MIN_PHONE_DIGITS:
        exact.append(_phone_pattern(digits))
        # Digits in order with anything between them: what any way of writing it contains.
        need("%".join(digits[-MIN_PHONE_DIGITS:]))
    return _Mentions(alias, exact, typed, typo_words, fragments)


def _phone_pattern(digits: str) -> re.Pattern[str]:
    """The phone number however it is grouped, with or without its country code (or with
    a trunk 0 instead): `+1 555 010 0199`, `(555) 010-0199`, `5550100199`."""
    forms = {digits}
    for cut in range(1, 4):
        rest = digits[cut:]
        if len(rest) >= MIN_PHONE_DIGITS:
            forms |= {rest, "0" + rest}
    alternatives = "|".join(
        _PHONE_SEPARATORS.join(form) for form in sorted(forms, key=len, reverse=True)
    )
    return re.compile(rf"(?<!\d)(?:\+\s?)?\(?(?:{alternatives})(?!\d)")


def _ascii_fragment(parts: Iterable[str]) -> str | None:
    """The longest run of ASCII letters and digits (3 or more) in `parts`, lower case."""
    runs = [run for part in parts for run in re.findall(r"[A-Za-z0-9]{3,}", part)]
    return max(runs, key=len).lower() if runs else None


def _scrub(value: Any, replace_in: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return replace_in(value)
    if isinstance(value, list):
        return [_scrub(item, replace_in) for item in value]
    if isinstance(value, dict):
        return {_scrub(key, replace_in): _scrub(item, replace_in) for key, item in value.items()}
    return value


# --- The erasure ----------------------------------------------------------------------------


def erase_customer(
    engine: Engine,
    customer_id: str,
    *,
    requested_by: str,
    transport: str = "cli",
    at: datetime | None = None,
) -> ErasureResult:
    """Erase the personal data of customer `customer_id`, in one transaction, audited."""
    moment = at or datetime.now(UTC).replace(tzinfo=None)
    customer_id = customer_id.strip()
    alias = pseudonym(customer_id)
    with bulk_write_connection(engine) as connection:
        lock_out_imports(connection)
        if connection.dialect.name == "sqlite":
            # What the erasure frees is overwritten with zeros (also set for every connection
            # by `crmbot.core.db`; some SQLite builds default to it, others not).
            connection.exec_driver_sql("PRAGMA secure_delete=ON")
        result = _erase(connection, customer_id, alias, requested_by, transport, moment)
    return replace(result, copies_released=release_old_copies(engine))


def _erase(
    connection: Connection,
    customer_id: str,
    alias: str,
    requested_by: str,
    transport: str,
    moment: datetime,
) -> ErasureResult:
    customer = CUSTOMERS.c
    row = connection.execute(
        select(
            customer.id,
            customer.customer_id,
            customer.name,
            customer.email,
            customer.phone,
            customer.erased_at,
        ).where(or_(customer.customer_id == customer_id, customer.customer_id == alias))
    ).first()
    if row is None:
        raise CustomerNotFound(customer_id)
    if row.erased_at is not None:
        _audit(connection, requested_by, transport, row.customer_id, moment, "already erased")
        return ErasureResult(pseudonym=row.customer_id, already_erased=True)
    mentions = _mentions(row.customer_id, alias, row.name, row.email, row.phone)
    run_summary.forget(connection, [row.id])  # before their scores and region go
    connection.execute(
        update(CUSTOMERS)
        .where(customer.id == row.id)
        .values(
            customer_id=alias,
            name=None,
            email=None,
            phone=None,
            company=None,
            erased_at=moment,
        )
    )
    name_index.refresh(connection, [row.id])  # their words leave the name index
    tickets = connection.execute(
        update(TICKETS).where(TICKETS.c.customer_pk == row.id).values(subject=None, body=None)
    ).rowcount
    feedback = connection.execute(
        update(FEEDBACK).where(FEEDBACK.c.customer_pk == row.id).values(comment=None)
    ).rowcount
    scores = connection.execute(delete(SCORES).where(SCORES.c.customer_pk == row.id)).rowcount
    others = _rewrite(
        connection, TICKETS, ["subject", "body"], mentions, near=TICKETS.c.customer_pk != row.id
    ) + _rewrite(connection, FEEDBACK, ["comment"], mentions, near=FEEDBACK.c.customer_pk != row.id)
    audit_rows = _rewrite(
        connection,
        AUDIT,
        ["customer_ids", "arguments", "detail"],
        mentions,
        typed=["arguments", "detail"],
    )
    digest_rows = _rewrite(connection, DIGESTS, ["customer_ids", "summary", "error"], mentions)
    model_runs = _rewrite(connection, RUNS, ["params", "metrics"], mentions)
    actions = sum(
        connection.execute(delete(table).where(table.c.customer_pk == row.id)).rowcount
        for table in ACTION_TABLES
    )
    action_notes = _rewrite(
        connection, TOUCHES, ["note"], mentions, near=TOUCHES.c.customer_pk != row.id
    ) + _rewrite(
        connection, FOLLOW_UPS, ["note"], mentions, near=FOLLOW_UPS.c.customer_pk != row.id
    )
    result = ErasureResult(
        alias,
        False,
        tickets,
        feedback,
        scores,
        audit_rows,
        digest_rows,
        model_runs,
        others,
        actions=actions,
        action_notes=action_notes,
    )
    _audit(connection, requested_by, transport, alias, moment, result.summary())
    return result


def _rewrite(
    connection: Connection,
    table: Table,
    columns: list[str],
    mentions: _Mentions,
    *,
    near: Any = None,
    typed: Sequence[str] = (),
) -> int:
    """Replace the mentions of the person in `columns` of `table`; the rows changed.

    Logs (no `near`) are read whole: they hold JSON whose text form differs between
    databases, so no LIKE finds every occurrence; erasure is rare and the logs modest.
    Customers' free text (`near`: which rows) can be large: only rows a LIKE on the
    mentions' fragments finds are read. In rows that name the person after the exact
    replacement (their pseudonym is in it), the `typed` columns also lose what was typed
    to find them.
    """
    key = table.c.id
    query = select(key, *(table.c[name] for name in columns))
    if near is not None:
        query = query.where(near)
        if mentions.fragments is not None:
            found = [
                func.lower(table.c[name]).like(f"%{_like_escape(fragment)}%", escape="\\")
                for name in columns
                for fragment in mentions.fragments
            ]
            query = query.where(or_(*found))
    changed = 0
    for row in connection.execute(query).all():
        values = dict(zip(columns, row[1:], strict=True))
        scrubbed = {name: mentions.scrub(value) for name, value in values.items()}
        if typed and mentions.alias in repr(scrubbed):
            scrubbed |= {name: mentions.scrub_typed(scrubbed[name]) for name in typed}
        if scrubbed != values:
            fitted = {name: _fit(table, name, value) for name, value in scrubbed.items()}
            connection.execute(update(table).where(key == row[0]).values(**fitted))
            changed += 1
    return changed


def _like_escape(fragment: str) -> str:
    # The phone's fragment keeps its % (digits in order, anything between).
    return fragment.replace("\\", "\\\\").replace("_", "\\_")


def _fit(table: Table, name: str, value: Any) -> Any:
    """A text cut to its column's length (a pseudonym is longer than most names)."""
    length = getattr(table.c[name].type, "length", None)
    if isinstance(value, str) and length is not None:
        return value[:length]
    return value


def _audit(
    connection: Connection,
    user_id: str,
    transport: str,
    alias: str,
    moment: datetime,
    detail: str,
) -> None:
    # Inside the erasure's own transaction: the audit row exists if and only if it happened.
    connection.execute(
        AUDIT.insert().values(
            at=moment,
            transport=transport[:20],
            user_id=user_id[:64],
            channel_id=None,
            command="erase",
            arguments=alias,
            customer_ids=[alias],
            outcome="ok",
            detail=mask_pii(detail)[:500],
        )
    )


# --- Letting go of the old copies -----------------------------------------------------------


def release_old_copies(engine: Engine) -> bool | None:
    """After an erasure committed, have the database drop the old versions of the rows.

    SQLite: the erasure wrote its pages to the WAL and zeroed what it freed
    (`secure_delete`), but the main file keeps the old pages, and the WAL every earlier
    version, until a checkpoint. `wal_checkpoint(TRUNCATE)` copies the new pages over the
    old ones and empties the WAL; it waits (the busy timeout) for readers still on an older
    snapshot, so it works while the bot serves. False when a reader kept it from finishing
    (the next erasure, or the same one again, finishes it).
    PostgreSQL: VACUUM of the touched tables (with their indexes, however few rows died)
    removes the old row versions from the tables' pages. It cannot run inside the erasure's
    transaction, and it cannot remove versions a transaction older than the erasure may
    still read. False when it did not run.
    MariaDB: InnoDB's purge removes the old versions within seconds by itself; None.
    """
    dialect = engine.dialect.name
    try:
        if dialect == "sqlite":
            with engine.connect() as connection:
                driver: Any = connection.connection.driver_connection
                busy, _frames, _copied = driver.execute(
                    "PRAGMA wal_checkpoint(TRUNCATE)"
                ).fetchone()
            return busy == 0
        if dialect == "postgresql":
            quote = engine.dialect.identifier_preparer.quote
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.exec_driver_sql(f"SET lock_timeout = '{VACUUM_LOCK_TIMEOUT}'")
                try:
                    connection.exec_driver_sql(
                        "VACUUM (INDEX_CLEANUP ON) " + ", ".join(map(quote, VACUUM_WITH_INDEXES))
                    )
                    connection.exec_driver_sql("VACUUM " + ", ".join(map(quote, VACUUM_TABLES)))
                finally:
                    connection.exec_driver_sql("RESET lock_timeout")
            return True
    except DBAPIError as exc:
        log.warning("after the erasure, the old copies were not released yet: %s", exc.orig)
        return False
    return None
