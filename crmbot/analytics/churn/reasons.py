"""Churn reasons in English: what moved each customer's risk, with their own numbers.

A customer's verdict is *raised* when their risk is at least the typical customer's (the
reference the contributions are measured from), else *kept low*. Their reasons are the
feature groups that pushed their log-odds that way by at least `MIN_PUSH`, strongest
first, up to `TOP_REASONS`. Each is phrased with the customer's own figure beside a
comparison that shows the direction: the typical customer's figure, their own usual
rhythm, or their own past. A group is left out when its words would not say that:

* its figures would read the same ("0.7 a month vs 0.7 before", "spends 180 (typical:
  180)"), or the customer's figure is on the other side of the comparison;
* the customer has no such figure: no CSAT or NPS answer, no closed ticket, no time
  before the last 90 days, no spend to compare with (the model reads these as 0, but
  such a 0 is not a fact about the customer);
* a segment whose name says the opposite (a Champions segment never raises a risk).

The comparison figures (`typical_figures`) come from the same reference customer the
contributions are measured against, so a customer above it on a feature that raises risk
is above the figure quoted. Only where the model fills a missing value with 0 (CSAT, NPS,
tone, ticket time) is the figure quoted the median of the customers who have one, and the
customer's own figure must then be on the verdict's side of it too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from crmbot.analytics.segments import SEGMENT_MEANINGS

TOP_REASONS = 3
# A group must move the customer's log-odds by at least this much to be a reason: about
# 1 percentage point of risk near 50%, less further out. Below it a fact is neutral.
MIN_PUSH = 0.05
# How many of a customer's strongest pushes are phrased before the first TOP_REASONS
# usable ones are kept.
CANDIDATES = 6
# Segments whose names promise the customer is leaving, or staying.
LAPSING_SEGMENTS = frozenset(
    {"At risk", "Can't lose them", "Hibernating", "Lost", "About to sleep"}
)
HEALTHY_SEGMENTS = frozenset({"Champions", "Loyal", "Potential loyalists", "New", "Promising"})


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def _figure(value: float) -> str:
    """A count or rate as read: 12 · 4.2 · 0.7 (one decimal below 10, none above)."""
    if isinstance(value, int):
        return f"{value:,}"
    if abs(value) >= 10:
        return f"{value:,.0f}"
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _days(value: float) -> str:
    return _plural(round(value), "day")


def _every(gap: float) -> str:
    days = round(gap)
    return "every day" if days <= 1 else f"every {days:,} days"


def _ago(value: float) -> str:
    days = round(value)
    return "today" if days == 0 else f"{_days(days)} ago"


def _span(days: float) -> str:
    """A stretch of time in the unit a person uses for it: 20 days · 7.8 months · 2.1 years."""
    if days >= 730:
        years = _figure(days / 365.25)
        return f"{years} year{'' if years == '1' else 's'}"
    if days >= 61:
        months = _figure(days / 30.44)
        return f"{months} month{'' if months == '1' else 's'}"
    return _days(days)


def _duration(days: float) -> str:
    """A time to close: 5 hours · 1 day · 4.5 days."""
    if days < 1:
        return _plural(max(round(days * 24), 1), "hour")
    figure = _figure(days)
    return f"{figure} day{'' if figure == '1' else 's'}"


def _amount(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 10 else f"{value:.2f}"


def _share(p: float) -> str:
    if p >= 0.995:
        return "over 99%"
    if p < 0.005:
        return "under 1%"
    return f"{p:.0%}"


def _usual_count(value: float) -> str:
    return "none" if round(value, 1) == 0 else _figure(value)


class _Facts:
    """The facts of the customers who get one reason, column by column as Python values
    (which format several times faster than NumPy scalars)."""

    def __init__(self, columns: dict[str, np.ndarray], rows: np.ndarray) -> None:
        self.columns = columns
        self.rows = rows

    def __getitem__(self, name: str) -> list[Any]:
        return list(self.columns[name][self.rows].tolist())


# Each group's reason in words, for many customers at once: (facts, typical figures,
# raised?, horizon) -> a phrase, or None where the group says nothing true in that
# direction.
Phraser = Callable[[_Facts, dict[str, float], list[bool], int], list[str | None]]


def _recency(f: _Facts, t: dict[str, float], up: list[bool], horizon: int) -> list[str | None]:
    usual = round(t["recency_days"])
    out: list[str | None] = []
    for raised, days, gap in zip(up, f["recency_days"], f["gap_days"], strict=True):
        days, own = round(days), None if _missing(gap) else round(gap)
        if raised and own is not None and days > own:
            out.append(f"no order for {_days(days)} — usually orders {_every(own)}")
        elif raised and days > usual:
            only = " since their only purchase" if own is None else ""
            out.append(f"no order for {_days(days)}{only} (typical customer: {_days(usual)})")
        elif not raised and own is not None and days < own:
            out.append(f"last order {_ago(days)} — usually orders {_every(own)}")
        elif not raised and days < usual:
            out.append(f"last order {_ago(days)} (typical customer: {_days(usual)} ago)")
        else:
            out.append(None)
    return out


def _frequency(f: _Facts, t: dict[str, float], up: list[bool], horizon: int) -> list[str | None]:
    usual, usual_gap = t["frequency"], t["gap_days"]
    out: list[str | None] = []
    for raised, days, tenure, gap in zip(
        up, f["frequency"], f["tenure_days"], f["gap_days"], strict=True
    ):
        mine, theirs = _figure(days), _figure(usual)
        span = _span(max(tenure, 1.0))
        if mine != theirs and (days < usual if raised else days > usual):
            only = "only " if raised else ""
            count = _plural(int(days), "purchase day")
            out.append(f"{only}{count} in {span} (typical customer: {theirs})")
        elif (
            not _missing(gap)
            and not _missing(usual_gap)
            and round(gap) != round(usual_gap)
            and (gap > usual_gap if raised else gap < usual_gap)
        ):
            out.append(f"orders {_every(gap)} on average (typical customer: {_every(usual_gap)})")
        else:
            out.append(None)
    return out


def _tenure(f: _Facts, t: dict[str, float], up: list[bool], horizon: int) -> list[str | None]:
    usual = _span(t["tenure_days"])
    return [
        None if _span(days) == usual else f"customer for {_span(days)} (typical customer: {usual})"
        for days in f["tenure_days"]
    ]


def _spend(f: _Facts, t: dict[str, float], up: list[bool], horizon: int) -> list[str | None]:
    usual = _amount(t["day_spend"])
    return [
        None
        if _amount(spend) == usual
        else f"spends {_amount(spend)} per purchase day (typical customer: {usual})"
        for spend in f["day_spend"]
    ]


def _purchase_trend(
    f: _Facts, t: dict[str, float], up: list[bool], horizon: int
) -> list[str | None]:
    out: list[str | None] = []
    for raised, last, before in zip(
        up, f["purchase_rate_last"], f["purchase_rate_before"], strict=True
    ):
        if _missing(before) or _figure(last) == _figure(before):
            out.append(None)  # no time before the last 90 days, or no change to speak of
            continue
        if (last < before) != raised:
            out.append(None)
            continue
        now = _figure(last)
        days = f"{now} purchase day{'' if now == '1' else 's'} a month"
        way = "down" if last < before else "up"
        out.append(f"{days} in the last 90 days, {way} from {_figure(before)} before")
    return out


def _spend_trend(f: _Facts, t: dict[str, float], up: list[bool], horizon: int) -> list[str | None]:
    out: list[str | None] = []
    for raised, last, before in zip(up, f["spend_rate_last"], f["spend_rate_before"], strict=True):
        if _missing(before) or before <= 0:
            out.append(None)  # nothing before to compare with
            continue
        change = (last - before) / before
        if round(abs(change) * 100) == 0 or (change < 0) != raised:
            out.append(None)
            continue
        way = "down" if change < 0 else "up"
        out.append(f"spend {way} {abs(change):.0%} in the last 90 days vs the months before")
    return out


def _bgnbd(f: _Facts, t: dict[str, float], up: list[bool], horizon: int) -> list[str | None]:
    usual = _share(t["p_no_purchase"])
    out: list[str | None] = []
    for raised, p in zip(up, f["p_no_purchase"], strict=True):
        if _missing(p) or _share(p) == usual:
            out.append(None)
            continue
        only = "" if raised else "only "
        out.append(
            f"purchase pattern: {only}{_share(p)} chance of no order in the next "
            f"{horizon} days (typical customer: {usual})"
        )
    return out


def _ticket_counts(
    values: list[Any], up: list[bool], usual: float, word: str, suffix: str
) -> list[str | None]:
    theirs = _usual_count(usual)
    out: list[str | None] = []
    for raised, value in zip(up, values, strict=True):
        count = int(value)
        if raised and count >= 1 and count > usual:
            out.append(f"{_plural(count, word)}{suffix} (typical customer: {theirs})")
        elif not raised and count == 0 and theirs != "none":
            out.append(f"no {word}s{suffix} (typical customer: {theirs})")
        else:
            out.append(None)
    return out


def _open_tickets(f: _Facts, t: dict[str, float], up: list[bool], horizon: int) -> list[str | None]:
    return _ticket_counts(f["tickets_open"], up, t["tickets_open"], "unresolved ticket", "")


def _recent_tickets(
    f: _Facts, t: dict[str, float], up: list[bool], horizon: int
) -> list[str | None]:
    return _ticket_counts(
        f["tickets_last_90d"], up, t["tickets_last_90d"], "support ticket", " in the last 90 days"
    )


def _ticket_time(f: _Facts, t: dict[str, float], up: list[bool], horizon: int) -> list[str | None]:
    usual = t["resolution_days"]
    out: list[str | None] = []
    for raised, count, days in zip(up, f["tickets_count"], f["resolution_days"], strict=True):
        if int(count) == 0 or _missing(days) or _missing(usual):
            out.append(None)  # no ticket closed: no time to close to speak of
        elif _duration(days) == _duration(usual) or (days > usual) != raised:
            out.append(None)
        elif raised:
            out.append(
                f"tickets took {_duration(days)} to close on average "
                f"(typical customer: {_duration(usual)})"
            )
        else:
            out.append(
                f"tickets closed in {_duration(days)} on average "
                f"(typical customer: {_duration(usual)})"
            )
    return out


def _answers(
    values: list[Any],
    up: list[bool],
    usual: float,
    phrase: Callable[[Any, str], str],
    shown: Callable[[float], str],
) -> list[str | None]:
    """A survey answer or tone beside the typical one; None where the customer has none,
    where the two read the same, or where theirs is on the other side of the verdict
    (a lower value always raises risk)."""
    out: list[str | None] = []
    for raised, value in zip(up, values, strict=True):
        unknown = _missing(value) or _missing(usual)
        if unknown or shown(value) == shown(usual) or (value < usual) != raised:
            out.append(None)
        else:
            out.append(phrase(value, shown(usual)))
    return out


def _csat(f: _Facts, t: dict[str, float], up: list[bool], horizon: int) -> list[str | None]:
    return _answers(
        f["csat_latest"],
        up,
        t["csat_latest"],
        lambda score, usual: f"last CSAT {int(score)}/5 (typical customer: {usual}/5)",
        _figure,
    )


def _nps_category(score: int) -> str:
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"


def _nps(f: _Facts, t: dict[str, float], up: list[bool], horizon: int) -> list[str | None]:
    return _answers(
        f["nps_latest"],
        up,
        t["nps_latest"],
        lambda score, usual: (
            f"last NPS {int(score)} ({_nps_category(int(score))}; typical customer: {usual})"
        ),
        _figure,
    )


def _tone(sentiment: float) -> str:
    return "negative" if sentiment < -0.1 else "neutral" if sentiment < 0.1 else "positive"


def _sentiment(f: _Facts, t: dict[str, float], up: list[bool], horizon: int) -> list[str | None]:
    return _answers(
        f["sentiment"],
        up,
        t["sentiment"],
        lambda value, usual: (
            f"{_tone(value)} tone in tickets and comments ({value:+.2f} on -1..1; "
            f"typical customer: {usual})"
        ),
        lambda value: f"{value:+.2f}",
    )


def _segment(f: _Facts, t: dict[str, float], up: list[bool], horizon: int) -> list[str | None]:
    return [
        f"{name} segment: {SEGMENT_MEANINGS.get(name, name).lower()}"
        if name in (LAPSING_SEGMENTS if raised else HEALTHY_SEGMENTS)
        else None
        for raised, name in zip(up, f["segment"], strict=True)
    ]


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


def typical_figures(reference: pd.Series, facts: pd.DataFrame) -> dict[str, float]:
    """The figures a reason compares a customer with, in the facts' units.

    From the reference customer the contributions are measured against (its features
    turned back into days, counts and money), so the comparison quoted is the one that
    decided the push's direction. Where the model reads a missing value as 0 (ticket time,
    CSAT, NPS, tone, and the gap of a one-time buyer) that reference mixes in those zeros,
    so the median of the customers who have the figure is quoted instead.
    """
    answered = facts.median(numeric_only=True)  # NaN skipped: those who have one

    def back(name: str) -> float:
        return float(np.expm1(float(reference[name])))

    return {
        "recency_days": back("log_recency"),
        "frequency": back("log_frequency"),
        "gap_days": float(answered.get("gap_days", np.nan)),
        "tenure_days": back("log_tenure"),
        "day_spend": back("log_day_spend"),
        "p_no_purchase": float(expit(float(reference["logit_p_no_purchase"]))),
        "tickets_open": float(reference["tickets_open"]),
        "tickets_last_90d": float(reference["tickets_last_90d"]),
        "resolution_days": float(answered.get("resolution_days", np.nan)),
        "csat_latest": float(answered.get("csat_latest", np.nan)),
        "nps_latest": float(answered.get("nps_latest", np.nan)),
        "sentiment": float(answered.get("sentiment", np.nan)),
    }


def reasons(
    contributions: pd.DataFrame,
    raised: np.ndarray,
    facts: pd.DataFrame,
    typical: dict[str, float],
    horizon: int,
) -> list[list[str]]:
    """Each customer's strongest drivers in the direction of their verdict, in words.

    `contributions`: each feature group's push on the customer's log-odds against the
    reference customer; `raised`: whether the customer's risk is at least the reference's
    (their reasons are then what raises it, else what keeps it low); `typical`: the
    figures reasons compare with (`typical_figures`).
    """
    groups = list(contributions.columns)
    raised = np.asarray(raised, dtype=bool)
    push = contributions.to_numpy(dtype=float, copy=True)
    push[~raised] = -push[~raised]  # the pushes towards the verdict, whichever way it is
    depth = min(CANDIDATES, len(groups))
    order = np.argsort(-push, axis=1, kind="stable")[:, :depth]
    candidate = np.take_along_axis(push, order, axis=1) >= MIN_PUSH
    columns = {name: facts[name].to_numpy() for name in facts.columns}
    found: list[list[str]] = [[] for _ in range(len(push))]
    counts = np.zeros(len(push), dtype=np.int64)
    # One string per distinct phrase, shared by every customer it is said of: most
    # customers' reasons repeat someone else's word for word, and a million customers'
    # reasons as a string each held about 260 MB more after the churn stage.
    phrase_of: dict[str, str] = {}
    # Slot by slot, strongest first, and only for customers still short of TOP_REASONS:
    # most have theirs after three or four slots, so few phrases are written for nothing.
    for slot in range(depth):
        todo = (counts < TOP_REASONS) & candidate[:, slot]
        if not todo.any():
            continue
        for position, group in enumerate(groups):
            rows = np.flatnonzero(todo & (order[:, slot] == position))
            if not len(rows):
                continue
            phrases = PHRASERS[group](
                _Facts(columns, rows), typical, raised[rows].tolist(), horizon
            )
            said = np.fromiter((phrase is not None for phrase in phrases), bool, len(phrases))
            kept = [phrase for phrase in phrases if phrase is not None]
            for row, phrase in zip(rows[said].tolist(), kept, strict=True):
                found[row].append(phrase_of.setdefault(phrase, phrase))
            counts[rows[said]] += 1
    return found
