"""Churn reasons in English: each customer's top drivers, phrased with their own numbers."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from crmbot.analytics.segments import SEGMENT_MEANINGS

TOP_REASONS = 3


def _days(value: float) -> str:
    return f"{round(value):,}"


def _rate(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


class _Facts:
    """The facts of the customers who get one reason, column by column as Python values
    (which format several times faster than NumPy scalars)."""

    def __init__(self, columns: dict[str, np.ndarray], rows: np.ndarray) -> None:
        self.columns = columns
        self.rows = rows

    def __getitem__(self, name: str) -> list[Any]:
        return list(self.columns[name][self.rows].tolist())


# Each group's reason in words, for many customers at once, with their own numbers.
Phraser = Callable[[_Facts, dict[str, float], int], list[str]]


def _recency(f: _Facts, typical: dict[str, float], horizon: int) -> list[str]:
    return [
        f"no order for {_days(days)} days, after a single purchase"
        if _missing(gap)
        else f"no order for {_days(days)} days — usually orders every {_days(gap)}"
        for days, gap in zip(f["recency_days"], f["gap_days"], strict=True)
    ]


def _frequency(f: _Facts, typical: dict[str, float], horizon: int) -> list[str]:
    return [
        f"only {_plural(int(days), 'purchase day')} in {_rate(max(tenure / 30.4, 1.0))} months"
        for days, tenure in zip(f["frequency"], f["tenure_days"], strict=True)
    ]


def _tenure(f: _Facts, typical: dict[str, float], horizon: int) -> list[str]:
    return [f"customer for {_days(days)} days" for days in f["tenure_days"]]


def _spend(f: _Facts, typical: dict[str, float], horizon: int) -> list[str]:
    usual = f"{typical['day_spend']:,.0f}"
    return [
        f"spends {spend:,.0f} per purchase day (typical customer: {usual})"
        for spend in f["day_spend"]
    ]


def _purchase_trend(f: _Facts, typical: dict[str, float], horizon: int) -> list[str]:
    phrases = []
    for last, before in zip(f["purchase_rate_last"], f["purchase_rate_before"], strict=True):
        now = _rate(last)
        then = _rate(0.0 if _missing(before) else before)
        plural = "" if now == "1" else "s"
        phrases.append(f"{now} purchase{plural} a month in the last 90 days vs {then} before")
    return phrases


def _spend_trend(f: _Facts, typical: dict[str, float], horizon: int) -> list[str]:
    phrases = []
    for last, before in zip(f["spend_rate_last"], f["spend_rate_before"], strict=True):
        if _missing(before) or before <= 0:
            phrases.append(f"spend in the last 90 days: {last * 3:,.0f}, nothing before")
            continue
        change = (last - before) / before
        direction = "down" if change < 0 else "up"
        phrases.append(
            f"spend {direction} {abs(change):.0%} in the last 90 days vs the months before"
        )
    return phrases


def _bgnbd(f: _Facts, typical: dict[str, float], horizon: int) -> list[str]:
    return [
        f"purchase pattern gives a {p:.0%} chance of no order in the next {horizon} days"
        for p in f["p_no_purchase"]
    ]


def _open_tickets(f: _Facts, typical: dict[str, float], horizon: int) -> list[str]:
    return [
        "no unresolved tickets" if int(count) == 0 else _plural(int(count), "unresolved ticket")
        for count in f["tickets_open"]
    ]


def _recent_tickets(f: _Facts, typical: dict[str, float], horizon: int) -> list[str]:
    return [
        "no support tickets in the last 90 days"
        if int(count) == 0
        else f"{_plural(int(count), 'support ticket')} in the last 90 days"
        for count in f["tickets_last_90d"]
    ]


def _ticket_time(f: _Facts, typical: dict[str, float], horizon: int) -> list[str]:
    return [
        "no support ticket closed yet"
        if int(count) == 0 or _missing(days)
        else f"tickets took {_rate(days)} days to close on average"
        for count, days in zip(f["tickets_count"], f["resolution_days"], strict=True)
    ]


def _each(values: list[Any], missing: str, phrase: Callable[[Any], str]) -> list[str]:
    """`phrase(value)` for each value; `missing` where the customer has none."""
    return [missing if _missing(value) else phrase(value) for value in values]


def _csat(f: _Facts, typical: dict[str, float], horizon: int) -> list[str]:
    return _each(f["csat_latest"], "no CSAT rating yet", lambda score: f"last CSAT {int(score)}/5")


def _nps_category(score: int) -> str:
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"


def _nps(f: _Facts, typical: dict[str, float], horizon: int) -> list[str]:
    return _each(
        f["nps_latest"],
        "has never answered an NPS survey",
        lambda score: f"last NPS {int(score)} ({_nps_category(int(score))})",
    )


def _tone(sentiment: float) -> str:
    return "negative" if sentiment < -0.1 else "neutral" if sentiment < 0.1 else "positive"


def _sentiment(f: _Facts, typical: dict[str, float], horizon: int) -> list[str]:
    return _each(
        f["sentiment"],
        "no tickets or comments to read the tone of",
        lambda value: f"{_tone(value)} tone in tickets and comments ({value:+.2f} on -1..1)",
    )


def _segment(f: _Facts, typical: dict[str, float], horizon: int) -> list[str]:
    return [f"{name} segment: {SEGMENT_MEANINGS.get(name, name).lower()}" for name in f["segment"]]


PHRASERS: dict[str, Phraser] = {
    "recency": _recency,
    "frequency": _frequency,
    "tenure": _tenure,
    "spend": _spend,
    "purchase_trend": _purchase_trend,
    "spend_trend": _spend_trend,
    "bgnbd": _bgnbd,
    "open_tickets": _open_tickets,
    "recent_tickets": _recent_tickets,
    "ticket_time": _ticket_time,
    "csat": _csat,
    "nps": _nps,
    "sentiment": _sentiment,
    "segment": _segment,
}


def reasons(
    primary: pd.DataFrame,
    fallback: pd.DataFrame,
    facts: pd.DataFrame,
    typical: pd.Series,
    horizon: int,
) -> list[list[str]]:
    """Top drivers that push each customer's risk up, in words (at least one each)."""
    groups = list(primary.columns)
    push = primary.to_numpy(dtype=float, copy=True)
    # A customer with nothing above average is measured against the low-risk reference.
    nothing_up = ~(push > 0).any(axis=1)
    push[nothing_up] = fallback.to_numpy(dtype=float)[nothing_up]
    order = np.argsort(-push, axis=1, kind="stable")[:, :TOP_REASONS]
    chosen = np.take_along_axis(push, order, axis=1) > 0
    # Identical to the lowest-risk customers on every driver: time since the last order
    # is the one thing that always raises the chance of no further order.
    unexplained = ~chosen.any(axis=1)
    order[unexplained, 0] = groups.index("recency")
    chosen[unexplained, 0] = True
    columns = {name: facts[name].to_numpy() for name in facts.columns}
    usual = {str(name): float(value) for name, value in typical.items()}
    # Group by group: each customer has a group at most once among their top reasons.
    text = np.full(order.shape, None, dtype=object)
    for position, group in enumerate(groups):
        rows, slots = np.nonzero((order == position) & chosen)
        if len(rows):
            text[rows, slots] = PHRASERS[group](_Facts(columns, rows), usual, horizon)
    # Reasons that count come first in a row (`order` is by push, highest first), so each
    # customer's phrases are the first `count` of their row.
    count = chosen.sum(axis=1).tolist()
    return [
        row if n == TOP_REASONS else row[:n] for row, n in zip(text.tolist(), count, strict=True)
    ]
