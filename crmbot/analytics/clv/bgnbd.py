"""BG/NBD: who is still buying and how often — its fit, predictions and a simulator.

The predictions also serve the modified BG/NBD (`BgNbdParams.modified`, fitted in
`mbgnbd`), which differs only in letting a customer drop out after the first purchase too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import linalg, special

from crmbot.analytics.base import StageFailed
from crmbot.analytics.clv.fitting import LOG_BOUND, group_rows, minimise

QUADRATURE_NODES = 48
# Below this mean dropout probability per purchase (a / (a + b)) a fit says nobody leaves:
# a customer would need some 700 purchases for an even chance of having left. The
# likelihood is flat on the way to a -> 0, so the optimiser often stops short of the
# bound that `at_limit` flags (a = 2e-5, b = 2,300 on a book where 5% of the repeat
# buyers had lapsed: P(alive) 1.000 for each of them).
MIN_MEAN_DROPOUT = 1e-3


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
    # The modified BG/NBD (Batislam, Denizel & Filiztekin 2007): a customer may also drop
    # out right after their first purchase, so P(alive) is below 1 without a repeat one.
    modified: bool = False

    @property
    def name(self) -> str:
        return "MBG/NBD" if self.modified else "BG/NBD"

    @property
    def dropout_at_limit(self) -> bool:
        """The fit ran to (or stopped on the flat way to) the limit where nobody ever drops
        out: p ~ Beta(a, b) with a -> 0, or b -> inf while a stays finite, or a mean
        dropout probability per purchase below `MIN_MEAN_DROPOUT`. Its P(alive) is then
        1, or all but 1, for everyone by construction, not an estimate."""
        limits = set(self.at_limit)
        if "a->0" in limits or ("b->inf" in limits and "a->inf" not in limits):
            return True
        return self.a / (self.a + self.b) < MIN_MEAN_DROPOUT

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class PurchaseLikelihood:
    """What BG/NBD and MBG/NBD likelihoods share: the total log-likelihood, and the objective
    the optimiser minimises (in log-parameters), both from the model's `_evaluate`."""

    total_weight: float

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
        """(total log-likelihood, its gradient in the parameters) at (r, alpha, a, b)."""
        raise NotImplementedError


class BgNbdLikelihood(PurchaseLikelihood):
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


def fit_bgnbd(
    x: np.ndarray, t_x: np.ndarray, T: np.ndarray, *, time_unit: str = "days"
) -> BgNbdParams:
    """Maximum-likelihood BG/NBD parameters for per-customer (x, t_x, T)."""
    return fit_purchase_model("BG/NBD", BgNbdLikelihood, x, t_x, T, time_unit=time_unit)


def fit_purchase_model(
    model: str,
    likelihood_type: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], PurchaseLikelihood],
    x: np.ndarray,
    t_x: np.ndarray,
    T: np.ndarray,
    *,
    time_unit: str = "days",
    modified: bool = False,
) -> BgNbdParams:
    """Maximum-likelihood parameters (r, alpha, a, b) of `model` (BG/NBD or its modified
    form: the same four parameters, another likelihood) for per-customer (x, t_x, T)."""
    x = np.asarray(x, dtype=float)
    t_x = np.asarray(t_x, dtype=float)
    T = np.asarray(T, dtype=float)
    if len(x) == 0:
        raise StageFailed(f"{model}: no customer has a purchase yet")
    if not np.any(x > 0):
        raise StageFailed(
            f"{model}: no customer has a repeat purchase (a second purchase day), so purchase "
            "rates and drop-out cannot be estimated"
        )
    if np.any(x < 0) or np.any(t_x < 0) or np.any(t_x > T) or np.any((x > 0) & (t_x <= 0)):
        # A repeat purchase at t_x = 0 would make the likelihood unbounded.
        raise StageFailed(
            f"{model}: inconsistent summary (negative counts, t_x > T, or repeat purchases "
            "with t_x = 0)"
        )
    # Work on times divided by their mean, so every parameter starts near 1.
    scale = float(np.mean(T)) if float(np.mean(T)) > 0 else 1.0
    (ux, ut, uT), weights = group_rows(x, t_x / scale, T / scale)
    likelihood = likelihood_type(ux, ut, uT, weights)
    # r and alpha growing together is the limit where every customer buys at the same rate,
    # a and b growing together the one where every customer has the same drop-out
    # probability, and a vanishing the one where nobody drops out: small or uniform books
    # end there, and the model's predictions are that limit's (the fit records which
    # parameters reached it).
    log_params, result = minimise(
        likelihood.objective,
        np.zeros(4),
        model,
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
        modified=modified,
    )


def bgnbd_log_likelihood(params: BgNbdParams, x: Any, t_x: Any, T: Any) -> float:
    """Total log-likelihood of the data under `params` (times in the params' unit)."""
    (ux, ut, uT), weights = group_rows(np.asarray(x), np.asarray(t_x), np.asarray(T))
    return BgNbdLikelihood(ux, ut, uT, weights).log_likelihood(
        params.r, params.alpha, params.a, params.b
    )


def _drop_out_odds_log(
    params: BgNbdParams, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """log of a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x) for x > 0 (-inf for x == 0); for
    the modified model a/(b+x) * ((alpha+T)/(alpha+t_x))^(r+x) for every x."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    shift = 0.0 if params.modified else 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        log_odds = (
            math.log(a)
            - np.log(np.maximum(b + x - shift, 1e-300))
            + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
        )
    if params.modified:
        return np.asarray(log_odds)
    return np.where(x > 0, log_odds, -np.inf)


def probability_alive(params: BgNbdParams, x: Any, t_x: Any, T: Any) -> np.ndarray:
    """P(the customer has not dropped out by T | x, t_x, T)."""
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    return np.exp(-np.logaddexp(0.0, _drop_out_odds_log(params, x, t_x, T)))


def conditional_expected_purchases(
    params: BgNbdParams, t: float, x: Any, t_x: Any, T: Any
) -> np.ndarray:
    """E[purchases in (T, T + t] | x, t_x, T] (FHL 2005, eq. 10; for the modified model
    Batislam et al. 2007, eq. 14)."""
    x, t_x, T = np.broadcast_arrays(
        *(np.atleast_1d(np.asarray(v, dtype=float)) for v in (x, t_x, T))
    )
    if t <= 0:
        return np.zeros(x.shape)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    if abs(a - 1.0) < 1e-8:
        a = 1.0 + 1e-8  # the closed form divides by a - 1; the limit is continuous
    z = t / (alpha + T + t)
    # After x repeat purchases p's posterior among the living is Beta(a, b + x), or
    # Beta(a, b + x + 1) when the first purchase was a chance to drop out too.
    b_alive = b + x + (1.0 if params.modified else 0.0)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        hyp = special.hyp2f1(r + x, b_alive, a + b_alive - 1.0, z)
        power = np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + t)))
        numerator = (a + b_alive - 1.0) / (a - 1.0) * (1.0 - power * hyp)
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
    """E[purchases in t | alive] by Gauss-Jacobi quadrature over p's posterior Beta(a, b+x)
    (Beta(a, b+x+1) for the modified model).

    Given p, an active customer's rate has posterior Gamma(r + x, alpha + T), so
    E[purchases in t | p] = (1 - (1 + p t / (alpha + T))^-(r + x)) / p. Used where the
    closed form's hypergeometric function is not finite or leaves its bounds.
    """
    x = np.atleast_1d(x).astype(float)
    T = np.broadcast_to(np.atleast_1d(T).astype(float), x.shape)
    out = np.empty(len(x))
    b = params.b + (1.0 if params.modified else 0.0)
    for value in np.unique(x):
        rows = x == value
        # p = (1 + s) / 2 for s with weight (1-s)^(b+x-1) (1+s)^(a-1): p ~ Beta(a, b + x).
        nodes, weights = _gauss_jacobi(QUADRATURE_NODES, b + value - 1.0, params.a - 1.0)
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
    # The modified model gives the first purchase its own chance to be the last.
    active = rng.random(n) >= drop if params.modified else np.ones(n, dtype=bool)
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
