"""Each customer's hidden life story: how often they buy, how much, how happy they are,
and whether (and when) they stop buying.

Purchases follow a BG/NBD-like process: a purchase rate per customer from a gamma
distribution and a dropout propensity from a beta. Its continuous-time form is used here:
after the first purchase a customer stays alive for an exponential time whose rate is
purchase rate x dropout probability, so the expected number of purchases before dropping
out is 1/p, as in BG/NBD. Spend per order is Gamma-Gamma: a per-customer scale from a gamma.

Churn is made predictable, as it is in real books of business: for most churners the
months before they stop show fewer and smaller orders, more (and angrier, and unresolved)
support tickets and poor survey scores. A minority ("silent churners") just stop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Purchase rate per day ~ Gamma(r, 1/alpha): on average one purchase every ~40 days.
RATE_SHAPE_R = 2.0
RATE_ALPHA = 60.0
# Dropout probability after a purchase ~ Beta(a, b): mean ~0.11, i.e. ~9 purchases.
DROPOUT_A = 0.7
DROPOUT_B = 8.0
# Gamma-Gamma spend: per-order spend ~ Gamma(p, scale=1/nu), nu ~ Gamma(q, scale=1/gamma).
SPEND_P = 3.0
SPEND_Q = 2.6
SPEND_GAMMA = 120.0

PROSPECT_SHARE = 0.12  # sign up, never buy
SILENT_CHURN_SHARE = 0.15  # churners without warning signs
DECLINE_DAYS = (90.0, 180.0)  # how long before stopping the decline starts
SATISFACTION_MEAN = 0.35
# Unhappy customers drop out sooner: dropout probability x exp(-k * satisfaction).
SATISFACTION_DROPOUT_EFFECT = 0.5
DECLINE_SATISFACTION_PENALTY = -1.3  # and they are much less happy while they decline


@dataclass
class Lifecycles:
    """Per customer (aligned with `People`); times are days since the period start."""

    first_t: np.ndarray  # first purchase; inf for prospects
    churn_t: np.ndarray  # stops buying at this time (may be after the period); inf: prospects
    decline_t: np.ndarray  # decline begins (== churn_t for silent churners)
    rate: np.ndarray  # purchases per day while alive
    spend_nu: np.ndarray  # Gamma-Gamma scale: mean spend per order = SPEND_P / spend_nu
    satisfaction: np.ndarray  # latent, ~N(0.35, 1)
    shows_signals: np.ndarray  # bool: when this customer stops, the decline is visible

    def buyer(self, period_days: float) -> np.ndarray:
        return self.first_t < period_days

    def churned_by(self, t: float) -> np.ndarray:
        return self.churn_t <= t

    def decline_factor(self, customer: np.ndarray, t: np.ndarray, floor: float) -> np.ndarray:
        """1 before the decline, falling linearly to `floor` at the churn time."""
        start = self.decline_t[customer]
        end = self.churn_t[customer]
        span = np.maximum(end - start, 1e-9)
        progress = np.clip((t - start) / span, 0.0, 1.0)
        declining = self.shows_signals[customer] & (t >= start)
        return np.where(declining, 1.0 - (1.0 - floor) * progress, 1.0)

    def satisfaction_at(self, customer: np.ndarray, t: np.ndarray) -> np.ndarray:
        declining = self.shows_signals[customer] & (t >= self.decline_t[customer])
        return self.satisfaction[customer] + np.where(declining, DECLINE_SATISFACTION_PENALTY, 0.0)


def make_lifecycles(rng: np.random.Generator, signup_t: np.ndarray) -> Lifecycles:
    count = len(signup_t)
    prospect = rng.random(count) < PROSPECT_SHARE
    first_t = signup_t + rng.exponential(8.0, size=count)
    first_t[prospect] = np.inf

    satisfaction = rng.normal(SATISFACTION_MEAN, 1.0, size=count)
    rate = rng.gamma(RATE_SHAPE_R, 1.0 / RATE_ALPHA, size=count)
    dropout = rng.beta(DROPOUT_A, DROPOUT_B, size=count)
    dropout = np.minimum(dropout * np.exp(-SATISFACTION_DROPOUT_EFFECT * satisfaction), 0.95)
    lifetime = rng.exponential(1.0 / (rate * dropout))
    churn_t = first_t + lifetime

    spend_nu = rng.gamma(SPEND_Q, 1.0 / SPEND_GAMMA, size=count)

    shows_signals = np.isfinite(churn_t) & (rng.random(count) >= SILENT_CHURN_SHARE)
    decline_len = rng.uniform(*DECLINE_DAYS, size=count)
    decline_t = np.where(shows_signals, np.maximum(first_t, churn_t - decline_len), churn_t)
    return Lifecycles(
        first_t=first_t,
        churn_t=churn_t,
        decline_t=decline_t,
        rate=rate,
        spend_nu=spend_nu,
        satisfaction=satisfaction,
        shows_signals=shows_signals,
    )
