"""Following a customer (being told when its risk changes) and snoozing it (leaving it out
of one's digests and alerts for some days)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlmodel import col, select

from crmbot.actions import InvalidAction
from crmbot.core.models import Follow, Snooze

MAX_SNOOZE_DAYS = 365


def follow(*, session: Session, customer_pk: int, user_id: str, now: datetime) -> bool:
    """`user_id` follows the customer; False when they already did."""
    if session.get(Follow, (customer_pk, user_id)) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(Follow(customer_pk=customer_pk, user_id=user_id[:120], created_at=now))
    except IntegrityError:  # followed at the same moment from elsewhere
        return False
    return True


def unfollow(*, session: Session, customer_pk: int, user_id: str) -> bool:
    """`user_id` stops following the customer; False when they did not follow it."""
    gone = session.execute(
        delete(Follow).where(col(Follow.customer_pk) == customer_pk, col(Follow.user_id) == user_id)
    )
    return int(gone.rowcount or 0) > 0  # type: ignore[attr-defined]


def snooze(*, session: Session, customer_pk: int, user_id: str, days: int, as_of: date) -> date:
    """Leave the customer out of `user_id`'s digests and alerts for `days` days from `as_of`;
    the day it comes back. A new snooze replaces the previous one."""
    if not 1 <= days <= MAX_SNOOZE_DAYS:
        raise InvalidAction(f"Snooze for 1 to {MAX_SNOOZE_DAYS} days.")
    until = as_of + timedelta(days=days)
    existing = session.get(Snooze, (customer_pk, user_id))
    if existing is not None:
        existing.until = until
        session.flush()
        return until
    try:
        with session.begin_nested():
            session.add(Snooze(customer_pk=customer_pk, user_id=user_id[:120], until=until))
    except IntegrityError:  # snoozed at the same moment from elsewhere: this one wins
        row = session.get(Snooze, (customer_pk, user_id), populate_existing=True)
        assert row is not None
        row.until = until
        session.flush()
    return until


def unsnooze(*, session: Session, customer_pk: int, user_id: str) -> bool:
    gone = session.execute(
        delete(Snooze).where(col(Snooze.customer_pk) == customer_pk, col(Snooze.user_id) == user_id)
    )
    return int(gone.rowcount or 0) > 0  # type: ignore[attr-defined]


def is_snoozed(*, session: Session, customer_pk: int, user_id: str, as_of: date) -> bool:
    row = session.get(Snooze, (customer_pk, user_id))
    return row is not None and as_of < row.until


def snoozed_customers(*, session: Session, user_id: str, as_of: date) -> set[int]:
    """The customers (pks) `user_id` has snoozed on `as_of`."""
    rows = session.execute(
        select(col(Snooze.customer_pk)).where(
            col(Snooze.user_id) == user_id, col(Snooze.until) > as_of
        )
    ).scalars()
    return set(rows)
