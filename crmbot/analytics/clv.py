"""Customer lifetime value: BG/NBD for purchases, Gamma-Gamma for spend.

BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way"): while alive, a
customer buys as a Poisson process with rate lambda ~ Gamma(r, alpha); after each purchase
they drop out with probability p ~ Beta(a, b). Its inputs per customer are x (repeat
purchases = distinct purchase days after the first), t_x (days from the first to the last
purchase day) and T (days from the first purchase day to as_of); times are in days
(`time_unit`).

Gamma-Gamma (Fader, Hardie & Lee 2005, "RFM and CLV: using iso-value curves"): the spend of
a customer's purchases is Gamma(p, nu) with nu ~ Gamma(q, gamma) across customers; it is
fitted on customers with at least one repeat purchase and positive mean repeat spend m_x.

Both are fitted by maximum likelihood: the log-likelihood is vectorised over the distinct
(x, t_x, T) (and (x, m_x)) rows, weighted by how many customers share each, with analytic
gradients, minimised by L-BFGS-B over log-parameters, on times (and amounts) divided by
their mean so the optimiser sees numbers near 1. Terms that depend on x alone are summed
once per distinct x.

Per customer (`run`): expected purchases over the CLV horizon, P(alive), expected spend
per purchase, and CLV = sum over months m = 1..H of
margin * expected spend * (E[purchases by month m] - E[purchases by month m-1]) / (1+d)^m.
`probability_no_purchase` gives P(no purchase within t | history) for the churn model.

A model that cannot be fitted (no purchases or no repeat purchases, a parameter running to
zero, a fit that does not converge) raises `StageFailed` saying which model and why; the run
then fails and the previous model stays active. Parameters that grow without bound in pairs
(r with alpha, a with b, q with gamma) are a meaningful limit — customers do not differ in
that respect — so the fit stops at a large value and records it (`at_limit`,
`homogeneous`).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
from scipy import linalg, optimize, special
from threadpoolctl import threadpool_limits

from crmbot.analytics.base import RunContext, StageFailed

logger = logging.getLogger(__name__)

DAYS_PER_MONTH = 365.25 / 12
# Log-parameters are kept within +-LOG_BOUND of the starting scale; a fit that ends on this
# edge has no interior optimum (typically: customers too alike to estimate a spread).
LOG_BOUND = 12.0
EDGE_TOLERANCE = 1e-3
HOLDOUT_DAYS = 90
QUADRATURE_NODES = 48


# ---------------------------------------------------------------------------------------
# Parameters


@dataclass(frozen=True)
class BgNbdParams:
    r: float
    alpha: float
    a: float
    b: float
    time_unit: str = "days"
    log_likelihood: float | None = None
    customers: int = 0
    distinct_rows: int = 0
    iterations: int = 0
    # Parameters that ran to the upper limit: customers do not differ in that respect.
    at_limit: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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


# ---------------------------------------------------------------------------------------
# Grouping


def group_rows(*columns: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """The distinct rows of `columns` and how many times each occurs."""
    frame = pd.DataFrame({f"c{i}": np.asarray(c, dtype=float) for i, c in enumerate(columns)})
    counts = frame.groupby(list(frame.columns), sort=True).size()
    keys = counts.index.to_frame(index=False)
    return [keys[f"c{i}"].to_numpy(dtype=float) for i in range(len(columns))], counts.to_numpy(
        dtype=float
    )


# ---------------------------------------------------------------------------------------
# BG/NBD


class BgNbdLikelihood:
    """Negative mean log-likelihood of BG/NBD and its gradient, in log-parameters.

    `x`, `t_x`, `T` are distinct rows and `weights` the number of customers with each.
    """

    def __init__(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, weights: np.ndarray) -> None:
        x = np.asarray(x, dtype=float)
        self.total_weight = float(np.sum(weights))
        self.x_values, x_index = np.unique(x, return_inverse=True)
        self.weight_by_x = np.bincount(x_index, weights=weights, minlength=len(self.x_values))
        buyers = x > 0
        self.x = x[buyers]
        self.t_x = np.asarray(t_x, dtype=float)[buyers]
        self.T = np.asarray(T, dtype=float)[buyers]
        self.w = np.asarray(weights, dtype=float)[buyers]
        self.x_index = x_index[buyers]
        # x == 0 rows depend on T only.
        self.zero_T, zero_index = np.unique(
            np.asarray(T, dtype=float)[~buyers], return_inverse=True
        )
        self.zero_w = np.bincount(
            zero_index,
            weights=np.asarray(weights, dtype=float)[~buyers],
            minlength=len(self.zero_T),
        )

    def log_likelihood(self, r: float, alpha: float, a: float, b: float) -> float:
        """Total (weighted) log-likelihood at the given parameters."""
        value, _ = self._evaluate(np.array([r, alpha, a, b]), need_gradient=False)
        return value

    def objective(self, log_params: np.ndarray) -> tuple[float, np.ndarray]:
        """(-mean LL, its gradient) at exp(log_params), for the optimiser."""
        params = np.exp(log_params)
        value, gradient = self._evaluate(params, need_gradient=True)
        # d/d(log p) = p * d/dp
        return -value / self.total_weight, -(gradient * params) / self.total_weight

    def _evaluate(self, params: np.ndarray, *, need_gradient: bool) -> tuple[float, np.ndarray]:
        r, alpha, a, b = (float(v) for v in params)
        xv, wx = self.x_values, self.weight_by_x
        # Terms in x alone: lnG(r+x) - lnG(r) + lnG(a+b) + lnG(b+x) - lnG(b) - lnG(a+b+x).
        x_terms = (
            special.gammaln(r + xv)
            - special.gammaln(r)
            + special.gammaln(a + b)
            + special.gammaln(b + xv)
            - special.gammaln(b)
            - special.gammaln(a + b + xv)
        )
        total = float(np.dot(wx, x_terms)) + self.total_weight * r * math.log(alpha)

        # Rows with repeat purchases: log(A3 + A4) = logaddexp(u, v).
        log_alpha_T = np.log(alpha + self.T)
        log_alpha_tx = np.log(alpha + self.t_x)
        r_x = r + self.x
        # Only x > 0 rows use log(b + x - 1); the x == 0 entry is a placeholder.
        log_b_x1 = np.log(np.maximum(b + self.x_values - 1.0, 1e-300))
        u = -r_x * log_alpha_T
        v = math.log(a) - log_b_x1[self.x_index] - r_x * log_alpha_tx
        ell = np.logaddexp(u, v)
        total += float(np.dot(self.w, ell))
        # Rows without: log A3 = -r log(alpha + T).
        log_alpha_T0 = np.log(alpha + self.zero_T)
        total += float(np.dot(self.zero_w, -r * log_alpha_T0))
        if not need_gradient:
            return total, np.zeros(4)

        omega = np.exp(v - ell)  # share of the "dropped out after the last purchase" term
        keep = 1.0 - omega
        g_r = float(np.dot(wx, special.digamma(r + xv) - special.digamma(r)))
        g_r += self.total_weight * math.log(alpha)
        g_r -= float(np.dot(self.w, keep * log_alpha_T + omega * log_alpha_tx))
        g_r -= float(np.dot(self.zero_w, log_alpha_T0))

        g_alpha = self.total_weight * r / alpha
        g_alpha -= float(
            np.dot(self.w, r_x * (keep / (alpha + self.T) + omega / (alpha + self.t_x)))
        )
        g_alpha -= float(np.dot(self.zero_w, r / (alpha + self.zero_T)))

        dig_ab = special.digamma(a + b)
        dig_abx = special.digamma(a + b + xv)
        g_a = float(np.dot(wx, dig_ab - dig_abx)) + float(np.dot(self.w, omega)) / a
        g_b = float(np.dot(wx, dig_ab + special.digamma(b + xv) - special.digamma(b) - dig_abx))
        weighted_omega_by_x = np.bincount(self.x_index, weights=self.w * omega, minlength=len(xv))
        positive = xv > 0
        g_b -= float(np.sum(weighted_omega_by_x[positive] / (b + xv[positive] - 1.0)))
        return total, np.array([g_r, g_alpha, g_a, g_b])


def _minimise(
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


def fit_bgnbd(
    x: np.ndarray, t_x: np.ndarray, T: np.ndarray, *, time_unit: str = "days"
) -> BgNbdParams:
    """Maximum-likelihood BG/NBD parameters for per-customer (x, t_x, T)."""
    x = np.asarray(x, dtype=float)
    t_x = np.asarray(t_x, dtype=float)
    T = np.asarray(T, dtype=float)
    if len(x) == 0:
        raise StageFailed("BG/NBD: no customer has a purchase yet")
    if not np.any(x > 0):
        raise StageFailed(
            "BG/NBD: no customer has a repeat purchase (a second purchase day), so purchase "
            "rates and drop-out cannot be estimated"
        )
    if np.any(x < 0) or np.any(t_x < 0) or np.any(t_x > T) or np.any((x > 0) & (t_x <= 0)):
        # A repeat purchase at t_x = 0 would make the likelihood unbounded.
        raise StageFailed(
            "BG/NBD: inconsistent summary (negative counts, t_x > T, or repeat purchases "
            "with t_x = 0)"
        )
    # Work on times divided by their mean, so every parameter starts near 1.
    scale = float(np.mean(T)) if float(np.mean(T)) > 0 else 1.0
    (ux, ut, uT), weights = group_rows(x, t_x / scale, T / scale)
    likelihood = BgNbdLikelihood(ux, ut, uT, weights)
    # r and alpha growing together is the limit where every customer buys at the same rate,
    # a and b growing together the one where every customer has the same drop-out
    # probability, and a vanishing the one where nobody drops out: small or uniform books
    # end there, and the model's predictions are that limit's (the fit records which
    # parameters reached it).
    log_params, result = _minimise(
        likelihood.objective,
        np.zeros(4),
        "BG/NBD",
        may_diverge=frozenset({0, 1, 2, 3}),
        may_vanish=frozenset({2}),
    )
    r, alpha_scaled, a, b = np.exp(log_params)
    limits = [
        f"{name}{'->inf' if value > 0 else '->0'}"
        for name, value in zip(("r", "alpha", "a", "b"), log_params, strict=True)
        if abs(value) > LOG_BOUND - 1.0
    ]
    # Scaling times by s multiplies the likelihood by s^x: undo it for the reported LL.
    ll = -float(result.fun) * likelihood.total_weight - float(np.sum(x)) * math.log(scale)
    return BgNbdParams(
        r=float(r),
        alpha=float(alpha_scaled * scale),
        a=float(a),
        b=float(b),
        time_unit=time_unit,
        log_likelihood=ll,
        customers=int(len(x)),
        distinct_rows=int(len(weights)),
        iterations=int(result.nit),
        at_limit=tuple(limits),
    )


def bgnbd_log_likelihood(params: BgNbdParams, x: Any, t_x: Any, T: Any) -> float:
    """Total log-likelihood of the data under `params` (times in the params' unit)."""
    (ux, ut, uT), weights = group_rows(np.asarray(x), np.asarray(t_x), np.asarray(T))
    return BgNbdLikelihood(ux, ut, uT, weights).log_likelihood(
        params.r, params.alpha, params.a, params.b
    )


def _drop_out_odds_log(params: BgNbdParams, x: np.ndarray, t_x: np.ndarray, T: np.ndarray):
    """log of a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x) for x > 0 (-inf for x == 0)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    with np.errstate(divide="ignore", invalid="ignore"):
        log_odds = (
            math.log(a)
            - np.log(np.maximum(b + x - 1.0, 1e-300))
            + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
        )
    return np.where(x > 0, log_odds, -np.inf)


def probability_alive(params: BgNbdParams, x: Any, t_x: Any, T: Any) -> np.ndarray:
    """P(the customer has not dropped out by T | x, t_x, T)."""
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    return np.exp(-np.logaddexp(0.0, _drop_out_odds_log(params, x, t_x, T)))


def conditional_expected_purchases(
    params: BgNbdParams, t: float, x: Any, t_x: Any, T: Any
) -> np.ndarray:
    """E[purchases in (T, T + t] | x, t_x, T] (FHL 2005, eq. 10)."""
    x, t_x, T = np.broadcast_arrays(
        *(np.atleast_1d(np.asarray(v, dtype=float)) for v in (x, t_x, T))
    )
    if t <= 0:
        return np.zeros(x.shape)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    if abs(a - 1.0) < 1e-8:
        a = 1.0 + 1e-8  # the closed form divides by a - 1; the limit is continuous
    z = t / (alpha + T + t)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        hyp = special.hyp2f1(r + x, b + x, a + b + x - 1.0, z)
        power = np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + t)))
        numerator = (a + b + x - 1.0) / (a - 1.0) * (1.0 - power * hyp)
        expected = numerator * probability_alive(params, x, t_x, T)
    # Never more than an active customer's mean rate allows, never negative.
    ceiling = (r + x) * t / (alpha + T) * (1.0 + 1e-9)
    bad = ~np.isfinite(expected) | (expected < 0) | (expected > ceiling)
    if np.any(bad):
        expected = np.asarray(expected, dtype=float).copy()
        expected[bad] = _expected_purchases_quadrature(
            params, t, x[bad], T[bad]
        ) * probability_alive(params, x[bad], t_x[bad], T[bad])
    return expected


def _gauss_jacobi(n: int, alpha: float, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes on [-1, 1] and weights summing to 1 for the weight (1-s)^alpha (1+s)^beta.

    Golub-Welsch on the Jacobi recurrence. Unlike `scipy.special.roots_jacobi` it never
    forms the total weight 2^(alpha+beta+1) B(alpha+1, beta+1), which overflows for the
    large b + x of a homogeneous book.
    """
    k = np.arange(n, dtype=float)
    total = 2.0 * k + alpha + beta
    with np.errstate(divide="ignore", invalid="ignore"):
        diagonal = (beta**2 - alpha**2) / (total * (total + 2.0))
    diagonal[0] = (beta - alpha) / (alpha + beta + 2.0)
    j = k[1:]
    tj = 2.0 * j + alpha + beta
    off = np.sqrt(
        4.0 * j * (j + alpha) * (j + beta) * (j + alpha + beta) / (tj**2 * (tj + 1.0) * (tj - 1.0))
    )
    nodes, vectors = linalg.eigh_tridiagonal(diagonal, off)
    weights = vectors[0] ** 2
    return nodes, weights / weights.sum()


def _expected_purchases_quadrature(
    params: BgNbdParams, t: float, x: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """E[purchases in t | alive] by Gauss-Jacobi quadrature over p's posterior Beta(a, b+x).

    Given p, an active customer's rate has posterior Gamma(r + x, alpha + T), so
    E[purchases in t | p] = (1 - (1 + p t / (alpha + T))^-(r + x)) / p. Used where the
    closed form's hypergeometric function is not finite or leaves its bounds.
    """
    x = np.atleast_1d(x).astype(float)
    T = np.broadcast_to(np.atleast_1d(T).astype(float), x.shape)
    out = np.empty(len(x))
    for value in np.unique(x):
        rows = x == value
        # p = (1 + s) / 2 for s with weight (1-s)^(b+x-1) (1+s)^(a-1): p ~ Beta(a, b + x).
        nodes, weights = _gauss_jacobi(QUADRATURE_NODES, params.b + value - 1.0, params.a - 1.0)
        p = (1.0 + nodes) / 2.0
        ratio = p[None, :] * t / (params.alpha + T[rows][:, None])
        inner = -np.expm1(-(params.r + value) * np.log1p(ratio)) / p[None, :]
        out[rows] = inner @ weights
    return out


def probability_no_purchase(params: BgNbdParams, t: float, x: Any, t_x: Any, T: Any) -> np.ndarray:
    """P(no purchase in (T, T + t] | x, t_x, T).

    Dropped-out customers never buy again; an active one's rate has posterior
    Gamma(r + x, alpha + T), so P(none | alive) = ((alpha + T) / (alpha + T + t))^(r + x).
    """
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    alive = probability_alive(params, x, t_x, T)
    quiet_if_alive = np.exp(
        (params.r + x) * (np.log(params.alpha + T) - np.log(params.alpha + T + t))
    )
    return (1.0 - alive) + alive * quiet_if_alive


# ---------------------------------------------------------------------------------------
# Gamma-Gamma


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
    log_params, result = _minimise(
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


def simulate_bgnbd(
    params: BgNbdParams, T: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(x, t_x) drawn from BG/NBD for customers observed for T after their first purchase.

    For checking the fit on data whose true parameters are known (tests, benchmarks).
    """
    T = np.asarray(T, dtype=float)
    n = len(T)
    rate = rng.gamma(params.r, 1.0 / params.alpha, size=n)
    drop = rng.beta(params.a, params.b, size=n)
    x = np.zeros(n)
    t_x = np.zeros(n)
    now = np.zeros(n)
    active = np.ones(n, dtype=bool)
    while active.any():
        rows = np.flatnonzero(active)
        following = now[rows] + rng.exponential(1.0 / np.maximum(rate[rows], 1e-300))
        bought = following <= T[rows]
        buyers = rows[bought]
        x[buyers] += 1
        t_x[buyers] = following[bought]
        now[buyers] = following[bought]
        active[rows[~bought]] = False
        # After each purchase the customer drops out with probability p.
        active[buyers[rng.random(len(buyers)) < drop[buyers]]] = False
    return x, t_x


def simulate_gamma_gamma(
    params: GammaGammaParams, x: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Mean spend of x purchases per customer drawn from Gamma-Gamma (NaN where x = 0)."""
    x = np.asarray(x, dtype=float)
    nu = rng.gamma(params.q, 1.0 / params.gamma, size=len(x))
    # The sum of x Gamma(p, nu) draws is Gamma(p * x, nu).
    totals = rng.gamma(np.maximum(params.p * x, 1e-12), 1.0 / nu)
    return np.where(x > 0, totals / np.maximum(x, 1), np.nan)


# ---------------------------------------------------------------------------------------
# CLV


def customer_lifetime_value(
    bgnbd: BgNbdParams,
    spend_per_purchase: np.ndarray,
    x: Any,
    t_x: Any,
    T: Any,
    *,
    months: int,
    monthly_discount_rate: float,
    margin: float,
    days_per_unit: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(CLV, expected purchases over the horizon) per customer.

    CLV = sum over m = 1..months of margin * spend * (E[Y(m)] - E[Y(m-1)]) / (1 + d)^m.
    Distinct (x, t_x, T) rows are evaluated once.
    """
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    (ux, ut, uT), _w = group_rows(x, t_x, T)
    keys = pd.MultiIndex.from_arrays([ux, ut, uT])
    position = keys.get_indexer(pd.MultiIndex.from_arrays([x, t_x, T]))
    month = DAYS_PER_MONTH / days_per_unit
    previous = np.zeros(len(ux))
    discounted = np.zeros(len(ux))
    for m in range(1, months + 1):
        cumulative = conditional_expected_purchases(bgnbd, m * month, ux, ut, uT)
        discounted += (cumulative - previous) / (1.0 + monthly_discount_rate) ** m
        previous = cumulative
    clv = margin * np.asarray(spend_per_purchase, dtype=float) * discounted[position]
    return clv, previous[position]


# ---------------------------------------------------------------------------------------
# The training stage


def _holdout_check(ctx: RunContext, summary: pd.DataFrame) -> dict[str, Any]:
    """Fit on data up to as_of - HOLDOUT_DAYS; compare predicted and actual repeat purchase
    days in the last HOLDOUT_DAYS for customers who had bought by the calibration date."""
    calibration_day = ctx.data.as_of - timedelta(days=HOLDOUT_DAYS)
    calibration = ctx.source.calibration_summary(calibration_day)
    known = calibration[calibration["frequency"] > 0]
    if known.empty:
        return {"holdout_days": HOLDOUT_DAYS, "note": "no purchases before the holdout period"}
    try:
        params = fit_bgnbd(
            known["repeat_purchases"].to_numpy(float),
            known["t_x_days"].to_numpy(float),
            known["age_days"].to_numpy(float),
        )
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
    bgnbd = fit_bgnbd(x, t_x, T, time_unit="days")
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
    alive = probability_alive(bgnbd, x, t_x, T)
    unusable = ~(np.isfinite(clv) & np.isfinite(expected) & np.isfinite(spend))
    if unusable.any():
        raise StageFailed(
            f"BG/NBD: predictions are not finite for {int(unusable.sum())} customers at "
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

    repeaters = (x > 0) & (m > 0)
    spend_frequency_correlation = (
        float(np.corrcoef(x[repeaters], m[repeaters])[0, 1])
        if repeaters.sum() > 2 and np.std(m[repeaters]) > 0 and np.std(x[repeaters]) > 0
        else None
    )
    ctx.params["clv"] = {
        "bgnbd": _rounded({"r": bgnbd.r, "alpha": bgnbd.alpha, "a": bgnbd.a, "b": bgnbd.b})
        | {"time_unit": bgnbd.time_unit},
        "gamma_gamma": _rounded(
            {"p": gamma_gamma.p, "q": gamma_gamma.q, "gamma": gamma_gamma.gamma}
        ),
        "horizon_months": settings.clv_horizon_months,
        "monthly_discount_rate": settings.clv_monthly_discount_rate,
        "margin": settings.clv_margin,
    }
    ctx.metrics["clv"] = {
        "bgnbd": {
            "log_likelihood": round(float(bgnbd.log_likelihood or 0.0), 3),
            "customers": bgnbd.customers,
            "repeat_customers": int((x > 0).sum()),
            "distinct_rows": bgnbd.distinct_rows,
            "iterations": bgnbd.iterations,
            "at_limit": list(bgnbd.at_limit),
            "fit_seconds": round(bgnbd_seconds, 4),
            "holdout": _holdout_check(ctx, summary),
        },
        "gamma_gamma": {
            "log_likelihood": round(float(gamma_gamma.log_likelihood or 0.0), 3),
            "customers": gamma_gamma.customers,
            "distinct_rows": gamma_gamma.distinct_rows,
            "iterations": gamma_gamma.iterations,
            "fit_seconds": round(gg_seconds, 4),
            "mean_spend_per_purchase": round(gamma_gamma.mean_spend, 2),
            "homogeneous_spend": gamma_gamma.homogeneous,
            # Gamma-Gamma assumes spend does not depend on frequency; near 0 is good.
            "spend_frequency_correlation": None
            if spend_frequency_correlation is None
            else round(spend_frequency_correlation, 4),
        },
        "horizon_days": round(horizon_days, 2),
        "total_clv": round(float(np.sum(clv)), 2),
        "mean_clv": round(float(np.mean(clv)), 2),
        "median_p_alive": round(float(np.median(alive)), 4),
        "expected_purchases_total": round(float(np.sum(expected)), 2),
    }
