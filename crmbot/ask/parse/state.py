"""What the phrase rules have read so far; `assemble.finish` turns it into the query."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from crmbot.ask.parse.matcher import Matcher
from crmbot.ask.query import Band, DateRange, Threshold


@dataclass
class ParseState:
    today: date
    askers: tuple[str, ...]
    matcher: Matcher
    mentions: dict[str, str]
    entity: str | None = None
    # Bare order nouns were seen ("orders last month"); `finish` settles what the rows are.
    weak_orders: bool = False
    metric: str | None = None
    measure: str | None = None
    segments: list[str] = field(default_factory=list)
    from_segments: list[str] = field(default_factory=list)
    clusters: list[int] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)
    owners: list[str] = field(default_factory=list)
    companies: list[str] = field(default_factory=list)
    customer: str | None = None
    customer_name: str | None = None
    thresholds: list[Threshold] = field(default_factory=list)
    bands: list[Band] = field(default_factory=list)
    not_segments: list[str] = field(default_factory=list)
    not_regions: list[str] = field(default_factory=list)
    not_owners: list[str] = field(default_factory=list)
    not_companies: list[str] = field(default_factory=list)
    products: list[str] = field(default_factory=list)
    not_products: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    nps_categories: list[str] = field(default_factory=list)
    status: str | None = None
    channels: list[str] = field(default_factory=list)
    change: str | None = None
    # Words that make named products the rows ("revenue", "units", "best sellers").
    product_rows: bool = False
    bought: bool = False
    # A survey-answer question ("feedback", "NPS") rather than one about customers.
    surveys: bool = False
    compare_range: DateRange | None = None
    date_range: DateRange | None = None
    date_field: str | None = None
    group_by: str | None = None
    sort: str | None = None
    descending: bool = True
    limit: int | None = None
    chart: bool = False
    problems: list[str] = field(default_factory=list)
    # A problem the rules are sure of (see `ParseResult.final`).
    final: bool = False

    @staticmethod
    def add(values: list[str], new: Iterable[str]) -> None:
        """Append the values of `new` not yet in `values`, in order."""
        for value in new:
            if value not in values:
                values.append(value)
