"""The audit log: who asked what, where, about whom, and how it went. Never raw PII."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import Table, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from crmbot.core.db import read_session, write_session
from crmbot.core.models import AuditLog
from crmbot.core.privacy import mask_pii

MAX_ARGUMENT_CHARS = 500
AUDIT_TABLE = cast(Table, AuditLog.__table__)  # type: ignore[attr-defined]


def record(
    engine: Engine,
    *,
    transport: str,
    user_id: str,
    channel_id: str | None,
    command: str,
    arguments: str,
    outcome: str,
    customer_ids: Sequence[str] = (),
    detail: str | None = None,
    duration_ms: float | None = None,
    request_id: str | None = None,
    at: datetime | None = None,
) -> bool:
    """Write one audit row; False when `request_id` was already audited (a Slack retry)."""
    row = {
        "at": at or datetime.now(UTC).replace(tzinfo=None),
        "request_id": request_id,
        "transport": transport,
        "user_id": user_id[:64],
        "channel_id": (channel_id or "")[:64] or None,
        "command": command[:40],
        "arguments": mask_pii(arguments)[:MAX_ARGUMENT_CHARS],
        "customer_ids": list(customer_ids)[:200],
        "outcome": outcome[:20],
        "detail": mask_pii(detail)[:500] if detail else None,
        "duration_ms": duration_ms,
    }
    try:
        with write_session(engine) as session:
            # A plain INSERT on the session's connection: every command writes one row, and
            # the ORM's unit of work was a third of `/crm customer`'s time.
            session.connection().execute(insert(AUDIT_TABLE), row)
    except IntegrityError:
        return False
    return True


def recent(engine: Engine, *, limit: int = 20) -> list[AuditLog]:
    with read_session(engine) as session:
        return list(
            session.execute(
                select(AuditLog).order_by(col(AuditLog.id).desc()).limit(limit)
            ).scalars()
        )
