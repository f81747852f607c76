"""RFM scores and the named segments.

Scores (customers with at least one purchase; everyone else is a "Prospect")
* R (recency): fewer days since the last purchase day scores higher.
* F (frequency): more distinct purchase days scores higher.
* M (monetary): higher total spend (purchases minus refunds) scores higher.

Each is a quintile score 1-5: customers are ranked on the measure, ties broken by the other
two measures (R by F then M, F by R then M, M by F then R — the more engaged customer ranks
higher), and customers equal on all three share their average rank. Rank position p
(0-based, of n) maps to score floor((p + 0.5) * 5 / n) + 1, so 5 customers get 1..5 and a
single customer gets 3. Nothing depends on row order or ids, so the same data always gives
the same scores.

Named segments come from R and FM = (F + M) / 2 rounded half up, through one table,
`SEGMENT_GRID` (rows R = 5..1, columns FM = 1..5):

    R = 5:  FM 1 New         | FM 2-3 Potential loyalists | FM 4-5 Champions
    R = 4:  FM 1 Promising   | FM 2 Potential loyalists   | FM 3 Loyal | FM 4-5 Champions
    R = 3:  FM 1-2 About to sleep | FM 3 Need attention   | FM 4-5 Loyal
    R = 2:  FM 1-2 Hibernating    | FM 3-4 At risk        | FM 5 Can't lose them
    R = 1:  FM 1-2 Lost           | FM 3 At risk          | FM 4-5 Can't lose them

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

# R score -> segment name for FM = 1..5. The one place the rules live (see the docstring).
SEGMENT_GRID: dict[int, tuple[str, str, str, str, str]] = {
    5: ("New", "Potential loyalists", "Potential loyalists", "Champions", "Champions"),
    4: ("Promising", "Potential loyalists", "Loyal", "Champions", "Champions"),
    3: ("About to sleep", "About to sleep", "Need attention", "Loyal", "Loyal"),
    2: ("Hibernating", "Hibernating", "At risk", "At risk", "Can't lose them"),
    1: ("Lost", "Lost", "At risk", "Can't lose them", "Can't lose them"),
}

# What each segment means, for help texts and the README.
SEGMENT_MEANINGS: dict[str, str] = {
    "Champions": "bought recently, buy often and spend the most",
    "Loyal": "buy regularly and spend well; not necessarily the most recent",
    "Potential loyalists": "recent customers with average frequency and spend",
    "New": "bought for the first time very recently",
    "Promising": "recent buyers who have not bought much yet",
    "Need attention": "average recency, frequency and spend: may slip without a nudge",
    "About to sleep": "below average recency, frequency and spend",
    "At risk": "spent well and often, but long ago",
    "Can't lose them": "among the biggest and most frequent buyers, gone quiet",
    "Hibernating": "low spend, few purchases, last one long ago",
    "Lost": "lowest recency, frequency and spend",
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


def segment_for(r_score: int, fm_score: int) -> str:
    """The named segment of an R score and an FM score (both 1..5)."""
    return SEGMENT_GRID[int(r_score)][int(fm_score) - 1]


def quintile_scores(keys: list[np.ndarray]) -> np.ndarray:
    """Scores 1..5 from ranking rows by `keys` (first key first; larger is better).

    Rows equal on every key share their average rank, so identical customers always get
    the same score.
    """
    n = len(keys[0])
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    # np.lexsort sorts by the last key first, so pass them reversed.
    order = np.lexsort(tuple(reversed(keys)))
    sorted_keys = np.column_stack([k[order] for k in keys])
    new_group = np.ones(n, dtype=bool)
    new_group[1:] = np.any(sorted_keys[1:] != sorted_keys[:-1], axis=1)
    group = np.cumsum(new_group) - 1
    positions = np.arange(n, dtype=float)
    group_mean = np.bincount(group, weights=positions) / np.bincount(group)
    ranks = np.empty(n, dtype=float)
    ranks[order] = group_mean[group]
    return np.minimum(np.floor((ranks + 0.5) * 5.0 / n).astype(np.int64) + 1, 5)


def rfm_scores(summary: pd.DataFrame) -> pd.DataFrame:
    """r_score, f_score, m_score, fm_score and segment for every customer of `summary`."""
    result = pd.DataFrame(index=summary.index)
    buyers = summary["frequency"].to_numpy() > 0
    recency = -summary["recency_days"].to_numpy(dtype=float)[buyers]  # fewer days is better
    frequency = summary["frequency"].to_numpy(dtype=float)[buyers]
    spend = summary["total_spend"].to_numpy(dtype=float)[buyers]
    r = quintile_scores([recency, frequency, spend])
    f = quintile_scores([frequency, recency, spend])
    m = quintile_scores([spend, frequency, recency])
    fm = np.floor((f + m) / 2.0 + 0.5).astype(np.int64)  # round half up
    grid = np.array([SEGMENT_GRID[score] for score in range(1, 6)], dtype=object)
    names = grid[r - 1, fm - 1] if len(r) else np.array([], dtype=object)

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
        "monetary_measure": "total_spend",
        "fm_rule": "round_half_up((F + M) / 2)",
        "grid": {str(r): list(names) for r, names in SEGMENT_GRID.items()},
        "score_ranges": score_ranges(summary, scored),
    }
