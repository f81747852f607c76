"""The referral network: a few planted hubs, sparse random referrals, and one small cycle.

Hubs are early, loyal, happy customers who each brought in a crowd (15-40 at 3,000
customers, fewer in a smaller company), mostly from their own region. Every other referral
is sparse and random. A referred customer signs up on or after the referral date and after
their referrer. One 3-cycle (A -> B -> C -> A) is planted for robustness: its closing edge
is a re-referral of A, an existing customer, and is the only edge that breaks the date
order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crmbot.demo.lifecycle import Lifecycles

HUB_COUNT = 5
HUB_REFERRALS = (15, 40)
HUB_SCALE_CUSTOMERS = 1500  # below this many customers, hubs refer proportionally fewer
RANDOM_REFERRED_SHARE = 0.05
SAME_REGION_WEIGHT = 8.0


@dataclass
class Referrals:
    referrer: np.ndarray  # customer position
    referred: np.ndarray
    referred_t: np.ndarray
    hubs: np.ndarray  # customer positions of the planted hubs
    cycle: list[int]  # customer positions A, B, C of the planted cycle (empty if too small)


def make_referrals(
    rng: np.random.Generator,
    life: Lifecycles,
    signup_t: np.ndarray,
    region: np.ndarray,
    period_days: float,
) -> Referrals:
    count = len(signup_t)
    referred_by = np.full(count, -1, dtype=np.int64)
    hubs = _pick_hubs(rng, life, signup_t, period_days)
    scale = min(1.0, count / HUB_SCALE_CUSTOMERS)
    is_hub = np.zeros(count, dtype=bool)
    is_hub[hubs] = True
    for hub in hubs:
        wanted = max(4, int(round(rng.integers(HUB_REFERRALS[0], HUB_REFERRALS[1] + 1) * scale)))
        later = np.flatnonzero((signup_t > signup_t[hub] + 1.0) & (referred_by < 0) & ~is_hub)
        if len(later) == 0:
            continue
        weight = np.where(region[later] == region[hub], SAME_REGION_WEIGHT, 1.0)
        chosen = rng.choice(
            later, size=min(wanted, len(later)), replace=False, p=weight / weight.sum()
        )
        referred_by[chosen] = hub

    # Sparse referrals: customers are in sign-up order, so any earlier position is a
    # customer who already existed.
    candidates = np.flatnonzero((referred_by < 0) & ~is_hub)
    candidates = candidates[candidates > 0]
    picked = candidates[rng.random(len(candidates)) < RANDOM_REFERRED_SHARE]
    referred_by[picked] = np.floor(rng.random(len(picked)) * picked).astype(np.int64)

    referred = np.flatnonzero(referred_by >= 0)
    referrer = referred_by[referred]
    # Referral day: up to a week before the sign-up, never before the referrer existed.
    referred_t = np.maximum(
        np.floor(signup_t[referred]) - rng.uniform(0.0, 7.0, size=len(referred)),
        signup_t[referrer],
    )
    referrer_list, referred_list, t_list = [referrer], [referred], [referred_t]

    cycle = _cycle(rng, referred_by, signup_t, is_hub, period_days)
    if cycle:
        a, b, c = cycle
        closing_t = signup_t[c] + rng.uniform(5.0, 30.0)
        referrer_list.append(np.array([a, b, c]))
        referred_list.append(np.array([b, c, a]))
        t_list.append(np.array([signup_t[b], signup_t[c], closing_t]))
    return Referrals(
        referrer=np.concatenate(referrer_list),
        referred=np.concatenate(referred_list),
        referred_t=np.concatenate(t_list),
        hubs=hubs,
        cycle=cycle,
    )


def _pick_hubs(
    rng: np.random.Generator, life: Lifecycles, signup_t: np.ndarray, period_days: float
) -> np.ndarray:
    """Early customers still buying at the end, happier than most."""
    early = signup_t < np.quantile(signup_t, 0.3)
    loyal = (life.first_t < period_days) & (life.churn_t > period_days)
    happy = life.satisfaction > np.median(life.satisfaction)
    pool = np.flatnonzero(early & loyal & happy)
    for fallback in (early & loyal, early):  # a tiny company may lack happy loyal ones
        if len(pool) >= HUB_COUNT:
            break
        pool = np.flatnonzero(fallback)
    return np.sort(rng.choice(pool, size=min(HUB_COUNT, len(pool)), replace=False))


def _cycle(
    rng: np.random.Generator,
    referred_by: np.ndarray,
    signup_t: np.ndarray,
    is_hub: np.ndarray,
    period_days: float,
) -> list[int]:
    # Customers in no referral yet (so the cycle is a component of its own), signed up
    # early enough for the closing re-referral to fall inside the period.
    in_referrals = np.isin(np.arange(len(referred_by)), referred_by[referred_by >= 0])
    free = np.flatnonzero(
        (referred_by < 0) & ~is_hub & ~in_referrals & (signup_t < period_days - 40.0)
    )
    if len(free) < 3:
        return []
    a, b, c = (int(i) for i in np.sort(rng.choice(free, size=3, replace=False)))
    if not (signup_t[a] < signup_t[b] < signup_t[c]):
        return []
    return [a, b, c]
