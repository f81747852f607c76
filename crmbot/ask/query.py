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
* ``offer`` — the next best products of one customer (the customer card's offers), or,
  with no customer named, the offers most often first for the customers the filters keep
  ("next best product for Champions").
* ``tickets`` — support tickets, joined to their customer; ``status`` open (no
  ``closed_at``) or closed; a date range is about when they were opened, or closed with
  ``date_field="closed"``; measure ``resolution_days`` is the days from opened to closed.
* ``feedback`` — survey answers (NPS 0-10, CSAT 1-5), dated by when they were submitted;
  ``nps_categories`` keeps promoters (9-10), passives (7-8), detractors (0-6).
* ``products`` — what was bought: order lines of purchases, one row per product, ranked by
  ``amount`` (revenue: quantity x unit price) or ``units``; filters apply to the buyer.
* ``score_changes`` — customers whose ``measure`` went ``change`` ("up" or "down") between
  the run compared with (as for segment moves) and the active run.

For customers, ``products`` keeps those who bought any of them (in the date range, when
one is given) and ``not_products`` those who never did; ``nps_categories`` reads the latest
answer of the run; ``bands`` keep a share of the run's customers by a score ("high CLV" =
the top quarter); the ``not_*`` names are exclusions ("not in EMEA"). With
``compare_range`` the count, total or average is answered for ``date_range`` and again for
``compare_range`` ("orders this month vs last month").

Dates are ``[start, end)``: ``end`` is the first day *not* included.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Literal, get_args

from pydantic import ConfigDict

from crmbot.core.models import ScoreField

Entity = Literal[
    "customers",
    "orders",
    "referrals",
    "segment_moves",
    "offer",
    "tickets",
    "feedback",
    "products",
    "score_changes",
]
# "nps": promoters' share minus detractors' share, in points (-100..100).
Metric = Literal["list", "count", "sum", "avg", "nps"]
Op = Literal[">", ">=", "<", "<="]
# Numbers counted per customer when the query runs (not kept in the run).
CountField = Literal["tickets", "open_tickets"]
# What can be summed, averaged or sorted: a score, a count, or an amount of the rows asked
# about (an order's or a product's revenue, units sold, a ticket's days to close, a survey
# answer's NPS or CSAT).
Measure = Literal[
    ScoreField, CountField, "amount", "referrals", "units", "resolution_days", "nps", "csat"
]
GroupBy = Literal[
    "segment",
    "cluster",
    "region",
    "owner",
    "company",
    "referrer",
    "month",
    "channel",
    "status",
    "nps_category",
    "product",
    "category",
]
# For customers: is a date range about when they signed up or when they ordered? For
# tickets: when they were opened or closed.
DateField = Literal["signed_up", "ordered", "opened", "closed"]
TicketStatus = Literal["open", "closed"]
NpsCategory = Literal["promoter", "passive", "detractor"]
Change = Literal["up", "down"]

ENTITIES: tuple[str, ...] = get_args(Entity)
METRICS: tuple[str, ...] = get_args(Metric)
SCORE_FIELDS: tuple[str, ...] = get_args(ScoreField)
COUNT_FIELDS: tuple[str, ...] = get_args(CountField)
NPS_CATEGORIES: tuple[str, ...] = get_args(NpsCategory)
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
    "csat_avg": "CSAT",
    "nps_latest": "NPS answer",
    "sentiment": "sentiment",
    "tickets": "tickets",
    "open_tickets": "open tickets",
    "amount": "order value",
    "referrals": "referrals",
    "units": "units",
    "resolution_days": "days to close",
    "nps": "NPS",
    "csat": "CSAT",
}
GROUP_LABELS: dict[str, str] = {
    "segment": "segment",
    "cluster": "cluster",
    "region": "region",
    "owner": "owner",
    "company": "company",
    "referrer": "referrer",
    "month": "month",
    "channel": "channel",
    "status": "status",
    "nps_category": "NPS category",
    "product": "product",
    "category": "product category",
}
ENTITY_LABELS: dict[str, str] = {
    "customers": "Customers",
    "orders": "Orders",
    "referrals": "Referrals",
    "segment_moves": "Segment moves",
    "offer": "Next best products",
    "tickets": "Tickets",
    "feedback": "Survey answers",
    "products": "Products",
    "score_changes": "Score changes",
}
# Which measures each kind of row has (customers: every score and count).
ENTITY_MEASURES: dict[str, frozenset[str]] = {
    "orders": frozenset({"amount"}),
    "referrals": frozenset({"referrals"}),
    "tickets": frozenset({"resolution_days"}),
    "feedback": frozenset({"nps", "csat"}),
    "products": frozenset({"amount", "units"}),
    "score_changes": frozenset({"clv", "churn_risk", "satisfaction", "value_at_risk", "p_alive"}),
    "customers": frozenset(get_args(ScoreField)) | frozenset(get_args(CountField)),
}
# Which groupings each kind of row has; the rest are refused with what is possible.
_CUSTOMER_GROUPS = ("segment", "cluster", "region", "owner", "company")
ENTITY_GROUPS: dict[str, tuple[str, ...]] = {
    "customers": (*_CUSTOMER_GROUPS, "nps_category"),
    "orders": (*_CUSTOMER_GROUPS, "month"),
    "referrals": (*_CUSTOMER_GROUPS, "referrer"),
    "segment_moves": _CUSTOMER_GROUPS,
    "tickets": (*_CUSTOMER_GROUPS, "channel", "status", "month"),
    "feedback": (*_CUSTOMER_GROUPS, "nps_category", "month"),
    "products": ("product", "category"),
    "score_changes": _CUSTOMER_GROUPS,
    "offer": (),
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

    field: ScoreField | CountField
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
class Band:
    """The ``share`` of the run's customers highest (``top``) or lowest by ``field``:
    "high CLV" is the top quarter by CLV; the cut-off is read from the run when asked."""

    # Unknown keys are refused when a query is read from JSON (a language model's answer).
    __pydantic_config__ = ConfigDict(extra="forbid")

    field: ScoreField
    top: bool = True
    share: float = 0.25


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
    bands: tuple[Band, ...] = ()
    # Exclusions: "not in EMEA", "excluding Champions", "other than maria's".
    not_segments: tuple[str, ...] = ()
    not_regions: tuple[str, ...] = ()
    not_owners: tuple[str, ...] = ()
    not_companies: tuple[str, ...] = ()
    # Products (Product.name) bought, and never bought; product categories likewise.
    products: tuple[str, ...] = ()
    not_products: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    nps_categories: tuple[NpsCategory, ...] = ()
    status: TicketStatus | None = None
    # Tickets by the channel they came in through ("phone tickets"), lower case.
    channels: tuple[str, ...] = ()
    change: Change | None = None
    date_range: DateRange | None = None
    # The period a count, total or average is compared with ("vs last month").
    compare_range: DateRange | None = None
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
        if self.metric in ("sum", "avg") and self.measure is None:
            found.append("say what to add up or average, e.g. `average CLV of Champions`")
        found += self._measure_problems()
        if self.group_by is not None and self.group_by not in ENTITY_GROUPS[self.entity]:
            possible = ", ".join(GROUP_LABELS[g] for g in ENTITY_GROUPS[self.entity]) or "nothing"
            found.append(
                f"{ENTITY_LABELS[self.entity].lower()} can be grouped by {possible}, "
                f"not by {GROUP_LABELS[self.group_by]}"
            )
        if self.channels and self.entity != "tickets":
            found.append("a channel is said of tickets: `phone tickets last month`")
        if self.status is not None and self.entity != "tickets":
            found.append("open and closed are said of tickets: `open tickets in EMEA`")
        if self.change is not None and self.entity != "score_changes":
            found.append("say what went up or down, e.g. `churn risk up since last week`")
        if self.entity == "score_changes" and (self.change is None or self.measure is None):
            found.append("say which score went up or down, e.g. `churn risk up since last week`")
        if self.metric == "nps" and self.entity not in ("customers", "feedback"):
            found.append("NPS is asked of customers or survey answers: `NPS by region`")
        if self.compare_range is not None and (
            self.date_range is None or self.metric not in ("count", "sum", "avg", "nps")
        ):
            found.append(
                "compare two periods with a count, total or average: "
                "`how many orders this month vs last month`"
            )
        if self.compare_range is not None and self.group_by is not None:
            found.append("compare two periods or compare groups, not both at once")
        if self.products and self.entity in ("orders", "referrals", "segment_moves"):
            found.append(
                "products are asked about customers or products: `customers who bought "
                "Descaler`, `revenue of Descaler last month`"
            )
        if self.limit is not None and not 1 <= self.limit <= MAX_LIMIT:
            found.append(f"ask for between 1 and {MAX_LIMIT} rows")
        for threshold in self.thresholds:
            if threshold.value != threshold.value:  # NaN
                found.append(f"{FIELD_LABELS[threshold.field]} needs a number")
        for band in self.bands:
            if not 0 < band.share < 1:
                found.append("a share of the customers is between 0 and 100%")
        return found

    def _measure_problems(self) -> list[str]:
        """A measure the rows asked about do not have."""
        entity, measure = self.entity, self.measure
        if entity == "segment_moves":
            return []  # moves are listed or counted; a measure only names the rows' column
        if entity == "offer":
            if measure is not None:
                return ["next best products have no figure to add up"]
            return []
        if measure is None or measure in ENTITY_MEASURES[entity]:
            return []
        if entity == "customers":
            if measure in ("amount", "units"):
                return ["order values are asked about orders: `average order value of ...`"]
            if measure in ("nps", "csat"):
                return ["a customer's NPS and CSAT are `nps_latest` and `csat_avg`"]
            if measure == "resolution_days":
                return ["days to close are asked about tickets: `average time to close tickets`"]
            return ["referrals are counted; ask `who referred the most`"]
        has = ", ".join(field_label(m) for m in sorted(ENTITY_MEASURES[entity]))
        return [f"{ENTITY_LABELS[entity].lower()} have {has}; ask about customers for their scores"]


def field_label(name: str) -> str:
    return FIELD_LABELS.get(name, name.replace("_", " "))
