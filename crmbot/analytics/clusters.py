"""Behavioural clusters: k-means over how customers buy, complain and rate.

Features (customers with at least one purchase; prospects get no cluster):
log(1 + recency days), log(1 + purchase days), log(1 + mean spend per purchase day),
log(1 + tenure days), log(1 + tickets), and mean NPS (missing answers take the median of
those given, so not answering is "typical", not "unhappy"). Each is standardised (mean 0,
sd 1) before k-means.

k is chosen by the silhouette score over k = 2..8 (capped by the number of distinct
customers). Above `SELECTION_SAMPLE` customers the choice is made on a seeded sample and
the silhouette itself is computed on at most `SILHOUETTE_SAMPLE` points; the chosen k is
then fitted on everyone, starting from the sample's centres. Clusters are numbered by mean
spend per purchase day, highest first.

Labels describe the members, not the centre (`member_words`): a word is used only when it
is true of at least half the cluster, judged on the members' medians and shares against the
whole book of buyers:

* purchases: "one-time buyers" when at least 80% of the members bought on one day only,
  "mostly one-time buyers" from 50%; otherwise "frequent buyers" when the median member
  has at least as many purchase days as the book's top quarter (and more than the book's
  median), else "repeat buyers". A cluster always has one of these.
* recency, against the book's usual gap between purchase days (the median over repeat
  buyers of their mean gap, as in the segments): "recent" when the median member's last
  purchase is no older than the usual gap, "lapsed" when it is more than three usual gaps
  old. With no repeat buyer in the book: the book's first and last quarter of recency.
* spend per purchase day: "high spend" / "low spend" when the median member is in the
  book's top / bottom quarter.
* tenure: "long-standing" / "joined recently", the same way.
* tickets: "many tickets" when the median member has at least the book's top quarter of
  tickets and at least one.
* NPS, when at least half the members answered: "promoters" when the median answer is 9 or
  more, "detractors" when it is 6 or less.

At most three words, in that order, are used; more when two clusters would read the same.
A cluster no word fits is "typical customers".
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import euclidean_distances, silhouette_score
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state
from threadpoolctl import threadpool_limits

from crmbot.analytics.base import RunContext, StageFailed
from crmbot.analytics.segments import usual_gap_days

K_RANGE = range(2, 9)
SELECTION_SAMPLE = 10_000
SILHOUETTE_SAMPLE = 3_000
MAX_WORDS = 3
ONE_TIME_SHARE = 0.8  # "one-time buyers" from this share of members; "mostly ..." from half
LAPSED_GAPS = 3.0  # "lapsed": the median member's last purchase is this many usual gaps old

# feature -> source column of the summary
FEATURES: dict[str, str] = {
    "log_frequency": "frequency",
    "log_spend": "day_spend_mean",
    "log_recency": "recency_days",
    "log_tenure": "tenure_days",
    "log_tickets": "tickets_count",
    "nps": "nps_mean",
}


def feature_matrix(summary: pd.DataFrame) -> pd.DataFrame:
    """The unscaled clustering features of customers with a purchase."""
    buyers = summary[summary["frequency"] > 0]
    frame = pd.DataFrame(index=buyers.index)
    for name, column in FEATURES.items():
        values = buyers[column].astype(float)
        if name.startswith("log_"):
            frame[name] = np.log1p(values.fillna(0.0).clip(lower=0.0))
        else:
            median = values.median()
            frame[name] = values.fillna(0.0 if pd.isna(median) else median)
    return frame


def _quartiles(values: pd.Series) -> tuple[float, float, float]:
    known = values.dropna().astype(float)
    if known.empty:
        return (np.nan, np.nan, np.nan)
    q1, q2, q3 = np.quantile(known.to_numpy(), [0.25, 0.5, 0.75])
    return float(q1), float(q2), float(q3)


def member_words(members: pd.DataFrame, book: pd.DataFrame, usual_gap: float | None) -> list[str]:
    """Words true of at least half of `members` (summary rows), against the `book` of buyers.

    In a fixed order: purchases, recency, spend, tenure, tickets, NPS (see the module doc).
    """
    words: list[str] = []
    frequency = members["frequency"].astype(float)
    one_time = float((frequency == 1).mean())
    _q1, book_median, book_q3 = _quartiles(book["frequency"])
    median = float(frequency.median())
    if one_time >= ONE_TIME_SHARE:
        words.append("one-time buyers")
    elif one_time >= 0.5:
        words.append("mostly one-time buyers")
    elif median >= book_q3 and median > book_median:
        words.append("frequent buyers")
    else:
        words.append("repeat buyers")

    recency = float(members["recency_days"].median())
    if usual_gap is not None and usual_gap > 0:
        if recency <= usual_gap:
            words.append("recent")
        elif recency > LAPSED_GAPS * usual_gap:
            words.append("lapsed")
    else:
        low, _m, high = _quartiles(book["recency_days"])
        if recency <= low:
            words.append("recent")
        elif recency >= high:
            words.append("lapsed")

    for column, (high_word, low_word) in (
        ("day_spend_mean", ("high spend", "low spend")),
        ("tenure_days", ("long-standing", "joined recently")),
    ):
        low, mid, high = _quartiles(book[column])
        value = float(members[column].median())
        if np.isnan(value) or low == high:
            continue
        if value >= high and value > mid:
            words.append(high_word)
        elif value <= low and value < mid:
            words.append(low_word)

    _l, _m, tickets_q3 = _quartiles(book["tickets_count"])
    tickets = float(members["tickets_count"].median())
    if tickets >= max(tickets_q3, 1.0):
        words.append("many tickets")

    answers = members["nps_mean"].astype(float)
    if answers.notna().mean() >= 0.5:
        nps = float(answers.median())
        if nps >= 9:
            words.append("promoters")
        elif nps <= 6:
            words.append("detractors")
    return words


def _labels(all_words: list[list[str]]) -> list[str]:
    """Readable, distinct labels: the first MAX_WORDS words, more when two would match."""
    labels: list[str] = []
    for words in all_words:
        label = ", ".join(words[:MAX_WORDS]) if words else "typical customers"
        extra = MAX_WORDS
        while label in labels and extra < len(words):
            extra += 1
            label = ", ".join(words[:extra])
        if label in labels:
            label = f"{label} ({sum(1 for other in labels if other.startswith(label)) + 1})"
        labels.append(label)
    return labels


def choose_k(
    scaled: np.ndarray, seed: int
) -> tuple[int, dict[str, float], np.ndarray | None, np.ndarray]:
    """(k, silhouette by k, centres found on the selection sample, selection rows)."""
    rng = np.random.default_rng(seed)
    n = len(scaled)
    rows = (
        np.sort(rng.choice(n, SELECTION_SAMPLE, replace=False))
        if n > SELECTION_SAMPLE
        else (np.arange(n))
    )
    sample = scaled[rows]
    distinct = len(np.unique(sample, axis=0))
    # Every k's silhouette is measured on the same seeded points (those silhouette_score's
    # own sample_size and random_state would pick), so their pairwise distances are
    # computed once, not once per k: 0.8 s -> 0.5 s on the 100,000-customer company (the
    # stage's time also holds importing scikit-learn, 0.9 s, as the first stage to use it).
    measured = check_random_state(seed).permutation(len(sample))[:SILHOUETTE_SAMPLE]
    distances = euclidean_distances(sample[measured])
    scores: dict[str, float] = {}
    best: tuple[float, int, np.ndarray | None] = (-2.0, 1, None)
    for k in K_RANGE:
        if k > distinct or k > len(sample) - 1:
            break
        model = KMeans(n_clusters=k, n_init=2, random_state=seed).fit(sample)
        if len(np.unique(model.labels_)) < 2:
            break
        score = float(silhouette_score(distances, model.labels_[measured], metric="precomputed"))
        scores[str(k)] = round(score, 4)
        if score > best[0] + 1e-9:
            best = (score, k, model.cluster_centers_)
    return best[1], scores, best[2], rows


def _fit(
    scaled: np.ndarray, seed: int
) -> tuple[int, dict[str, float], np.ndarray | None, np.ndarray, np.ndarray]:
    """(k, silhouettes, sample centres, assignment, centres) for standardised features."""
    k, silhouettes, sample_centres, _rows = choose_k(scaled, seed)
    if sample_centres is None:
        # Too few distinct customers to compare groupings: one group, described by its mean.
        return (
            1,
            silhouettes,
            None,
            np.zeros(len(scaled), dtype=np.int64),
            scaled.mean(axis=0, keepdims=True),
        )
    model = KMeans(n_clusters=k, init=sample_centres, n_init=1, random_state=seed).fit(scaled)
    return k, silhouettes, sample_centres, model.labels_.astype(np.int64), model.cluster_centers_


def run(ctx: RunContext) -> None:
    """Fill cluster and cluster_label for customers with a purchase."""
    if ctx.features is None:
        raise StageFailed("clusters need the features stage, which did not run")
    seed = ctx.settings.random_seed
    features = feature_matrix(ctx.features)
    names = list(features.columns)
    ctx.scores["cluster"] = pd.arrays.IntegerArray(
        np.zeros(len(ctx.scores), dtype=np.int64), mask=np.ones(len(ctx.scores), dtype=bool)
    )
    ctx.scores["cluster_label"] = None
    params: dict[str, Any] = {"features": names, "k_range": [K_RANGE.start, K_RANGE.stop - 1]}
    if features.empty:
        ctx.params["clusters"] = params
        ctx.metrics["clusters"] = {"k": 0, "note": "no customer has a purchase yet"}
        return
    scaler = StandardScaler().fit(features.to_numpy())
    scaled = scaler.transform(features.to_numpy())
    # k-means' and the silhouette's OpenMP/BLAS threads cost more in start-up and spinning
    # than they save on these few features (10x slower on a busy 2-core machine).
    with threadpool_limits(limits=1):
        k, silhouettes, sample_centres, assignment, centres = _fit(scaled, seed)
    note = "one cluster: too few distinct customers to compare groupings" if k == 1 else None
    # Number clusters by mean spend, highest first, so numbers mean the same run to run.
    spend_position = names.index("log_spend")
    order = np.argsort(-centres[:, spend_position], kind="stable")
    renumber = np.empty(len(order), dtype=np.int64)
    renumber[order] = np.arange(len(order))
    assignment = renumber[assignment]
    centres = centres[order]
    members = ctx.features.loc[features.index]
    usual_gap = usual_gap_days(ctx.features)
    words = [
        member_words(members[assignment == number], members, usual_gap)
        for number in range(len(centres))
    ]
    labels = _labels(words)

    cluster_series = pd.Series(assignment, index=features.index)
    ctx.scores.loc[features.index, "cluster"] = cluster_series.to_numpy()
    label_array = np.array(labels, dtype=object)
    ctx.scores.loc[features.index, "cluster_label"] = label_array[assignment]

    original = features.assign(cluster=assignment).groupby("cluster")
    summary = members.assign(cluster=assignment).groupby("cluster")
    one_time = (members["frequency"] == 1).groupby(assignment).mean()
    sizes = original.size()
    description = []
    for number, label in enumerate(labels):
        description.append(
            {
                "cluster": number,
                "label": label,
                "size": int(sizes.get(number, 0)),
                "words": words[number],
                "one_time_share": _rounded(one_time.get(number)),
                "median_recency_days": _rounded(summary["recency_days"].median().get(number)),
                "median_frequency": _rounded(summary["frequency"].median().get(number)),
                "median_spend_per_day": _rounded(summary["day_spend_mean"].median().get(number)),
                "median_tenure_days": _rounded(summary["tenure_days"].median().get(number)),
                "mean_tickets": _rounded(summary["tickets_count"].mean().get(number)),
                "median_tickets": _rounded(summary["tickets_count"].median().get(number)),
                "median_nps": _rounded(summary["nps_mean"].median().get(number)),
                "centre_z": [round(float(v), 3) for v in centres[number]],
            }
        )
    params.update(
        {
            "k": int(len(labels)),
            "usual_gap_days": _rounded(usual_gap),
            "scaler_mean": [round(float(v), 5) for v in scaler.mean_],
            "scaler_scale": [round(float(v), 5) for v in scaler.scale_],
            "clusters": description,
        }
    )
    ctx.params["clusters"] = params
    chosen = silhouettes.get(str(k)) if sample_centres is not None else None
    ctx.metrics["clusters"] = {
        "k": int(len(labels)),
        "silhouette": chosen,
        "silhouette_by_k": silhouettes,
        "sampled": bool(len(scaled) > SELECTION_SAMPLE),
        "customers": int(len(scaled)),
        **({"note": note} if note else {}),
    }


def _rounded(value: Any) -> float | None:
    if value is None or pd.isna(value):
        return None
    return round(float(value), 2)
