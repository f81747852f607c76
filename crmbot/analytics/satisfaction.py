"""Customer satisfaction: CSAT, NPS, the tone of what customers write, and one 0-100 score.

Per customer, from everything dated on or before the run's `as_of`:

* `csat_latest`, `csat_avg` — CSAT (1-5) from surveys and from rated support tickets. A
  ticket's rating counts from the day it was closed: a ticket still open on `as_of` has no
  rating yet, whatever the table says later.
* `nps_latest` and `nps_category` — promoter (9-10), passive (7-8), detractor (0-6).
* `sentiment` — in [-1, 1], the text model's reading (see `text_sentiment`) of ticket
  subjects and bodies and of survey comments that carry no score, each weighted by its age
  with a half-life of 180 days, so last month's angry ticket counts more than last year's.
* `satisfaction` — 0-100, a weighted mean of the parts the customer has:
  CSAT 40% (half the latest answer, half the average, (csat - 1) / 4 * 100),
  NPS 40% (latest answer * 10), sentiment 20% ((sentiment + 1) * 50). Missing parts are
  left out and the weights of the rest rescaled; a customer with none of them has no score.

The same function computes these as of any earlier snapshot (the text model is then fitted
on that snapshot's comments only), which is how the churn model uses them as features.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from crmbot.analytics.base import HASHED_TEXTS, RunContext, TrainingData
from crmbot.analytics.text_sentiment import (
    DETRACTOR_NPS,
    PROMOTER_NPS,
    HashedTexts,
    TextSentimentModel,
    comment_labels,
    fit_text_model,
)

log = logging.getLogger(__name__)

SENTIMENT_HALF_LIFE_DAYS = 180.0
WEIGHTS = {"csat": 0.4, "nps": 0.4, "sentiment": 0.2}
SCORE_COLUMNS = [
    "csat_latest",
    "csat_avg",
    "nps_latest",
    "nps_category",
    "sentiment",
    "satisfaction",
]


def nps_category(nps: pd.Series) -> pd.Series:
    """promoter (9-10) / passive (7-8) / detractor (0-6); None where there is no answer."""
    values = np.full(len(nps), None, dtype=object)
    answer = nps.to_numpy(dtype=float)
    values[answer >= PROMOTER_NPS] = "promoter"
    values[(answer > DETRACTOR_NPS) & (answer < PROMOTER_NPS)] = "passive"
    values[answer <= DETRACTOR_NPS] = "detractor"
    return pd.Series(values, index=nps.index, dtype=object)


@dataclass
class SatisfactionResult:
    # index customer_pk; SCORE_COLUMNS plus counts the churn features use
    frame: pd.DataFrame
    text_model: TextSentimentModel
    metrics: dict[str, Any] = field(default_factory=dict)


def _csat_responses(data: TrainingData) -> pd.DataFrame:
    survey = data.feedback[["customer_pk", "submitted_at", "csat"]].rename(
        columns={"submitted_at": "at"}
    )
    tickets = data.tickets
    rated = tickets[tickets["closed_at"].notna()]
    ticket = rated[["customer_pk", "closed_at", "csat"]].rename(columns={"closed_at": "at"})
    responses = pd.concat([survey, ticket], ignore_index=True)
    responses["csat"] = pd.to_numeric(responses["csat"], errors="coerce")
    return responses[responses["csat"].between(1, 5)]


def _latest(frame: pd.DataFrame, value: str) -> pd.Series:
    ordered = frame.sort_values(["customer_pk", "at"], kind="stable")
    return ordered.groupby("customer_pk")[value].last()


def _weighted_sentiment(
    data: TrainingData, model: TextSentimentModel, hashed: HashedTexts
) -> tuple[pd.Series, int]:
    """Age-weighted mean sentiment of the text without a score of its own: ticket subject
    + body, and unscored comments."""
    if not model.trained:
        return pd.Series(dtype=float), 0
    tickets = data.tickets
    feedback = data.feedback
    unscored = feedback[comment_labels(feedback).isna()]
    parts = [
        pd.DataFrame(
            {
                "customer_pk": tickets["customer_pk"].to_numpy(),
                "at": tickets["opened_at"].to_numpy(),
                "sentiment": model.sentiment(hashed.tickets, tickets.index),
            }
        ),
        pd.DataFrame(
            {
                "customer_pk": unscored["customer_pk"].to_numpy(),
                "at": unscored["submitted_at"].to_numpy(),
                "sentiment": model.sentiment(hashed.comments, unscored.index),
            }
        ),
    ]
    scored = pd.concat(parts, ignore_index=True).dropna(subset=["sentiment"])
    if scored.empty:
        return pd.Series(dtype=float), 0
    age_days = (data.cutoff - pd.to_datetime(scored["at"])).dt.total_seconds() / 86_400.0
    scored["weight"] = np.power(0.5, age_days.clip(lower=0) / SENTIMENT_HALF_LIFE_DAYS)
    scored["weighted"] = scored["sentiment"] * scored["weight"]
    sums = scored.groupby("customer_pk")[["weighted", "weight"]].sum()
    return sums["weighted"] / sums["weight"], len(scored)


def satisfaction_score(frame: pd.DataFrame) -> pd.Series:
    """The documented 0-100 blend of whatever parts a customer has (see the module doc)."""
    parts = pd.DataFrame(
        {
            "csat": 100.0
            * (0.5 * (frame["csat_latest"] - 1) / 4 + 0.5 * (frame["csat_avg"] - 1) / 4),
            "nps": 10.0 * frame["nps_latest"].astype(float),
            "sentiment": 50.0 * (frame["sentiment"] + 1.0),
        },
        index=frame.index,
    )
    weights = pd.Series(WEIGHTS)
    present = parts.notna()
    weight_sum = present.mul(weights, axis=1).sum(axis=1)
    weighted = parts.fillna(0.0).mul(weights, axis=1).sum(axis=1)
    score = (weighted / weight_sum.replace(0.0, np.nan)).clip(0.0, 100.0)
    return score.round(1)


def customer_satisfaction(
    data: TrainingData,
    *,
    seed: int,
    text_model: TextSentimentModel | None = None,
    validate_text_model: bool = True,
    hashed: HashedTexts | None = None,
) -> SatisfactionResult:
    """Satisfaction per customer of `data` (index customer_pk), as of `data.as_of`.

    `hashed` holds the texts' counts when the caller computes them once for many snapshots.
    """
    if hashed is None:
        hashed = HashedTexts.of(data.feedback, data.tickets)
    model = text_model
    if model is None:
        model = fit_text_model(
            data.feedback, seed=seed, validate=validate_text_model, hashed=hashed
        )
    index = data.customers.index
    frame = pd.DataFrame(index=index)

    csat = _csat_responses(data)
    frame["csat_latest"] = _latest(csat, "csat").reindex(index).astype(float)
    frame["csat_avg"] = csat.groupby("customer_pk")["csat"].mean().reindex(index).round(2)
    frame["csat_responses"] = csat.groupby("customer_pk").size().reindex(index, fill_value=0)

    nps = data.feedback[["customer_pk", "submitted_at", "nps"]].rename(
        columns={"submitted_at": "at"}
    )
    nps = nps.assign(nps=pd.to_numeric(nps["nps"], errors="coerce"))
    nps = nps[nps["nps"].between(0, 10)]
    frame["nps_latest"] = _latest(nps, "nps").reindex(index).astype("Int64")
    frame["nps_category"] = nps_category(frame["nps_latest"].astype(float))

    sentiment, texts_scored = _weighted_sentiment(data, model, hashed)
    frame["sentiment"] = sentiment.reindex(index).astype(float).round(3)
    frame["satisfaction"] = satisfaction_score(frame)

    categories = frame["nps_category"].value_counts()
    metrics: dict[str, Any] = {
        "text_model": model.metrics,
        "texts_scored": int(texts_scored),
        "customers_with_csat": int(frame["csat_latest"].notna().sum()),
        "customers_with_nps": int(frame["nps_latest"].notna().sum()),
        "customers_with_sentiment": int(frame["sentiment"].notna().sum()),
        "customers_with_score": int(frame["satisfaction"].notna().sum()),
        "nps_categories": {str(name): int(count) for name, count in categories.items()},
    }
    answered = frame["nps_latest"].notna().sum()
    if answered:
        # The company's NPS: % promoters - % detractors among customers' latest answers.
        promoters = int(categories.get("promoter", 0))
        detractors = int(categories.get("detractor", 0))
        metrics["nps"] = round(100.0 * (promoters - detractors) / float(answered), 1)
    if frame["satisfaction"].notna().any():
        metrics["mean_satisfaction"] = round(float(frame["satisfaction"].mean()), 1)
    return SatisfactionResult(frame=frame, text_model=model, metrics=metrics)


def run(ctx: RunContext) -> None:
    """Fill the satisfaction columns of the run's scores."""
    # One BLAS/OpenMP thread: the text model's work is small and sparse, and spinning
    # threads made it 8x slower in wall time on a busy two-core machine (0.8 s vs 6.4 s
    # for the 3,000-customer sample company).
    # The texts are counted once per run; churn's snapshots look their rows up too.
    hashed = HashedTexts.of(ctx.data.feedback, ctx.data.tickets)
    ctx.cache[HASHED_TEXTS] = hashed
    with threadpool_limits(limits=1):
        result = customer_satisfaction(ctx.data, seed=ctx.settings.random_seed, hashed=hashed)
    for column in SCORE_COLUMNS:
        ctx.scores[column] = result.frame[column].reindex(ctx.scores.index)
    # An integer column: plain ints and None, which every database driver accepts.
    nps = ctx.scores["nps_latest"]
    ctx.scores["nps_latest"] = pd.Series(
        [int(v) if pd.notna(v) else None for v in nps], index=nps.index, dtype=object
    )
    text = result.text_model.metrics
    if not text.get("trained"):
        log.info("satisfaction: %s", text.get("note"))
    ctx.params["satisfaction"] = {
        "weights": dict(WEIGHTS),
        "sentiment_half_life_days": SENTIMENT_HALF_LIFE_DAYS,
        "text_model": (
            "hashed words and word pairs, TF-IDF, logistic regression"
            if text.get("trained")
            else None
        ),
        "labels": "comment CSAT >= 4 satisfied, else NPS >= 9 satisfied / <= 6 unsatisfied",
    }
    ctx.metrics["satisfaction"] = result.metrics
