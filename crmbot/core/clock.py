"""The wall clock, as the tables store time: naive datetimes meaning UTC.

Models never call it (they take `as_of`); it stamps records — when a run started, when
a lock expires, when a digest was posted — and every caller takes a `clock=` parameter
defaulting to it, so tests inject time instead.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
