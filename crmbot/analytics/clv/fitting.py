"""Shared maximum-likelihood machinery: identical rows grouped, L-BFGS-B over log-parameters."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize
from threadpoolctl import threadpool_limits

from crmbot.analytics.base import StageFailed

# Log-parameters are kept within +-LOG_BOUND of the starting scale; a fit that ends on this
# edge has no interior optimum (typically: customers too alike to estimate a spread).
LOG_BOUND = 12.0
EDGE_TOLERANCE = 1e-3


def group_rows(*columns: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """The distinct rows of `columns` and how many times each occurs."""
    frame = pd.DataFrame({f"c{i}": np.asarray(c, dtype=float) for i, c in enumerate(columns)})
    counts = frame.groupby(list(frame.columns), sort=True).size()
    keys = counts.index.to_frame(index=False)
    return [keys[f"c{i}"].to_numpy(dtype=float) for i in range(len(columns))], counts.to_numpy(
        dtype=float
    )


def minimise(
    objective: Any,
    start: np.ndarray,
    model: str,
    *,
    may_diverge: frozenset[int] = frozenset(),
    may_vanish: frozenset[int] = frozenset(),
) -> tuple[np.ndarray, optimize.OptimizeResult]:
    """L-BFGS-B over log-parameters. `may_diverge` / `may_vanish`: parameters whose running
    to the upper / lower edge is a meaningful limit of the model rather than a failed fit."""
    bounds = [(s - LOG_BOUND, s + LOG_BOUND) for s in start]
    # The likelihood's dot products are single vectors: BLAS threads only add start-up and
    # spinning (15x slower at 20k customers on a busy 2-core machine), so use one.
    with (
        threadpool_limits(limits=1, user_api="blas"),
        np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"),
    ):
        result = optimize.minimize(
            objective,
            start,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": 1000, "ftol": 1e-12, "gtol": 1e-8},
        )
    log_params = np.asarray(result.x, dtype=float)
    if not np.all(np.isfinite(log_params)) or not np.isfinite(result.fun):
        raise StageFailed(f"{model}: the likelihood could not be evaluated ({result.message})")
    at_edge = [
        i
        for i, (low, high) in enumerate(bounds)
        if (log_params[i] - low < EDGE_TOLERANCE and i not in may_vanish)
        or (high - log_params[i] < EDGE_TOLERANCE and i not in may_diverge)
    ]
    if at_edge:
        raise StageFailed(
            f"{model}: no interior maximum of the likelihood (a parameter ran to the edge of "
            "its range); the customers are too alike to estimate how they differ"
        )
    if not result.success:
        # L-BFGS-B stops with "ABNORMAL" when a line search cannot improve any more; at an
        # interior point with a tiny gradient that is a converged fit in all but name.
        gradient = np.asarray(result.jac, dtype=float)
        if not np.all(np.abs(gradient) < 1e-4):
            raise StageFailed(f"{model}: the fit did not converge ({result.message})")
    return log_params, result
