"""Training a churn model: sample, snapshot, fit and compare the candidates, calibrate."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss

from crmbot.analytics.base import TrainingData
from crmbot.analytics.churn.calibration import (
    Calibrator,
    calibrate,
    calibration_method,
    cross_fitted_probabilities,
)
from crmbot.analytics.churn.contributions import group_contributions, reference_customer
from crmbot.analytics.churn.evaluation import evaluate
from crmbot.analytics.churn.features import FEATURES
from crmbot.analytics.churn.model import (
    BASELINES,
    BOOSTING_MIN_GAIN,
    baseline_model,
    candidate_models,
    choose_model,
    model_params,
    threads,
)
from crmbot.analytics.churn.reasons import reasons, typical_figures
from crmbot.analytics.churn.snapshots import (
    MAX_TRAINING_SNAPSHOTS,
    MIN_SNAPSHOT_CUSTOMERS,
    SNAPSHOT_STEP_DAYS,
    Snapshot,
    is_usable,
    snapshot_at,
    snapshot_cutoffs,
)
from crmbot.analytics.source import PandasSource, TrainingSource
from crmbot.analytics.text_sentiment import HashedTexts

# Too few of either outcome among the training rows teaches nothing reliable.
MIN_OUTCOME_ROWS = 10
# Snapshots are computed for a seeded sample of the customers who had bought by the
# validation cutoff: every feature is the customer's own except BG/NBD's parameters, the
# RFM quintiles and the text model, which a sample of this size estimates closely. On the
# 100,000-customer benchmark company, 100,000 training rows gave validation ROC AUC 0.8948
# against 0.8956 from 300,000 and 0.8934 from 20,000, at a third of the time of 300,000.
VALIDATION_CUSTOMERS = 100_000
TRAINING_CUSTOMERS = 25_000
MAX_TRAINING_ROWS = 100_000
# Customers scored at a time (`ChurnModel.score`).
SCORE_CHUNK_ROWS = 100_000


class NotEnoughHistory(Exception):
    """Too little labelled history to train a churn model; the message says what is missing."""


@dataclass
class ChurnModel:
    name: str
    model: Any
    calibrator: Calibrator  # the model's score -> probability of churn
    reference: pd.Series  # the typical customer (mean for logistic, median for boosting)
    typical: dict[str, float]  # the figures reasons compare with (`typical_figures`)
    # The typical customer's risk: a customer at or above it has their risk explained by
    # what raises it, one below it by what keeps it low.
    typical_risk: float = 0.5
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def score(
        self, features: pd.DataFrame, facts: pd.DataFrame, horizon: int
    ) -> tuple[pd.Series, list[list[str]]]:
        """Each customer's risk and reasons, `SCORE_CHUNK_ROWS` customers at a time: every
        figure is the customer's own, and a million customers' per-feature arrays at once
        took over a gigabyte."""
        if len(features) <= SCORE_CHUNK_ROWS:
            return self._score(features, facts, horizon)
        risks: list[pd.Series] = []
        said: list[list[str]] = []
        for start in range(0, len(features), SCORE_CHUNK_ROWS):
            rows = slice(start, start + SCORE_CHUNK_ROWS)
            risk, chunk_reasons = self._score(features.iloc[rows], facts.iloc[rows], horizon)
            risks.append(risk)
            said.extend(chunk_reasons)
        return pd.concat(risks), said

    def _score(
        self, features: pd.DataFrame, facts: pd.DataFrame, horizon: int
    ) -> tuple[pd.Series, list[list[str]]]:
        with threads():
            risk = pd.Series(
                self.calibrator.predict(self.model.decision_function(features)),
                index=features.index,
                dtype=float,
            )
            contributions = group_contributions(self.name, self.model, features, self.reference)
        # Compared as stored (four decimals), so a reader comparing the stored risk with
        # the recorded typical risk sees the same verdict.
        raised = risk.round(4).to_numpy() >= round(self.typical_risk, 4)
        return risk, reasons(contributions, raised, facts, self.typical, horizon)


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
    with threads():
        return _train_churn_model(
            data,
            horizon_days=horizon_days,
            seed=seed,
            progress=progress,
            source=PandasSource(data) if source is None else source,
            hashed=hashed,
        )


@dataclass
class _Sample:
    """The customers the snapshots are computed for, and the run's source narrowed to them."""

    customers: np.ndarray  # every buyer by the validation cutoff, in seeded random order
    validation_data: TrainingData
    validation_source: TrainingSource
    training_data: TrainingData
    training_source: TrainingSource


@dataclass
class _Comparison:
    """The candidates and baselines fitted on the training rows, measured on validation."""

    chosen: str
    model: Any
    validation_score: np.ndarray  # the chosen model's scores of the validation rows
    candidates: dict[str, dict[str, Any]]
    baselines: dict[str, dict[str, Any]]


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
    cutoffs = _cutoffs(data, source, horizon_days)
    # Every comment and ticket is tokenised once; each snapshot looks its rows up.
    if hashed is None:
        hashed = HashedTexts.of(data.feedback, data.tickets)
    sample = _sample(data, source, cutoffs[0], seed)
    validation, y_val = _validation_snapshot(sample, cutoffs[0], horizon_days, seed, hashed)
    training, overlap = _training_snapshots(sample, cutoffs, horizon_days, seed, hashed, say)
    x_train, y_train = _training_rows(training, seed)
    fitted = _fit_and_compare(x_train, y_train, validation, y_val, seed, say)
    method = calibration_method(len(y_val), fitted.chosen)

    calibrator = calibrate(fitted.validation_score, y_val, method)
    # The average customer: the mean for the linear model (coef * (x - mean)), the
    # median for boosting, whose trees split on observed values.
    reference = reference_customer(x_train, mean=fitted.chosen == "logistic")
    training_facts = pd.concat([s.facts for s in training])
    typical = typical_figures(reference, training_facts)
    typical_risk = float(
        calibrator.predict(fitted.model.decision_function(reference[FEATURES].to_frame().T))[0]
    )

    metrics = _training_metrics(fitted, y_val, y_train, cutoffs[0], sample, training, overlap)
    metrics["typical_risk"] = round(typical_risk, 4)
    params: dict[str, Any] = {
        "model": fitted.chosen,
        "model_params": model_params(fitted.chosen, fitted.model),
        "horizon_days": horizon_days,
        "snapshot_step_days": SNAPSHOT_STEP_DAYS,
        "training_cutoffs": [s.cutoff.isoformat() for s in training],
        "validation_cutoff": cutoffs[0].isoformat(),
        "calibration": {"method": method, "fitted_on": "validation snapshot"},
        "features": list(FEATURES),
    }
    return ChurnModel(
        name=fitted.chosen,
        model=fitted.model,
        calibrator=calibrator,
        reference=reference,
        typical=typical,
        typical_risk=typical_risk,
        params=params,
        metrics=metrics,
    )


def _cutoffs(data: TrainingData, source: TrainingSource, horizon_days: int) -> list[date]:
    """The snapshot cutoffs, validation first; at least two, else NotEnoughHistory."""
    first = source.first_purchase_at()
    cutoffs = snapshot_cutoffs(data.as_of, horizon_days, None if first is None else first.date())
    if len(cutoffs) < 2:
        raise NotEnoughHistory(
            f"churn needs purchases spanning at least {horizon_days + SNAPSHOT_STEP_DAYS} "
            f"days before as_of (the {horizon_days}-day horizon plus one 30-day step) to learn "
            "from; import more order history or lower CRMBOT_CHURN_HORIZON_DAYS"
        )
    return cutoffs


def _sample(
    data: TrainingData, source: TrainingSource, validation_cutoff: date, seed: int
) -> _Sample:
    """A seeded sample of the buyers by the validation cutoff (`VALIDATION_CUSTOMERS`, the
    first `TRAINING_CUSTOMERS` of them for the training snapshots)."""
    buyers = source.buyers_between(None, validation_cutoff).to_numpy()
    customers = np.random.default_rng(seed).permutation(buyers)
    # No snapshot reads order lines (its features come from orders, tickets and feedback):
    # without them, sampling customers and cutting at each date skip filtering 1.4 million
    # lines on the 100,000-customer company (0.4 s).
    without_lines = replace(data, lines=data.lines.iloc[:0])
    # The sample's own orders (a database source reads them here), so that each snapshot
    # is summarised from them rather than by a round of statements on the server.
    validation_data, validation_source = source.sample(
        without_lines.for_customers(pd.Index(customers[:VALIDATION_CUSTOMERS]))
    )
    # The training customers are the first of the validation ones.
    training_data = validation_data.for_customers(pd.Index(customers[:TRAINING_CUSTOMERS]))
    return _Sample(
        customers=customers,
        validation_data=validation_data,
        validation_source=validation_source,
        training_data=training_data,
        training_source=validation_source.narrowed(training_data),
    )


def _validation_snapshot(
    sample: _Sample, cutoff: date, horizon_days: int, seed: int, hashed: HashedTexts
) -> tuple[Snapshot, np.ndarray]:
    """The validation snapshot and its labels; NotEnoughHistory when it cannot judge."""
    validation = snapshot_at(
        sample.validation_data,
        sample.validation_source,
        cutoff,
        horizon_days=horizon_days,
        seed=seed,
        hashed=hashed,
    )
    if validation is None or not is_usable(validation) or validation.label is None:
        seen = 0 if validation is None else len(validation.features)
        raise NotEnoughHistory(
            f"the validation snapshot ({cutoff}) has {seen} customers with purchases "
            f"and a fitted BG/NBD; churn needs {MIN_SNAPSHOT_CUSTOMERS}, some who bought again "
            "and some who did not"
        )
    return validation, validation.label.to_numpy(dtype=int)


def _training_snapshots(
    sample: _Sample,
    cutoffs: list[date],
    horizon_days: int,
    seed: int,
    hashed: HashedTexts,
    say: Callable[[str], None],
) -> tuple[list[Snapshot], bool]:
    """(usable training snapshots, whether their label windows overlap validation's)."""

    def usable_snapshots(candidates: list[date]) -> list[Snapshot]:
        found = []
        for cutoff in candidates[:MAX_TRAINING_SNAPSHOTS]:
            say(f"snapshot {cutoff}")
            snapshot = snapshot_at(
                sample.training_data,
                sample.training_source,
                cutoff,
                horizon_days=horizon_days,
                seed=seed,
                hashed=hashed,
            )
            if snapshot is not None and is_usable(snapshot):
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
    return training, overlap


def _training_rows(training: list[Snapshot], seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The training snapshots' rows (at most `MAX_TRAINING_ROWS`, a seeded sample) and
    labels; NotEnoughHistory with too few of either outcome."""
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
    return x_train, y_train


def _fit_and_compare(
    x_train: pd.DataFrame,
    y_train: np.ndarray,
    validation: Snapshot,
    y_val: np.ndarray,
    seed: int,
    say: Callable[[str], None],
) -> _Comparison:
    """Fit both candidates and both baselines; keep the candidate `choose_model` picks.
    Each is calibrated for its metrics as it would be if chosen (`calibration_method`)."""
    x_val = validation.features

    def fit_and_score(
        columns: list[str], estimator: Any, kind: str
    ) -> tuple[Any, np.ndarray, dict[str, Any]]:
        fitted = estimator.fit(x_train[columns], y_train)
        score = fitted.decision_function(x_val[columns])
        method = calibration_method(len(y_val), kind)
        probability = cross_fitted_probabilities(score, y_val, method, seed)
        return fitted, score, evaluate(y_val, score, probability)

    candidates: dict[str, dict[str, Any]] = {}
    fitted_models: dict[str, Any] = {}
    scores: dict[str, np.ndarray] = {}
    for name, estimator in candidate_models(seed).items():
        say(f"fitting {name}")
        fitted_models[name], scores[name], candidates[name] = fit_and_score(
            FEATURES, estimator, name
        )
    chosen = choose_model(candidates)

    baselines: dict[str, dict[str, Any]] = {}
    for name, columns in BASELINES.items():
        # Each baseline is a logistic regression on its column(s).
        _fitted, _score, baselines[name] = fit_and_score(columns, baseline_model(), "logistic")
    bgnbd_raw = validation.facts["p_no_purchase"].to_numpy(dtype=float)
    if np.isfinite(bgnbd_raw).all():
        baselines["bgnbd"]["brier_uncalibrated"] = round(
            float(brier_score_loss(y_val, bgnbd_raw)), 4
        )
    return _Comparison(
        chosen=chosen,
        model=fitted_models[chosen],
        validation_score=scores[chosen],
        candidates=candidates,
        baselines=baselines,
    )


def _training_metrics(
    fitted: _Comparison,
    y_val: np.ndarray,
    y_train: np.ndarray,
    validation_cutoff: date,
    sample: _Sample,
    training: list[Snapshot],
    overlap: bool,
) -> dict[str, Any]:
    """What a run records of the chosen model, its rivals and the rows it learned from."""
    chosen, candidates, baselines = fitted.chosen, fitted.candidates, fitted.baselines
    observed = float(np.mean(y_val))
    return {
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
            "cutoff": validation_cutoff.isoformat(),
            "customers": int(len(y_val)),
            "churned": int(y_val.sum()),
            "sampled_from": int(len(sample.customers)),
        },
        "training": {
            "snapshots": len(training),
            "customers": int(min(len(sample.customers), TRAINING_CUSTOMERS)),
            "rows": int(len(y_train)),
            "churn_rate": round(float(np.mean(y_train)), 4),
            "label_windows_overlap_validation": overlap,
        },
    }
