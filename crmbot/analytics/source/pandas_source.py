"""The pandas source: the stages' questions answered from the orders and order lines the
run loaded (`TrainingData`), grouped by pandas and numpy.

What a run on SQLite uses (see `sql_summary.summary_in_database`), and what the stages get
from `RunContext.start` when no source is given (tests, benchmarks). Each answer equals the
database source's (`database_source.DatabaseSource`): the training tests run both ways and
compare every score.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

from crmbot.analytics.cache_keys import PURCHASE_DAYS
from crmbot.analytics.source.frames import day_end, no_integers, positions
from crmbot.analytics.source.pandas_summary import (
    purchase_day_summary,
    purchase_summary,
    summary_and_purchase_days,
)
from crmbot.analytics.source.training_data import TrainingData


class PandasSource:
    """The grouped answers of `data`: its customers, as of its `as_of`."""

    def __init__(self, data: TrainingData, cache: dict[str, Any] | None = None) -> None:
        self.data = data
        self.cache: dict[str, Any] = {} if cache is None else cache

    def narrowed(self, data: TrainingData) -> PandasSource:
        return PandasSource(data)

    def sample(self, data: TrainingData) -> tuple[TrainingData, PandasSource]:
        return data, PandasSource(data)

    # -- summaries -----------------------------------------------------------------------

    def summary(self) -> pd.DataFrame:
        summary, days = summary_and_purchase_days(self.data)
        # Kept for the CLV calibration summary: no second pass over the orders.
        self.cache[PURCHASE_DAYS] = days
        return summary

    def calibration_summary(self, as_of: date) -> pd.DataFrame:
        _check(self.data.as_of, as_of)
        customers = self.data.customers.index
        days = self.cache.get(PURCHASE_DAYS)
        if days is not None:
            return purchase_day_summary(days, customers, as_of, rfm_only=True)
        return purchase_summary(self.data.orders, customers, as_of)

    # -- counts and dates ----------------------------------------------------------------

    def order_count(self) -> int:
        return len(self.data.orders)

    def order_line_count(self) -> int:
        return len(self.data.lines)

    def first_purchase_at(self) -> datetime | None:
        orders = self.data.orders
        first = orders.loc[orders["amount"] >= 0, "ordered_at"].min()
        return None if pd.isna(first) else pd.Timestamp(first).to_pydatetime()

    # -- who bought when -----------------------------------------------------------------

    def buyers_between(self, after: date | None, until: date) -> pd.Index:
        _check(self.data.as_of, until)
        orders = self.data.orders
        ordered_at = orders["ordered_at"]
        window = (ordered_at < day_end(until)) & (orders["amount"] >= 0)
        if after is not None:
            window &= ordered_at >= day_end(after)
        bought = np.unique(orders.loc[window, "customer_pk"].to_numpy())
        return pd.Index(bought, name="customer_pk")

    def customers_ordering_since(self, since: datetime) -> pd.Index:
        orders = self.data.orders
        return pd.Index(orders.loc[orders["ordered_at"] >= since, "customer_pk"].unique())

    # -- spend ---------------------------------------------------------------------------

    def customer_spend(self, customers: pd.Index) -> np.ndarray:
        orders = self.data.orders
        if orders.empty:
            return np.zeros(len(customers))
        spend = orders.groupby("customer_pk")["amount"].sum()
        return spend.reindex(customers).fillna(0.0).to_numpy(dtype=float)

    def spend_after_referral(self, referrals: pd.DataFrame, customers: pd.Index) -> np.ndarray:
        return spend_after_referral(self.data, referrals, customers)

    # -- products ------------------------------------------------------------------------

    def purchase_pairs(self, customers: pd.Index) -> pd.DataFrame:
        return purchase_pairs(self.data, customers)


def _check(run_as_of: date, as_of: date) -> None:
    if as_of > run_as_of:
        raise ValueError("training cannot look past the run's as_of")


def spend_after_referral(
    data: TrainingData, referrals: pd.DataFrame, customers: pd.Index
) -> np.ndarray:
    """What each referred customer spent from the referral day on (all of it if undated)."""
    if referrals.empty or data.orders.empty:
        return np.zeros(len(referrals))
    orders = data.orders[["customer_pk", "ordered_at", "amount"]]
    orders = orders.assign(referred=positions(customers, orders["customer_pk"]))
    orders = orders[orders["referred"].isin(referrals["referred"])]
    pairs = referrals.reset_index(names="pair")[["pair", "referred", "at"]]
    joined = pairs.merge(orders[["referred", "ordered_at", "amount"]], on="referred")
    # A referral recorded with a date counts the purchases from that day on.
    since = joined["at"].dt.normalize()
    joined = joined[since.isna() | (joined["ordered_at"] >= since)]
    spent = joined.groupby("pair")["amount"].sum()
    return spent.reindex(range(len(referrals))).fillna(0.0).to_numpy(dtype=float)


def _rows_of_orders(order_pks: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Where each wanted order sits among `order_pks` (-1 when absent). Orders load sorted
    by id, where a binary search needs no hash table of every order."""
    if len(order_pks) == 0:
        return np.full(len(wanted), -1, dtype=np.int64)
    if not np.all(order_pks[1:] > order_pks[:-1]):
        return positions(pd.Index(order_pks), wanted)
    at = np.minimum(np.searchsorted(order_pks, wanted), len(order_pks) - 1)
    return np.where(order_pks[at] == wanted, at, -1)


def purchase_pairs(data: TrainingData, customers: pd.Index) -> pd.DataFrame:
    """One row per (customer, product) bought up to as_of: customer position, product_pk
    and the first time they bought it, grouped by customer."""
    columns = {"customer": no_integers(), "product_pk": no_integers()}
    if data.lines.empty or data.orders.empty:
        return pd.DataFrame({**columns, "first_at": np.zeros(0, dtype="datetime64[ns]")})
    orders = data.orders
    order_rows = _rows_of_orders(orders["order_pk"].to_numpy(), data.lines["order_pk"].to_numpy())
    found = order_rows >= 0
    order_rows = order_rows[found]
    # Each order's customer position once (7 million orders), then one lookup per line.
    order_customer = positions(customers, orders["customer_pk"].to_numpy())
    customer = order_customer[order_rows]
    bought = customer >= 0
    customer = customer[bought]
    when = orders["ordered_at"].to_numpy(dtype="datetime64[ns]")[order_rows[bought]]
    del order_rows, order_customer
    # Codes in product order, so the pairs come sorted by (customer, product_pk) as the
    # database source's do (`database_source.pairs_of_first_purchases`).
    codes, products = pd.factorize(data.lines["product_pk"].to_numpy()[found][bought], sort=True)
    # One integer per (customer, product), 32-bit where it fits; a stable sort groups them,
    # and the earliest purchase of each group is a reduceat (pandas' groupby took 4x as
    # long at 10M lines).
    fits = len(customers) * max(len(products), 1) < np.iinfo(np.int32).max
    width = np.int32 if fits else np.int64
    key = customer.astype(width) * max(len(products), 1) + codes.astype(width)
    del customer, codes
    order = np.argsort(key, kind="stable")
    key = key[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else no_integers()
    first_at = (
        np.minimum.reduceat(when[order].view(np.int64), starts) if len(key) else no_integers()
    )
    return pd.DataFrame(
        {
            "customer": (key[starts] // max(len(products), 1)).astype(np.int64),
            "product_pk": np.asarray(products, dtype=np.int64)[key[starts] % max(len(products), 1)],
            "first_at": first_at.view("datetime64[ns]"),
        }
    )
