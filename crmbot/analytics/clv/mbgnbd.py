"""The modified BG/NBD, and which purchase model a run uses when BG/NBD's fit fails.

MBG/NBD (Batislam, Denizel & Filiztekin 2007) is BG/NBD with one change: a customer may
drop out right after *any* purchase, the first included. BG/NBD lets a customer drop out
only after a repeat purchase, so every one-time buyer is alive by construction, and on a
book where repeat buyers seldom lapse within the window its fit runs to the limit where
nobody ever drops out (a -> 0: p ~ Beta(a, b) piles up at 0). Then P(alive) is 1 for
everyone and CLV assumes no one leaves. MBG/NBD can still learn dropout there, from the
customers who never came back after their first purchase.

Per customer the likelihood is

    Gamma(r+x) alpha^r / Gamma(r) * B(a, b+x+1) / B(a, b)
      * [(alpha+T)^-(r+x) + a/(b+x) * (alpha+t_x)^-(r+x)]

for every x, 0 included. Its predictions are `bgnbd`'s with `BgNbdParams.modified`.

`fit_purchases` is what a run calls: BG/NBD, unless its fit ran to the no-dropout limit
(`BgNbdParams.dropout_at_limit`);
then MBG/NBD, unless that ran there too; then BG/NBD's fit with `dropout_estimated` False,
so nothing downstream shows its P(alive) as an estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from crmbot.analytics.base import StageFailed
from crmbot.analytics.clv.bgnbd import (
    BgNbdParams,
    PurchaseLikelihood,
    fit_bgnbd,
    fit_purchase_model,
)


class MbgNbdLikelihood(PurchaseLikelihood):
    """Negative mean log-likelihood of MBG/NBD and its gradient, in log-parameters.

    `x`, `t_x`, `T` are distinct rows and `weights` the number of customers with each.
    """

    def __init__(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, weights: np.ndarray) -> None:
        x = np.asarray(x, dtype=float)
        self.total_weight = float(np.sum(weights))
        self.x_values, self.x_index = np.unique(x, return_inverse=True)
        self.weight_by_x = np.bincount(self.x_index, weights=weights, minlength=len(self.x_values))
        self.x = x
        self.t_x = np.asarray(t_x, dtype=float)
        self.T = np.asarray(T, dtype=float)
        self.w = np.asarray(weights, dtype=float)

    def _evaluate(self, params: np.ndarray, *, need_gradient: bool) -> tuple[float, np.ndarray]:
        r, alpha, a, b = (float(v) for v in params)
        xv, wx = self.x_values, self.weight_by_x
        # Terms in x alone: lnG(r+x) - lnG(r) + lnG(a+b) + lnG(b+x+1) - lnG(b) - lnG(a+b+x+1).
        x_terms = (
            special.gammaln(r + xv)
            - special.gammaln(r)
            + special.gammaln(a + b)
            + special.gammaln(b + xv + 1.0)
            - special.gammaln(b)
            - special.gammaln(a + b + xv + 1.0)
        )
        total = float(np.dot(wx, x_terms)) + self.total_weight * r * math.log(alpha)
        log_alpha_T = np.log(alpha + self.T)
        log_alpha_tx = np.log(alpha + self.t_x)
        r_x = r + self.x
        log_b_x = np.log(b + xv)
        u = -r_x * log_alpha_T
        v = math.log(a) - log_b_x[self.x_index] - r_x * log_alpha_tx
        ell = np.logaddexp(u, v)
        total += float(np.dot(self.w, ell))
        if not need_gradient:
            return total, np.zeros(4)

        omega = np.exp(v - ell)  # share of the "dropped out after the last purchase" term
        keep = 1.0 - omega
        g_r = float(np.dot(wx, special.digamma(r + xv) - special.digamma(r)))
        g_r += self.total_weight * math.log(alpha)
        g_r -= float(np.dot(self.w, keep * log_alpha_T + omega * log_alpha_tx))
        g_alpha = self.total_weight * r / alpha
        g_alpha -= float(
            np.dot(self.w, r_x * (keep / (alpha + self.T) + omega / (alpha + self.t_x)))
        )
        dig_ab = special.digamma(a + b)
        dig_abx = special.digamma(a + b + xv + 1.0)
        g_a = float(np.dot(wx, dig_ab - dig_abx)) + float(np.dot(self.w, omega)) / a
        g_b = float(
            np.dot(wx, dig_ab + special.digamma(b + xv + 1.0) - special.digamma(b) - dig_abx)
        )
        weighted_omega_by_x = np.bincount(self.x_index, weights=self.w * omega, minlength=len(xv))
        g_b -= float(np.sum(weighted_omega_by_x / (b + xv)))
        return total, np.array([g_r, g_alpha, g_a, g_b])


def fit_mbgnbd(
    x: np.ndarray, t_x: np.ndarray, T: np.ndarray, *, time_unit: str = "days"
) -> BgNbdParams:
    """Maximum-likelihood MBG/NBD parameters for per-customer (x, t_x, T)."""
    return fit_purchase_model(
        "MBG/NBD", MbgNbdLikelihood, x, t_x, T, time_unit=time_unit, modified=True
    )


@dataclass(frozen=True)
class PurchaseFit:
    """The purchase model a run predicts with, and how it was chosen."""

    params: BgNbdParams  # the model predictions come from (BG/NBD or MBG/NBD)
    bgnbd: BgNbdParams  # BG/NBD's own fit
    mbgnbd: BgNbdParams | None  # MBG/NBD's fit, when BG/NBD's ran to its limit
    # False when neither model could estimate dropout: P(alive) is then not an estimate
    # and CLV assumes customers keep buying.
    dropout_estimated: bool
    note: str | None = None  # why BG/NBD was not used, or why dropout is unknown

    @property
    def fell_back(self) -> bool:
        return self.params.modified


def fit_purchases(
    x: np.ndarray, t_x: np.ndarray, T: np.ndarray, *, time_unit: str = "days"
) -> PurchaseFit:
    """BG/NBD, or MBG/NBD where BG/NBD's fit runs to the limit where nobody drops out."""
    bgnbd = fit_bgnbd(x, t_x, T, time_unit=time_unit)
    if not bgnbd.dropout_at_limit:
        return PurchaseFit(params=bgnbd, bgnbd=bgnbd, mbgnbd=None, dropout_estimated=True)
    limit = f" ({', '.join(bgnbd.at_limit)})" if bgnbd.at_limit else ""
    try:
        mbgnbd: BgNbdParams | None = fit_mbgnbd(x, t_x, T, time_unit=time_unit)
    except StageFailed:
        mbgnbd = None
    if mbgnbd is not None and not mbgnbd.dropout_at_limit:
        return PurchaseFit(
            params=mbgnbd,
            bgnbd=bgnbd,
            mbgnbd=mbgnbd,
            dropout_estimated=True,
            note=(
                f"BG/NBD's fit ran to the limit where nobody ever drops out{limit}. "
                "MBG/NBD, which lets a customer drop out after the first purchase too, "
                "estimates dropout on this book and is used instead"
            ),
        )
    return PurchaseFit(
        params=bgnbd,
        bgnbd=bgnbd,
        mbgnbd=mbgnbd,
        dropout_estimated=False,
        note=(
            "dropout could not be estimated: BG/NBD's fit ran to the limit where nobody ever "
            f"drops out{limit}, and MBG/NBD's did too. P(alive) is not shown and CLV assumes "
            "customers keep buying; churn risk is the measure of who is leaving"
        ),
    )
