"""RFM scores and the named segments.

Scores (customers with at least one purchase; everyone else is a "Prospect"). Every score
is a function of the customer's own value and the book's distribution of it, so equal values
always get equal scores and nothing depends on row order or ids.

* R (recency): fewer days since the last purchase day scores higher; quintiles 1-5.
* M (monetary): higher total spend (purchases minus refunds) scores higher; quintiles 1-5.
* F (frequency, distinct purchase days), with small counts scored as what they are:
  one purchase day is F = 1, always; repeat buyers get F = 2-5 by quartiles *among the
  repeat buyers*, but never more than their number of purchase days (two days score at
  most F = 2, three at most F = 3). So a one-time buyer is never F > 1 however many of them
  a book holds, and on a book where everyone buys weekly F still spreads 2-5.

Quantiles with ties (`tied_scores`): a value held by a share `below` of the customers
(strictly smaller values) and `upto` (smaller or equal) sits at the middle of its tie group,
mid = (below + upto) / 2, and scores floor(mid * levels) + 1. With distinct values this is
the usual quintile of the rank (5 customers score 1..5, a single one 3); a value shared by
many customers takes the score of the middle of its group, so a column with few distinct
values uses fewer scores rather than splitting equal customers at random.

Named segments: repeat buyers by R and FM = (F + M) / 2 rounded half up (2..5, as F >= 2)
through `REPEAT_GRID`; one-time buyers (F = 1) by R through `ONE_TIME_SEGMENTS`, checked
against the book's usual gap between purchase days (the median over repeat buyers of their
mean gap, `usual_gap_days`): a one-time buyer is New or Promising only while their purchase
is no older than the usual gap (a second one is not due yet), and never after it.

    one-time buyers, purchase within the usual gap:  R 5 New | R 1-4 Promising
    one-time buyers, purchase older than the usual gap:
                              R 3-5 About to sleep | R 2 Hibernating | R 1 Lost
    (no repeat buyer in the book, so no usual gap: R 5 New | R 4 Promising | R 3 About to
    sleep | R 2 Hibernating | R 1 Lost)
    repeat buyers (rows R = 5..1):
    R = 5:  FM 2-3 Potential loyalists | FM 4-5 Champions
    R = 4:  FM 2 Potential loyalists   | FM 3 Loyal      | FM 4-5 Champions
    R = 3:  FM 2 About to sleep        | FM 3 Need attention | FM 4-5 Loyal
    R = 2:  FM 2 Hibernating           | FM 3-4 At risk  | FM 5 Can't lose them
    R = 1:  FM 2 Lost                  | FM 3 At risk    | FM 4-5 Can't lose them

So every segment that speaks of buying again and again (Champions, Loyal, Potential
loyalists, Need attention, At risk, Can't lose them) holds only repeat buyers, and New and
Promising hold only one-time buyers.

Migration: `previous_segment` is the customer's segment in the run that was active before
this one (None for customers it did not score), so commands can say "moved from Loyal to
At risk".
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from crmbot.analytics.base import RunContext, StageFailed

PROSPECTS = "Prospects"

# One-time buyers (F = 1): R score -> segment, before the usual-gap check (see above).
ONE_TIME_SEGMENTS: dict[int, str] = {
    5: "New",
    4: "Promising",
    3: "About to sleep",
    2: "Hibernating",
    1: "Lost",
}

# Repeat buyers (F >= 2): R score -> segment name for FM = 2..5.
REPEAT_GRID: dict[int, tuple[str, str, str, str]] = {
    5: ("Potential loyalists", "Potential loyalists", "Champions", "Champions"),
    4: ("Potential loyalists", "Loyal", "Champions", "Champions"),
    3: ("About to sleep", "Need attention", "Loyal", "Loyal"),
    2: ("Hibernating", "At risk", "At risk", "Can't lose them"),
    1: ("Lost", "At risk", "Can't lose them", "Can't lose them"),
}

# Segments that mean buying again and again: only repeat buyers are ever in them.
REPEAT_ONLY: frozenset[str] = frozenset(
    name for row in REPEAT_GRID.values() for name in row
) - frozenset(ONE_TIME_SEGMENTS.values())

# What each segment means, for help texts and the README. Relative words ("most", "recent")
# compare with the rest of the book; "once" and "repeat" are counts.
SEGMENT_MEANINGS: dict[str, str] = {
    "Champions": "recent repeat buyers with the highest frequency and spend combined",
    "Loyal": "repeat buyers with high frequency and spend; not necessarily the most recent",
    "Potential loyalists": "recent repeat buyers with average frequency and spend",
    "New": "one purchase so far, very recently",
    "Promising": "one purchase so far, recently",
    "Need attention": "repeat buyers of average recency, frequency and spend: may slip",
    "About to sleep": "one or few purchases, the last a while ago",
    "At risk": "repeat buyers who spent well, but not recently",
    "Can't lose them": "among the most frequent and biggest repeat buyers, gone quiet",
    "Hibernating": "one or few purchases, the last long ago",
    "Lost": "one or few purchases, the last longest ago",
    PROSPECTS: "no purchase yet",
}

SEGMENT_ORDER: list[str] = [
    "Champions",
    "Loyal",
    "Potential loyalists",
    "New",
    "Promising",
    "Need attention",
    "About to sleep",
    "At risk",
    "Can't lose them",
    "Hibernating",
    "Lost",
    PROSPECTS,
]


def fm_score(f_score: int, m_score: int) -> int:
    """FM = (F + M) / 2 rounded half up."""
    return (int(f_score) + int(m_score) + 1) // 2


def segment_for(
    r_score: int, f_score: int, m_score: int, *, within_usual_gap: bool | None = None
) -> str:
    """The named segment of R, F and M scores (each 1..5; F = 1 means one purchase day).

    `within_usual_gap`: for a one-time buyer, whether their purchase is no older than the
    book's usual gap between purchase days (None: the book has no repeat buyer to tell).
    """
    r = int(r_score)
    if int(f_score) != 1:
        return REPEAT_GRID[r][max(fm_score(f_score, m_score), 2) - 2]
    if within_usual_gap is None:
        return ONE_TIME_SEGMENTS[r]
    if within_usual_gap:
        return "New" if r == 5 else "Promising"
    return "About to sleep" if r >= 3 else ONE_TIME_SEGMENTS[r]


def usual_gap_days(summary: pd.DataFrame) -> float | None:
    """The book's usual gap between purchase days: the median over repeat buyers of their
    mean gap; None without a repeat buyer (or without gaps in `summary`)."""
    if "gap_mean_days" not in summary:
        return None
    gaps = summary["gap_mean_days"].to_numpy(dtype=float)[summary["frequency"].to_numpy() > 1]
    gaps = gaps[~np.isnan(gaps)]
    return float(np.median(gaps)) if len(gaps) else None


def tied_scores(values: np.ndarray, levels: int = 5) -> np.ndarray:
    """Scores 1..levels by where each value sits in `values` (larger is better).

    A value sits at the middle of its tie group: with `below` customers holding a smaller
    value and `upto` a smaller or equal one (of n), its score is
    floor((below + upto) / 2 / n * levels) + 1. Equal values always share a score.
    """
    values = np.asarray(values, dtype=float)
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    ordered = np.sort(values, kind="stable")
    below = np.searchsorted(ordered, values, side="left")
    upto = np.searchsorted(ordered, values, side="right")
    # Integer arithmetic, so a value exactly on an edge never lands on either side by rounding.
    return np.minimum((below + upto) * levels // (2 * n) + 1, levels).astype(np.int64)


def frequency_scores(frequency: np.ndarray) -> np.ndarray:
    """F of buyers from their purchase days: 1 for one day; repeat buyers 2..5 by quartiles
    among the repeat buyers, never above their number of purchase days."""
    days = np.asarray(frequency, dtype=np.int64)
    scores = np.ones(len(days), dtype=np.int64)
    repeat = days >= 2
    if repeat.any():
        scores[repeat] = np.minimum(1 + tied_scores(days[repeat], levels=4), days[repeat])
    return scores


def rfm_scores(summary: pd.DataFrame) -> pd.DataFrame:
    """r_score, f_score, m_score, fm_score and segment for every customer of `summary`."""
    result = pd.DataFrame(index=summary.index)
    buyers = summary["frequency"].to_numpy() > 0
    recency = -summary["recency_days"].to_numpy(dtype=float)[buyers]  # fewer days is better
    frequency = summary["frequency"].to_numpy(dtype=float)[buyers]
    spend = summary["total_spend"].to_numpy(dtype=float)[buyers]
    r = tied_scores(recency)
    f = frequency_scores(frequency)
    m = tied_scores(spend)
    fm = (f + m + 1) // 2  # round half up
    one_time = np.array([ONE_TIME_SEGMENTS[score] for score in range(1, 6)], dtype=object)
    once = one_time[r - 1]
    gap = usual_gap_days(summary)
    if gap is not None:
        within = -recency <= gap
        once = np.where(
            within,
            np.where(r == 5, "New", "Promising"),
            np.where(r >= 3, "About to sleep", once),
        ).astype(object)
    repeat = np.array([REPEAT_GRID[score] for score in range(1, 6)], dtype=object)
    names = np.where(f == 1, once, repeat[r - 1, np.maximum(fm, 2) - 2])

    for column, values in (("r_score", r), ("f_score", f), ("m_score", m), ("fm_score", fm)):
        full = np.zeros(len(result), dtype=np.int64)
        full[buyers] = values
        result[column] = pd.arrays.IntegerArray(full, mask=~buyers)  # NA for prospects
    segment = np.full(len(result), PROSPECTS, dtype=object)
    segment[buyers] = names
    result["segment"] = segment
    return result


def score_ranges(summary: pd.DataFrame, scores: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """For each score 1..5, the range of the measure it covers (for `crmbot model show`)."""
    ranges: dict[str, dict[str, Any]] = {}
    for score_column, measure in (
        ("r_score", "recency_days"),
        ("f_score", "frequency"),
        ("m_score", "total_spend"),
    ):
        table: dict[str, Any] = {}
        known = scores[score_column].notna()
        grouped = summary.loc[known, measure].groupby(scores.loc[known, score_column].astype(int))
        for score, values in grouped:
            table[str(score)] = [round(float(values.min()), 2), round(float(values.max()), 2)]
        ranges[measure] = table
    return ranges


def migrations(current: pd.Series, previous: pd.Series | None, *, top: int = 10) -> dict[str, Any]:
    """How many customers changed segment since the previous run, and the largest moves."""
    if previous is None:
        return {"compared": 0, "moved": 0, "top_moves": []}
    common = current.index.intersection(previous.dropna().index)
    before = previous.reindex(common)
    after = current.reindex(common)
    moved = before != after
    moves = (
        pd.DataFrame({"from": before[moved], "to": after[moved]})
        .value_counts()
        .sort_index()
        .sort_values(ascending=False, kind="stable")
        .head(top)
    )
    return {
        "compared": int(len(common)),
        "moved": int(moved.sum()),
        "top_moves": [
            {"from": str(pair[0]), "to": str(pair[1]), "customers": int(count)}
            for pair, count in zip(moves.index.tolist(), moves.tolist(), strict=True)
        ],
    }


def run(ctx: RunContext) -> None:
    """Fill r/f/m scores, segment and previous_segment; sizes and moves into metrics."""
    if ctx.features is None:
        raise StageFailed("RFM segments need the features stage, which did not run")
    summary = ctx.features
    scored = rfm_scores(summary)
    for column in ("r_score", "f_score", "m_score", "segment"):
        ctx.scores[column] = scored[column]
    previous = None
    if ctx.previous_scores is not None and "segment" in ctx.previous_scores:
        previous = ctx.previous_scores["segment"]
        moved_from = previous.reindex(ctx.scores.index).astype(object)
        ctx.scores["previous_segment"] = moved_from.where(moved_from.notna(), None)
    else:
        ctx.scores["previous_segment"] = None
    sizes = scored["segment"].value_counts()
    ctx.metrics["segments"] = {
        "sizes": {name: int(sizes.get(name, 0)) for name in SEGMENT_ORDER},
        "migration": migrations(scored["segment"], previous),
    }
    ctx.params["segments"] = {
        "usual_gap_days": _rounded(usual_gap_days(summary)),
        "monetary_measure": "total_spend",
        "score_rule": "tied quintiles: floor(mid-rank share of the value's tie group x 5) + 1",
        "f_rule": "1 purchase day: F 1; repeat buyers: 2-5 by tied quartiles among repeat "
        "buyers, at most their purchase days",
        "fm_rule": "round_half_up((F + M) / 2)",
        "one_time": {str(r): name for r, name in ONE_TIME_SEGMENTS.items()},
        "repeat_grid": {str(r): list(names) for r, names in REPEAT_GRID.items()},
        "score_ranges": score_ranges(summary, scored),
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
