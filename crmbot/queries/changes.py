"""What changed for each customer between two model runs: the alerts' read side.

A run that went live is compared with the run that was live before it (recorded in its
params as `previous_run_id`): whose churn risk rose by at least some points, crossed a
threshold, or who moved into a watched segment. Both runs' rows are read by id, so this
is the one reader of scores that looks at a run other than the live one — the one that
was live until this run replaced it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, aliased
from sqlmodel import col

from crmbot.core.models import Customer, CustomerScore, Follow
from crmbot.queries.scope import Scope


@dataclass(frozen=True)
class RiskChange:
    """One customer's scores in the new run beside the previous one's (None: not scored)."""

    customer: Customer  # id, customer_id, name, company and owner only (not from a session)
    risk: float
    risk_before: float | None
    segment: str | None
    segment_before: str | None
    reasons: list[str]
    value_at_risk: float | None


def risk_changes(
    *,
    session: Session,
    run_id: int,
    previous_run_id: int,
    rise: float,
    threshold: float,
    segments: Collection[str],
) -> list[RiskChange]:
    """Live customers whose churn risk in run `run_id` is at least `rise` above run
    `previous_run_id`'s (when `rise` is above 0), reached `threshold` from below it (or
    from not being scored), or whose segment became one of `segments`; most value at
    risk first."""
    new = aliased(CustomerScore)
    old = aliased(CustomerScore)
    conditions = [
        and_(
            col(new.churn_risk) >= threshold,
            or_(col(old.churn_risk).is_(None), col(old.churn_risk) < threshold),
        ),
    ]
    if rise > 0:  # 0: no alert for a rise alone
        conditions.append(
            and_(
                col(old.churn_risk).is_not(None),
                col(new.churn_risk) >= col(old.churn_risk) + rise,
            )
        )
    if segments:
        conditions.append(
            and_(
                col(new.segment).in_(list(segments)),
                or_(col(old.segment).is_(None), col(old.segment).not_in(list(segments))),
            )
        )
    # Only the columns an alert reads: a run's score row has dozens (and whole entities
    # would cost ~0.3 ms each to build, for thousands of rows after a big change).
    statement = (
        select(
            col(Customer.id),
            col(Customer.customer_id),
            col(Customer.name),
            col(Customer.company),
            col(Customer.owner),
            col(new.churn_risk),
            col(old.churn_risk),
            col(new.segment),
            col(old.segment),
            col(new.churn_reasons),
            col(new.value_at_risk),
        )
        .select_from(Customer)
        .join(new, col(new.customer_pk) == col(Customer.id))
        .outerjoin(
            old,
            and_(col(old.customer_pk) == col(Customer.id), col(old.run_id) == previous_run_id),
        )
        .where(
            col(new.run_id) == run_id,
            col(new.churn_risk).is_not(None),
            Scope.everyone().where(Customer),
            or_(*conditions),
        )
        .order_by(col(new.value_at_risk).desc(), col(Customer.customer_id))
    )
    return [
        RiskChange(
            customer=Customer.model_construct(
                id=pk, customer_id=cid, name=name, company=company, owner=owner
            ),
            risk=float(risk or 0.0),
            risk_before=before,
            segment=segment,
            segment_before=segment_before,
            reasons=list(reasons or []),
            value_at_risk=value_at_risk,
        )
        for (
            pk,
            cid,
            name,
            company,
            owner,
            risk,
            before,
            segment,
            segment_before,
            reasons,
            value_at_risk,
        ) in session.execute(statement).all()
    ]


def followers_by_customer(
    *, session: Session, customer_pks: Collection[int]
) -> dict[int, list[str]]:
    """Who follows each of these customers (user ids, in the order they started), in
    one query per thousand customers; a customer nobody follows is absent."""
    wanted = sorted(set(customer_pks))
    found: dict[int, list[str]] = {}
    for start in range(0, len(wanted), 1000):
        rows = session.execute(
            select(col(Follow.customer_pk), col(Follow.user_id))
            .where(col(Follow.customer_pk).in_(wanted[start : start + 1000]))
            .order_by(col(Follow.created_at), col(Follow.user_id))
        ).all()
        for pk, user_id in rows:
            found.setdefault(int(pk), []).append(str(user_id))
    return found
