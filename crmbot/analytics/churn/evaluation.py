"""Validation metrics of a churn model, and the champion/challenger check between runs."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from crmbot.core.config import Settings


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
