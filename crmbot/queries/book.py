"""An account manager's own book, and which owners a user is known as."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session
from sqlmodel import col

from crmbot.core.models import Customer, CustomerScore, ModelRun
from crmbot.queries.lists import ScoredCustomer, at_risk, top_value
from crmbot.queries.scope import Scope, live
from crmbot.runs import active_run


@dataclass
class Book:
    """An account manager's own book, for the App Home tab."""

    owners: list[str]
    run: ModelRun | None
    customers: int
    at_risk: list[ScoredCustomer]
    top_value: list[ScoredCustomer]
    total_clv: float
    value_at_risk: float


def owner_book(*, session: Session, owners: Sequence[str], limit: int = 5) -> Book:
    """The customers `owners` look after: counts, the most at risk and the most valuable."""
    run = active_run(session=session)
    scope = Scope.book(owners)
    customers = session.execute(
        select(func.count()).select_from(Customer).where(scope.where(Customer))
    ).scalar_one()
    if run is None:
        return Book(list(owners), None, int(customers), [], [], 0.0, 0.0)
    total_clv, total_var = session.execute(
        select(
            func.coalesce(func.sum(col(CustomerScore.clv)), 0.0),
            func.coalesce(func.sum(col(CustomerScore.value_at_risk)), 0.0),
        )
        .join(Customer, col(Customer.id) == col(CustomerScore.customer_pk))
        .where(col(CustomerScore.run_id) == run.id, scope.where(Customer))
    ).one()
    return Book(
        owners=list(owners),
        run=run,
        customers=int(customers),
        at_risk=at_risk(session=session, run=run, scope=scope, limit=limit),
        top_value=top_value(session=session, run=run, scope=scope, limit=limit),
        total_clv=float(total_clv or 0.0),
        value_at_risk=float(total_var or 0.0),
    )


def owners_matching(*, session: Session, identities: Collection[str]) -> list[str]:
    """Which of `identities` (a Slack user id, an email) own at least one customer."""
    cleaned = {i.strip().lower() for i in identities if i and i.strip()}
    if not cleaned:
        return []
    return sorted(
        o
        for (o,) in session.execute(
            select(col(Customer.owner))
            .where(or_(func.lower(col(Customer.owner)).in_(sorted(cleaned))))
            .distinct()
        ).all()
        if o
    )


def owners_with_value_at_risk(*, session: Session, run: ModelRun) -> list[str]:
    """Every account owner (as recorded) with at least one account at risk in the run."""
    owners = session.execute(
        select(col(Customer.owner))
        .join(CustomerScore, col(CustomerScore.customer_pk) == col(Customer.id))
        .where(
            col(CustomerScore.run_id) == run.id,
            col(CustomerScore.value_at_risk) > 0,
            live(),
            col(Customer.owner).is_not(None),
        )
        .distinct()
    ).scalars()
    return sorted({o.strip() for o in owners if o and o.strip()})
