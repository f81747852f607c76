"""How a question was understood, in one line, so a misreading is visible at once:

Customers · segment = Champions · region = EMEA · churn risk > 50% · 12 found
"""

from __future__ import annotations

import math
import re
from datetime import timedelta

from crmbot.ask.query import (
    ENTITY_LABELS,
    GROUP_LABELS,
    MONEY_FIELDS,
    PROBABILITY_FIELDS,
    Band,
    DateRange,
    StructuredQuery,
    Threshold,
    field_label,
)
from crmbot.reply.format import money, significant

SEPARATOR = " · "
MAX_NAMES_SHOWN = 4


def format_value(field_name: str | None, value: object) -> str:
    """A number as an account manager reads it: 53%, 12,400, 45 days."""
    if value is None:
        return "–"
    if not isinstance(value, (int, float)):
        return str(value)
    number = float(value)
    if math.isnan(number):
        return "–"
    if field_name in PROBABILITY_FIELDS:
        return f"{number:.0%}"
    if field_name in MONEY_FIELDS:
        return money(number)
    if field_name == "recency_days":
        return f"{number:,.0f} days"
    if field_name == "resolution_days":
        return f"{number:,.1f} days"
    if field_name in ("satisfaction",):
        return f"{number:.0f}"
    if field_name in ("influence", "p_alive"):
        return significant(number, 3)
    if field_name == "expected_purchases":
        return f"{number:.1f}"
    if number.is_integer():
        return f"{number:,.0f}"
    return f"{number:,.2f}"


def describe_threshold(threshold: Threshold) -> str:
    if threshold.field == "recency_days":
        days = f"{threshold.value:,.0f} days"
        words = {">": "more than", ">=": "at least", "<": "less than", "<=": "at most"}
        return f"last order {words[threshold.op]} {days} ago"
    if threshold.field == "orders_count" and threshold.op == "<=" and threshold.value == 0:
        return "no orders"
    if threshold.field in ("tickets", "open_tickets"):
        noun = field_label(threshold.field)
        if threshold.op == "<=" and threshold.value == 0:
            return f"no {noun}"
        if threshold.op == ">=" and threshold.value == 1:
            return f"has {noun}"
    value = format_value(threshold.field, threshold.value)
    return f"{field_label(threshold.field)} {threshold.op} {value}"


def describe_dates(date_range: DateRange, what: str = "") -> str:
    start, end = date_range.start, date_range.end
    if start and end:
        span = f"{start.isoformat()} – {(end - timedelta(days=1)).isoformat()}"
    elif start:
        span = f"from {start.isoformat()}"
    elif end:
        span = f"before {end.isoformat()}"
    else:
        span = "any time"
    label = f"{date_range.label} " if date_range.label else ""
    prefix = f"{what} " if what else ""
    return f"{prefix}{label}({span})"


def _names(label: str, values: tuple[object, ...]) -> str:
    shown = [str(v) for v in values[:MAX_NAMES_SHOWN]]
    more = len(values) - len(shown)
    text = ", ".join(shown) + (f" (+{more} more)" if more > 0 else "")
    return f"{label} = {text}"


def describe(query: StructuredQuery) -> list[str]:
    """The parts of the explanation line, without the count."""
    parts = [ENTITY_LABELS[query.entity]]
    if query.entity == "segment_moves":
        if query.from_segments:
            parts.append("from " + ", ".join(query.from_segments))
        if query.segments:
            parts.append("to " + ", ".join(query.segments))
    elif query.segments:
        parts.append(_names("segment", query.segments))
    if query.clusters:
        parts.append(_names("cluster", query.clusters))
    if query.regions:
        parts.append(_names("region", query.regions))
    if query.owners:
        parts.append(_names("owner", query.owners))
    if query.companies:
        parts.append(_names("company", query.companies))
    if query.customer:
        parts.append(f"customer = {query.customer}")
    if query.customer_name:
        parts.append(f"customer = {query.customer_name}")
    parts += _areas(query)
    parts += [describe_threshold(t) for t in query.thresholds]
    parts += [describe_band(b) for b in query.bands]
    if query.date_range is not None and query.compare_range is not None:
        parts.append(f"{describe_dates(query.date_range)} vs {describe_dates(query.compare_range)}")
    elif query.date_range is not None:
        what = {
            "orders": "ordered",
            "referrals": "referred",
            "segment_moves": "since" if query.date_range.start else "",
        }.get(query.entity, "")
        if query.entity == "customers":
            what = "signed up" if query.date_field == "signed_up" else "ordered"
        if query.entity == "segment_moves":
            what = ""
        if query.entity == "tickets":
            what = "closed" if query.date_field == "closed" else "opened"
        if query.entity == "feedback":
            what = "answered"
        if query.entity == "products":
            what = "bought"
        if query.entity == "score_changes":
            what = ""
        parts.append(describe_dates(query.date_range, what))
    measure = field_label(query.measure) if query.measure else ""
    if query.metric == "avg":
        parts.append(f"average {measure}".strip())
    elif query.metric == "sum":
        parts.append(f"total {measure}".strip())
    elif query.metric == "count" and query.group_by:
        parts.append("count")
    elif query.metric == "nps":
        parts.append("NPS (promoters − detractors)")
    if query.group_by:
        direction = "highest first" if query.descending else "lowest first"
        parts.append(f"by {GROUP_LABELS[query.group_by]} ({direction})")
    elif query.entity == "products" and query.metric == "list":
        top = f"top {query.limit} " if query.limit else ""
        ranked = "units" if query.sort == "units" else "revenue"
        direction = "highest first" if query.descending else "lowest first"
        parts.append(f"{top}by {ranked} ({direction})")
    elif query.metric == "list" and query.entity != "offer":
        if query.sort:
            direction = "highest first" if query.descending else "lowest first"
            top = f"top {query.limit} " if query.limit else ""
            parts.append(f"{top}by {field_label(query.sort)} ({direction})")
        elif query.limit:
            parts.append(f"top {query.limit}")
    return parts


def describe_band(band: Band) -> str:
    where = "top" if band.top else "bottom"
    return f"{field_label(band.field)} in the {where} {band.share:.0%} of customers"


def _areas(query: StructuredQuery) -> list[str]:
    """The parts only some kinds of rows have: exclusions, products, NPS categories, a
    ticket's status, a score's change."""
    parts: list[str] = []
    for label, values in (
        ("segment", query.not_segments),
        ("region", query.not_regions),
        ("owner", query.not_owners),
        ("company", query.not_companies),
    ):
        if values:
            parts.append(_names(label, values).replace(" = ", " ≠ ", 1))
    if query.products:
        verb = "product" if query.entity == "products" else "bought"
        parts.append(_names(verb, query.products))
    if query.categories:
        verb = "category" if query.entity == "products" else "bought from category"
        parts.append(_names(verb, query.categories))
    if query.not_products:
        parts.append(_names("never bought", query.not_products))
    if query.nps_categories:
        parts.append(_names("NPS", tuple(f"{c}s" for c in query.nps_categories)))
    if query.status:
        parts.append(f"status = {query.status}")
    if query.channels:
        parts.append(_names("channel", query.channels))
    if query.change and query.measure:
        parts.append(f"{field_label(query.measure)} went {query.change}")
    return parts


def explanation(query: StructuredQuery, found: int | None, *, note: str = "") -> str:
    parts = describe(query)
    if note:
        parts.append(note)
    if found is not None:
        parts.append(f"{found:,} found")
    return SEPARATOR.join(parts)


def sanitize(text: str, limit: int = 60) -> str:
    """Text from a question, fit to echo back in Slack or a terminal: no markup, no mention."""
    text = re.sub(r"[<>&*_~`|\\]", "", text)
    return text[:limit]
