"""RFM scores (ties share a score, small counts), the named segments and segment migration."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from crmbot.analytics import segments
from crmbot.analytics.base import RunContext, StageFailed, TrainingData
from crmbot.analytics.segments import (
    ONE_TIME_SEGMENTS,
    PROSPECTS,
    REPEAT_GRID,
    REPEAT_ONLY,
    SEGMENT_MEANINGS,
    SEGMENT_ORDER,
    frequency_scores,
    rfm_scores,
    segment_for,
    tied_scores,
    usual_gap_days,
)
from crmbot.core.config import Settings


def test_quintiles_of_distinct_values() -> None:
    assert tied_scores(np.array([10.0, 50.0, 20.0, 40.0, 30.0])).tolist() == [1, 5, 2, 4, 3]
    assert tied_scores(np.arange(10.0)).tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert tied_scores(np.array([7.0])).tolist() == [3]  # one customer: the middle
    assert tied_scores(np.zeros(0)).tolist() == []


def test_identical_customers_share_one_score() -> None:
    assert tied_scores(np.ones(7)).tolist() == [3] * 7


def test_ties_share_the_score_of_the_middle_of_their_group() -> None:
    # Equal values are never split by another measure or by row order: a tie group takes
    # the score of its middle. Two tied at positions 0 and 1 sit at 1/5 of five: score 2.
    assert tied_scores(np.array([1.0, 1.0, 3.0, 4.0, 5.0])).tolist() == [2, 2, 3, 4, 5]
    assert tied_scores(np.array([1.0, 1.0, 1.0, 2.0, 2.0])).tolist() == [2, 2, 2, 5, 5]
    # A column with few distinct values uses fewer scores, never different ones for equals.
    mostly_equal = np.array([10.0] * 90 + [20.0] * 10)
    assert set(tied_scores(mostly_equal)[:90]) == {3}
    assert set(tied_scores(mostly_equal)[90:]) == {5}


def test_scores_do_not_depend_on_row_order() -> None:
    rng = np.random.default_rng(1)
    values = rng.integers(0, 4, 200).astype(float)
    scores = tied_scores(values)
    order = rng.permutation(200)
    assert tied_scores(values[order]).tolist() == scores[order].tolist()
    for value in np.unique(values):
        assert len(set(scores[values == value])) == 1
    # A fifth each when values are distinct.
    spread = tied_scores(rng.normal(size=1000))
    assert np.bincount(spread)[1:].tolist() == [200] * 5


def test_frequency_one_purchase_day_is_f1_and_repeat_buyers_spread_over_2_to_5() -> None:
    # 60% buy once: they are all F 1 (tie-breaking once made them F 1..5).
    days = np.array([1] * 60 + [2] * 20 + [3] * 10 + [4] * 5 + [7] * 3 + [30] * 2)
    f = frequency_scores(days)
    assert set(f[days == 1]) == {1}
    assert (f[days >= 2] >= 2).all()
    assert (f <= days).all()  # never more than the purchase days
    for value in np.unique(days):
        assert len(set(f[days == value])) == 1
    assert f[days == 30][0] == 5
    # Everyone buys weekly: F still spreads over 2..5 by quartiles among repeat buyers.
    weekly = np.arange(40, 60).repeat(5)
    assert sorted(set(frequency_scores(weekly))) == [2, 3, 4, 5]


def test_the_segment_rules_cover_every_score_and_name_every_segment() -> None:
    named = {
        segment_for(r, f, m, within_usual_gap=within)
        for r in range(1, 6)
        for f in range(1, 6)
        for m in range(1, 6)
        for within in (None, True, False)
    }
    assert named == set(SEGMENT_ORDER) - {PROSPECTS}
    assert set(SEGMENT_MEANINGS) == set(SEGMENT_ORDER)
    assert len(SEGMENT_ORDER) == 12
    assert segment_for(5, 5, 5) == "Champions"
    assert segment_for(5, 1, 5) == "New"  # one purchase: never a Champion, whatever spent
    assert segment_for(1, 5, 5) == "Can't lose them"
    assert segment_for(1, 1, 1) == "Lost"
    assert segment_for(1, 2, 1) == "Lost"
    assert all(len(row) == 4 for row in REPEAT_GRID.values())
    assert set(ONE_TIME_SEGMENTS) == set(REPEAT_GRID) == {1, 2, 3, 4, 5}
    # Segments that mean buying again and again hold only repeat buyers.
    assert {
        "Champions",
        "Loyal",
        "Potential loyalists",
        "Need attention",
        "At risk",
        "Can't lose them",
    } == REPEAT_ONLY
    for r in range(1, 6):
        for m in range(1, 6):
            for within in (None, True, False):
                assert segment_for(r, 1, m, within_usual_gap=within) not in REPEAT_ONLY
            assert segment_for(r, 2, m) not in {"New", "Promising"}


def test_one_time_buyers_are_new_or_promising_only_within_the_usual_gap() -> None:
    assert segment_for(5, 1, 3, within_usual_gap=True) == "New"
    assert segment_for(2, 1, 3, within_usual_gap=True) == "Promising"
    assert segment_for(5, 1, 3, within_usual_gap=False) == "About to sleep"
    assert segment_for(4, 1, 3, within_usual_gap=False) == "About to sleep"
    assert segment_for(2, 1, 3, within_usual_gap=False) == "Hibernating"
    assert segment_for(1, 1, 3, within_usual_gap=False) == "Lost"
    # Without a repeat buyer there is no usual gap: R alone names them.
    assert [segment_for(r, 1, 3) for r in (5, 4, 3, 2, 1)] == [
        ONE_TIME_SEGMENTS[r] for r in (5, 4, 3, 2, 1)
    ]


def _summary(rows: list[tuple[float, int, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["recency_days", "frequency", "total_spend"])
    frame.index = pd.Index(range(1, len(rows) + 1), name="customer_pk")
    return frame


def test_usual_gap_is_the_median_of_repeat_buyers_mean_gaps() -> None:
    summary = _summary([(5.0, 3, 50.0), (9.0, 2, 30.0), (40.0, 4, 80.0), (300.0, 1, 10.0)])
    assert usual_gap_days(summary) is None  # no gaps in this summary
    summary["gap_mean_days"] = [10.0, 30.0, 20.0, np.nan]
    assert usual_gap_days(summary) == 20.0
    summary["frequency"] = 1
    assert usual_gap_days(summary) is None


def test_a_book_of_one_time_buyers_with_a_few_regulars() -> None:
    rng = np.random.default_rng(5)
    once = [(float(rng.integers(150, 400)), 1, float(rng.uniform(5, 200))) for _ in range(300)]
    recent_once = [(float(rng.integers(0, 10)), 1, float(rng.uniform(5, 200))) for _ in range(30)]
    regulars = [
        (float(rng.integers(0, 60)), int(rng.integers(2, 12)), float(rng.uniform(50, 900)))
        for _ in range(70)
    ]
    summary = _summary(once + recent_once + regulars)
    summary["gap_mean_days"] = np.where(summary["frequency"] > 1, 30.0, np.nan)
    scored = rfm_scores(summary)
    one_time = summary["frequency"] == 1
    assert (scored.loc[one_time, "f_score"] == 1).all()
    assert (scored.loc[~one_time, "f_score"] >= 2).all()
    assert not scored.loc[one_time, "segment"].isin(REPEAT_ONLY).any()
    assert not scored.loc[~one_time, "segment"].isin(["New", "Promising"]).any()
    # Bought once, long ago (150+ days, the usual gap is 30): never New or Promising;
    # bought once within the usual gap: one of the two.
    assert not scored.loc[1:300, "segment"].isin(["New", "Promising"]).any()
    assert scored.loc[301:330, "segment"].isin(["New", "Promising"]).all()
    for column, measure in (
        ("r_score", "recency_days"),
        ("f_score", "frequency"),
        ("m_score", "total_spend"),
    ):
        assert (scored.groupby(summary[measure])[column].nunique() == 1).all()


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
