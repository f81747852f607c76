"""A past run against what really happened after its day.

A run as of day D scored every customer it knew with a churn risk: the probability of no
purchase in (D, D + horizon] (`churn.no_purchase_label`: a purchase is an order of amount
>= 0, the horizon the run's own `churn.horizon_days`). Once the book holds orders up to
D + horizon, that outcome is known for every one of them, and `backtest` measures the run
against it:

* churn: ROC AUC of the run's risk against the real outcome, beside the same AUC of two
  baselines computed from what the run knew — recency (days since the last purchase day)
  and BG/NBD (the run's own purchase model's P(no purchase in the horizon) at each
  customer's history on day D: repeat purchase days x and the days since the last, t_x,
  from the run's stored frequency and recency, and the days since the first purchase day,
  T) — and the predicted against the real
  churn rate, overall, per tenth of the customers ranked by risk (calibration), per RFM
  segment and for the top of the run's at-risk list (`AT_RISK_TOP` accounts by value at
  risk);
* purchases: the run's purchase model's expected purchase days in the horizon against the
  real ones (total and mean absolute error per customer); and, once the CLV horizon has
  elapsed too, the stored `expected_purchases` over that horizon against the real count.

Only customers the run scored count (those known on D), and for churn and purchases only
those who had bought by D: the model scores nobody else. A run whose horizon has not fully
elapsed in the data (the latest order in the book is before D + horizon) has no future
yet: no figure is computed from a part of the horizon, whose churn would be a different
label (`future_status` says what is missing).

Pure: frames in, a JSON-ready dict out. Loading the run's scores and the orders after D is
`crmbot.runs.backtest`'s job.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from crmbot.analytics.clv.bgnbd import (
    BgNbdParams,
    conditional_expected_purchases,
    probability_no_purchase,
)

# The accounts at the top of the run's at-risk list (by value at risk) whose predicted and
# real churn are compared: enough for a rate to mean something (a standard error of about
# five points), few enough to be the accounts someone would actually have called.
AT_RISK_TOP = 100
DECILES = 10
# The columns `backtest` reads of the run's scores (index customer_pk): what the run
# stored, plus `age_days`, the days from the customer's first purchase day to the run's day
# (BG/NBD's T; x and t_x come from the stored frequency and recency).
SCORE_COLUMNS = [
    "churn_risk",
    "recency_days",
    "frequency",
    "segment",
    "value_at_risk",
    "expected_purchases",
]
PURCHASE_COLUMNS = ["age_days"]


def window_end(as_of: date, horizon_days: int) -> date:
    """The last day of the horizon after a run's day: (as_of, as_of + horizon]."""
    return as_of + timedelta(days=horizon_days)


def future_status(as_of: date, horizon_days: int, latest_order: date | None) -> dict[str, Any]:
    """Whether the book holds the whole horizon after `as_of`: `complete`, or the days of it
    seen so far and the day the data must reach."""
    end = window_end(as_of, horizon_days)
    seen = 0 if latest_order is None else max(0, min((latest_order - as_of).days, horizon_days))
    return {
        "complete": latest_order is not None and latest_order >= end,
        "horizon_days": horizon_days,
        "window": {"after": as_of.isoformat(), "until": end.isoformat()},
        "latest_order": None if latest_order is None else latest_order.isoformat(),
        "days_seen": seen,
    }


def purchase_model(
    clv_params: dict[str, Any] | None, clv_metrics: dict[str, Any] | None
) -> BgNbdParams | None:
    """The purchase model a run used (BG/NBD, or MBG/NBD where BG/NBD's fit ran to its
    limit), rebuilt from its recorded parameters; None when it recorded none usable."""
    clv_params = clv_params if isinstance(clv_params, dict) else {}
    clv_metrics = clv_metrics if isinstance(clv_metrics, dict) else {}
    used = (clv_metrics.get("purchase_model") or {}).get("model")
    modified = used == "MBG/NBD"
    recorded = clv_params.get("mbgnbd" if modified else "bgnbd")
    if not isinstance(recorded, dict) or recorded.get("time_unit", "days") != "days":
        return None
    try:
        values = [float(recorded[name]) for name in ("r", "alpha", "a", "b")]
    except (KeyError, TypeError, ValueError):
        return None
    if not all(math.isfinite(v) and v > 0 for v in values):
        return None
    r, alpha, a, b = values
    return BgNbdParams(r=r, alpha=alpha, a=a, b=b, modified=modified)


def backtest(
    scores: pd.DataFrame,
    bought_days: pd.Series,
    *,
    as_of: date,
    horizon_days: int,
    latest_order: date | None,
    model: BgNbdParams | None = None,
    clv_horizon: tuple[int, pd.Series] | None = None,
) -> dict[str, Any]:
    """The run's figures against the real outcome.

    `scores`: the run's score rows (`SCORE_COLUMNS`, and `PURCHASE_COLUMNS` for the
    purchase model's figures), index customer_pk: every customer the run knew.
    `bought_days`: distinct purchase days in (as_of, as_of + horizon] per customer (index
    customer_pk; a customer left out bought on none).
    `model`: the run's purchase model (`purchase_model`), for the BG/NBD baseline and the
    expected purchases in the horizon; None leaves both out.
    `clv_horizon`: (days, purchase days in (as_of, as_of + days]) when the CLV horizon has
    elapsed too: the stored `expected_purchases` against them.
    """
    status = future_status(as_of, horizon_days, latest_order)
    document: dict[str, Any] = {"as_of": as_of.isoformat(), "future": status}
    if not status["complete"]:
        return document
    buyers = scores[pd.to_numeric(scores["frequency"], errors="coerce").fillna(0) > 0]
    real = bought_days.reindex(buyers.index).fillna(0).to_numpy(dtype=float)
    document["customers"] = int(len(scores))
    document["buyers"] = int(len(buyers))
    document["churn"] = _churn(buyers, real == 0, horizon_days, model)
    document["segments"] = _segments(buyers, real == 0)
    document["purchases"] = _purchases(buyers, real, horizon_days, model)
    if clv_horizon is not None:
        days, bought = clv_horizon
        document["clv_purchases"] = _stored_purchases(buyers, bought, days)
    return document


def bgnbd_inputs(scores: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, t_x, T) on the run's day: repeat purchase days (stored frequency - 1), days from
    the first to the last purchase day (T - stored recency) and from the first to the run's
    day (`age_days`). NaN where unknown, and where they contradict each other (a last
    purchase before the first: orders changed since the run), so no prediction is made."""
    frequency = pd.to_numeric(scores["frequency"], errors="coerce").to_numpy(dtype=float)
    recency = pd.to_numeric(scores["recency_days"], errors="coerce").to_numpy(dtype=float)
    age = pd.to_numeric(scores["age_days"], errors="coerce").to_numpy(dtype=float)
    x = np.maximum(frequency - 1.0, 0.0)
    t_x = age - recency
    consistent = (t_x >= 0) & ((x > 0) | (t_x == 0))
    return x, np.where(consistent, t_x, np.nan), np.where(consistent, age, np.nan)


def _auc(churned: np.ndarray, score: np.ndarray) -> float | None:
    """ROC AUC of `score` ranking the churned above the rest; None with one outcome only."""
    usable = np.isfinite(score)
    y = churned[usable]
    if len(y) == 0 or y.all() or not y.any():
        return None
    return round(float(roc_auc_score(y, score[usable])), 4)


def _rate(values: np.ndarray) -> float | None:
    return round(float(np.mean(values)), 4) if len(values) else None


def _churn(
    buyers: pd.DataFrame, churned: np.ndarray, horizon_days: int, model: BgNbdParams | None
) -> dict[str, Any]:
    """The run's churn risk against the real outcome, beside recency and BG/NBD."""
    risk = pd.to_numeric(buyers["churn_risk"], errors="coerce").to_numpy(dtype=float)
    scored = np.isfinite(risk)
    if not scored.any():
        return {"scored": 0, "note": "the run has no churn risk (no churn model was trained)"}
    y = churned[scored]
    risk = risk[scored]
    frame = buyers[scored]
    recency = pd.to_numeric(frame["recency_days"], errors="coerce").to_numpy(dtype=float)
    baselines: dict[str, dict[str, Any]] = {
        "recency": {"roc_auc": _auc(y, recency)},
    }
    if model is not None and set(PURCHASE_COLUMNS) <= set(frame.columns):
        quiet = probability_no_purchase(model, horizon_days, *bgnbd_inputs(frame))
        baselines["bgnbd"] = {
            "model": model.name,
            "roc_auc": _auc(y, quiet),
            "predicted_rate": _rate(quiet[np.isfinite(quiet)]),
        }
    value = pd.to_numeric(frame["value_at_risk"], errors="coerce").to_numpy(dtype=float)
    return {
        "scored": int(len(y)),
        "churned": int(y.sum()),
        "predicted_rate": _rate(risk),
        "real_rate": _rate(y.astype(float)),
        "roc_auc": _auc(y, risk),
        "baselines": baselines,
        "calibration": _calibration(risk, y),
        "at_risk_list": _at_risk_list(risk, y, value),
    }


def _calibration(risk: np.ndarray, churned: np.ndarray) -> list[dict[str, Any]]:
    """Tenths of the customers ranked by risk, lowest first: each one's predicted and real
    churn rate and its risk range (ties in risk may straddle two tenths)."""
    order = np.argsort(risk, kind="stable")
    rows = []
    for decile, part in enumerate(np.array_split(order, DECILES), start=1):
        if len(part) == 0:
            continue
        rows.append(
            {
                "decile": decile,
                "customers": int(len(part)),
                "risk_from": round(float(risk[part].min()), 4),
                "risk_to": round(float(risk[part].max()), 4),
                "predicted_rate": _rate(risk[part]),
                "real_rate": _rate(churned[part].astype(float)),
            }
        )
    return rows


def _at_risk_list(risk: np.ndarray, churned: np.ndarray, value: np.ndarray) -> dict[str, Any]:
    """The top of the at-risk list (the accounts with the most value at risk, as `/crm
    at-risk` ranks them): their predicted against their real churn."""
    listed = np.flatnonzero(np.isfinite(value) & (value > 0))
    top = listed[np.argsort(-value[listed], kind="stable")][:AT_RISK_TOP]
    return {
        "customers": int(len(top)),
        "churned": int(churned[top].sum()),
        "predicted_rate": _rate(risk[top]),
        "real_rate": _rate(churned[top].astype(float)),
    }


def _segments(buyers: pd.DataFrame, churned: np.ndarray) -> list[dict[str, Any]]:
    """Each RFM segment's real churn rate (and the run's mean risk there), lowest first."""
    frame = pd.DataFrame(
        {
            "segment": buyers["segment"].fillna("—").astype(str).to_numpy(),
            "churned": churned.astype(float),
            "risk": pd.to_numeric(buyers["churn_risk"], errors="coerce").to_numpy(dtype=float),
        }
    )
    grouped = frame.groupby("segment", sort=False).agg(
        customers=("churned", "size"), real=("churned", "mean"), predicted=("risk", "mean")
    )
    grouped = grouped.sort_values(["real", "customers"], ascending=[True, False])
    return [
        {
            "segment": str(name),
            "customers": int(row.customers),
            "predicted_rate": None if pd.isna(row.predicted) else round(float(row.predicted), 4),
            "real_rate": round(float(row.real), 4),
        }
        for name, row in grouped.iterrows()
    ]


def _accuracy(predicted: np.ndarray, real: np.ndarray) -> dict[str, Any]:
    return {
        "customers": int(len(real)),
        "predicted": round(float(predicted.sum()), 2),
        "real": int(real.sum()),
        "mae": round(float(np.mean(np.abs(predicted - real))), 4) if len(real) else None,
    }


def _purchases(
    buyers: pd.DataFrame, real: np.ndarray, horizon_days: int, model: BgNbdParams | None
) -> dict[str, Any]:
    """The run's purchase model's expected purchase days in the horizon against the real
    ones, per customer who had bought by the run's day."""
    if model is None or not set(PURCHASE_COLUMNS) <= set(buyers.columns):
        return {"horizon_days": horizon_days, "note": "the run recorded no purchase model"}
    expected = conditional_expected_purchases(model, horizon_days, *bgnbd_inputs(buyers))
    usable = np.isfinite(expected)
    return {
        "horizon_days": horizon_days,
        "model": model.name,
        **_accuracy(expected[usable], real[usable]),
    }


def _stored_purchases(buyers: pd.DataFrame, bought: pd.Series, days: int) -> dict[str, Any]:
    """The run's stored expected purchases over the CLV horizon against the real count."""
    stored = pd.to_numeric(buyers["expected_purchases"], errors="coerce")
    stored = stored[stored.notna()]
    real = bought.reindex(stored.index).fillna(0).to_numpy(dtype=float)
    return {"horizon_days": days, **_accuracy(stored.to_numpy(dtype=float), real)}
