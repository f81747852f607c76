"""When BG/NBD's fit runs to its limit: which fallback is sound, measured on real books.

    python -m benchmarks.clv_dropout [--draws 200000]

Books (both ship with the `lifetimes` package, the dev extra; read as files):

* donations.csv: 11,104 first-time donors of 1995 and their repeat donations in
  1996-2001 (Fader, Hardie & Shang 2010), in years. BG/NBD's fit runs to a -> 0 there:
  nobody would ever stop giving.
* CDNOW_master.txt: 23,570 customers' purchases from January 1997 to June 1998, fitted
  as of 1997-09-30 and checked against the 39 weeks after, where BG/NBD's fit is sound:
  a fallback should do no harm there.

For each candidate — BG/NBD as fitted, the modified BG/NBD (MBG/NBD), and BG/NBD with a
dropout prior (p ~ Beta(a, b) fixed at the published CDNOW fit, 0.793 and 2.426; only
the purchase rate fitted) — it prints the log-likelihood (the same four or fewer
parameters), how well the repeat counts are reproduced (chi-square over 0..5 and 6+
repeat purchases, from simulated customers), and the share of lapsed repeat customers
(silent for more than three of their own intervals) given P(alive) of 99% or more.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from scipy import optimize

from benchmarks.real_books import cdnow_transactions, lifetimes_dataset
from crmbot.analytics.clv import (
    BgNbdLikelihood,
    BgNbdParams,
    conditional_expected_purchases,
    fit_bgnbd,
    fit_mbgnbd,
    fit_purchases,
    group_rows,
    probability_alive,
    simulate_bgnbd,
)

CDNOW_DROPOUT = (0.793, 2.426)  # Fader, Hardie & Lee 2005, a and b


def donations() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    frame = pd.read_csv(lifetimes_dataset("donations.csv"))
    weights = frame["weights"].to_numpy()
    return tuple(  # type: ignore[return-value]
        np.repeat(frame[column].to_numpy(float), weights)
        for column in ("frequency", "recency", "periods")
    )


def cdnow(as_of: str, until: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x, t_x, T) in days as of `as_of`, and each customer's repeat purchase days after it
    up to `until`."""
    raw = cdnow_transactions()
    days = raw[["customer_id", "ordered_at"]].drop_duplicates()
    days.columns = pd.Index(["customer", "date"])
    cut, end = pd.Timestamp(as_of), pd.Timestamp(until)
    before = days[days["date"] <= cut].groupby("customer")["date"]
    first, last, count = before.min(), before.max(), before.size()
    after = days[(days["date"] > cut) & (days["date"] <= end)].groupby("customer").size()
    x = (count - 1).to_numpy(float)
    t_x = (last - first).dt.days.to_numpy(float)
    T = (cut - first).dt.days.to_numpy(float)
    return x, t_x, T, after.reindex(count.index, fill_value=0).to_numpy(float)


def with_dropout_prior(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> BgNbdParams:
    """BG/NBD with p ~ Beta(a, b) fixed at a reference book's fit; r and alpha fitted."""
    a, b = CDNOW_DROPOUT
    scale = float(np.mean(T))
    (ux, ut, uT), weights = group_rows(x, t_x / scale, T / scale)
    likelihood = BgNbdLikelihood(ux, ut, uT, weights)

    def objective(log_rate: np.ndarray) -> float:
        r, alpha = np.exp(log_rate)
        return -likelihood.log_likelihood(r, alpha, a, b)

    result = optimize.minimize(objective, np.zeros(2), method="Nelder-Mead")
    r, alpha = np.exp(result.x)
    ll = -float(result.fun) - float(np.sum(x)) * np.log(scale)
    return BgNbdParams(r=float(r), alpha=float(alpha * scale), a=a, b=b, log_likelihood=ll)


def count_fit(params: BgNbdParams, x: np.ndarray, T: np.ndarray, draws: int) -> float:
    """Chi-square of the repeat counts 0..5 and 6+ against customers simulated from
    `params` with the same observation times."""
    rng = np.random.default_rng(7)
    simulated, _ = simulate_bgnbd(params, rng.choice(T, draws), rng)
    bins = np.arange(8) - 0.5
    bins[-1] = np.inf
    actual = np.histogram(x, bins)[0].astype(float)
    expected = np.histogram(simulated, bins)[0] / draws * len(x)
    return float(np.sum((actual - expected) ** 2 / np.maximum(expected, 1e-9)))


def lapsed_alive(params: BgNbdParams, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> str:
    lapsed = (x > 0) & (T - t_x > 3 * t_x / np.maximum(x, 1))
    alive = probability_alive(params, x[lapsed], t_x[lapsed], T[lapsed])
    return f"{int(np.sum(alive >= 0.99)):,} of {int(lapsed.sum()):,} lapsed at P(alive) >= 99%"


def _describe(name: str, params: BgNbdParams) -> str:
    limits = f", at_limit {list(params.at_limit)}" if params.at_limit else ""
    dropout = params.a / (params.a + params.b)
    return (
        f"  {name:<22} LL {params.log_likelihood:>12,.1f}  r={params.r:.4g} "
        f"alpha={params.alpha:.4g} a={params.a:.4g} b={params.b:.4g} "
        f"(mean dropout {dropout:.4f}{limits})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=200_000)
    args = parser.parse_args()

    x, t_x, T = donations()
    print(f"Donations: {len(x):,} donors, {int((x > 0).sum()):,} gave again (years)")
    chosen = fit_purchases(x, t_x, T, time_unit="years")
    candidates = {
        "BG/NBD": fit_bgnbd(x, t_x, T, time_unit="years"),
        "MBG/NBD": fit_mbgnbd(x, t_x, T, time_unit="years"),
        "BG/NBD, dropout prior": with_dropout_prior(x, t_x, T),
    }
    for name, params in candidates.items():
        print(_describe(name, params))
        print(
            f"  {'':<22} repeat counts chi-square {count_fit(params, x, T, args.draws):,.0f}; "
            f"{lapsed_alive(params, x, t_x, T)}"
        )
    print(f"  fit_purchases chooses {chosen.params.name}: {chosen.note}")

    x, t_x, T, after = cdnow("1997-09-30", "1998-06-30")
    horizon = float((pd.Timestamp("1998-06-30") - pd.Timestamp("1997-09-30")).days)
    print(
        f"CDNOW as of 1997-09-30: {len(x):,} customers; {horizon:.0f} days later "
        f"{int(after.sum()):,} repeat purchase days"
    )
    chosen = fit_purchases(x, t_x, T)
    at_limit = "yes" if chosen.bgnbd.dropout_at_limit else "no"
    print(
        f"  fit_purchases chooses {chosen.params.name} (BG/NBD's dropout at its limit: {at_limit})"
    )
    for name, params in (("BG/NBD", fit_bgnbd(x, t_x, T)), ("MBG/NBD", fit_mbgnbd(x, t_x, T))):
        predicted = conditional_expected_purchases(params, horizon, x, t_x, T)
        print(_describe(name, params))
        print(
            f"  {'':<22} holdout: predicted {predicted.sum():,.0f}, actual {after.sum():,.0f}; "
            f"MAE {np.mean(np.abs(predicted - after)):.3f} per customer"
        )


if __name__ == "__main__":
    main()
