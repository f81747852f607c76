"""RFM quintile scores, the named-segment grid and segment migration."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from crmbot.analytics import segments
from crmbot.analytics.base import RunContext, StageFailed, TrainingData
from crmbot.analytics.segments import (
    PROSPECTS,
    SEGMENT_GRID,
    SEGMENT_MEANINGS,
    SEGMENT_ORDER,
    quintile_scores,
    rfm_scores,
    segment_for,
)
from crmbot.core.config import Settings


def test_quintiles_of_distinct_values() -> None:
    assert quintile_scores([np.array([10.0, 50.0, 20.0, 40.0, 30.0])]).tolist() == [1, 5, 2, 4, 3]
    assert quintile_scores([np.arange(10.0)]).tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert quintile_scores([np.array([7.0])]).tolist() == [3]  # one customer: the middle
    assert quintile_scores([np.zeros(0)]).tolist() == []


def test_identical_customers_share_one_score() -> None:
    assert quintile_scores([np.ones(7), np.ones(7)]).tolist() == [3] * 7


def test_ties_are_broken_by_the_next_key_then_shared() -> None:
    primary = np.array([1.0, 1.0, 1.0, 2.0, 2.0])
    secondary = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    assert quintile_scores([primary, secondary]).tolist() == [3, 2, 1, 5, 4]
    # Rows equal on every key share their average rank: two tied at positions 0 and 1
    # both take rank 0.5, i.e. score 2.
    assert quintile_scores([np.array([1.0, 1.0, 3.0, 4.0, 5.0])]).tolist() == [2, 2, 3, 4, 5]


def test_scores_do_not_depend_on_row_order() -> None:
    rng = np.random.default_rng(1)
    keys = [rng.integers(0, 4, 200).astype(float), rng.integers(0, 3, 200).astype(float)]
    scores = quintile_scores(keys)
    order = rng.permutation(200)
    assert quintile_scores([k[order] for k in keys]).tolist() == scores[order].tolist()
    # Roughly a fifth each when values are distinct enough.
    spread = quintile_scores([rng.normal(size=1000)])
    assert np.bincount(spread)[1:].tolist() == [200] * 5


def test_the_grid_covers_every_score_and_names_every_segment() -> None:
    named = {segment_for(r, fm) for r in range(1, 6) for fm in range(1, 6)}
    assert named == set(SEGMENT_ORDER) - {PROSPECTS}
    assert set(SEGMENT_MEANINGS) == set(SEGMENT_ORDER)
    assert len(SEGMENT_ORDER) == 12
    assert segment_for(5, 5) == "Champions"
    assert segment_for(5, 1) == "New"
    assert segment_for(1, 5) == "Can't lose them"
    assert segment_for(1, 1) == "Lost"
    assert all(len(row) == 5 for row in SEGMENT_GRID.values())


def _summary(rows: list[tuple[float, int, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["recency_days", "frequency", "total_spend"])
    frame.index = pd.Index(range(1, len(rows) + 1), name="customer_pk")
    return frame


def test_rfm_scores_and_segments() -> None:
    summary = _summary(
        [
            (2.0, 20, 5000.0),  # recent, frequent, big: Champion
            (400.0, 18, 4500.0),  # gone quiet big buyer
            (3.0, 1, 20.0),  # first purchase just now
            (500.0, 1, 10.0),  # one small purchase long ago
            (100.0, 5, 600.0),
            (float("nan"), 0, 0.0),  # no purchase
        ]
    )
    scored = rfm_scores(summary)
    assert scored.loc[1, "segment"] == "Champions"
    assert scored.loc[2, "segment"] == "At risk"  # R 2, FM 4
    assert scored.loc[4, "segment"] == "Lost"
    assert scored.loc[3, "r_score"] == 4  # second most recent of five
    assert scored.loc[6, "segment"] == PROSPECTS
    assert scored.loc[6, ["r_score", "f_score", "m_score"]].isna().all()
    assert scored.loc[1, ["r_score", "f_score", "m_score"]].tolist() == [5, 5, 5]


def test_single_and_identical_customers_do_not_crash() -> None:
    one = rfm_scores(_summary([(10.0, 3, 100.0)]))
    assert one.loc[1, ["r_score", "f_score", "m_score"]].tolist() == [3, 3, 3]
    assert one.loc[1, "segment"] == "Need attention"
    same = rfm_scores(_summary([(10.0, 3, 100.0)] * 6))
    assert same["segment"].nunique() == 1


def _context(
    settings: Settings, summary: pd.DataFrame, previous: pd.DataFrame | None
) -> RunContext:
    customers = pd.DataFrame(index=summary.index)
    empty = pd.DataFrame()
    data = TrainingData(date(2025, 6, 30), customers, empty, empty, empty, empty, empty, empty)
    ctx = RunContext.start(data, settings, previous_scores=previous)
    ctx.features = summary
    return ctx


def test_stage_records_previous_segment_sizes_and_moves(settings: Settings) -> None:
    summary = _summary([(2.0, 20, 5000.0), (400.0, 18, 4500.0), (3.0, 1, 20.0), (0, 0, 0.0)])
    summary.loc[4, "recency_days"] = float("nan")
    previous = pd.DataFrame(
        {"segment": ["Champions", "Loyal", "New"]}, index=pd.Index([1, 2, 99], name="customer_pk")
    )
    ctx = _context(settings, summary, previous)
    segments.run(ctx)
    assert ctx.scores["previous_segment"].tolist() == ["Champions", "Loyal", None, None]
    metrics = ctx.metrics["segments"]
    assert sum(metrics["sizes"].values()) == 4
    assert metrics["sizes"][PROSPECTS] == 1
    assert metrics["migration"]["compared"] == 2
    assert metrics["migration"]["moved"] == 1
    assert metrics["migration"]["top_moves"] == [
        {"from": "Loyal", "to": ctx.scores.loc[2, "segment"], "customers": 1}
    ]
    assert ctx.params["segments"]["score_ranges"]["frequency"]


def test_stage_without_previous_run_and_without_features(settings: Settings) -> None:
    ctx = _context(settings, _summary([(5.0, 2, 50.0)]), None)
    segments.run(ctx)
    assert ctx.scores["previous_segment"].isna().all()
    assert ctx.metrics["segments"]["migration"] == {"compared": 0, "moved": 0, "top_moves": []}
    ctx.features = None
    with pytest.raises(StageFailed, match="features"):
        segments.run(ctx)
