"""Each feature group's push on a customer's churn log-odds against a reference customer."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.preprocessing import StandardScaler

from crmbot.analytics.churn.features import GROUPS


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
