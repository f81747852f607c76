"""Gamma-Gamma: how much a customer spends per purchase — its fit, predictions and a simulator."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import special

from crmbot.analytics.base import StageFailed
from crmbot.analytics.clv.fitting import LOG_BOUND, group_rows, minimise


@dataclass(frozen=True)
class GammaGammaParams:
    p: float
    q: float
    gamma: float
    # True when q and gamma ran to their limit: spend does not differ between customers
    # beyond chance, so expected spend is the population mean for everyone.
    homogeneous: bool = False
    log_likelihood: float | None = None
    customers: int = 0
    distinct_rows: int = 0
    iterations: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def mean_spend(self) -> float:
        """Population mean spend per purchase, p * gamma / (q - 1) (needs q > 1)."""
        return self.p * self.gamma / (self.q - 1.0) if self.q > 1 else math.inf


class GammaGammaLikelihood:
    """Negative mean log-likelihood of Gamma-Gamma and its gradient, in log-parameters."""

    def __init__(self, x: np.ndarray, m: np.ndarray, weights: np.ndarray) -> None:
        x = np.asarray(x, dtype=float)
        m = np.asarray(m, dtype=float)
        self.w = np.asarray(weights, dtype=float)
        self.total_weight = float(np.sum(self.w))
        self.x = x
        self.xm = x * m
        # Terms in x alone (the gamma functions, x log x) are summed once per distinct x.
        self.x_values, self.x_index = np.unique(x, return_inverse=True)
        self.weight_by_x = np.bincount(self.x_index, weights=self.w)
        self.w_x = self.w * x
        # Constant in the parameters except for p: sum of w (x log m + x log x), sum w log m.
        self.sum_wx_log_mx = float(np.dot(self.w_x, np.log(m) + np.log(x)))
        self.sum_w_log_m = float(np.dot(self.w, np.log(m)))

    def log_likelihood(self, p: float, q: float, gamma: float) -> float:
        value, _ = self._evaluate(np.array([p, q, gamma]), need_gradient=False)
        return value

    def objective(self, log_params: np.ndarray) -> tuple[float, np.ndarray]:
        params = np.exp(log_params)
        value, gradient = self._evaluate(params, need_gradient=True)
        return -value / self.total_weight, -(gradient * params) / self.total_weight

    def _evaluate(self, params: np.ndarray, *, need_gradient: bool) -> tuple[float, np.ndarray]:
        # ell = lnG(px+q) - lnG(px) - lnG(q) + q ln gamma + (px-1) ln m + px ln x
        #       - (px+q) ln(gamma + x m)
        p, q, gamma = (float(v) for v in params)
        xv, wx = self.x_values, self.weight_by_x
        pxv = p * xv
        x_terms = special.gammaln(pxv + q) - special.gammaln(pxv) - special.gammaln(q)
        log_gamma_xm = np.log(gamma + self.xm)
        px_q = p * self.x + q
        total = (
            float(np.dot(wx, x_terms))
            + self.total_weight * q * math.log(gamma)
            + p * self.sum_wx_log_mx
            - self.sum_w_log_m
            - float(np.dot(self.w, px_q * log_gamma_xm))
        )
        if not need_gradient:
            return total, np.zeros(3)
        dig_pxq = special.digamma(pxv + q)
        g_p = (
            float(np.dot(wx * xv, dig_pxq - special.digamma(pxv)))
            + self.sum_wx_log_mx
            - float(np.dot(self.w_x, log_gamma_xm))
        )
        g_q = (
            float(np.dot(wx, dig_pxq - special.digamma(q)))
            + self.total_weight * math.log(gamma)
            - float(np.dot(self.w, log_gamma_xm))
        )
        g_gamma = self.total_weight * q / gamma - float(np.dot(self.w, px_q / (gamma + self.xm)))
        return total, np.array([g_p, g_q, g_gamma])


def fit_gamma_gamma(x: np.ndarray, m: np.ndarray) -> GammaGammaParams:
    """Maximum-likelihood Gamma-Gamma parameters from repeat counts and mean repeat spend.

    Only customers with x > 0 and m > 0 take part.
    """
    x = np.asarray(x, dtype=float)
    m = np.asarray(m, dtype=float)
    usable = (x > 0) & (m > 0) & np.isfinite(m)
    if usable.sum() < 2:
        raise StageFailed(
            "Gamma-Gamma: fewer than two customers have a repeat purchase with positive spend"
        )
    x, m = x[usable], m[usable]
    if np.allclose(m, m[0]):
        raise StageFailed(
            "Gamma-Gamma: every repeat customer spends the same per purchase, so the spread "
            "of spend between customers cannot be estimated"
        )
    scale = float(np.mean(m))
    (ux, um), weights = group_rows(x, m / scale)
    likelihood = GammaGammaLikelihood(ux, um, weights)
    start = np.log(np.array([1.0, 2.0, 1.0]))
    # q and gamma growing together (gamma / q fixed) is the limit where every customer's
    # spend has the same distribution: a meaningful fit whose expected spend is the
    # population mean for everyone.
    log_params, result = minimise(
        likelihood.objective, start, "Gamma-Gamma", may_diverge=frozenset({1, 2})
    )
    p, q, gamma_scaled = np.exp(log_params)
    # Scaling amounts by s divides each customer's density by s.
    ll = -float(result.fun) * likelihood.total_weight - len(x) * math.log(scale)
    homogeneous = bool(log_params[1] > start[1] + LOG_BOUND - 1.0)
    params = GammaGammaParams(
        homogeneous=homogeneous,
        p=float(p),
        q=float(q),
        gamma=float(gamma_scaled * scale),
        log_likelihood=ll,
        customers=int(len(x)),
        distinct_rows=int(len(weights)),
        iterations=int(result.nit),
    )
    if params.q <= 1.0:
        raise StageFailed(
            f"Gamma-Gamma: fitted q = {params.q:.3g} <= 1, so the mean spend per purchase is "
            "unbounded; spend varies too much between customers for this model"
        )
    return params


def gamma_gamma_log_likelihood(params: GammaGammaParams, x: Any, m: Any) -> float:
    (ux, um), weights = group_rows(np.asarray(x), np.asarray(m))
    return GammaGammaLikelihood(ux, um, weights).log_likelihood(params.p, params.q, params.gamma)


def conditional_expected_spend(params: GammaGammaParams, x: Any, m: Any) -> np.ndarray:
    """E[spend per purchase | x repeat purchases with mean m]; the population mean at x = 0."""
    x = np.asarray(x, dtype=float)
    m = np.nan_to_num(np.asarray(m, dtype=float), nan=0.0).clip(min=0.0)
    p, q, gamma = params.p, params.q, params.gamma
    return p * (gamma + x * m) / (p * x + q - 1.0)


def simulate_gamma_gamma(
    params: GammaGammaParams, x: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Mean spend of x purchases per customer drawn from Gamma-Gamma (NaN where x = 0)."""
    x = np.asarray(x, dtype=float)
    nu = rng.gamma(params.q, 1.0 / params.gamma, size=len(x))
    # The sum of x Gamma(p, nu) draws is Gamma(p * x, nu).
    totals = rng.gamma(np.maximum(params.p * x, 1e-12), 1.0 / nu)
    return np.where(x > 0, totals / np.maximum(x, 1), np.nan)
