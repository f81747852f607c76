"""Churn risk: the probability that a customer makes no purchase within the horizon after
`as_of` (CRMBOT_CHURN_HORIZON_DAYS, default 90), with the reasons in words.

Only customers who have bought at least once are scored; everyone else has no risk (None).

Labels come from time-split snapshots. A snapshot at cutoff c sees the data as of c
(`TrainingData.as_of_earlier`), computes every feature from that alone, and is labelled
1 when the customer made no purchase in (c, c + horizon]. Cutoffs step back 30 days from
as_of - horizon, so every label window ends on or before `as_of`:

* validation: the latest snapshot, c0 = as_of - horizon;
* training: the snapshots whose label windows end on or before c0 (c0 - horizon, then 30
  days further back each, up to six of them). Nothing the model is trained on happened
  after the validation cutoff, just as nothing known at as_of lies after as_of; when the
  history is too short for that gap, the nearest earlier snapshots are used and the
  metrics say `label_windows_overlap_validation: true`.

On a large book the snapshots are of a seeded sample of the customers who had bought by the
validation cutoff (up to 100,000 for validation, 25,000 of them for the training snapshots,
at most 100,000 training rows); every customer is still scored at `as_of`.

Features (`FEATURES`): recency and how overdue the customer is against their own usual gap,
purchase frequency and gap, tenure, spend per purchase day, purchase and spend trends (last
90 days against before), BG/NBD's probability of no purchase in the horizon (fitted afresh
on each snapshot), support tickets (open, last 90 days, time to close) and satisfaction
(latest CSAT, latest NPS, text sentiment, each with a "has one" flag), and the RFM segment
as of the cutoff (one-hot).

Models: a regularised (L2) logistic regression on standardised features and a
HistGradientBoostingClassifier are fitted on the training snapshots; boosting is kept when
its ROC AUC on the validation snapshot beats the logistic model's by at least
`BOOSTING_MIN_GAIN` (0.005), else the logistic model, whose reasons are exact and cheap.
Its probabilities are then calibrated on the
validation snapshot (Platt's sigmoid, or isotonic regression from 5,000 rows up) with the
model itself frozen. Why there: churn base rates drift with season and the economy, and the
latest labelled window is the nearest to today; the ranking was learned from older windows,
and only the mapping from score to probability is taken from the newest one. The Brier
score and calibration figures reported are cross-fitted — each half of the validation
snapshot is calibrated on the other half — so they are not measured on the rows that were
used to calibrate.

Two baselines get exactly the same treatment (fitted on the training snapshots, calibrated
on validation): recency alone, and BG/NBD's P(no purchase in the horizon) alone. Every run
records ROC AUC, PR AUC, Brier (beside the base rate's Brier), lift in the top decile and
mean predicted vs observed churn for the model and both baselines.

Reasons: each feature group's contribution to the customer's log-odds, measured against a
reference customer — for the logistic model coef * (x - mean) (exact), for gradient
boosting the change in the model's output when the group's features are set to the
reference (median) customer's values (one vectorised prediction per group). Only groups
that push risk up count; the top three are phrased with the customer's own numbers ("no
order for 140 days — usually orders every 30"). A customer whose every driver is below
average is compared with the low-risk reference instead (the median of the training
rows the model ranks least at risk), so every scored customer has at least one reason.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import _SigmoidCalibration
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from crmbot.analytics import clv as clv_model
from crmbot.analytics.base import HASHED_TEXTS, RunContext, StageFailed, TrainingData
from crmbot.analytics.satisfaction import customer_satisfaction
from crmbot.analytics.segments import PROSPECTS, SEGMENT_MEANINGS, SEGMENT_ORDER, rfm_scores
from crmbot.analytics.source import PandasSource, TrainingSource
from crmbot.analytics.source.pandas_summary import customer_summary
from crmbot.analytics.text_sentiment import HashedTexts
from crmbot.core.config import Settings

log = logging.getLogger(__name__)

SNAPSHOT_STEP_DAYS = 30
MAX_TRAINING_SNAPSHOTS = 6
# A snapshot with fewer customers than this, or with too few of either outcome, teaches
# nothing reliable and is left out.
MIN_SNAPSHOT_CUSTOMERS = 30
MIN_OUTCOME_ROWS = 10
# Snapshots are computed for a seeded sample of the customers who had bought by the
# validation cutoff: every feature is the customer's own except BG/NBD's parameters, the
# RFM quintiles and the text model, which a sample of this size estimates closely. On the
# 100,000-customer benchmark company, 100,000 training rows gave validation ROC AUC 0.8948
# against 0.8956 from 300,000 and 0.8934 from 20,000, at a third of the time of 300,000.
VALIDATION_CUSTOMERS = 100_000
TRAINING_CUSTOMERS = 25_000
MAX_TRAINING_ROWS = 100_000
ISOTONIC_MIN_ROWS = 5_000
# How much higher boosting's validation ROC AUC must be for it to replace the logistic
# model (`choose_model`): about four standard errors of ROC AUC on a validation snapshot
# of 70,000 customers, so boosting is chosen where it ranks clearly better, not by chance.
BOOSTING_MIN_GAIN = 0.005
TOP_REASONS = 3


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
BASELINES: dict[str, list[str]] = {
    "recency": ["log_recency"],
    "bgnbd": ["logit_p_no_purchase"],
}


class NotEnoughHistory(Exception):
    """Too little labelled history to train a churn model; the message says what is missing."""


# ---------------------------------------------------------------------------------------
# Features


def p_no_purchase(summary: pd.DataFrame, horizon_days: int) -> pd.Series:
    """BG/NBD's P(no purchase within the horizon) for customers with a purchase (else NaN).

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
    params = clv_model.fit_bgnbd(x, t_x, T)
    result.loc[buyers.index] = clv_model.probability_no_purchase(
        params, float(horizon_days), x, t_x, T
    )
    return result


def _ratio_trend(last: np.ndarray, before: np.ndarray) -> np.ndarray:
    """Relative change of a per-30-days rate, -1 (stopped) .. +3; 0 without a 'before'."""
    with np.errstate(divide="ignore", invalid="ignore"):
        change = np.clip((last - before) / np.where(before > 0, before, np.nan), -1.0, 3.0)
    return np.where(np.isnan(change), 0.0, change)


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
    is_buyer = summary["frequency"].to_numpy() > 0
    buyers = summary.index[is_buyer]

    def numbers(name: str) -> np.ndarray:
        return summary[name].to_numpy(dtype=float)[is_buyer]

    def counts(name: str) -> np.ndarray:
        return summary[name].to_numpy(dtype=np.int64)[is_buyer]

    def answers(name: str) -> np.ndarray:
        return satisfaction[name].reindex(buyers).astype(float).to_numpy()

    def missing_as(values: np.ndarray, fill: np.ndarray | float) -> np.ndarray:
        return np.where(np.isnan(values), fill, values)

    recency = numbers("recency_days")
    age = numbers("age_days")
    gap_mean = numbers("gap_mean_days")
    # One purchase day: no gap seen yet, but it is at least as long as their age.
    gap = np.maximum(missing_as(gap_mean, age), 1.0)
    tenure = missing_as(numbers("tenure_days"), age)
    day_spend = numbers("day_spend_mean")
    purchase_rate_last = numbers("purchase_rate_last_90d")
    purchase_rate_before = numbers("purchase_rate_before_90d")
    spend_rate_last = numbers("spend_rate_last_90d")
    spend_rate_before = numbers("spend_rate_before_90d")
    resolution_days = numbers("ticket_resolution_hours_mean") / 24.0
    tickets_open = counts("tickets_open")
    tickets_last_90d = counts("tickets_last_90d")
    csat = answers("csat_latest")
    nps = answers("nps_latest")
    sentiment = answers("sentiment")
    p = p_none.reindex(buyers).to_numpy(dtype=float)
    known_p = p[~np.isnan(p)]
    p_clipped = np.clip(missing_as(p, np.median(known_p) if len(known_p) else 0.5), 1e-4, 1 - 1e-4)
    segment = rfm_scores(summary)["segment"].reindex(buyers)
    # Each customer's position in BUYER_SEGMENTS (-1 for none of them: no one-hot column).
    segment_codes = pd.Categorical(segment, categories=BUYER_SEGMENTS).codes

    columns: dict[str, np.ndarray] = {
        "log_recency": np.log1p(recency),
        "log_overdue": np.log1p(recency / gap),
        "log_frequency": np.log1p(numbers("frequency")),
        "log_gap": np.log1p(gap),
        "log_tenure": np.log1p(tenure),
        "log_day_spend": np.log1p(np.maximum(day_spend, 0.0)),
        "purchase_trend": _ratio_trend(purchase_rate_last, purchase_rate_before),
        "spend_trend": _ratio_trend(spend_rate_last, spend_rate_before),
        "logit_p_no_purchase": np.log(p_clipped / (1.0 - p_clipped)),
        "tickets_open": tickets_open.astype(float),
        "tickets_last_90d": tickets_last_90d.astype(float),
        "log_resolution_days": np.log1p(missing_as(resolution_days, 0.0)),
        # How far below the top answer; no answer counts as no complaint.
        "csat_shortfall": missing_as(5.0 - csat, 0.0),
        "nps_shortfall": missing_as(10.0 - nps, 0.0),
        "sentiment": missing_as(sentiment, 0.0),
    }
    for code, name in enumerate(BUYER_SEGMENTS):
        columns[f"segment_{name}"] = (segment_codes == code).astype(float)
    features = pd.DataFrame(
        np.column_stack([columns[name] for name in FEATURES]), index=buyers, columns=FEATURES
    )
    facts = pd.DataFrame(
        {
            "recency_days": recency,
            "gap_days": gap_mean,
            "frequency": counts("frequency"),
            "tenure_days": tenure,
            "day_spend": day_spend,
            "purchase_rate_last": purchase_rate_last,
            "purchase_rate_before": purchase_rate_before,
            "spend_rate_last": spend_rate_last,
            "spend_rate_before": spend_rate_before,
            "p_no_purchase": p,
            "tickets_open": tickets_open,
            "tickets_last_90d": tickets_last_90d,
            "tickets_count": counts("tickets_count"),
            "resolution_days": resolution_days,
            "csat_latest": csat,
            "nps_latest": nps,
            "sentiment": sentiment,
            "segment": segment,
        },
        index=buyers,
    )
    return features, facts


def no_purchase_label(data: TrainingData, cutoff: date, horizon_days: int) -> pd.Series:
    """1 when the customer made no purchase in (cutoff, cutoff + horizon], else 0."""
    if cutoff + timedelta(days=horizon_days) > data.as_of:
        raise ValueError("a label window must end on or before the data's as_of")
    return labels(data.customers.index, PandasSource(data), cutoff, horizon_days)


def labels(
    customers: pd.Index, source: TrainingSource, cutoff: date, horizon_days: int
) -> pd.Series:
    """`no_purchase_label` of these customers, from who bought in the window (`source`)."""
    bought = source.buyers_between(cutoff, cutoff + timedelta(days=horizon_days))
    return pd.Series((~customers.isin(bought)).astype(int), index=customers)


@dataclass
class Snapshot:
    cutoff: date
    features: pd.DataFrame  # FEATURES, index customer_pk (customers with a purchase)
    facts: pd.DataFrame
    label: pd.Series | None = None  # 1 = churned in the window after the cutoff


def snapshot_at(
    data: TrainingData,
    source: TrainingSource,
    cutoff: date,
    *,
    horizon_days: int,
    seed: int,
    hashed: HashedTexts | None = None,
) -> Snapshot | None:
    """Features as of `cutoff` (nothing after it), labelled from the window after it.

    None when BG/NBD cannot be fitted on what was known then (e.g. no repeat purchase yet).
    `source`: the run's source narrowed to `data` (a sample of customers); it summarises
    them as of the cutoff and says who bought after it.
    `hashed`: the run's texts, counted once (see `text_sentiment.HashedTexts`).
    """
    seen = data.as_of_earlier(cutoff)
    summary = source.narrowed(seen).summary()
    try:
        features, facts = features_as_of(
            seen, horizon_days=horizon_days, seed=seed, summary=summary, hashed=hashed
        )
    except StageFailed as exc:
        log.info("churn snapshot %s left out: %s", cutoff, exc)
        return None
    label = labels(features.index, source, cutoff, horizon_days)
    return Snapshot(cutoff=cutoff, features=features, facts=facts, label=label)


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


# ---------------------------------------------------------------------------------------
# Models and metrics


def _threads() -> threadpool_limits:
    """One thread for OpenMP and BLAS. Measured on a busy two-core machine with 62,000
    training rows: boosting fits in 3.8 s on one thread and 20.8 s on two, and predicts 10x
    faster — OpenMP's spinning threads fight every other process for the cores."""
    return threadpool_limits(limits=1)


class DirectedLogistic(ClassifierMixin, BaseEstimator):
    """L2-regularised logistic regression on standardised features whose coefficients keep
    their declared signs (`directions`: +1, -1 or 0 for free). A feature whose coefficient
    comes out the wrong way is dropped (coefficient 0) and the rest refitted, the largest
    offender first, until every sign agrees.
    """

    def __init__(self, directions: list[int] | None = None, C: float = 0.5) -> None:
        self.directions = directions
        self.C = C

    def fit(self, X: Any, y: Any) -> DirectedLogistic:
        if hasattr(X, "columns"):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        values = np.asarray(X, dtype=float)
        self.n_features_in_ = values.shape[1]
        self.scaler_ = StandardScaler().fit(values)
        z = self.scaler_.transform(values)
        wanted = np.zeros(values.shape[1]) if self.directions is None else self.directions
        directions = np.asarray(wanted, dtype=float)
        keep = np.ones(values.shape[1], dtype=bool)
        # l1_ratio=0: a pure L2 penalty, strength 1/C. A dropped feature's column is set to
        # zero rather than removed: the penalty then holds its coefficient at 0, the same
        # fit as without the column, and each refit starts from the previous solution
        # (warm_start), which is nearly the answer. Newton steps suit a few dozen columns:
        # on the 100,000-customer company the fit and its three refits took 5, 2, 1 and 1
        # steps (0.26 s; L-BFGS from scratch: 27, 30, 25 and 25, 0.60 s), and they land
        # closer to the exact optimum.
        model = LogisticRegression(
            C=self.C, l1_ratio=0.0, solver="newton-cholesky", warm_start=True
        )
        while True:
            model.fit(z, y)
            coef = np.where(keep, model.coef_[0], 0.0)
            wrong = coef * directions < 0
            if not wrong.any():
                break
            dropped = int(np.argmax(np.where(wrong, np.abs(coef), -1.0)))
            keep[dropped] = False
            z[:, dropped] = 0.0
        self.coef_ = coef
        self.intercept_ = float(model.intercept_[0])
        self.classes_ = model.classes_
        self.dropped_ = [int(i) for i in np.flatnonzero(~keep)]
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        z = self.scaler_.transform(np.asarray(X, dtype=float))
        return np.asarray(z @ self.coef_ + self.intercept_)

    def predict_proba(self, X: Any) -> np.ndarray:
        p = expit(self.decision_function(X))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.classes_[(self.decision_function(X) > 0).astype(int)])


def candidate_models(seed: int) -> dict[str, Any]:
    directions = [DIRECTIONS[name] for name in FEATURES]
    return {
        "logistic": DirectedLogistic(directions=directions, C=0.5),
        # 50 trees at rate 0.2 matched 100 at 0.1 (validation ROC AUC 0.8954 both on the
        # 100,000-customer benchmark company; 100 at 0.1 had matched 200 at 0.05 on the
        # 20,000-customer sample company) at half the fitting and prediction time — and
        # every customer's reasons take 15 predictions.
        "hist_gradient_boosting": HistGradientBoostingClassifier(
            learning_rate=0.2,
            max_iter=50,
            max_leaf_nodes=15,
            min_samples_leaf=40,
            l2_regularization=1.0,
            monotonic_cst=directions,
            early_stopping=False,
            random_state=seed,
        ),
    }


def choose_model(candidates: dict[str, dict[str, Any]]) -> str:
    """The logistic model unless boosting's validation ROC AUC is higher by at least
    `BOOSTING_MIN_GAIN`: the linear model's reasons are exact (coefficient x difference)
    and scoring it is one matrix product, where boosting's reasons take 15 predictions per
    customer (34 s of a million-customer run)."""
    boosting = candidates.get("hist_gradient_boosting")
    if boosting is None:
        return "logistic"
    if "logistic" not in candidates:
        return "hist_gradient_boosting"
    gain = boosting["roc_auc"] - candidates["logistic"]["roc_auc"]
    return "hist_gradient_boosting" if gain >= BOOSTING_MIN_GAIN else "logistic"


def _model_params(name: str, model: Any) -> dict[str, Any]:
    if name == "logistic":
        return {
            "C": model.C,
            "penalty": "l2",
            "dropped_for_sign": [FEATURES[i] for i in model.dropped_],
        }
    params = model.get_params()
    keep = ["learning_rate", "max_iter", "max_leaf_nodes", "min_samples_leaf", "l2_regularization"]
    return {key: params[key] for key in keep} | {"monotonic": True}


def lift_top_decile(y: np.ndarray, score: np.ndarray) -> float:
    """Churn rate among the 10% highest scores divided by the overall churn rate."""
    base = float(np.mean(y))
    if base == 0:
        return float("nan")
    top = max(1, math.ceil(len(y) * 0.1))
    order = np.argsort(-score, kind="stable")[:top]
    return float(np.mean(y[order])) / base


def evaluate(y: np.ndarray, score: np.ndarray, probability: np.ndarray) -> dict[str, float]:
    """Ranking metrics from `score`, probability metrics from `probability`."""
    return {
        "roc_auc": round(float(roc_auc_score(y, score)), 4),
        "pr_auc": round(float(average_precision_score(y, score)), 4),
        "brier": round(float(brier_score_loss(y, probability)), 4),
        "lift_top_decile": round(lift_top_decile(y, score), 3),
        "mean_predicted": round(float(np.mean(probability)), 4),
    }


def calibration_method(rows: int) -> str:
    # Isotonic regression is more flexible but overfits small samples; Platt's sigmoid
    # needs only two parameters.
    return "isotonic" if rows >= ISOTONIC_MIN_ROWS else "sigmoid"


# What CalibratedClassifierCV fits around a frozen binary model: one map from the model's
# score to a probability (`_SigmoidCalibration` is its Platt scaling, which scikit-learn
# does not export).
Calibrator: TypeAlias = IsotonicRegression | _SigmoidCalibration


def calibrate(score: np.ndarray, y: np.ndarray, method: str) -> Calibrator:
    """The frozen model's score -> probability, fitted on (score, y).

    The same map as `CalibratedClassifierCV(FrozenEstimator(model), method=method)` fitted
    on the rows (a test holds them equal), but from scores the caller computed once: the
    wrapper predicted every row again in each of its five folds, for each of the nine
    calibrations of a run — 0.7 s of churn's 5 s on the 100,000-customer company.
    """
    calibrator = (
        IsotonicRegression(out_of_bounds="clip") if method == "isotonic" else _SigmoidCalibration()
    )
    return calibrator.fit(score, y)


def cross_fitted_probabilities(
    score: np.ndarray, y: np.ndarray, method: str, seed: int
) -> np.ndarray:
    """Each half of the validation rows calibrated on the other half (honest Brier)."""
    probabilities = np.empty(len(y), dtype=float)
    folds = StratifiedKFold(n_splits=2, shuffle=True, random_state=seed)
    for fit_rows, held_rows in folds.split(score.reshape(-1, 1), y):
        calibrator = calibrate(score[fit_rows], y[fit_rows], method)
        probabilities[held_rows] = calibrator.predict(score[held_rows])
    return probabilities


# ---------------------------------------------------------------------------------------
# Reasons


def group_contributions(
    name: str, model: Any, x: pd.DataFrame, reference: pd.Series
) -> pd.DataFrame:
    """Each feature group's push on the customer's log-odds against a reference customer."""
    columns = list(x.columns)
    if name == "logistic":
        scaler: StandardScaler = model.scaler_
        coef = model.coef_
        z = scaler.transform(x.to_numpy(dtype=float))
        z_ref = scaler.transform(reference[columns].to_numpy(dtype=float)[None, :])
        per_feature = pd.DataFrame(coef * (z - z_ref), index=x.index, columns=columns)
        return pd.DataFrame(
            {group: per_feature[names].sum(axis=1) for group, names in GROUPS.items()}
        )
    full = model.decision_function(x)
    values = x.to_numpy(dtype=float)
    contributions = {}
    for group, names in GROUPS.items():
        positions = [columns.index(name) for name in names]
        reference_values = reference[names].to_numpy(dtype=float)
        # Only customers who differ from the reference on this group can owe it anything;
        # skipping the rest saves most predictions for flags and one-hot groups.
        differs = np.any(values[:, positions] != reference_values, axis=1)
        push = np.zeros(len(x))
        if differs.any():
            substituted = x[differs].copy()
            substituted[names] = reference_values
            push[differs] = full[differs] - model.decision_function(substituted)
        contributions[group] = push
    return pd.DataFrame(contributions, index=x.index)


def reference_customer(x: pd.DataFrame, *, mean: bool) -> pd.Series:
    """Per feature the mean (for the linear model) or median (for trees) of `x`; one-hot
    groups take their most common category for trees, so that reference could exist."""
    reference = x.mean() if mean else x.median()
    if not mean and len(x):
        segments = GROUPS["segment"]
        reference[segments] = 0.0
        reference[str(x[segments].sum().idxmax())] = 1.0
    return reference


def _days(value: float) -> str:
    return f"{round(value):,}"


def _rate(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


class _Facts:
    """The facts of the customers who get one reason, column by column as Python values
    (which format several times faster than NumPy scalars)."""

    def __init__(self, columns: dict[str, np.ndarray], rows: np.ndarray) -> None:
        self.columns = columns
        self.rows = rows

    def __getitem__(self, name: str) -> list[Any]:
        return list(self.columns[name][self.rows].tolist())


# Each group's reason in words, for many customers at once, with their own numbers.
Phraser = Callable[[_Facts, dict[str, float], int], list[str]]


def _recency(f: _Facts, typical: dict[str, float], horizon: int) -> list[str]:
    return [
        f"no order for {_days(days)} days, after a single purchase"
        if _missing(gap)
        else f"no order for {_days(days)} days — usually orders every {_days(gap)}"
        for days, gap in zip(f["recency_days"], f["gap_days"], strict=True)
    ]


def _frequency(f: _Facts, typical: dict[str, float], horizon: int) -> list[str]:
    return [
        f"only {_plural(int(days), 'purchase day')} in {_rate(max(tenure / 30.4, 1.0))} months"
        for days, tenure in zip(f["frequency"], f["tenure_days"], strict=True)
    ]


def _tenure(f: _Facts, typical: dict[str, float], horizon: int) -> list[str]:
    return [f"customer for {_days(days)} days" for days in f["tenure_days"]]


def _spend(f: _Facts, typical: dict[str, float], horizon: int) -> list[str]:
    usual = f"{typical['day_spend']:,.0f}"
    return [
        f"spends {spend:,.0f} per purchase day (typical customer: {usual})"
        for spend in f["day_spend"]
    ]


def _purchase_trend(f: _Facts, typical: dict[str, float], horizon: int) -> list[str]:
    phrases = []
    for last, before in zip(f["purchase_rate_last"], f["purchase_rate_before"], strict=True):
        now = _rate(last)
        then = _rate(0.0 if _missing(before) else before)
        plural = "" if now == "1" else "s"
        phrases.append(f"{now} purchase{plural} a month in the last 90 days vs {then} before")
    return phrases


def _spend_trend(f: _Facts, typical: dict[str, float], horizon: int) -> list[str]:
    phrases = []
    for last, before in zip(f["spend_rate_last"], f["spend_rate_before"], strict=True):
        if _missing(before) or before <= 0:
            phrases.append(f"spend in the last 90 days: {last * 3:,.0f}, nothing before")
            continue
        change = (last - before) / before
        direction = "down" if change < 0 else "up"
        phrases.append(
            f"spend {direction} {abs(change):.0%} in the last 90 days vs the months before"
        )
    return phrases


def _bgnbd(f: _Facts, typical: dict[str, float], horizon: int) -> list[str]:
    return [
        f"purchase pattern gives a {p:.0%} chance of no order in the next {horizon} days"
        for p in f["p_no_purchase"]
    ]


def _open_tickets(f: _Facts, typical: dict[str, float], horizon: int) -> list[str]:
    return [
        "no unresolved tickets" if int(count) == 0 else _plural(int(count), "unresolved ticket")
        for count in f["tickets_open"]
    ]


def _recent_tickets(f: _Facts, typical: dict[str, float], horizon: int) -> list[str]:
    return [
        "no support tickets in the last 90 days"
        if int(count) == 0
        else f"{_plural(int(count), 'support ticket')} in the last 90 days"
        for count in f["tickets_last_90d"]
    ]


def _ticket_time(f: _Facts, typical: dict[str, float], horizon: int) -> list[str]:
    return [
        "no support ticket closed yet"
        if int(count) == 0 or _missing(days)
        else f"tickets took {_rate(days)} days to close on average"
        for count, days in zip(f["tickets_count"], f["resolution_days"], strict=True)
    ]


def _each(values: list[Any], missing: str, phrase: Callable[[Any], str]) -> list[str]:
    """`phrase(value)` for each value; `missing` where the customer has none."""
    return [missing if _missing(value) else phrase(value) for value in values]


def _csat(f: _Facts, typical: dict[str, float], horizon: int) -> list[str]:
    return _each(f["csat_latest"], "no CSAT rating yet", lambda score: f"last CSAT {int(score)}/5")


def _nps_category(score: int) -> str:
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"


def _nps(f: _Facts, typical: dict[str, float], horizon: int) -> list[str]:
    return _each(
        f["nps_latest"],
        "has never answered an NPS survey",
        lambda score: f"last NPS {int(score)} ({_nps_category(int(score))})",
    )


def _tone(sentiment: float) -> str:
    return "negative" if sentiment < -0.1 else "neutral" if sentiment < 0.1 else "positive"


def _sentiment(f: _Facts, typical: dict[str, float], horizon: int) -> list[str]:
    return _each(
        f["sentiment"],
        "no tickets or comments to read the tone of",
        lambda value: f"{_tone(value)} tone in tickets and comments ({value:+.2f} on -1..1)",
    )


def _segment(f: _Facts, typical: dict[str, float], horizon: int) -> list[str]:
    return [f"{name} segment: {SEGMENT_MEANINGS.get(name, name).lower()}" for name in f["segment"]]


PHRASERS: dict[str, Phraser] = {
    "recency": _recency,
    "frequency": _frequency,
    "tenure": _tenure,
    "spend": _spend,
    "purchase_trend": _purchase_trend,
    "spend_trend": _spend_trend,
    "bgnbd": _bgnbd,
    "open_tickets": _open_tickets,
    "recent_tickets": _recent_tickets,
    "ticket_time": _ticket_time,
    "csat": _csat,
    "nps": _nps,
    "sentiment": _sentiment,
    "segment": _segment,
}


def reasons(
    primary: pd.DataFrame,
    fallback: pd.DataFrame,
    facts: pd.DataFrame,
    typical: pd.Series,
    horizon: int,
) -> list[list[str]]:
    """Top drivers that push each customer's risk up, in words (at least one each)."""
    groups = list(primary.columns)
    push = primary.to_numpy(dtype=float, copy=True)
    # A customer with nothing above average is measured against the low-risk reference.
    nothing_up = ~(push > 0).any(axis=1)
    push[nothing_up] = fallback.to_numpy(dtype=float)[nothing_up]
    order = np.argsort(-push, axis=1, kind="stable")[:, :TOP_REASONS]
    chosen = np.take_along_axis(push, order, axis=1) > 0
    # Identical to the lowest-risk customers on every driver: time since the last order
    # is the one thing that always raises the chance of no further order.
    unexplained = ~chosen.any(axis=1)
    order[unexplained, 0] = groups.index("recency")
    chosen[unexplained, 0] = True
    columns = {name: facts[name].to_numpy() for name in facts.columns}
    usual = {str(name): float(value) for name, value in typical.items()}
    # Group by group: each customer has a group at most once among their top reasons.
    text = np.full(order.shape, None, dtype=object)
    for position, group in enumerate(groups):
        rows, slots = np.nonzero((order == position) & chosen)
        if len(rows):
            text[rows, slots] = PHRASERS[group](_Facts(columns, rows), usual, horizon)
    # Reasons that count come first in a row (`order` is by push, highest first), so each
    # customer's phrases are the first `count` of their row.
    count = chosen.sum(axis=1).tolist()
    return [
        row if n == TOP_REASONS else row[:n] for row, n in zip(text.tolist(), count, strict=True)
    ]


# ---------------------------------------------------------------------------------------
# Training


def snapshot_cutoffs(as_of: date, horizon_days: int, first_purchase: date | None) -> list[date]:
    """Validation cutoff first, then older ones every 30 days, after the first purchase."""
    latest = as_of - timedelta(days=horizon_days)
    if first_purchase is None or latest <= first_purchase:
        return []
    count = (latest - first_purchase).days // SNAPSHOT_STEP_DAYS
    gap_steps = math.ceil(horizon_days / SNAPSHOT_STEP_DAYS)
    count = min(count, gap_steps - 1 + MAX_TRAINING_SNAPSHOTS)
    return [latest - timedelta(days=SNAPSHOT_STEP_DAYS * k) for k in range(count + 1)]


def _usable(snapshot: Snapshot | None) -> bool:
    if snapshot is None:
        return False
    label = snapshot.label
    if label is None or len(label) < MIN_SNAPSHOT_CUSTOMERS:
        return False
    churned = int(label.sum())
    return min(churned, len(label) - churned) >= 2


@dataclass
class ChurnModel:
    name: str
    model: Any
    calibrator: Calibrator  # the model's score -> probability of churn
    reference: pd.Series  # the average customer (mean for logistic, median for boosting)
    low_risk_reference: pd.Series
    typical: pd.Series  # median facts of training customers, for phrasing
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def score(
        self, features: pd.DataFrame, facts: pd.DataFrame, horizon: int
    ) -> tuple[pd.Series, list[list[str]]]:
        with _threads():
            risk = pd.Series(
                self.calibrator.predict(self.model.decision_function(features)),
                index=features.index,
                dtype=float,
            )
            primary = group_contributions(self.name, self.model, features, self.reference)
            # The low-risk reference is only needed where nothing is above average.
            needy = pd.Series(~(primary.to_numpy() > 0).any(axis=1), index=primary.index)
            fallback = pd.DataFrame(0.0, index=primary.index, columns=primary.columns)
            if needy.any():
                fallback.loc[needy] = group_contributions(
                    self.name, self.model, features.loc[needy], self.low_risk_reference
                ).to_numpy()
        return risk, reasons(primary, fallback, facts, self.typical, horizon)


def train_churn_model(
    data: TrainingData,
    *,
    horizon_days: int,
    seed: int,
    progress: Callable[[str], None] | None = None,
    source: TrainingSource | None = None,
    hashed: HashedTexts | None = None,
) -> ChurnModel:
    """Build snapshots, fit and compare the models, calibrate; raises NotEnoughHistory.

    `source`: where each snapshot's summary and labels come from (None: pandas over
    `data`'s own orders).
    `hashed`: the run's texts already counted (else they are counted here).
    """
    with _threads():
        return _train_churn_model(
            data,
            horizon_days=horizon_days,
            seed=seed,
            progress=progress,
            source=PandasSource(data) if source is None else source,
            hashed=hashed,
        )


def _train_churn_model(
    data: TrainingData,
    *,
    horizon_days: int,
    seed: int,
    progress: Callable[[str], None] | None,
    source: TrainingSource,
    hashed: HashedTexts | None,
) -> ChurnModel:
    say = progress or (lambda _message: None)
    first = source.first_purchase_at()
    cutoffs = snapshot_cutoffs(data.as_of, horizon_days, None if first is None else first.date())
    if len(cutoffs) < 2:
        raise NotEnoughHistory(
            f"churn needs purchases spanning at least {horizon_days + SNAPSHOT_STEP_DAYS} "
            f"days before as_of (the {horizon_days}-day horizon plus one 30-day step) to learn "
            "from; import more order history or lower CRMBOT_CHURN_HORIZON_DAYS"
        )
    # Every comment and ticket is tokenised once; each snapshot looks its rows up.
    if hashed is None:
        hashed = HashedTexts.of(data.feedback, data.tickets)
    buyers = source.buyers_between(None, cutoffs[0]).to_numpy()
    sample = np.random.default_rng(seed).permutation(buyers)
    # No snapshot reads order lines (its features come from orders, tickets and feedback):
    # without them, sampling customers and cutting at each date skip filtering 1.4 million
    # lines on the 100,000-customer company (0.4 s).
    without_lines = replace(data, lines=data.lines.iloc[:0])
    validation_data = without_lines.for_customers(pd.Index(sample[:VALIDATION_CUSTOMERS]))
    # The training customers are the first of the validation ones.
    training_data = validation_data.for_customers(pd.Index(sample[:TRAINING_CUSTOMERS]))
    validation_source = source.narrowed(validation_data)
    training_source = validation_source.narrowed(training_data)
    validation = snapshot_at(
        validation_data,
        validation_source,
        cutoffs[0],
        horizon_days=horizon_days,
        seed=seed,
        hashed=hashed,
    )
    if validation is None or not _usable(validation) or validation.label is None:
        seen = 0 if validation is None else len(validation.features)
        raise NotEnoughHistory(
            f"the validation snapshot ({cutoffs[0]}) has {seen} customers with purchases "
            f"and a fitted BG/NBD; churn needs {MIN_SNAPSHOT_CUSTOMERS}, some who bought again "
            "and some who did not"
        )

    def usable_snapshots(candidates: list[date]) -> list[Snapshot]:
        found = []
        for cutoff in candidates[:MAX_TRAINING_SNAPSHOTS]:
            say(f"snapshot {cutoff}")
            snapshot = snapshot_at(
                training_data,
                training_source,
                cutoff,
                horizon_days=horizon_days,
                seed=seed,
                hashed=hashed,
            )
            if snapshot is not None and _usable(snapshot):
                found.append(snapshot)
        return found

    horizon = timedelta(days=horizon_days)
    training = usable_snapshots([c for c in cutoffs[1:] if c + horizon <= cutoffs[0]])
    overlap = False
    if not training:
        # The history is too short for label windows that end before validation starts.
        training = usable_snapshots([c for c in cutoffs[1:] if c + horizon > cutoffs[0]])
        overlap = True
    if not training:
        raise NotEnoughHistory(
            "no snapshot before the validation one has enough customers with both outcomes "
            "to train on; import more order history"
        )

    x_train = pd.concat([s.features for s in training])
    y_train = pd.concat([s.label for s in training if s.label is not None]).to_numpy(dtype=int)
    if len(x_train) > MAX_TRAINING_ROWS:
        keep = np.random.default_rng(seed).choice(len(x_train), MAX_TRAINING_ROWS, replace=False)
        keep.sort()
        x_train, y_train = x_train.iloc[keep], y_train[keep]
    churned = int(y_train.sum())
    if min(churned, len(y_train) - churned) < MIN_OUTCOME_ROWS:
        raise NotEnoughHistory(
            f"the training snapshots hold {churned} churned and {len(y_train) - churned} "
            f"retained customers; churn needs {MIN_OUTCOME_ROWS} of each"
        )
    x_val = validation.features
    y_val = validation.label.to_numpy(dtype=int)
    method = calibration_method(len(y_val))

    validation_scores: dict[str, np.ndarray] = {}

    def fit_and_score(name: str, columns: list[str], estimator: Any) -> tuple[Any, dict[str, Any]]:
        fitted = estimator.fit(x_train[columns], y_train)
        score = validation_scores[name] = fitted.decision_function(x_val[columns])
        probability = cross_fitted_probabilities(score, y_val, method, seed)
        return fitted, evaluate(y_val, score, probability)

    candidates: dict[str, dict[str, Any]] = {}
    fitted_models: dict[str, Any] = {}
    for name, estimator in candidate_models(seed).items():
        say(f"fitting {name}")
        fitted_models[name], candidates[name] = fit_and_score(name, FEATURES, estimator)
    chosen = choose_model(candidates)
    model = fitted_models[chosen]

    baselines: dict[str, dict[str, Any]] = {}
    for name, columns in BASELINES.items():
        baseline = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())])
        _fitted, baselines[name] = fit_and_score(f"baseline {name}", columns, baseline)
    bgnbd_raw = validation.facts["p_no_purchase"].to_numpy(dtype=float)
    if np.isfinite(bgnbd_raw).all():
        baselines["bgnbd"]["brier_uncalibrated"] = round(
            float(brier_score_loss(y_val, bgnbd_raw)), 4
        )

    calibrator = calibrate(validation_scores[chosen], y_val, method)
    # The average customer: the mean for the linear model (coef * (x - mean)), the
    # median for boosting, whose trees split on observed values.
    reference = reference_customer(x_train, mean=chosen == "logistic")
    train_scores = model.decision_function(x_train)
    lowest = train_scores <= np.quantile(train_scores, 0.1)
    low_risk_reference = reference_customer(x_train[lowest], mean=False)
    training_facts = pd.concat([s.facts for s in training])
    typical = training_facts.median(numeric_only=True)

    observed = float(np.mean(y_val))
    metrics: dict[str, Any] = {
        "trained": True,
        "model": chosen,
        **candidates[chosen],
        "observed_rate": round(observed, 4),
        "brier_base_rate": round(observed * (1.0 - observed), 4),
        "calibration_gap": round(abs(candidates[chosen]["mean_predicted"] - observed), 4),
        "baselines": baselines,
        "candidates": candidates,
        "boosting_min_gain": BOOSTING_MIN_GAIN,
        "beats_baselines": all(
            candidates[chosen]["roc_auc"] > baseline["roc_auc"] for baseline in baselines.values()
        ),
        "validation": {
            "cutoff": cutoffs[0].isoformat(),
            "customers": int(len(y_val)),
            "churned": int(y_val.sum()),
            "sampled_from": int(len(sample)),
        },
        "training": {
            "snapshots": len(training),
            "customers": int(min(len(sample), TRAINING_CUSTOMERS)),
            "rows": int(len(y_train)),
            "churn_rate": round(float(np.mean(y_train)), 4),
            "label_windows_overlap_validation": overlap,
        },
    }
    params: dict[str, Any] = {
        "model": chosen,
        "model_params": _model_params(chosen, model),
        "horizon_days": horizon_days,
        "snapshot_step_days": SNAPSHOT_STEP_DAYS,
        "training_cutoffs": [s.cutoff.isoformat() for s in training],
        "validation_cutoff": cutoffs[0].isoformat(),
        "calibration": {"method": method, "fitted_on": "validation snapshot"},
        "features": list(FEATURES),
    }
    return ChurnModel(
        name=chosen,
        model=model,
        calibrator=calibrator,
        reference=reference,
        low_risk_reference=low_risk_reference,
        typical=typical,
        params=params,
        metrics=metrics,
    )


# ---------------------------------------------------------------------------------------
# The stage


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
    with _threads():
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


COMPARED_METRICS = [
    ("ROC AUC", "roc_auc"),
    ("PR AUC", "pr_auc"),
    ("Brier", "brier"),
    ("lift@10%", "lift_top_decile"),
    ("mean risk", "mean_predicted"),
]
MODEL_TITLES = {
    "logistic": "logistic",
    "hist_gradient_boosting": "boosting",
    "recency": "recency",
    "bgnbd": "BG/NBD",
}


def comparison(metrics: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """(header, rows): the chosen model, the other candidate, both baselines and the base
    rate side by side on the validation snapshot — for `crmbot model show`."""
    if not metrics.get("trained"):
        return [], []
    chosen = metrics["model"]
    columns: list[tuple[str, dict[str, Any]]] = [
        (f"{MODEL_TITLES.get(chosen, chosen)} (chosen)", metrics)
    ]
    for name, values in (metrics.get("candidates") or {}).items():
        if name != chosen:
            columns.append((MODEL_TITLES.get(name, name), values))
    for name, values in (metrics.get("baselines") or {}).items():
        columns.append((f"{MODEL_TITLES.get(name, name)} alone", values))
    observed = metrics.get("observed_rate")
    base_rate = {
        "roc_auc": 0.5,
        "pr_auc": observed,
        "brier": metrics.get("brier_base_rate"),
        "lift_top_decile": 1.0,
        "mean_predicted": observed,
    }
    columns.append(("base rate", base_rate))
    header = ["metric", *[title for title, _values in columns]]
    rows = [
        [label, *[values.get(key) for _title, values in columns]] for label, key in COMPARED_METRICS
    ]
    return header, rows


def compare(
    new_metrics: dict[str, Any], champion_metrics: dict[str, Any], settings: Settings
) -> str | None:
    """Champion/challenger: object when the new ROC AUC is worse by more than the margin."""
    champion_auc = champion_metrics.get("roc_auc")
    if champion_auc is None:
        return None
    new_auc = new_metrics.get("roc_auc")
    if new_auc is None:
        why = new_metrics.get("note") or "no churn model was trained"
        return (
            f"the active run has a model (ROC AUC {champion_auc:.3f}) and this one has none ({why})"
        )
    margin = settings.churn_auc_margin
    if new_auc < champion_auc - margin:
        return (
            f"ROC AUC {new_auc:.3f} is more than {margin:.3f} below the active run's "
            f"{champion_auc:.3f}"
        )
    return None
