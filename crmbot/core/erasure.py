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
* Orders, order lines and referrals stay: amounts and dates, no personal data.
* Score rows of every model run go; training already leaves erased customers out.
* Audit and digest logs keep their rows, with the id (and the name, email and phone where
  they appear in free text) replaced by the pseudonym; ids inside model-run parameters and
  metrics are replaced too.
* The erasure itself is audited, naming only the pseudonym.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, delete, or_, select, update
from sqlalchemy.engine import Connection, Engine

from crmbot.core.db import bulk_write_connection
from crmbot.core.models import (
    AuditLog,
    Customer,
    CustomerScore,
    DigestLog,
    Feedback,
    ModelRun,
    Ticket,
)
from crmbot.core.privacy import mask_pii


def _table(model: Any) -> Table:
    return cast(Table, model.__table__)


CUSTOMERS = _table(Customer)
TICKETS = _table(Ticket)
FEEDBACK = _table(Feedback)
SCORES = _table(CustomerScore)
AUDIT = _table(AuditLog)

PSEUDONYM_PREFIX = "erased-"
# Shorter texts (a first name like "Al") would match inside unrelated words.
MIN_FREE_TEXT_MATCH = 4


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

    def summary(self) -> str:
        if self.already_erased:
            return f"{self.pseudonym} was already erased; nothing left to remove"
        return (
            f"erased: customer is now {self.pseudonym}; emptied {self.tickets} tickets, "
            f"{self.feedback} survey comments; removed {self.scores} score rows; rewrote "
            f"{self.audit_rows} audit rows, {self.digest_rows} digest rows and "
            f"{self.model_runs} model runs that named them"
        )


def pseudonym(customer_id: str) -> str:
    """The id an erased customer is known by; the same for the same original id."""
    return PSEUDONYM_PREFIX + hashlib.sha256(customer_id.encode("utf-8")).hexdigest()[:16]


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
        replacements = _replacements(customer_id, alias, row.name, row.email, row.phone)
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
        tickets = connection.execute(
            update(TICKETS).where(TICKETS.c.customer_pk == row.id).values(subject=None, body=None)
        ).rowcount
        feedback = connection.execute(
            update(FEEDBACK).where(FEEDBACK.c.customer_pk == row.id).values(comment=None)
        ).rowcount
        scores = connection.execute(delete(SCORES).where(SCORES.c.customer_pk == row.id)).rowcount
        audit_rows = _rewrite(
            connection, AuditLog, ["customer_ids", "arguments", "detail"], replacements
        )
        digest_rows = _rewrite(
            connection, DigestLog, ["customer_ids", "summary", "error"], replacements
        )
        model_runs = _rewrite(connection, ModelRun, ["params", "metrics"], replacements)
        result = ErasureResult(
            alias, False, tickets, feedback, scores, audit_rows, digest_rows, model_runs
        )
        _audit(connection, requested_by, transport, alias, moment, result.summary())
    return result


def _replacements(
    customer_id: str, alias: str, *texts: str | None
) -> list[tuple[re.Pattern[str], str]]:
    """Patterns for the id and the personal texts, each replaced by the pseudonym."""
    patterns = [(re.compile(rf"(?<![\w-]){re.escape(customer_id)}(?![\w-])"), alias)]
    for text in texts:
        if text and len(text.strip()) >= MIN_FREE_TEXT_MATCH:
            patterns.append((re.compile(re.escape(text.strip()), re.IGNORECASE), alias))
    return patterns


def _scrub(value: Any, replacements: list[tuple[re.Pattern[str], str]]) -> Any:
    if isinstance(value, str):
        for pattern, alias in replacements:
            value = pattern.sub(alias, value)
        return value
    if isinstance(value, list):
        return [_scrub(item, replacements) for item in value]
    if isinstance(value, dict):
        return {key: _scrub(item, replacements) for key, item in value.items()}
    return value


def _rewrite(
    connection: Connection,
    model: Any,
    columns: list[str],
    replacements: list[tuple[re.Pattern[str], str]],
) -> int:
    """Replace the id and personal texts in `columns` of every row of `model`; rows changed.

    A full scan: logs hold JSON whose text form differs between databases, so no LIKE can
    find every occurrence. Erasure is rare and the logs are modest.
    """
    table = model.__table__
    changed = 0
    for row in connection.execute(
        select(table.c.id if "id" in table.c else table.c[0], *(table.c[name] for name in columns))
    ):
        values = dict(zip(columns, row[1:], strict=True))
        scrubbed = {name: _scrub(value, replacements) for name, value in values.items()}
        if scrubbed != values:
            key_column = table.c.id if "id" in table.c else table.c[0]
            connection.execute(update(table).where(key_column == row[0]).values(**scrubbed))
            changed += 1
    return changed


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
