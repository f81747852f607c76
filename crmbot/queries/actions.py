"""What was done about customers, read back: touches, follow-ups and followers
(written by `crmbot.actions`).

Lists of customers for a person take a `Scope`, like every other list: under
CRMBOT_OWN_BOOK_ONLY an account manager sees follow-ups only on customers they may see.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlmodel import col

from crmbot.core.models import Customer, Follow, FollowUp, Touch
from crmbot.queries.scope import Scope


def last_touch(*, session: Session, customer_pk: int) -> Touch | None:
    """The customer's latest touch, or None."""
    latest = recent_touches(session=session, customer_pk=customer_pk, limit=1)
    return latest[0] if latest else None


def recent_touches(*, session: Session, customer_pk: int, limit: int = 5) -> list[Touch]:
    """The customer's latest touches, newest first."""
    return list(
        session.execute(
            select(Touch)
            .where(col(Touch.customer_pk) == customer_pk)
            .order_by(col(Touch.created_at).desc(), col(Touch.id).desc())
            .limit(limit)
        ).scalars()
    )


@dataclass(frozen=True)
class FollowUpRow:
    follow_up: FollowUp
    customer_id: str
    name: str

    def overdue(self, as_of: date) -> bool:
        return self.follow_up.due_on < as_of


def follow_ups_for(
    *,
    session: Session,
    scope: Scope,
    assignees: Collection[str] | None,
    as_of: date,
    due_only: bool = True,
    limit: int = 50,
) -> list[FollowUpRow]:
    """Open follow-ups (not done) of `assignees` (None: everyone's), on customers `scope`
    may see, the earliest due first; with `due_only`, only those due on or before `as_of`."""
    query = (
        select(FollowUp, col(Customer.customer_id), col(Customer.name))
        .join(Customer, col(Customer.id) == col(FollowUp.customer_pk))
        .where(col(FollowUp.done_at).is_(None), scope.where())
        .order_by(col(FollowUp.due_on), col(FollowUp.id))
        .limit(limit)
    )
    if assignees is not None:
        query = query.where(col(FollowUp.assignee).in_(list(assignees)))
    if due_only:
        query = query.where(col(FollowUp.due_on) <= as_of)
    return [
        FollowUpRow(follow_up, customer_id, name or customer_id)
        for follow_up, customer_id, name in session.execute(query).all()
    ]


def count_follow_ups(
    *, session: Session, scope: Scope, assignees: Collection[str] | None, after: date
) -> int:
    """How many open follow-ups of `assignees` fall due after `after` (the ones to come)."""
    query = (
        select(func.count())
        .select_from(FollowUp)
        .join(Customer, col(Customer.id) == col(FollowUp.customer_pk))
        .where(col(FollowUp.done_at).is_(None), col(FollowUp.due_on) > after, scope.where())
    )
    if assignees is not None:
        query = query.where(col(FollowUp.assignee).in_(list(assignees)))
    return int(session.execute(query).scalar_one())


def followers_of(*, session: Session, customer_pk: int) -> list[str]:
    """Who follows the customer (user ids), in the order they started."""
    return list(
        session.execute(
            select(col(Follow.user_id))
            .where(col(Follow.customer_pk) == customer_pk)
            .order_by(col(Follow.created_at), col(Follow.user_id))
        ).scalars()
    )


def followed_by(*, session: Session, user_id: str, scope: Scope) -> list[Customer]:
    """The customers `user_id` follows that `scope` may see, by name."""
    return list(
        session.execute(
            select(Customer)
            .join(Follow, col(Follow.customer_pk) == col(Customer.id))
            .where(col(Follow.user_id) == user_id, scope.where())
            .order_by(col(Customer.name), col(Customer.customer_id))
        ).scalars()
    )
