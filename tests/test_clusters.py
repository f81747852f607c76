"""Behavioural clusters: k by silhouette, readable labels, stable numbering, edge cases."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import StandardScaler

from crmbot.analytics import clusters
from crmbot.analytics.base import RunContext, StageFailed, TrainingData
from crmbot.core.config import Settings

COLUMNS = [
    "recency_days",
    "frequency",
    "day_spend_mean",
    "tenure_days",
    "tickets_count",
    "nps_mean",
]


def _planted(seed: int = 0, per_group: int = 60) -> pd.DataFrame:
    """Three groups: frequent big recent buyers, one-off small lapsed ones, and a middle."""
    rng = np.random.default_rng(seed)
    groups = [
        # recency, frequency, spend per day, tenure, tickets, nps
        (5, 40, 900.0, 700, 1, 9),
        (400, 1, 15.0, 500, 0, 6),
        (60, 6, 120.0, 200, 8, 2),
    ]
    rows = []
    for recency, frequency, spend, tenure, tickets, nps in groups:
        for _ in range(per_group):
            rows.append(
                (
                    recency * rng.uniform(0.8, 1.2),
                    max(1, round(frequency * rng.uniform(0.8, 1.2))),
                    spend * rng.uniform(0.8, 1.2),
                    tenure * rng.uniform(0.9, 1.1),
                    max(0, round(tickets * rng.uniform(0.7, 1.3))),
                    float(np.clip(nps + rng.normal(0, 0.5), 0, 10)),
                )
            )
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame.index = pd.Index(range(1, len(frame) + 1), name="customer_pk")
    return frame


def _context(settings: Settings, summary: pd.DataFrame) -> RunContext:
    empty = pd.DataFrame()
    data = TrainingData(
        date(2025, 6, 30),
        pd.DataFrame(index=summary.index),
        empty,
        empty,
        empty,
        empty,
        empty,
        empty,
    )
    ctx = RunContext.start(data, settings)
    ctx.features = summary
    return ctx


def test_planted_groups_are_found_and_described(settings: Settings) -> None:
    summary = _planted()
    ctx = _context(settings, summary)
    clusters.run(ctx)
    metrics = ctx.metrics["clusters"]
    assert metrics["k"] == 3
    assert metrics["silhouette"] == max(metrics["silhouette_by_k"].values())
    assignment = ctx.scores["cluster"].astype(int)
    # Each planted group is one cluster.
    for start in (1, 61, 121):
        assert assignment.loc[start : start + 59].nunique() == 1
    labels = dict(zip(ctx.scores["cluster"], ctx.scores["cluster_label"], strict=True))
    assert len(set(labels.values())) == 3
    # Numbered by spend, highest first: the big buyers are cluster 0.
    assert assignment.loc[1] == 0
    # Labels are what at least half the members are, in a fixed order.
    assert labels[0] == "frequent buyers, recent, high spend"
    assert labels[assignment.loc[61]] == "one-time buyers, lapsed, low spend"
    assert labels[assignment.loc[121]].startswith("repeat buyers")
    described = ctx.params["clusters"]["clusters"]
    assert [c["size"] for c in described] == [60, 60, 60]
    assert described[0]["words"][:4] == ["frequent buyers", "recent", "high spend", "long-standing"]
    assert described[assignment.loc[61]]["one_time_share"] == 1.0
    assert "many tickets" in described[assignment.loc[121]]["words"]
    assert "detractors" in described[assignment.loc[121]]["words"]


def test_same_seed_same_clusters(settings: Settings) -> None:
    first, second = _context(settings, _planted()), _context(settings, _planted())
    clusters.run(first)
    clusters.run(second)
    pd.testing.assert_frame_equal(first.scores, second.scores)


def test_prospects_get_no_cluster(settings: Settings) -> None:
    summary = _planted(per_group=10)
    summary.loc[5, "frequency"] = 0
    ctx = _context(settings, summary)
    clusters.run(ctx)
    assert pd.isna(ctx.scores.loc[5, "cluster"]) and ctx.scores.loc[5, "cluster_label"] is None
    assert ctx.scores["cluster"].notna().sum() == 29


@pytest.mark.parametrize("customers", [1, 2, 6])
def test_few_or_identical_customers_form_one_group(settings: Settings, customers: int) -> None:
    summary = pd.DataFrame([(10.0, 3, 50.0, 100.0, 0, 7.0)] * customers, columns=COLUMNS)
    summary.index = pd.Index(range(1, customers + 1), name="customer_pk")
    ctx = _context(settings, summary)
    clusters.run(ctx)
    assert ctx.scores["cluster"].tolist() == [0] * customers
    assert ctx.metrics["clusters"]["k"] == 1
    assert "note" in ctx.metrics["clusters"]


def test_nobody_bought_yet(settings: Settings) -> None:
    summary = _planted(per_group=2).assign(frequency=0)
    ctx = _context(settings, summary)
    clusters.run(ctx)
    assert ctx.scores["cluster"].isna().all()
    assert ctx.metrics["clusters"]["k"] == 0


def test_large_books_choose_k_on_a_sample(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(clusters, "SELECTION_SAMPLE", 90)
    monkeypatch.setattr(clusters, "SILHOUETTE_SAMPLE", 60)
    ctx = _context(settings, _planted())
    clusters.run(ctx)
    assert ctx.metrics["clusters"]["sampled"] is True
    assert ctx.metrics["clusters"]["k"] == 3
    assert ctx.scores["cluster"].notna().all()


def test_silhouettes_are_those_of_the_sampled_silhouette_score(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # choose_k computes the sampled points' distances once for every k; the scores must be
    # what silhouette_score's own sampling (sample_size, random_state) gives for each k.
    monkeypatch.setattr(clusters, "SILHOUETTE_SAMPLE", 50)
    scaled = StandardScaler().fit_transform(clusters.feature_matrix(_planted()).to_numpy())
    _k, silhouettes, _centres, _rows = clusters.choose_k(scaled, seed=7)
    assert list(silhouettes) == [str(k) for k in clusters.K_RANGE]
    for k in clusters.K_RANGE:
        labels = KMeans(n_clusters=k, n_init=2, random_state=7).fit(scaled).labels_
        expected = silhouette_score(scaled, labels, sample_size=50, random_state=7)
        assert silhouettes[str(k)] == round(float(expected), 4)


def test_needs_the_features_stage(settings: Settings) -> None:
    ctx = _context(settings, _planted(per_group=2))
    ctx.features = None
    with pytest.raises(StageFailed, match="features"):
        clusters.run(ctx)


def _book(rows: Sequence[tuple[Any, ...]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame.index = pd.Index(range(1, len(frame) + 1), name="customer_pk")
    return frame


def test_labels_say_what_most_members_are_not_what_the_centre_is() -> None:
    # A cluster whose median member bought once, 220 days ago, in a book whose repeat
    # buyers come back about every 40 days: its centre sits near the book's average, and
    # was called "average customers".
    rng = np.random.default_rng(2)
    once = [(220.0 + rng.integers(-20, 20), 1, 25.0, 230.0, 0, np.nan) for _ in range(76)]
    twice = [(200.0 + rng.integers(-20, 20), 2, 25.0, 260.0, 0, np.nan) for _ in range(24)]
    regulars = [(30.0 + rng.integers(0, 20), 4, 30.0, 240.0, 0, np.nan) for _ in range(40)]
    book = _book(once + twice + regulars)
    members = book.iloc[:100]
    assert clusters.member_words(members, book, usual_gap=40.0) == [
        "mostly one-time buyers",
        "lapsed",
    ]
    assert clusters.member_words(book.iloc[:76], book, usual_gap=40.0)[0] == "one-time buyers"
    assert clusters.member_words(book.iloc[100:], book, usual_gap=40.0)[:2] == [
        "frequent buyers",
        "recent",
    ]
    # Neither recent nor three usual gaps late: no word for recency.
    assert clusters.member_words(members, book, usual_gap=100.0) == ["mostly one-time buyers"]


def test_words_need_half_the_members() -> None:
    # Half the members answered NPS with a 10, the rest did not answer: promoters. With
    # fewer than half answering, nothing is said about NPS.
    rows = [(10.0, 3, 50.0, 100.0, 0, 10.0)] * 5 + [(10.0, 3, 50.0, 100.0, 0, np.nan)] * 5
    book = _book(rows)
    assert "promoters" in clusters.member_words(book, book, usual_gap=30.0)
    assert "promoters" not in clusters.member_words(book.iloc[3:], book, usual_gap=30.0)
    # Three tickets each for most members, where most of the book has none.
    ticketed = _book(
        [(10.0, 3, 50.0, 100.0, 3, np.nan)] * 6 + [(10.0, 3, 50.0, 100.0, 0, np.nan)] * 14
    )
    assert "many tickets" in clusters.member_words(ticketed.iloc[:6], ticketed, usual_gap=30.0)
    assert "many tickets" not in clusters.member_words(ticketed.iloc[4:], ticketed, usual_gap=30.0)


def test_a_cluster_no_word_fits_reads_typical_and_labels_stay_distinct() -> None:
    assert clusters._labels([[], ["repeat buyers"], ["repeat buyers"]]) == [
        "typical customers",
        "repeat buyers",
        "repeat buyers (2)",
    ]
    assert clusters._labels([["a", "b", "c", "d"], ["a", "b", "c", "e"]]) == [
        "a, b, c",
        "a, b, c, e",
    ]
