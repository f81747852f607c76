"""The BG/NBD family by brute force, for tests that hold the closed forms against it: the
population's mixing density over (lambda, p) and a double integral over it."""

from __future__ import annotations

import math
from collections.abc import Callable

from scipy import integrate, special

from crmbot.analytics.clv import BgNbdParams


def mixing(params: BgNbdParams, lam: float, p: float) -> float:
    """The density of (lambda, p): gamma(r, alpha) times beta(a, b)."""
    gamma_pdf = (
        params.alpha**params.r
        * lam ** (params.r - 1)
        * math.exp(-params.alpha * lam)
        / special.gamma(params.r)
    )
    beta_pdf = p ** (params.a - 1) * (1 - p) ** (params.b - 1) / special.beta(params.a, params.b)
    return gamma_pdf * beta_pdf


def integrate_over_population(
    function: Callable[[float, float], float],
    scale: float = 1.0,
    *,
    epsabs: float = 1e-12,
    epsrel: float = 1e-8,
) -> float:
    """The integral of `function(lambda, p)` over lambda in (0, inf) and p in (0, 1)."""

    # lambda over (0, inf) mapped to (0, 1) through lambda = scale * s / (1 - s); `scale`
    # near the posterior mean of lambda keeps the integrand's peak away from the ends.
    def integrand(p: float, s: float) -> float:
        lam = scale * s / (1 - s)
        return function(lam, p) * scale / (1 - s) ** 2

    value, _error = integrate.dblquad(integrand, 0, 1, 0, 1, epsabs=epsabs, epsrel=epsrel)
    return float(value)
