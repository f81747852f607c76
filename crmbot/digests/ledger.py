"""The digest log: which digest went where, so each is posted exactly once.

`DigestLog` is keyed by (kind, channel, period) — period is the ISO date for the daily
digest, the ISO week for the weekly one — and the row is written *before* posting:

1. `claim` inserts the row as `pending` (the unique key lets only one process through), or
   takes over a failed row, or one a crashed process left `pending` (`STALE_PENDING`);
2. the poster posts;
3. `finish` marks the row `posted` with the message's id — or `failed` with the error.

A claim on a row an earlier attempt left behind says so (`look_first`, `must_confirm`), so
the poster looks for the earlier messages before posting again. A digest of several
messages (a header and its rows) that failed part-way keeps the ones that went out in its
row (`finish(..., sent=...)`, under `summary["messages"]`), so the next attempt posts only
the others, even when the channel's history cannot be read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from crmbot.core.db import read_session, write_session
from crmbot.core.models import DigestLog
from crmbot.digests.base import Digest, DigestOutcome, digest_key

log = logging.getLogger(__name__)

# A `pending` row older than this was left by a process that died while posting.
STALE_PENDING = timedelta(minutes=15)


@dataclass
class Claim:
    row_id: int
    attempts: int
    # An earlier attempt exists: look for its message in the channel before posting.
    look_first: bool
    # That attempt's process died mid-post: post only if the look says it did not land.
    must_confirm: bool
    # The messages an earlier attempt posted before it failed: metadata key -> ts.
    sent: dict[str, str] = field(default_factory=dict)


def claim(
    engine: Engine, kind: str, channel: str, period: str, now: datetime
) -> Claim | DigestOutcome:
    """Take the right to post this digest, or say why not (posted, in progress...)."""
    try:
        with write_session(engine) as session:
            row = DigestLog(
                kind=kind,
                channel=channel,
                period=period,
                status="pending",
                attempts=1,
                created_at=now,
            )
            session.add(row)
            session.flush()
            assert row.id is not None
            return Claim(row.id, 1, look_first=False, must_confirm=False)
    except IntegrityError:
        pass
    with read_session(engine) as session:
        existing = session.execute(
            select(DigestLog).where(
                col(DigestLog.kind) == kind,
                col(DigestLog.channel) == channel,
                col(DigestLog.period) == period,
            )
        ).scalar_one()
    outcome = DigestOutcome(
        kind, channel, period, existing.status, ts=existing.message_ts, attempts=existing.attempts
    )
    if existing.status == "posted":
        outcome.status = "already_posted"
        return outcome
    if existing.status == "pending" and existing.created_at > now - STALE_PENDING:
        outcome.status = "in_progress"
        return outcome
    # A failed row, or a pending one whose process died: take it over, exactly one taker
    # (the attempts count is the guard, as datetimes lose precision on some databases).
    assert existing.id is not None
    with write_session(engine) as session:
        taken = session.execute(
            update(DigestLog)
            .where(
                col(DigestLog.id) == existing.id,
                col(DigestLog.status) == existing.status,
                col(DigestLog.attempts) == existing.attempts,
            )
            .values(status="pending", attempts=existing.attempts + 1, created_at=now)
        )
    if not getattr(taken, "rowcount", 0):
        outcome.status = "in_progress"
        return outcome
    crashed = existing.status == "pending"
    if crashed:
        log.warning(
            "digest %s was left pending since %s (a crash while posting); recovering it",
            digest_key(kind, channel, period),
            existing.created_at,
        )
    sent = (existing.summary or {}).get("messages") if existing.status == "failed" else None
    return Claim(
        existing.id,
        existing.attempts + 1,
        look_first=True,
        must_confirm=crashed,
        sent=dict(sent) if isinstance(sent, dict) else {},
    )


def finish(
    engine: Engine,
    row_id: int,
    *,
    status: str,
    now: datetime,
    ts: str | None = None,
    error: str | None = None,
    digest: Digest | None = None,
    sent: dict[str, str] | None = None,
) -> None:
    """Mark the claimed row posted (with the header's ts and what the digest remembers)
    or failed; `sent` are its messages that went out (metadata key -> ts)."""
    values: dict[str, Any] = {"status": status, "error": (error or "")[:500] or None}
    if status == "posted":
        values.update(posted_at=now, message_ts=ts)
        if digest is not None:
            summary = dict(digest.summary)
            if sent:
                summary["messages"] = dict(sent)
            values.update(summary=summary, customer_ids=digest.customer_ids[:200])
    elif sent:
        # Only a posted row's summary is read as a previous digest (`previous_digest`).
        values.update(summary={"messages": dict(sent)})
    with write_session(engine) as session:
        session.execute(update(DigestLog).where(col(DigestLog.id) == row_id).values(**values))


@dataclass
class Previous:
    """The last digest of a kind posted to a channel: its period and its entries."""

    period: str
    entries: dict[str, dict[str, Any]]


def previous_digest(engine: Engine, kind: str, channel: str, period: str) -> Previous | None:
    """The last digest of this kind actually posted to `channel` before `period`."""
    with read_session(engine) as session:
        row = session.execute(
            select(DigestLog)
            .where(
                col(DigestLog.kind) == kind,
                col(DigestLog.channel) == channel,
                col(DigestLog.status) == "posted",
                col(DigestLog.period) != period,
            )
            .order_by(col(DigestLog.posted_at).desc(), col(DigestLog.id).desc())
            .limit(1)
        ).scalar_one_or_none()
    if row is None or not row.summary:
        return None
    entries = {e["customer_id"]: e for e in row.summary.get("entries", []) if "customer_id" in e}
    return Previous(period=row.period, entries=entries)
