"""Finding one customer from what a user typed, and what their card shows."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rapidfuzz import fuzz, process, utils
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session
from sqlmodel import col

from crmbot.core.models import Customer, CustomerScore, ModelRun, Order, RunOffer
from crmbot.queries.scope import live, owned_by

# A fuzzy name match this good, and this far ahead of the next one, is taken as the answer.
FUZZY_ACCEPT = 90.0
FUZZY_MARGIN = 4.0
# Below ACCEPT but above this, the matches are offered as candidates.
FUZZY_CANDIDATE = 72.0
# Below CANDIDATE but above this, they are offered as "did you mean".
FUZZY_SUGGEST = 50.0


@dataclass(frozen=True)
class Candidate:
    customer_id: str
    name: str
    company: str
    score: float
    region: str = ""
    owner: str = ""


@dataclass
class Lookup:
    """The outcome of finding a customer from what a user typed."""

    query: str
    customer: Customer | None = None
    how: str = ""  # id | email | name | fuzzy
    candidates: list[Candidate] = field(default_factory=list)  # ambiguous
    suggestions: list[Candidate] = field(default_factory=list)  # not found, nearest

    @property
    def found(self) -> bool:
        return self.customer is not None


def _candidate(customer: Customer, score: float = 100.0) -> Candidate:
    return Candidate(
        customer_id=customer.customer_id,
        name=customer.name or "",
        company=customer.company or "",
        score=round(score, 1),
        region=customer.region or "",
        owner=customer.owner or "",
    )


def find_customer(
    *,
    session: Session,
    query: str,
    owners: Collection[str] | None = None,
    limit: int = 5,
) -> Lookup:
    """Find one customer by external id, email, or (fuzzy) name or company.

    `owners` restricts the search to those account owners' books (None: everyone's).
    Ambiguous input returns candidates; unknown input returns the nearest suggestions.
    """
    text = " ".join(query.split())
    lookup = Lookup(query=text)
    if not text:
        return lookup
    scope = and_(live(), owned_by(owners))

    by_id = session.execute(
        select(Customer).where(col(Customer.customer_id) == text, scope)
    ).scalar_one_or_none()
    if by_id is not None:
        lookup.customer, lookup.how = by_id, "id"
        return lookup

    if "@" in text:
        emails = {text, text.lower()}
        rows = list(
            session.execute(
                select(Customer).where(col(Customer.email).in_(emails), scope)
            ).scalars()
        )
        if len(rows) == 1:
            lookup.customer, lookup.how = rows[0], "email"
            return lookup
        if len(rows) > 1:
            lookup.candidates = [_candidate(c) for c in rows[:limit]]
            return lookup

    exact = list(
        session.execute(
            select(Customer)
            .where(func.lower(col(Customer.name)) == text.lower(), scope)
            .order_by(col(Customer.customer_id))
            .limit(limit + 1)
        ).scalars()
    )
    if len(exact) == 1:
        lookup.customer, lookup.how = exact[0], "name"
        return lookup
    if len(exact) > 1:
        lookup.candidates = [_candidate(c) for c in exact[:limit]]
        return lookup

    return _fuzzy(session, lookup, scope, limit=limit)


def _fuzzy(session: Session, lookup: Lookup, scope: Any, *, limit: int) -> Lookup:
    rows = session.execute(
        select(
            col(Customer.id),
            col(Customer.customer_id),
            col(Customer.name),
            col(Customer.company),
            col(Customer.region),
            col(Customer.owner),
        ).where(scope)
    ).all()
    if not rows:
        return lookup
    # One choice per customer: the better of name and company decides.
    names = {row.id: row.name or "" for row in rows}
    companies = {row.id: row.company or "" for row in rows}
    best: dict[int, float] = {}
    for choices in (names, companies):
        for _choice, score, pk in process.extract(
            lookup.query,
            choices,
            scorer=fuzz.WRatio,
            processor=utils.default_process,
            limit=limit * 4,
            score_cutoff=FUZZY_SUGGEST,
        ):
            best[pk] = max(best.get(pk, 0.0), float(score))
    if not best:
        return lookup
    ranked = sorted(best.items(), key=lambda item: (-item[1], names[item[0]], item[0]))
    by_pk = {row.id: row for row in rows}

    def candidate(pk: int, score: float) -> Candidate:
        row = by_pk[pk]
        return Candidate(
            customer_id=row.customer_id,
            name=row.name or "",
            company=row.company or "",
            score=round(score, 1),
            region=row.region or "",
            owner=row.owner or "",
        )

    top_pk, top_score = ranked[0]
    runner_up = ranked[1][1] if len(ranked) > 1 else 0.0
    if top_score >= FUZZY_ACCEPT and top_score - runner_up >= FUZZY_MARGIN:
        lookup.customer = session.get(Customer, top_pk)
        lookup.how = "fuzzy"
        return lookup
    if top_score >= FUZZY_CANDIDATE:
        lookup.candidates = [candidate(pk, s) for pk, s in ranked[:limit] if s >= FUZZY_CANDIDATE]
        return lookup
    lookup.suggestions = [candidate(pk, s) for pk, s in ranked[:3]]
    return lookup


@dataclass
class CustomerCard:
    customer: Customer
    score: CustomerScore | None
    run: ModelRun | None
    last_order: Order | None
    # Next best products, best first: {"product_id", "name", "confidence", "lift",
    # "support", "reason"}.
    offers: list[dict[str, Any]]


def customer_card(*, session: Session, customer: Customer, run: ModelRun | None) -> CustomerCard:
    """Everything the customer card shows: the active run's score row and the last order."""
    score = None
    if run is not None:
        score = session.get(CustomerScore, (run.id, customer.id))
    last_order = session.execute(
        select(Order)
        .where(col(Order.customer_pk) == customer.id)
        .order_by(col(Order.ordered_at).desc(), col(Order.id).desc())
        .limit(1)
    ).scalar_one_or_none()
    offers = customer_offers(session=session, score=score) if score is not None else []
    return CustomerCard(
        customer=customer, score=score, run=run, last_order=last_order, offers=offers
    )


def customer_offers(*, session: Session, score: CustomerScore) -> list[dict[str, Any]]:
    """The offers a score row's `next_products` numbers point at, in its order."""
    listed = list(score.next_products or [])
    if all(isinstance(item, dict) for item in listed):
        # A run trained before offers were stored once per run kept them in the row.
        return listed
    numbers = [n for n in listed if isinstance(n, int)]
    found = {
        offer.offer: offer.as_dict()
        for offer in session.execute(
            select(RunOffer).where(
                col(RunOffer.run_id) == score.run_id, col(RunOffer.offer).in_(numbers)
            )
        ).scalars()
    }
    return [found[n] for n in numbers if n in found]


def order_history(
    *, session: Session, customer: Customer, since: datetime | None = None, limit: int = 500
) -> list[Order]:
    """A customer's orders, oldest first (through the customer/date index)."""
    statement = select(Order).where(col(Order.customer_pk) == customer.id)
    if since is not None:
        statement = statement.where(col(Order.ordered_at) >= since)
    statement = statement.order_by(col(Order.ordered_at).desc(), col(Order.id).desc()).limit(limit)
    return list(reversed(list(session.execute(statement).scalars())))


def customers_by_ids(*, session: Session, customer_ids: Sequence[str]) -> list[Customer]:
    if not customer_ids:
        return []
    return list(
        session.execute(
            select(Customer).where(col(Customer.customer_id).in_(list(customer_ids)), live())
        ).scalars()
    )
