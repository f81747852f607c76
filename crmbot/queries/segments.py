"""Segments: their sizes and value in a run, and how customers moved between them, counted
over the customers a reader's `Scope` may see."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlmodel import col

from crmbot.core.models import Customer, CustomerScore, ModelRun
from crmbot.queries import vocabulary
from crmbot.queries.scope import Scope


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


def _previous_segment_counts(session: Session, run_id: int, scope: Scope) -> dict[str, int]:
    """Segment sizes in the model that was live when `run_id` was trained, as training
    recorded them per customer — the same source as the migrations, so the two agree."""
    return {
        segment: count
        for segment, count in session.execute(
            select(col(CustomerScore.previous_segment), func.count())
            .join(Customer, col(Customer.id) == col(CustomerScore.customer_pk))
            .where(
                col(CustomerScore.run_id) == run_id,
                scope.where(Customer),
                col(CustomerScore.previous_segment).is_not(None),
            )
            .group_by(col(CustomerScore.previous_segment))
        ).all()
        if segment
    }


def segment_summary(*, session: Session, run: ModelRun, scope: Scope) -> SegmentSummary:
    """Segment sizes and value in the active run, and how customers moved since the last,
    over the customers `scope` may see."""
    assert run.id is not None
    previous_counts: dict[str, int] | None = _previous_segment_counts(session, run.id, scope)
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
        .where(col(CustomerScore.run_id) == run.id, scope.where(Customer))
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
                scope.where(Customer),
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


def segment_names(*, session: Session, run: ModelRun) -> list[str]:
    """The segments of `run`, from its record (`crmbot.queries.vocabulary`)."""
    return vocabulary.segment_names(session=session, run=run)


def region_names(*, session: Session) -> list[str]:
    """Every region customers are in, one index seek each (`crmbot.queries.vocabulary`)."""
    return sorted(r for r in vocabulary.distinct_values(session, col(Customer.region)) if r)


def segment_flows(
    *, session: Session, run: ModelRun, scope: Scope, segment: str
) -> tuple[int, int]:
    """How many customers `scope` may see moved into and out of `segment` since the
    previous run."""

    def moved(*conditions: Any) -> int:
        return int(
            session.execute(
                select(func.count())
                .select_from(CustomerScore)
                .join(Customer, col(Customer.id) == col(CustomerScore.customer_pk))
                .where(col(CustomerScore.run_id) == run.id, scope.where(Customer), *conditions)
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
