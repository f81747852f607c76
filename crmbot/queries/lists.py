"""The ranked lists: accounts at risk, top value, influencers, similar customers.

Every list reads one run's scores (the caller passes the active run) joined to the
customers they belong to, within the reader's `Scope` (live customers of their book).
"""

from __future__ import annotations

import threading
import weakref
from collections import Counter, defaultdict
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlmodel import col

from crmbot.core.models import Customer, CustomerScore, ModelRun
from crmbot.queries.customers import run_facts
from crmbot.queries.scope import Scope


@dataclass(frozen=True)
class ScoredCustomer:
    customer: Customer
    score: CustomerScore
    # Whether the customer's churn risk is at least the typical customer's, so their
    # reasons say what raises it (False: what keeps it low; None: not recorded).
    raised: bool | None = None


def _scored(session: Session, statement: Any, run: ModelRun) -> list[ScoredCustomer]:
    typical = run_facts(run).typical_risk
    return [
        ScoredCustomer(
            customer=c,
            score=s,
            raised=None
            if typical is None or s.churn_risk is None
            else round(s.churn_risk, 4) >= round(typical, 4),
        )
        for c, s in session.execute(statement).all()
    ]


def _scores_of(run: ModelRun, scope: Scope) -> Any:
    """The run's score rows of the customers `scope` may see."""
    return (
        select(Customer, CustomerScore)
        .join(CustomerScore, col(CustomerScore.customer_pk) == col(Customer.id))
        .where(col(CustomerScore.run_id) == run.id, scope.where(Customer))
    )


def at_risk(
    *,
    session: Session,
    run: ModelRun,
    scope: Scope,
    limit: int = 10,
    segment: str | None = None,
    region: str | None = None,
) -> list[ScoredCustomer]:
    """The accounts most worth saving: ranked by value at risk (CLV x churn risk)."""
    if segment is not None and region is None and scope.is_everyone and limit <= TOP_OF_SEGMENT:
        # A segment's first accounts, among the few the run ranks first in it.
        ranked = segment_top(session=session, run=run, segment=segment)
        # Read by key, then sorted: `+ 0` keeps the value-at-risk index (which would be
        # walked for its order) out of it.
        statement = (
            _scores_of(run, scope)
            .where(col(Customer.id).in_(ranked))
            .order_by((col(CustomerScore.value_at_risk) + 0).desc(), col(Customer.customer_id))
        )
        rows = _scored(session, statement.limit(limit), run) if ranked else []
        if len(rows) == limit or len(ranked) < TOP_OF_SEGMENT:
            return rows  # else customers erased since: read the list in full
    statement = _at_risk_statement(_scores_of(run, scope), segment=segment, region=region)
    return _scored(session, statement.limit(limit), run)


# How many of a segment's accounts at risk `segment_top` keeps per run: the longest list.
TOP_OF_SEGMENT = 50
_segment_tops: weakref.WeakKeyDictionary[Any, dict[tuple[int, str], list[int]]] = (
    weakref.WeakKeyDictionary()
)
_segment_tops_lock = threading.Lock()


def segment_top(*, session: Session, run: ModelRun, segment: str) -> list[int]:
    """The surrogate ids of the `TOP_OF_SEGMENT` accounts of `segment` with the most value
    at risk in `run`, in the at-risk list's order, erased customers included (the list
    leaves them out); read once per run and segment, then kept (a run's scores never
    change).

    A segment's accounts are not together in the value-at-risk index: a segment of small
    accounts ("Lost", "Hibernating") is found only after most of the index has been read,
    0.4-6 s at a million customers, where the kept ids take a millisecond.
    """
    assert run.id is not None
    bind = session.get_bind()
    key = (run.id, segment)
    with _segment_tops_lock:
        known = _segment_tops.get(bind, {}).get(key)
    if known is not None:
        return known
    value = col(CustomerScore.value_at_risk)
    statement = (
        select(col(CustomerScore.customer_pk))
        .join(Customer, col(Customer.id) == col(CustomerScore.customer_pk))
        .where(
            col(CustomerScore.run_id) == run.id,
            col(CustomerScore.segment) == segment,
            # `+ 0`: the segment's rows through its own index, then sorted; not a walk of
            # the value-at-risk index past every other segment's accounts.
            value + 0 > 0,
        )
        .order_by(value.desc(), col(Customer.customer_id))
        .limit(TOP_OF_SEGMENT)
    )
    ranked = [int(pk) for pk in session.execute(statement).scalars()]
    with _segment_tops_lock:
        per_run = _segment_tops.setdefault(bind, {})
        for stale in [k for k in per_run if k[0] != run.id]:
            del per_run[stale]  # one run is read at a time: the others' lists go
        per_run[key] = ranked
    return ranked


def _at_risk_statement(statement: Any, *, segment: str | None, region: str | None) -> Any:
    statement = statement.where(
        col(CustomerScore.value_at_risk).is_not(None),
        col(CustomerScore.value_at_risk) > 0,
    )
    if segment is not None:
        statement = statement.where(col(CustomerScore.segment) == segment)
    if region is not None:
        statement = statement.where(func.lower(col(Customer.region)) == region.lower())
    return statement.order_by(
        col(CustomerScore.value_at_risk).desc(),
        col(Customer.customer_id),
    )


def top_value(
    *,
    session: Session,
    run: ModelRun,
    scope: Scope,
    limit: int = 10,
    segment: str | None = None,
) -> list[ScoredCustomer]:
    """The customers `scope` may see with the highest CLV (optionally in one segment).

    Over the whole book only customers with a CLV count; within a segment everyone does,
    those without one (Prospects, who never bought) last, so a segment is never "empty"."""
    statement = _top_value_statement(_scores_of(run, scope), segment=segment)
    return _scored(session, statement.limit(limit), run)


def _top_value_statement(statement: Any, *, segment: str | None) -> Any:
    if segment is None:
        statement = statement.where(col(CustomerScore.clv).is_not(None))
    else:
        statement = statement.where(col(CustomerScore.segment) == segment)
    return statement.order_by(
        col(CustomerScore.clv).is_(None),
        col(CustomerScore.clv).desc(),
        col(Customer.customer_id),
    )


# The columns of a list exported as CSV (`crmbot.reply.export`), in order: the contact
# details the message leaves out, and the scores as numbers.
LIST_EXPORT_COLUMNS = (
    "Customer",
    "Name",
    "Email",
    "Phone",
    "Company",
    "Region",
    "Owner",
    "Segment",
    "CLV",
    "Churn risk",
    "Value at risk",
    "Reasons",
)
# Rows fetched from the database at a time while an export streams.
EXPORT_BATCH = 5_000


def list_export_rows(
    *,
    session: Session,
    run: ModelRun,
    scope: Scope,
    kind: Literal["at_risk", "top_value"],
    limit: int,
    segment: str | None = None,
    region: str | None = None,
) -> tuple[int, Iterator[tuple[Any, ...]]]:
    """The rows of the at-risk list (`at_risk`) or of the most valuable customers
    (`top_value`), in the same order, as `LIST_EXPORT_COLUMNS`: how many match, and at most
    `limit` of them, streamed in batches (a million customers' list never sits in memory)."""
    columns = (
        col(Customer.customer_id),
        col(Customer.name),
        col(Customer.email),
        col(Customer.phone),
        col(Customer.company),
        col(Customer.region),
        col(Customer.owner),
        col(CustomerScore.segment),
        col(CustomerScore.clv),
        col(CustomerScore.churn_risk),
        col(CustomerScore.value_at_risk),
        col(CustomerScore.churn_reasons),
    )
    base = (
        select(*columns)
        .select_from(Customer)
        .join(CustomerScore, col(CustomerScore.customer_pk) == col(Customer.id))
        .where(col(CustomerScore.run_id) == run.id, scope.where(Customer))
    )
    if kind == "at_risk":
        statement = _at_risk_statement(base, segment=segment, region=region)
    else:
        statement = _top_value_statement(base, segment=segment)
    found = int(
        session.execute(
            select(func.count()).select_from(statement.order_by(None).subquery())
        ).scalar_one()
    )
    result = session.execute(statement.limit(limit), execution_options={"yield_per": EXPORT_BATCH})

    def rows() -> Iterator[tuple[Any, ...]]:
        for row in result:
            *values, reasons = row
            yield (*[_rounded(v) for v in values], "; ".join(reasons or []))

    return found, rows()


def _rounded(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def influencers(
    *,
    session: Session,
    run: ModelRun,
    scope: Scope,
    limit: int = 10,
    segment: str | None = None,
    region: str | None = None,
) -> list[ScoredCustomer]:
    """The customers whose referrals and purchases move others, by influence score,
    optionally of one segment and/or region (both matched without regard to case)."""
    statement = _scores_of(run, scope).where(
        col(CustomerScore.influence).is_not(None), col(CustomerScore.influence) > 0
    )
    if segment:
        statement = statement.where(func.lower(col(CustomerScore.segment)) == segment.lower())
    if region:
        statement = statement.where(func.lower(col(Customer.region)) == region.lower())
    statement = statement.order_by(
        col(CustomerScore.influence).desc(), col(Customer.customer_id)
    ).limit(limit)
    return _scored(session, statement, run)


def community_leaders(
    *, session: Session, run: ModelRun, communities: Collection[int]
) -> dict[int, float]:
    """The highest influence within each of `communities` in the run."""
    if not communities:
        return {}
    statement = (
        select(col(CustomerScore.community), func.max(col(CustomerScore.influence)))
        .where(
            col(CustomerScore.run_id) == run.id,
            col(CustomerScore.community).in_(sorted(communities)),
        )
        .group_by(col(CustomerScore.community))
    )
    return {
        int(c): float(m)
        for c, m in session.execute(statement).all()
        if c is not None and m is not None
    }


def community_regions(
    *, session: Session, run: ModelRun, communities: Collection[int]
) -> dict[int, str]:
    """ "mostly EMEA" for each community whose members are mostly in one region."""
    if not communities:
        return {}
    counts: dict[int, Counter[str]] = defaultdict(Counter)
    for community, region, members in session.execute(
        select(col(CustomerScore.community), col(Customer.region), func.count())
        .join(Customer, col(Customer.id) == col(CustomerScore.customer_pk))
        .where(
            col(CustomerScore.run_id) == run.id,
            col(CustomerScore.community).in_(sorted(communities)),
        )
        .group_by(col(CustomerScore.community), col(Customer.region))
    ).all():
        if community is not None:
            counts[int(community)][region or "no region"] += int(members)
    described = {}
    for community, regions in counts.items():
        region, members = regions.most_common(1)[0]
        if region != "no region" and members * 2 > sum(regions.values()):
            described[community] = f"mostly {region}"
    return described


def churn_risks(
    *, session: Session, run: ModelRun, scope: Scope, customer_ids: Sequence[str]
) -> list[tuple[Customer, float | None]]:
    """Each customer among `customer_ids` that `scope` may see, with their churn risk."""
    if not customer_ids:
        return []
    return [
        (customer, risk)
        for customer, risk in session.execute(
            select(Customer, col(CustomerScore.churn_risk))
            .join(CustomerScore, col(CustomerScore.customer_pk) == col(Customer.id))
            .where(
                col(CustomerScore.run_id) == run.id,
                col(Customer.customer_id).in_(list(customer_ids)),
                scope.where(Customer),
            )
        ).all()
    ]


def similar_customers(
    *, session: Session, run: ModelRun, scope: Scope, customer: Customer, limit: int = 5
) -> tuple[CustomerScore | None, list[ScoredCustomer]]:
    """Customers `scope` may see who behave like `customer`: same cluster (or segment),
    nearest RFM scores, then nearest CLV."""
    own = session.get(CustomerScore, (run.id, customer.id))
    if own is None:
        return None, []
    statement = _scores_of(run, scope).where(col(Customer.id) != customer.id)
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
    return own, _scored(session, statement, run)
