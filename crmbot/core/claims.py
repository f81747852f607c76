"""Request claims: the first delivery of a request acts, every later one is a duplicate.

Slack delivers a request again when it thinks the first delivery failed
(`X-Slack-Retry-Num`), and a captured signed request can be replayed while its signature
is fresh. Each request id (a trigger id, an event id) is claimed with one row, keyed by
the id, before anything runs: a second delivery's insert fails on the key, in another
thread, another replica or after a restart alike. Claims older than a day are deleted in
bounded batches (`prune`); Slack retries within minutes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, delete, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from crmbot.core.clock import utc_now
from crmbot.core.db import write_session
from crmbot.core.models import RequestClaim

CLAIM_TABLE = cast(Table, RequestClaim.__table__)  # type: ignore[attr-defined]
KEEP_FOR = timedelta(days=1)
PRUNE_BATCH = 1000


def claim(engine: Engine, request_id: str, *, now: datetime | None = None) -> bool:
    """True for the first claim of `request_id`; False when it was claimed before.

    Raises `DatabaseUnavailable` when the database cannot be reached (the caller decides
    whether to act unguarded)."""
    row = {"request_id": request_id[:120], "claimed_at": now or utc_now()}
    try:
        with write_session(engine) as session:
            session.connection().execute(insert(CLAIM_TABLE), row)
    except IntegrityError:
        return False
    return True


def prune(
    engine: Engine,
    *,
    now: datetime | None = None,
    keep_for: timedelta = KEEP_FOR,
    batch: int = PRUNE_BATCH,
) -> int:
    """Delete claims older than `keep_for`, `batch` rows per transaction; how many went."""
    cutoff = (now or utc_now()) - keep_for
    deleted = 0
    while True:
        with write_session(engine) as session:
            ids = list(
                session.execute(
                    select(col(RequestClaim.request_id))
                    .where(col(RequestClaim.claimed_at) < cutoff)
                    .limit(batch)
                ).scalars()
            )
            if ids:
                session.execute(delete(RequestClaim).where(col(RequestClaim.request_id).in_(ids)))
        deleted += len(ids)
        if len(ids) < batch:
            return deleted
