"""The churn stage: train the model, then score every customer who has made a purchase."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from crmbot.analytics.base import HASHED_TEXTS, RunContext
from crmbot.analytics.churn.features import features_as_of
from crmbot.analytics.churn.model import threads
from crmbot.analytics.churn.training import NotEnoughHistory, train_churn_model
from crmbot.analytics.satisfaction import customer_satisfaction

log = logging.getLogger(__name__)


def _current_satisfaction(ctx: RunContext) -> pd.DataFrame:
    columns = ["csat_latest", "nps_latest", "sentiment"]
    if all(column in ctx.scores.columns for column in columns):
        return ctx.scores[columns].apply(pd.to_numeric, errors="coerce")
    return customer_satisfaction(ctx.data, seed=ctx.settings.random_seed).frame


def run(ctx: RunContext) -> None:
    """Train, validate and calibrate the churn model; score every customer with a purchase."""
    horizon = ctx.settings.churn_horizon_days
    seed = ctx.settings.random_seed
    index = ctx.scores.index
    ctx.scores["churn_risk"] = np.nan
    ctx.scores["churn_reasons"] = pd.Series([None] * len(index), index=index, dtype=object)
    ctx.scores["value_at_risk"] = np.nan
    try:
        churn = train_churn_model(
            ctx.data,
            horizon_days=horizon,
            seed=seed,
            source=ctx.source,
            hashed=ctx.cache.get(HASHED_TEXTS),
        )
    except NotEnoughHistory as exc:
        log.warning("churn model not trained: %s", exc)
        ctx.params["churn"] = {"model": None, "horizon_days": horizon}
        ctx.metrics["churn"] = {"trained": False, "note": str(exc)}
        return

    summary = ctx.features if ctx.features is not None else ctx.source.summary()
    with threads():
        features, facts = features_as_of(
            ctx.data,
            horizon_days=horizon,
            seed=seed,
            summary=summary,
            satisfaction=_current_satisfaction(ctx),
        )
        risk, customer_reasons = churn.score(features, facts, horizon)
    ctx.scores.loc[risk.index, "churn_risk"] = risk.round(4)
    ctx.scores["churn_reasons"] = pd.Series(
        dict(zip(features.index, customer_reasons, strict=True)), dtype=object
    ).reindex(index)
    if "clv" in ctx.scores.columns:
        clv = pd.to_numeric(ctx.scores["clv"], errors="coerce")
        ctx.scores["value_at_risk"] = (clv * ctx.scores["churn_risk"]).round(2)

    churn.metrics["scored_customers"] = int(len(risk))
    churn.metrics["mean_risk"] = round(float(risk.mean()), 4) if len(risk) else None
    ctx.params["churn"] = churn.params
    ctx.metrics["churn"] = churn.metrics
