"""The CLV stage of a training run: fit both models, fill the CLV columns, check a holdout."""

from __future__ import annotations

import math
import time
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from crmbot.analytics.base import RunContext, StageFailed
from crmbot.analytics.clv.bgnbd import (
    BgNbdParams,
    conditional_expected_purchases,
    probability_alive,
)
from crmbot.analytics.clv.gamma_gamma import (
    GammaGammaParams,
    conditional_expected_spend,
    fit_gamma_gamma,
)
from crmbot.analytics.clv.lifetime_value import DAYS_PER_MONTH, customer_lifetime_value
from crmbot.analytics.clv.mbgnbd import PurchaseFit, fit_purchases

HOLDOUT_DAYS = 90


def _holdout_check(ctx: RunContext, summary: pd.DataFrame) -> dict[str, Any]:
    """Fit on data up to as_of - HOLDOUT_DAYS; compare predicted and actual repeat purchase
    days in the last HOLDOUT_DAYS for customers who had bought by the calibration date."""
    calibration_day = ctx.data.as_of - timedelta(days=HOLDOUT_DAYS)
    calibration = ctx.source.calibration_summary(calibration_day)
    known = calibration[calibration["frequency"] > 0]
    if known.empty:
        return {"holdout_days": HOLDOUT_DAYS, "note": "no purchases before the holdout period"}
    try:
        params = fit_purchases(
            known["repeat_purchases"].to_numpy(float),
            known["t_x_days"].to_numpy(float),
            known["age_days"].to_numpy(float),
        ).params
    except StageFailed as exc:
        return {"holdout_days": HOLDOUT_DAYS, "note": f"calibration fit failed: {exc}"}
    predicted = conditional_expected_purchases(
        params, HOLDOUT_DAYS, known["repeat_purchases"], known["t_x_days"], known["age_days"]
    )
    actual = (summary["frequency"].reindex(known.index) - known["frequency"]).to_numpy(float)
    error = predicted - actual
    correlation = (
        float(np.corrcoef(predicted, actual)[0, 1])
        if len(actual) > 2 and np.std(actual) > 0 and np.std(predicted) > 0
        else None
    )
    return {
        "holdout_days": HOLDOUT_DAYS,
        "model": params.name,
        "customers": int(len(known)),
        "predicted_purchases": round(float(predicted.sum()), 2),
        "actual_purchases": int(actual.sum()),
        "mae": round(float(np.mean(np.abs(error))), 4),
        "rmse": round(float(np.sqrt(np.mean(error**2))), 4),
        "correlation": None if correlation is None else round(correlation, 4),
    }


def _rounded(params: dict[str, Any], digits: int = 6) -> dict[str, Any]:
    return {
        k: (float(f"{v:.{digits}g}") if isinstance(v, float) and math.isfinite(v) else v)
        for k, v in params.items()
    }


def run(ctx: RunContext) -> None:
    """Fit BG/NBD and Gamma-Gamma on the run's summary; fill the CLV columns."""
    if ctx.features is None:
        raise StageFailed("CLV needs the features stage, which did not run")
    settings = ctx.settings
    summary = ctx.features
    buyers = summary[summary["frequency"] > 0]
    x = buyers["repeat_purchases"].to_numpy(dtype=float)
    t_x = buyers["t_x_days"].to_numpy(dtype=float)
    T = buyers["age_days"].to_numpy(dtype=float)
    m = buyers["monetary"].to_numpy(dtype=float)

    started = time.perf_counter()
    purchases = fit_purchases(x, t_x, T, time_unit="days")
    bgnbd = purchases.params
    bgnbd_seconds = time.perf_counter() - started
    started = time.perf_counter()
    gamma_gamma = fit_gamma_gamma(x, m)
    gg_seconds = time.perf_counter() - started

    horizon_days = settings.clv_horizon_months * DAYS_PER_MONTH
    spend = conditional_expected_spend(gamma_gamma, x, m)
    clv, expected = customer_lifetime_value(
        bgnbd,
        spend,
        x,
        t_x,
        T,
        months=settings.clv_horizon_months,
        monthly_discount_rate=settings.clv_monthly_discount_rate,
        margin=settings.clv_margin,
    )
    alive = _p_alive(purchases, x, t_x, T)
    unusable = ~(np.isfinite(clv) & np.isfinite(expected) & np.isfinite(spend))
    if unusable.any():
        raise StageFailed(
            f"{bgnbd.name}: predictions are not finite for {int(unusable.sum())} customers at "
            f"r={bgnbd.r:.4g}, alpha={bgnbd.alpha:.4g}, a={bgnbd.a:.4g}, b={bgnbd.b:.4g}"
        )
    for column, values in (
        ("expected_purchases", expected),
        ("p_alive", alive),
        ("expected_spend", spend),
        ("clv", clv),
    ):
        full = pd.Series(np.nan, index=ctx.scores.index, dtype=float)
        full[buyers.index] = values
        ctx.scores[column] = full

    ctx.params["clv"] = _params_record(purchases, gamma_gamma, ctx)
    estimated = alive[~np.isnan(alive)]
    ctx.metrics["clv"] = {
        "bgnbd": _bgnbd_metrics(purchases.bgnbd, x, bgnbd_seconds)
        | {"holdout": _holdout_check(ctx, summary)},
        "purchase_model": _purchase_model_metrics(purchases),
        "gamma_gamma": _gamma_gamma_metrics(gamma_gamma, x, m, gg_seconds),
        "horizon_days": round(horizon_days, 2),
        "total_clv": round(float(np.sum(clv)), 2),
        "mean_clv": round(float(np.mean(clv)), 2),
        "median_p_alive": round(float(np.median(estimated)), 4) if len(estimated) else None,
        "p_alive_customers": int(len(estimated)),
        "expected_purchases_total": round(float(np.sum(expected)), 2),
    }


def _p_alive(purchases: PurchaseFit, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """P(alive) where the model estimates it, NaN where it is 1 by construction: everyone
    when dropout could not be estimated, and under BG/NBD a customer without a repeat
    purchase (BG/NBD lets nobody drop out before their second purchase)."""
    alive = probability_alive(purchases.params, x, t_x, T)
    if not purchases.dropout_estimated:
        return np.full(len(x), np.nan)
    if not purchases.params.modified:
        alive = np.where(x > 0, alive, np.nan)
    return alive


def _purchase_model_metrics(purchases: PurchaseFit) -> dict[str, Any]:
    """Which purchase model the predictions come from, and why (for `model show`)."""
    record: dict[str, Any] = {
        "model": purchases.params.name,
        "dropout_estimated": purchases.dropout_estimated,
    }
    if purchases.note:
        record["note"] = purchases.note
    if purchases.mbgnbd is not None:
        mbgnbd = purchases.mbgnbd
        record["mbgnbd"] = {
            "log_likelihood": round(float(mbgnbd.log_likelihood or 0.0), 3),
            "at_limit": list(mbgnbd.at_limit),
            "iterations": mbgnbd.iterations,
        }
    return record


def _purchase_params(params: BgNbdParams) -> dict[str, Any]:
    return _rounded({"r": params.r, "alpha": params.alpha, "a": params.a, "b": params.b}) | {
        "time_unit": params.time_unit
    }


def _params_record(
    purchases: PurchaseFit, gamma_gamma: GammaGammaParams, ctx: RunContext
) -> dict[str, Any]:
    """The models' parameters and the CLV settings, as a run records them (`mbgnbd` only
    when BG/NBD's fit ran to its limit and MBG/NBD was fitted in its place)."""
    settings = ctx.settings
    mbgnbd = {} if purchases.mbgnbd is None else {"mbgnbd": _purchase_params(purchases.mbgnbd)}
    return {
        "bgnbd": _purchase_params(purchases.bgnbd),
        **mbgnbd,
        "gamma_gamma": _rounded(
            {"p": gamma_gamma.p, "q": gamma_gamma.q, "gamma": gamma_gamma.gamma}
        ),
        "horizon_months": settings.clv_horizon_months,
        "monthly_discount_rate": settings.clv_monthly_discount_rate,
        "margin": settings.clv_margin,
    }


def _bgnbd_metrics(bgnbd: BgNbdParams, x: np.ndarray, seconds: float) -> dict[str, Any]:
    """How the BG/NBD fit went (its holdout check is added by the caller)."""
    return {
        "log_likelihood": round(float(bgnbd.log_likelihood or 0.0), 3),
        "customers": bgnbd.customers,
        "repeat_customers": int((x > 0).sum()),
        "distinct_rows": bgnbd.distinct_rows,
        "iterations": bgnbd.iterations,
        "at_limit": list(bgnbd.at_limit),
        "fit_seconds": round(seconds, 4),
    }


def _gamma_gamma_metrics(
    gamma_gamma: GammaGammaParams, x: np.ndarray, m: np.ndarray, seconds: float
) -> dict[str, Any]:
    """How the Gamma-Gamma fit went, and whether its assumption holds on this book."""
    repeaters = (x > 0) & (m > 0)
    spend_frequency_correlation = (
        float(np.corrcoef(x[repeaters], m[repeaters])[0, 1])
        if repeaters.sum() > 2 and np.std(m[repeaters]) > 0 and np.std(x[repeaters]) > 0
        else None
    )
    return {
        "log_likelihood": round(float(gamma_gamma.log_likelihood or 0.0), 3),
        "customers": gamma_gamma.customers,
        "distinct_rows": gamma_gamma.distinct_rows,
        "iterations": gamma_gamma.iterations,
        "fit_seconds": round(seconds, 4),
        "mean_spend_per_purchase": round(gamma_gamma.mean_spend, 2),
        "homogeneous_spend": gamma_gamma.homogeneous,
        # Gamma-Gamma assumes spend does not depend on frequency; near 0 is good.
        "spend_frequency_correlation": None
        if spend_frequency_correlation is None
        else round(spend_frequency_correlation, 4),
    }
