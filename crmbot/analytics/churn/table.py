"""The churn model beside its rival and baselines as a table, for `crmbot model show`."""

from __future__ import annotations

from typing import Any

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
