"""Follow-ups: something to do about a customer on a day, for someone.

The scheduler sends each due follow-up to its assignee once: it claims the follow-up with
`mark_sent` (a conditional UPDATE that exactly one caller wins, however many schedulers
run) and commits the claim before it sends.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import update
from sqlalchemy.orm import Session
from sqlmodel import col, select

from crmbot.actions import InvalidAction
from crmbot.core.models import FollowUp

MAX_NOTE = 2000


def add_follow_up(
    *,
    session: Session,
    customer_pk: int,
    assignee: str,
    due_on: date,
    created_by: str,
    now: datetime,
    today: date,
    note: str = "",
) -> FollowUp:
    """A follow-up on customer `customer_pk` for `assignee`, due on `due_on`. `today` is the
    day where the team works (`CRMBOT_TIMEZONE`), not `now`'s UTC day: west of UTC a form
    that offered "today" would otherwise be refused on saving."""
    assignee = assignee.strip()
    if not assignee:
        raise InvalidAction("A follow-up needs someone to do it.")
    if due_on < today:
        raise InvalidAction(f"{due_on:%Y-%m-%d} has passed: give today or a later day.")
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise InvalidAction(f"That note is too long: keep it under {MAX_NOTE:,} characters.")
    follow_up = FollowUp(
        customer_pk=customer_pk,
        assignee=assignee[:120],
        due_on=due_on,
        note=note,
        created_by=created_by.strip()[:120],
        created_at=now,
    )
    session.add(follow_up)
    session.flush()
    return follow_up


def complete_follow_up(*, session: Session, follow_up_id: int, now: datetime) -> bool:
    """Mark a follow-up done; False when it was done already or does not exist."""
    done = session.execute(
        update(FollowUp)
        .where(col(FollowUp.id) == follow_up_id, col(FollowUp.done_at).is_(None))
        .values(done_at=now)
    )
    return int(done.rowcount or 0) == 1  # type: ignore[attr-defined]


def due_follow_ups(*, session: Session, as_of: date, limit: int | None = None) -> list[FollowUp]:
    """The follow-ups due on or before `as_of` that are neither done nor sent yet, the
    oldest first."""
    query = (
        select(FollowUp)
        .where(
            col(FollowUp.due_on) <= as_of,
            col(FollowUp.sent_at).is_(None),
            col(FollowUp.done_at).is_(None),
        )
        .order_by(col(FollowUp.due_on), col(FollowUp.id))
    )
    if limit is not None:
        query = query.limit(limit)
    return list(session.execute(query).scalars())


def mark_sent(*, session: Session, follow_up_id: int, now: datetime) -> bool:
    """Claim a follow-up for sending: True for exactly one caller, False for every other
    (it was sent, or claimed by another scheduler, already). Commit before sending."""
    claimed = session.execute(
        update(FollowUp)
        .where(col(FollowUp.id) == follow_up_id, col(FollowUp.sent_at).is_(None))
        .values(sent_at=now)
    )
    return int(claimed.rowcount or 0) == 1  # type: ignore[attr-defined]


def release_sent(*, session: Session, follow_up_id: int, sent_at: datetime) -> bool:
    """Give back a claim whose message could not be delivered, so the next run tries again:
    only the claim made at `sent_at` (not a later one by someone else)."""
    released = session.execute(
        update(FollowUp)
        .where(col(FollowUp.id) == follow_up_id, col(FollowUp.sent_at) == sent_at)
        .values(sent_at=None)
    )
    return int(released.rowcount or 0) == 1  # type: ignore[attr-defined]
