"""The read side: what commands, digests and the App Home ask of the database.

Every reader goes through the active model run (`ActiveRun`, slot "scores"), so a command
never sees half a model. Lookups use bound parameters and the indexes declared in
`crmbot.core.models`; nothing here builds SQL from user text.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from rapidfuzz import fuzz, process, utils
from sqlalchemy import and_, func, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlmodel import col

from crmbot.core.clock import utc_now
from crmbot.core.db import write_session
from crmbot.core.models import (
    ActiveRun,
    AuditLog,
    Customer,
    CustomerScore,
    ModelRun,
    Order,
    RunOffer,
)

# ---------------------------------------------------------------------------------------
# Chat-command reads: customers, at-risk ranking, segments, influencers, model info.
# ---------------------------------------------------------------------------------------

SCORES_SLOT = "scores"

# A fuzzy name match this good, and this far ahead of the next one, is taken as the answer.
FUZZY_ACCEPT = 90.0
FUZZY_MARGIN = 4.0
# Below ACCEPT but above this, the matches are offered as candidates.
FUZZY_CANDIDATE = 72.0
# Below CANDIDATE but above this, they are offered as "did you mean".
FUZZY_SUGGEST = 50.0


def active_scores_run(session: Session, *, slot: str = SCORES_SLOT) -> ModelRun | None:
    """The model run every reader sees, or None before the first training."""
    return session.execute(
        select(ModelRun)
        .join(ActiveRun, col(ActiveRun.run_id) == col(ModelRun.id))
        .where(col(ActiveRun.slot) == slot)
    ).scalar_one_or_none()


def recent_runs(session: Session, *, limit: int = 5) -> list[ModelRun]:
    return list(
        session.execute(select(ModelRun).order_by(col(ModelRun.id).desc()).limit(limit)).scalars()
    )


def _live() -> Any:
    # Erased customers keep their row for aggregate counts but are never shown.
    return col(Customer.erased_at).is_(None)


def _owned_by(owners: Collection[str] | None) -> Any:
    if owners is None:
        return True
    cleaned = sorted({o.strip().lower() for o in owners if o and o.strip()})
    if not cleaned:
        return False
    return func.lower(col(Customer.owner)).in_(cleaned)


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
    session: Session,
    query: str,
    *,
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
    scope = and_(_live(), _owned_by(owners))

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


def customer_card(session: Session, *, customer: Customer, run: ModelRun | None) -> CustomerCard:
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
    offers = customer_offers(session, score) if score is not None else []
    return CustomerCard(
        customer=customer, score=score, run=run, last_order=last_order, offers=offers
    )


def customer_offers(session: Session, score: CustomerScore) -> list[dict[str, Any]]:
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
    session: Session, *, customer: Customer, since: datetime | None = None, limit: int = 500
) -> list[Order]:
    """A customer's orders, oldest first (through the customer/date index)."""
    statement = select(Order).where(col(Order.customer_pk) == customer.id)
    if since is not None:
        statement = statement.where(col(Order.ordered_at) >= since)
    statement = statement.order_by(col(Order.ordered_at).desc(), col(Order.id).desc()).limit(limit)
    return list(reversed(list(session.execute(statement).scalars())))


@dataclass(frozen=True)
class ScoredCustomer:
    customer: Customer
    score: CustomerScore


def _scored(session: Session, statement: Any) -> list[ScoredCustomer]:
    return [ScoredCustomer(customer=c, score=s) for c, s in session.execute(statement).all()]


def _scores_of(run: ModelRun) -> Any:
    return (
        select(Customer, CustomerScore)
        .join(CustomerScore, col(CustomerScore.customer_pk) == col(Customer.id))
        .where(col(CustomerScore.run_id) == run.id, _live())
    )


def at_risk(
    session: Session,
    *,
    run: ModelRun,
    limit: int = 10,
    segment: str | None = None,
    region: str | None = None,
    owners: Collection[str] | None = None,
) -> list[ScoredCustomer]:
    """The accounts most worth saving: ranked by value at risk (CLV x churn risk)."""
    statement = _scores_of(run).where(
        col(CustomerScore.value_at_risk).is_not(None),
        col(CustomerScore.value_at_risk) > 0,
        _owned_by(owners),
    )
    if segment is not None:
        statement = statement.where(col(CustomerScore.segment) == segment)
    if region is not None:
        statement = statement.where(func.lower(col(Customer.region)) == region.lower())
    statement = statement.order_by(
        col(CustomerScore.value_at_risk).desc(),
        col(Customer.customer_id),
    ).limit(limit)
    return _scored(session, statement)


def top_value(
    session: Session,
    *,
    run: ModelRun,
    limit: int = 10,
    segment: str | None = None,
    owners: Collection[str] | None = None,
) -> list[ScoredCustomer]:
    """The customers with the highest CLV (optionally in one segment or book)."""
    statement = _scores_of(run).where(
        col(CustomerScore.clv).is_not(None),
        _owned_by(owners),
    )
    if segment is not None:
        statement = statement.where(col(CustomerScore.segment) == segment)
    statement = statement.order_by(
        col(CustomerScore.clv).desc(),
        col(Customer.customer_id),
    ).limit(limit)
    return _scored(session, statement)


def influencers(session: Session, *, run: ModelRun, limit: int = 10) -> list[ScoredCustomer]:
    """The customers whose referrals and purchases move others, by influence score."""
    statement = (
        _scores_of(run)
        .where(col(CustomerScore.influence).is_not(None), col(CustomerScore.influence) > 0)
        .order_by(col(CustomerScore.influence).desc(), col(Customer.customer_id))
        .limit(limit)
    )
    return _scored(session, statement)


def similar_customers(
    session: Session, *, run: ModelRun, customer: Customer, limit: int = 5
) -> tuple[CustomerScore | None, list[ScoredCustomer]]:
    """Customers who behave like `customer`: same cluster (or segment), nearest RFM scores,
    then nearest CLV."""
    own = session.get(CustomerScore, (run.id, customer.id))
    if own is None:
        return None, []
    statement = _scores_of(run).where(col(Customer.id) != customer.id)
    if own.cluster is not None:
        statement = statement.where(col(CustomerScore.cluster) == own.cluster)
    else:
        statement = statement.where(col(CustomerScore.segment) == own.segment)
    distance = (
        func.abs(func.coalesce(col(CustomerScore.r_score), 0) - (own.r_score or 0))
        + func.abs(func.coalesce(col(CustomerScore.f_score), 0) - (own.f_score or 0))
        + func.abs(func.coalesce(col(CustomerScore.m_score), 0) - (own.m_score or 0))
    )
    clv_gap = func.abs(func.coalesce(col(CustomerScore.clv), 0.0) - (own.clv or 0.0))
    statement = statement.order_by(distance, clv_gap, col(Customer.customer_id)).limit(limit)
    return own, _scored(session, statement)


@dataclass(frozen=True)
class SegmentRow:
    segment: str
    customers: int
    total_clv: float
    average_churn_risk: float | None
    value_at_risk: float
    previous_customers: int | None  # in the previously activated run; None without one


@dataclass(frozen=True)
class Migration:
    from_segment: str
    to_segment: str
    customers: int


@dataclass
class SegmentSummary:
    run: ModelRun
    # Whether training recorded each customer's segment in the model live before this run
    # (`previous_segment`); False for the first model.
    has_previous: bool
    rows: list[SegmentRow]
    migrations: list[Migration]  # only real moves, largest first

    @property
    def total_customers(self) -> int:
        return sum(row.customers for row in self.rows)


def _previous_segment_counts(session: Session, run_id: int) -> dict[str, int]:
    """Segment sizes in the model that was live when `run_id` was trained, as training
    recorded them per customer — the same source as the migrations, so the two agree."""
    return {
        segment: count
        for segment, count in session.execute(
            select(col(CustomerScore.previous_segment), func.count())
            .join(Customer, col(Customer.id) == col(CustomerScore.customer_pk))
            .where(
                col(CustomerScore.run_id) == run_id,
                _live(),
                col(CustomerScore.previous_segment).is_not(None),
            )
            .group_by(col(CustomerScore.previous_segment))
        ).all()
        if segment
    }


def segment_summary(session: Session, *, run: ModelRun) -> SegmentSummary:
    """Segment sizes and value in the active run, and how customers moved since the last."""
    assert run.id is not None
    previous_counts: dict[str, int] | None = _previous_segment_counts(session, run.id)
    has_previous = bool(previous_counts)
    if not has_previous:
        previous_counts = None
    rows = []
    for segment, count, total_clv, avg_churn, var in session.execute(
        select(
            col(CustomerScore.segment),
            func.count(),
            func.coalesce(func.sum(col(CustomerScore.clv)), 0.0),
            func.avg(col(CustomerScore.churn_risk)),
            func.coalesce(func.sum(col(CustomerScore.value_at_risk)), 0.0),
        )
        .join(Customer, col(Customer.id) == col(CustomerScore.customer_pk))
        .where(col(CustomerScore.run_id) == run.id, _live())
        .group_by(col(CustomerScore.segment))
        .order_by(func.count().desc(), col(CustomerScore.segment))
    ).all():
        rows.append(
            SegmentRow(
                segment=segment,
                customers=int(count),
                total_clv=float(total_clv or 0.0),
                average_churn_risk=float(avg_churn) if avg_churn is not None else None,
                value_at_risk=float(var or 0.0),
                previous_customers=(
                    previous_counts.get(segment, 0) if previous_counts is not None else None
                ),
            )
        )
    migrations = [
        Migration(from_segment=old or "", to_segment=new, customers=int(count))
        for old, new, count in session.execute(
            select(col(CustomerScore.previous_segment), col(CustomerScore.segment), func.count())
            .join(Customer, col(Customer.id) == col(CustomerScore.customer_pk))
            .where(
                col(CustomerScore.run_id) == run.id,
                _live(),
                col(CustomerScore.previous_segment).is_not(None),
                col(CustomerScore.previous_segment) != col(CustomerScore.segment),
            )
            .group_by(col(CustomerScore.previous_segment), col(CustomerScore.segment))
            .order_by(
                func.count().desc(),
                col(CustomerScore.previous_segment),
                col(CustomerScore.segment),
            )
        ).all()
    ]
    return SegmentSummary(run=run, has_previous=has_previous, rows=rows, migrations=migrations)


def segment_names(session: Session, *, run: ModelRun) -> list[str]:
    return sorted(
        s
        for (s,) in session.execute(
            select(col(CustomerScore.segment)).where(col(CustomerScore.run_id) == run.id).distinct()
        ).all()
        if s
    )


def region_names(session: Session) -> list[str]:
    return sorted(
        r
        for (r,) in session.execute(
            select(col(Customer.region)).where(col(Customer.region).is_not(None)).distinct()
        ).all()
        if r
    )


def segment_flows(session: Session, *, run: ModelRun, segment: str) -> tuple[int, int]:
    """How many customers moved into and out of `segment` since the previous run."""

    def moved(*conditions: Any) -> int:
        return int(
            session.execute(
                select(func.count())
                .select_from(CustomerScore)
                .join(Customer, col(Customer.id) == col(CustomerScore.customer_pk))
                .where(col(CustomerScore.run_id) == run.id, _live(), *conditions)
            ).scalar_one()
        )

    moved_in = moved(
        col(CustomerScore.segment) == segment,
        col(CustomerScore.previous_segment).is_not(None),
        col(CustomerScore.previous_segment) != segment,
    )
    moved_out = moved(
        col(CustomerScore.previous_segment) == segment,
        col(CustomerScore.segment) != segment,
    )
    return moved_in, moved_out


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


def owner_book(session: Session, *, owners: Sequence[str], limit: int = 5) -> Book:
    """The customers `owners` look after: counts, the most at risk and the most valuable."""
    run = active_scores_run(session)
    customers = session.execute(
        select(func.count()).select_from(Customer).where(_live(), _owned_by(owners))
    ).scalar_one()
    if run is None:
        return Book(list(owners), None, int(customers), [], [], 0.0, 0.0)
    total_clv, total_var = session.execute(
        select(
            func.coalesce(func.sum(col(CustomerScore.clv)), 0.0),
            func.coalesce(func.sum(col(CustomerScore.value_at_risk)), 0.0),
        )
        .join(Customer, col(Customer.id) == col(CustomerScore.customer_pk))
        .where(col(CustomerScore.run_id) == run.id, _live(), _owned_by(owners))
    ).one()
    return Book(
        owners=list(owners),
        run=run,
        customers=int(customers),
        at_risk=at_risk(session, run=run, limit=limit, owners=owners),
        top_value=top_value(session, run=run, limit=limit, owners=owners),
        total_clv=float(total_clv or 0.0),
        value_at_risk=float(total_var or 0.0),
    )


def model_age_days(run: ModelRun, *, today: date) -> int:
    """Days between the run's data cut-off and `today`."""
    return (today - run.as_of).days


def audit_rows(session: Session, *, limit: int = 20) -> list[AuditLog]:
    return list(
        session.execute(select(AuditLog).order_by(col(AuditLog.id).desc()).limit(limit)).scalars()
    )


def customers_by_ids(session: Session, customer_ids: Sequence[str]) -> list[Customer]:
    if not customer_ids:
        return []
    return list(
        session.execute(
            select(Customer).where(col(Customer.customer_id).in_(list(customer_ids)), _live())
        ).scalars()
    )


def owners_matching(session: Session, identities: Collection[str]) -> list[str]:
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


# ---------------------------------------------------------------------------------------
# Model runs and their scores: what training, `crmbot model ...` and `crmbot scores export`
# read. Activation (the one write here) flips `ActiveRun` in a single transaction.
# ---------------------------------------------------------------------------------------


class RunNotActivatable(ValueError):
    """`activate` was asked for a run that cannot go live; the message says why."""


def active_run_id(session: Session, *, slot: str = SCORES_SLOT) -> int | None:
    return session.execute(
        select(col(ActiveRun.run_id)).where(col(ActiveRun.slot) == slot)
    ).scalar_one_or_none()


def active_run(session: Session) -> ModelRun | None:
    """The model run readers see (same as `active_scores_run`), or None before training."""
    return active_scores_run(session)


def get_run(session: Session, run_id: int) -> ModelRun | None:
    return session.get(ModelRun, run_id)


def list_runs(session: Session, *, limit: int = 20) -> list[ModelRun]:
    """The newest runs first, every status (running, succeeded, failed, rejected)."""
    return recent_runs(session, limit=limit)


def run_score_count(session: Session, run_id: int) -> int:
    return int(
        session.execute(
            select(func.count()).select_from(CustomerScore).where(CustomerScore.run_id == run_id)  # type: ignore[arg-type]
        ).scalar_one()
    )


def activate(engine: Engine, run_id: int, *, clock: Callable[[], datetime] = utc_now) -> ModelRun:
    """Make `run_id` the run readers see (e.g. to roll back), in one transaction.

    A run that finished with its scores written may be activated — a `rejected` one too
    (that is what forcing a challenger means); a failed or still-running run may not.
    """
    with write_session(engine) as session:
        run = session.get(ModelRun, run_id)
        if run is None:
            raise RunNotActivatable(f"there is no model run {run_id}; see `crmbot model list`")
        if run.status not in ("succeeded", "rejected"):
            detail = f" ({run.error})" if run.error else ""
            raise RunNotActivatable(
                f"model run {run_id} is {run.status}{detail}; only a finished run can be activated"
            )
        if run_score_count(session, run_id) == 0:
            raise RunNotActivatable(f"model run {run_id} has no scores to serve")
        now = clock()
        current = session.get(ActiveRun, SCORES_SLOT, with_for_update=True)
        if current is None:
            session.add(ActiveRun(slot=SCORES_SLOT, run_id=run_id, activated_at=now))
        else:
            current.run_id = run_id
            current.activated_at = now
        run.activated_at = now
        if run.status == "rejected":
            run.status = "succeeded"
            run.forced = True
        session.flush()
        return run


# Export order: the columns people look for first, then every other score column.
EXPORT_LEADING_COLUMNS = [
    "customer_id",
    "segment",
    "cluster",
    "clv",
    "expected_purchases",
    "p_alive",
    "churn_risk",
]
_SCORE_TABLE: Any = CustomerScore.__table__  # type: ignore[attr-defined]
_SCORE_COLUMNS = [c.name for c in _SCORE_TABLE.columns if c.name != "run_id"]


def _run_scores_statement(run_id: int | None) -> Any:
    columns: list[Any] = [Customer.customer_id]
    columns += [_SCORE_TABLE.c[name] for name in _SCORE_COLUMNS]
    return (
        select(*columns)
        .join(Customer, Customer.id == _SCORE_TABLE.c.customer_pk)  # type: ignore[arg-type]
        .where(_SCORE_TABLE.c.run_id == run_id)
        .order_by(_SCORE_TABLE.c.customer_pk)
    )


def scores_frame(
    session: Session, run_id: int | None = None, *, columns: list[str] | None = None
) -> pd.DataFrame:
    """Every score column of a run (default: the active one) plus `customer_id`, or only
    `columns` (without `customer_id`) when given — a million rows of forty columns take a
    while to read.

    Index customer_pk; empty when there is no such run.
    """
    if run_id is None:
        run_id = active_run_id(session)
    if columns is not None:
        names = ["customer_pk", *[c for c in columns if c != "customer_pk"]]
        result = session.execute(
            select(*[_SCORE_TABLE.c[name] for name in names]).where(_SCORE_TABLE.c.run_id == run_id)
        )
        rows = [tuple(row) for row in result]
        return pd.DataFrame.from_records(rows, columns=names).set_index("customer_pk")
    result = session.execute(_run_scores_statement(run_id))
    # Plain tuples: pandas' per-row attribute probes are slow on SQLAlchemy Rows.
    rows = [tuple(row) for row in result]
    frame = pd.DataFrame.from_records(rows, columns=["customer_id", *_SCORE_COLUMNS])
    return frame.set_index("customer_pk")


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return "; ".join(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return value


def export_scores(session: Session, path: Path, run_id: int | None = None) -> int:
    """Write one CSV row per customer of a run (default: the active one); rows written.

    Rows stream from the database in batches, so the export's memory stays flat.
    """
    if run_id is None:
        run_id = active_run_id(session)
    names = ["customer_id", *_SCORE_COLUMNS]
    header = EXPORT_LEADING_COLUMNS + [
        c for c in names if c not in EXPORT_LEADING_COLUMNS and c != "customer_pk"
    ]
    positions = [names.index(name) for name in header]
    written = 0
    result = session.execute(_run_scores_statement(run_id), execution_options={"yield_per": 10_000})
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in result:
            writer.writerow([_csv_value(row[i]) for i in positions])
            written += 1
    return written
