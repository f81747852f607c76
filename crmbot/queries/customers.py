"""Finding one customer from what a user typed, and what their card shows."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any

from rapidfuzz import fuzz, process, utils
from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session
from sqlmodel import col

from crmbot.core.models import Customer, CustomerScore, ModelRun, Order, RunOffer, Touch
from crmbot.queries import names as name_search
from crmbot.queries.actions import last_touch
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
    # Customers whose names were compared in full for a fuzzy match: at most
    # `name_search.MAX_CANDIDATES`, however big the book.
    compared: int = 0

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

    exact = _exact_name(session, text, scope, limit=limit + 1)
    if len(exact) == 1:
        lookup.customer, lookup.how = exact[0], "name"
        return lookup
    if len(exact) > 1:
        lookup.candidates = [_candidate(c) for c in exact[:limit]]
        return lookup

    return _fuzzy(session, lookup, scope, owners=owners, limit=limit)


def _exact_name(session: Session, text: str, scope: Any, *, limit: int) -> list[Customer]:
    """Customers named `text` in any case, through the name index (a name without index
    words, such as "Q", is compared as typed through the name column's index)."""
    ids = name_search.exact_name_ids(session, text, scope=scope, limit=limit)
    if ids is None:
        where = and_(col(Customer.name) == text, scope)
    elif not ids:
        return []
    else:
        where = and_(col(Customer.id).in_(ids), scope)
    return list(
        session.execute(
            select(Customer).where(where).order_by(col(Customer.customer_id)).limit(limit)
        ).scalars()
    )


def _fuzzy(
    session: Session, lookup: Lookup, scope: Any, *, owners: Collection[str] | None, limit: int
) -> Lookup:
    # Only customers whose words are near the typed ones are compared: never the whole book.
    ids = name_search.candidate_ids(
        session, lookup.query, scope=owned_by(owners) if owners is not None else None
    )
    if not ids:
        return lookup
    rows = session.execute(
        select(
            col(Customer.id),
            col(Customer.customer_id),
            col(Customer.name),
            col(Customer.company),
            col(Customer.region),
            col(Customer.owner),
        ).where(col(Customer.id).in_(ids), scope)
    ).all()
    lookup.compared = len(rows)
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


@dataclass(frozen=True)
class SinceModel:
    """What a customer did after the run's `as_of`: facts the model has not seen."""

    orders: int  # purchases (amount >= 0)
    refunds: int
    last_order_at: datetime | None  # the latest purchase


@dataclass(frozen=True)
class RunFacts:
    """What a card needs to know of the run behind a score, read from its record."""

    purchase_model: str = "BG/NBD"  # whose P(alive) the scores hold: BG/NBD or MBG/NBD
    # False when no purchase model could estimate dropout on this book: P(alive) is then
    # not an estimate, and CLV assumes customers keep buying.
    dropout_estimated: bool = True
    typical_risk: float | None = None  # the typical customer's churn risk
    horizon_days: int | None = None  # churn risk's horizon


@dataclass
class CustomerCard:
    customer: Customer
    score: CustomerScore | None
    run: ModelRun | None
    # The last purchase on or before the run's as_of (any time, without a run); a refund is
    # never an order.
    last_order: Order | None
    # Next best products, best first: {"product_id", "name", "confidence", "lift",
    # "support", "reason"}.
    offers: list[dict[str, Any]]
    since: SinceModel | None = None  # orders after the run's as_of (None: no run)
    facts: RunFacts = field(default_factory=RunFacts)
    # What was last done about the customer (`crmbot.actions`), whatever the run's day.
    last_touch: Touch | None = None


def _record(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def run_facts(run: ModelRun | None) -> RunFacts:
    """The purchase model, whether it estimated dropout, and the typical churn risk, from a
    run's record (a run trained before these were recorded: BG/NBD, and dropout estimated
    unless its fit ran to a -> 0)."""
    if run is None:
        return RunFacts()
    metrics, params = _record(run.metrics), _record(run.params)
    clv = _record(metrics.get("clv"))
    churn = _record(metrics.get("churn"))
    model = _record(clv.get("purchase_model"))
    if model:
        name = str(model.get("model") or "BG/NBD")
        estimated = bool(model.get("dropout_estimated", True))
    else:
        limits = _record(clv.get("bgnbd")).get("at_limit") or []
        name, estimated = "BG/NBD", "a->0" not in limits
    typical = churn.get("typical_risk")
    horizon = _record(params.get("churn")).get("horizon_days")
    return RunFacts(
        purchase_model=name,
        dropout_estimated=estimated,
        typical_risk=float(typical) if isinstance(typical, int | float) else None,
        horizon_days=int(horizon) if isinstance(horizon, int | float) else None,
    )


def _end_of(run: ModelRun) -> datetime:
    """The first instant after the run's as_of: its orders are strictly before it."""
    return datetime.combine(run.as_of + timedelta(days=1), time.min)


def customer_card(*, session: Session, customer: Customer, run: ModelRun | None) -> CustomerCard:
    """Everything the customer card shows, as of the run's day: the run's score row, the
    last purchase up to its as_of, and what the customer did after it."""
    score = None
    if run is not None:
        score = session.get(CustomerScore, (run.id, customer.id))
    purchases = select(Order).where(col(Order.customer_pk) == customer.id, col(Order.amount) >= 0)
    since = None
    if run is not None:
        end = _end_of(run)
        purchases = purchases.where(col(Order.ordered_at) < end)
        bought = col(Order.amount) >= 0
        # CASE rather than FILTER, which MariaDB does not have.
        later = session.execute(
            select(
                func.sum(case((bought, 1), else_=0)),
                func.sum(case((bought, 0), else_=1)),
                func.max(case((bought, col(Order.ordered_at)), else_=None)),
            ).where(col(Order.customer_pk) == customer.id, col(Order.ordered_at) >= end)
        ).one()
        last_at = later[2]
        if isinstance(last_at, str):  # SQLite returns a CASE over datetimes as text
            last_at = datetime.fromisoformat(last_at)
        since = SinceModel(
            orders=int(later[0] or 0), refunds=int(later[1] or 0), last_order_at=last_at
        )
    last_order = session.execute(
        purchases.order_by(col(Order.ordered_at).desc(), col(Order.id).desc()).limit(1)
    ).scalar_one_or_none()
    offers = customer_offers(session=session, score=score) if score is not None else []
    return CustomerCard(
        customer=customer,
        score=score,
        run=run,
        last_order=last_order,
        offers=offers,
        since=since,
        facts=run_facts(run),
        last_touch=last_touch(session=session, customer_pk=customer.id)
        if customer.id is not None
        else None,
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
