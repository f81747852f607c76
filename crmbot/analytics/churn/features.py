"""Churn features: each buyer's model inputs and the facts in their own units, as of a day."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from crmbot.analytics.base import TrainingData
from crmbot.analytics.clv import fit_purchases, probability_no_purchase
from crmbot.analytics.satisfaction import customer_satisfaction
from crmbot.analytics.segments import PROSPECTS, SEGMENT_ORDER, rfm_scores
from crmbot.analytics.source.pandas_summary import customer_summary
from crmbot.analytics.text_sentiment import HashedTexts

# The RFM segments a buyer can be in (one-hot encoded; Prospects are never scored).
BUYER_SEGMENTS = [name for name in SEGMENT_ORDER if name != PROSPECTS]

# Feature groups: the unit a reason speaks about. Features in one group describe one
# thing, so their contributions are added before ranking.
GROUPS: dict[str, list[str]] = {
    "recency": ["log_recency", "log_overdue"],
    "frequency": ["log_frequency", "log_gap"],
    "tenure": ["log_tenure"],
    "spend": ["log_day_spend"],
    "purchase_trend": ["purchase_trend"],
    "spend_trend": ["spend_trend"],
    "bgnbd": ["logit_p_no_purchase"],
    "open_tickets": ["tickets_open"],
    "recent_tickets": ["tickets_last_90d"],
    "ticket_time": ["log_resolution_days"],
    "csat": ["csat_shortfall"],
    "nps": ["nps_shortfall"],
    "sentiment": ["sentiment"],
    "segment": [f"segment_{name}" for name in BUYER_SEGMENTS],
}
FEATURES: list[str] = [name for names in GROUPS.values() for name in names]
# Which way each feature may push risk: +1 up as it grows, -1 down, 0 either way. Both
# models are held to it, so a reason never says "spend up 30%" as a cause of risk: a
# direction the data seemed to show against it is a correlation between features, not
# something to tell an account manager.
DIRECTIONS: dict[str, int] = {
    "log_recency": 1,
    "log_overdue": 1,
    "log_frequency": -1,
    "log_gap": 1,
    "log_tenure": 0,
    "log_day_spend": 0,
    "purchase_trend": -1,
    "spend_trend": -1,
    "logit_p_no_purchase": 1,
    "tickets_open": 1,
    "tickets_last_90d": 1,
    "log_resolution_days": 1,
    "csat_shortfall": 1,
    "nps_shortfall": 1,
    "sentiment": -1,
    **{name: 0 for name in GROUPS["segment"]},
}


def p_no_purchase(summary: pd.DataFrame, horizon_days: int) -> pd.Series:
    """BG/NBD's P(no purchase within the horizon) for customers with a purchase (else NaN);
    MBG/NBD's where BG/NBD's fit runs to the limit where nobody drops out, as in the CLV
    stage (`fit_purchases`).

    Fitted on this summary alone, so a snapshot's value uses nothing after its cutoff.
    Raises `StageFailed` (from the CLV module) when BG/NBD cannot be fitted.
    """
    buyers = summary[summary["frequency"] > 0]
    result = pd.Series(np.nan, index=summary.index, dtype=float)
    if buyers.empty:
        return result
    x = buyers["repeat_purchases"].to_numpy(dtype=float)
    t_x = buyers["t_x_days"].to_numpy(dtype=float)
    T = buyers["age_days"].to_numpy(dtype=float)
    params = fit_purchases(x, t_x, T).params
    result.loc[buyers.index] = probability_no_purchase(params, float(horizon_days), x, t_x, T)
    return result


def _ratio_trend(last: np.ndarray, before: np.ndarray) -> np.ndarray:
    """Relative change of a per-30-days rate, -1 (stopped) .. +3; 0 without a 'before'."""
    with np.errstate(divide="ignore", invalid="ignore"):
        change = np.clip((last - before) / np.where(before > 0, before, np.nan), -1.0, 3.0)
    return np.where(np.isnan(change), 0.0, change)


def _missing_as(values: np.ndarray, fill: np.ndarray | float) -> np.ndarray:
    return np.where(np.isnan(values), fill, values)


class _BuyerRows:
    """The summary's and the satisfaction answers' columns, cut to the buyers' rows.

    Plain NumPy arrays rather than a filtered frame: copying every summary column to select
    the buyers was a large part of the features' time (see `churn_features`).
    """

    def __init__(self, summary: pd.DataFrame, satisfaction: pd.DataFrame) -> None:
        self.summary = summary
        self.satisfaction = satisfaction
        self.is_buyer = summary["frequency"].to_numpy() > 0
        self.index = summary.index[self.is_buyer]

    def numbers(self, name: str) -> np.ndarray:
        return self.summary[name].to_numpy(dtype=float)[self.is_buyer]

    def counts(self, name: str) -> np.ndarray:
        return self.summary[name].to_numpy(dtype=np.int64)[self.is_buyer]

    def answers(self, name: str) -> np.ndarray:
        return self.satisfaction[name].reindex(self.index).astype(float).to_numpy()


def _buyer_facts(rows: _BuyerRows, p_none: pd.Series) -> dict[str, Any]:
    """The facts reasons quote, column by column, in the customer's own units."""
    age = rows.numbers("age_days")
    return {
        "recency_days": rows.numbers("recency_days"),
        "gap_days": rows.numbers("gap_mean_days"),
        "frequency": rows.counts("frequency"),
        "tenure_days": _missing_as(rows.numbers("tenure_days"), age),
        "day_spend": rows.numbers("day_spend_mean"),
        "purchase_rate_last": rows.numbers("purchase_rate_last_90d"),
        "purchase_rate_before": rows.numbers("purchase_rate_before_90d"),
        "spend_rate_last": rows.numbers("spend_rate_last_90d"),
        "spend_rate_before": rows.numbers("spend_rate_before_90d"),
        "p_no_purchase": p_none.reindex(rows.index).to_numpy(dtype=float),
        "tickets_open": rows.counts("tickets_open"),
        "tickets_last_90d": rows.counts("tickets_last_90d"),
        "tickets_count": rows.counts("tickets_count"),
        "resolution_days": rows.numbers("ticket_resolution_hours_mean") / 24.0,
        "csat_latest": rows.answers("csat_latest"),
        "nps_latest": rows.answers("nps_latest"),
        "sentiment": rows.answers("sentiment"),
        "segment": rfm_scores(rows.summary)["segment"].reindex(rows.index),
    }


def _feature_columns(rows: _BuyerRows, facts: dict[str, Any]) -> dict[str, np.ndarray]:
    """Every model feature (`FEATURES`) of the buyers, from their facts."""
    recency = facts["recency_days"]
    # One purchase day: no gap seen yet, but it is at least as long as their age.
    gap = np.maximum(_missing_as(facts["gap_days"], rows.numbers("age_days")), 1.0)
    p = facts["p_no_purchase"]
    known_p = p[~np.isnan(p)]
    p_clipped = np.clip(_missing_as(p, np.median(known_p) if len(known_p) else 0.5), 1e-4, 1 - 1e-4)
    # Each customer's position in BUYER_SEGMENTS (-1 for none of them: no one-hot column).
    segment_codes = pd.Categorical(facts["segment"], categories=BUYER_SEGMENTS).codes
    columns: dict[str, np.ndarray] = {
        "log_recency": np.log1p(recency),
        "log_overdue": np.log1p(recency / gap),
        "log_frequency": np.log1p(rows.numbers("frequency")),
        "log_gap": np.log1p(gap),
        "log_tenure": np.log1p(facts["tenure_days"]),
        "log_day_spend": np.log1p(np.maximum(facts["day_spend"], 0.0)),
        "purchase_trend": _ratio_trend(facts["purchase_rate_last"], facts["purchase_rate_before"]),
        "spend_trend": _ratio_trend(facts["spend_rate_last"], facts["spend_rate_before"]),
        "logit_p_no_purchase": np.log(p_clipped / (1.0 - p_clipped)),
        "tickets_open": facts["tickets_open"].astype(float),
        "tickets_last_90d": facts["tickets_last_90d"].astype(float),
        "log_resolution_days": np.log1p(_missing_as(facts["resolution_days"], 0.0)),
        # How far below the top answer; no answer counts as no complaint.
        "csat_shortfall": _missing_as(5.0 - facts["csat_latest"], 0.0),
        "nps_shortfall": _missing_as(10.0 - facts["nps_latest"], 0.0),
        "sentiment": _missing_as(facts["sentiment"], 0.0),
    }
    for code, name in enumerate(BUYER_SEGMENTS):
        columns[f"segment_{name}"] = (segment_codes == code).astype(float)
    return columns


def churn_features(
    summary: pd.DataFrame,
    satisfaction: pd.DataFrame,
    p_none: pd.Series,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(model features, facts in the customer's own units) for customers with a purchase.

    Column by column on NumPy arrays of the buyers' rows: it runs for every snapshot and
    for every customer at as_of, and pandas' per-operation overhead (and copying every
    summary column to select the buyers) was 40% of its time apart from `rfm_scores`.
    """
    rows = _BuyerRows(summary, satisfaction)
    facts = _buyer_facts(rows, p_none)
    columns = _feature_columns(rows, facts)
    features = pd.DataFrame(
        np.column_stack([columns[name] for name in FEATURES]), index=rows.index, columns=FEATURES
    )
    return features, pd.DataFrame(facts, index=rows.index)


def features_as_of(
    data: TrainingData,
    *,
    horizon_days: int,
    seed: int,
    summary: pd.DataFrame | None = None,
    satisfaction: pd.DataFrame | None = None,
    hashed: HashedTexts | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Churn features of `data` as of its own date (precomputed parts may be passed in)."""
    summary = customer_summary(data) if summary is None else summary
    if satisfaction is None:
        # The text model is fitted on this snapshot's comments only; its held-out check is
        # the satisfaction stage's business, not repeated per snapshot.
        satisfaction = customer_satisfaction(
            data, seed=seed, validate_text_model=False, hashed=hashed
        ).frame
    return churn_features(summary, satisfaction, p_no_purchase(summary, horizon_days))
