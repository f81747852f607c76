"""The structured query a question is translated into, and nothing else.

A question never becomes SQL text: the parser (or, optionally, a language model) fills in a
`StructuredQuery`, whose every field is a closed choice or a value that `execute` binds as a
parameter. The same dataclasses are the JSON schema the language model must answer in.

What the entities mean:

* ``customers`` — customers of the active model run, with their scores.
* ``orders`` — purchases (amount > 0; refunds are left out everywhere here), joined to the
  customer who placed them.
* ``referrals`` — who referred whom, dated by when the referred customer came in; filters
  on segment, region, owner... apply to the referrer.
* ``segment_moves`` — customers whose segment changed: in the active run compared with the
  newest run that went live with ``as_of`` on or before the question's start date ("since
  last week"), or, with no date, compared with ``previous_segment`` (the segment in the
  run that was live before the active one). ``segments`` is where they are now,
  ``from_segments`` where they were.
* ``offer`` — the next best products of one customer (the customer card's offers).

Dates are ``[start, end)``: ``end`` is the first day *not* included.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Literal, get_args

from pydantic import ConfigDict

Entity = Literal["customers", "orders", "referrals", "segment_moves", "offer"]
Metric = Literal["list", "count", "sum", "avg"]
Op = Literal[">", ">=", "<", "<="]
# Numbers kept per customer in the active run (CustomerScore columns).
ScoreField = Literal[
    "clv",
    "churn_risk",
    "value_at_risk",
    "satisfaction",
    "recency_days",
    "total_spend",
    "monetary",
    "orders_count",
    "influence",
    "referred_customers",
    "p_alive",
    "expected_purchases",
]
# What can be summed, averaged or sorted: a score, or an order's amount.
Measure = Literal[ScoreField, "amount", "referrals"]
GroupBy = Literal["segment", "cluster", "region", "owner", "company", "referrer", "month"]
# For customers: is a date range about when they signed up or when they ordered?
DateField = Literal["signed_up", "ordered"]

ENTITIES: tuple[str, ...] = get_args(Entity)
METRICS: tuple[str, ...] = get_args(Metric)
SCORE_FIELDS: tuple[str, ...] = get_args(ScoreField)
MEASURES: tuple[str, ...] = get_args(Measure)
GROUPS: tuple[str, ...] = get_args(GroupBy)

# Probabilities are stored 0..1 but said as percentages ("over 50%", "over 50").
PROBABILITY_FIELDS = frozenset({"churn_risk", "p_alive"})
# Money, for display.
MONEY_FIELDS = frozenset(
    {"clv", "value_at_risk", "total_spend", "monetary", "amount", "referred_spend"}
)

FIELD_LABELS: dict[str, str] = {
    "clv": "CLV",
    "churn_risk": "churn risk",
    "value_at_risk": "value at risk",
    "satisfaction": "satisfaction",
    "recency_days": "days since last order",
    "total_spend": "total spend",
    "monetary": "average spend per order",
    "orders_count": "orders",
    "influence": "influence",
    "referred_customers": "customers referred",
    "p_alive": "probability alive",
    "expected_purchases": "expected purchases",
    "amount": "order value",
    "referrals": "referrals",
}
GROUP_LABELS: dict[str, str] = {
    "segment": "segment",
    "cluster": "cluster",
    "region": "region",
    "owner": "owner",
    "company": "company",
    "referrer": "referrer",
    "month": "month",
}
ENTITY_LABELS: dict[str, str] = {
    "customers": "Customers",
    "orders": "Orders",
    "referrals": "Referrals",
    "segment_moves": "Segment moves",
    "offer": "Next best products",
}

# The cut-offs behind words: "high churn risk", "unhappy" (satisfaction is 0-100).
HIGH_CHURN_RISK = 0.5
LOW_CHURN_RISK = 0.2
LOW_SATISFACTION = 50.0
HIGH_SATISFACTION = 75.0

DEFAULT_LIST_LIMIT = 20
DEFAULT_TOP_LIMIT = 10
MAX_LIMIT = 100


@dataclass(frozen=True)
class Threshold:
    """``field op value``, e.g. churn_risk > 0.5 (probabilities as fractions)."""

    # Unknown keys are refused when a query is read from JSON (a language model's answer).
    __pydantic_config__ = ConfigDict(extra="forbid")

    field: ScoreField
    op: Op
    value: float


@dataclass(frozen=True)
class DateRange:
    """Days from ``start`` (included) to ``end`` (excluded); either may be open."""

    # Unknown keys are refused when a query is read from JSON (a language model's answer).
    __pydantic_config__ = ConfigDict(extra="forbid")

    start: date | None = None
    end: date | None = None
    label: str = ""


@dataclass(frozen=True)
class StructuredQuery:
    """One question, as closed choices and values to bind; see the module docstring."""

    # Unknown keys are refused when a query is read from JSON (a language model's answer).
    __pydantic_config__ = ConfigDict(extra="forbid")

    entity: Entity = "customers"
    metric: Metric = "list"
    # What sum/avg apply to ("amount" for orders); for lists, shown as a column.
    measure: Measure | None = None
    segments: tuple[str, ...] = ()
    from_segments: tuple[str, ...] = ()
    clusters: tuple[int, ...] = ()
    regions: tuple[str, ...] = ()
    owners: tuple[str, ...] = ()
    companies: tuple[str, ...] = ()
    # One customer, by the company's customer id (resolved from a name when possible);
    # `customer_name` is a name that still has to be looked up in the database.
    customer: str | None = None
    customer_name: str | None = None
    thresholds: tuple[Threshold, ...] = ()
    date_range: DateRange | None = None
    date_field: DateField | None = None
    group_by: GroupBy | None = None
    sort: Measure | None = None
    descending: bool = True
    limit: int | None = None
    chart: bool = False

    def with_changes(self, **changes: object) -> StructuredQuery:
        return replace(self, **changes)  # type: ignore[arg-type]

    def problems(self) -> list[str]:
        """What makes this query impossible to answer, in words; empty when it is fine."""
        found: list[str] = []
        if self.entity == "offer" and not (self.customer or self.customer_name):
            found.append("say which customer: `what should I offer customer 123?`")
        if self.metric in ("sum", "avg") and self.measure is None:
            found.append("say what to add up or average, e.g. `average CLV of Champions`")
        if self.entity == "customers" and self.measure in ("amount", "referrals"):
            found.append("order values are asked about orders: `average order value of ...`")
        if self.entity == "orders" and self.measure not in (None, "amount"):
            found.append("orders have an amount; ask about customers for their scores")
        if self.entity == "referrals" and self.measure not in (None, "referrals"):
            found.append("referrals are counted; ask about customers for their scores")
        if self.group_by == "referrer" and self.entity != "referrals":
            found.append("grouping by referrer is for referrals")
        if self.group_by == "month" and self.entity != "orders":
            found.append("grouping by month is for orders")
        if self.limit is not None and not 1 <= self.limit <= MAX_LIMIT:
            found.append(f"ask for between 1 and {MAX_LIMIT} rows")
        for threshold in self.thresholds:
            if threshold.value != threshold.value:  # NaN
                found.append(f"{FIELD_LABELS[threshold.field]} needs a number")
        return found


def field_label(name: str) -> str:
    return FIELD_LABELS.get(name, name.replace("_", " "))
