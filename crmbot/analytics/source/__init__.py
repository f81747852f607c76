"""Where a training run's orders are, and the one interface the stages ask them through.

A run loads customers, products, tickets, feedback and referrals into a `TrainingData`. Its
orders and order lines are either loaded as well and grouped by pandas (`PandasSource`, the
way on SQLite) or left in the database, which groups them in SQL (`DatabaseSource`, the way
on PostgreSQL and MariaDB: CRMBOT_SUMMARY_IN_DATABASE, `sql_summary.summary_in_database`).
A stage asks `ctx.source` (a `TrainingSource`) for what it would have grouped the orders
into and never needs to know which of the two answers; both give the same numbers (the
training tests run both ways and compare every score).

The modules, lowest first (none imports one above it):

* `frames`, `trends`: small shared helpers (day numbers, positions; the summary's trend
  rates);
* `training_data`: the loaded tables; `loading`: reading them (and any statement) from the
  database;
* `pandas_summary`, `sql_summary`: the per-customer summary, by pandas or by the database;
* `pandas_source`, `database_source`: the two `TrainingSource`s;
* this package: the interface, `open_source` and the counts a run records.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Protocol

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from crmbot.analytics.source.database_source import DatabaseSource
from crmbot.analytics.source.loading import load_training_data
from crmbot.analytics.source.pandas_source import PandasSource
from crmbot.analytics.source.sql_summary import summary_in_database
from crmbot.analytics.source.training_data import TrainingData
from crmbot.core.config import Settings


class TrainingSource(Protocol):
    """What the stages ask of a run's orders and order lines, as of the source's day and
    about its customers (the run's, or a sample's: `narrowed`). Nothing dated after the
    run's `as_of` is ever read: asking about a later day raises ValueError."""

    # What the source worked out once and reuses for a later question (the pandas source:
    # the purchase days of its summary, for the CLV calibration summary). A run's source
    # shares the run's `RunContext.cache`, so the pipeline frees it with the rest.
    cache: dict[str, Any]

    def narrowed(self, data: TrainingData) -> TrainingSource:
        """The same source for a narrower view of the run's data: `data` is the run's
        `TrainingData` restricted to a sample of customers (`for_customers`), seen from an
        earlier day (`as_of_earlier`), or both. Its answers are about `data`'s customers as
        of `data.as_of`."""
        ...

    def sample(self, data: TrainingData) -> tuple[TrainingData, TrainingSource]:
        """A sample's own data and the source its snapshots ask (the churn model's: seen
        from earlier days, summarised again at each). `data` is the run's `TrainingData`
        restricted to the sample (`for_customers`). The pandas source has the sample's
        orders already; the database source reads them (the sample's orders only: their
        number grows with the sample's size, not the book's) and answers with pandas over
        them, so a snapshot costs no round of grouping statements."""
        ...

    # -- summaries -----------------------------------------------------------------------

    def summary(self) -> pd.DataFrame:
        """The per-customer summary (`pandas_summary`): one row per customer, index
        customer_pk, the columns and definitions of `pandas_summary.customer_summary`."""
        ...

    def calibration_summary(self, as_of: date) -> pd.DataFrame:
        """The BG/NBD columns (frequency, repeat_purchases, t_x_days, age_days) as of an
        earlier `as_of` for the source's customers: the CLV holdout's calibration."""
        ...

    # -- counts and dates ----------------------------------------------------------------

    def order_count(self) -> int:
        """Orders (refunds too) up to as_of."""
        ...

    def order_line_count(self) -> int:
        """Lines of those orders."""
        ...

    def first_purchase_at(self) -> datetime | None:
        """When the earliest purchase (amount >= 0) up to as_of was made (None: none)."""
        ...

    # -- who bought when -----------------------------------------------------------------

    def buyers_between(self, after: date | None, until: date) -> pd.Index:
        """Customers with a purchase (amount >= 0) in the days (after, until], ascending;
        `after` None: every day up to `until`. Every such customer of the source is in it
        (a sample's database source answers for everyone: look the sample up in it)."""
        ...

    def customers_ordering_since(self, since: datetime) -> pd.Index:
        """Customers with any order (refunds too) from `since` up to as_of."""
        ...

    # -- spend ---------------------------------------------------------------------------

    def customer_spend(self, customers: pd.Index) -> np.ndarray:
        """Each customer's spend up to as_of (every order's amount: purchases less refunds),
        in the order of `customers`; 0 for none."""
        ...

    def spend_after_referral(self, referrals: pd.DataFrame, customers: pd.Index) -> np.ndarray:
        """What each referred customer spent from the referral day on, up to as_of (all of
        it when undated), one value per row of `referrals`: columns referred (a position in
        `customers`) and at (the referral time, NaT when undated)."""
        ...

    # -- products ------------------------------------------------------------------------

    def purchase_pairs(self, customers: pd.Index) -> pd.DataFrame:
        """One row per (customer, product) bought up to as_of: customer (a position in
        `customers`), product_pk and the first time they bought it (first_at), sorted by
        customer, then product_pk. Orders of customers not in `customers` are left out."""
        ...


def open_source(
    engine: Engine, settings: Settings, as_of: date
) -> tuple[TrainingData, TrainingSource]:
    """The run's loaded tables as of `as_of` and the source its stages ask: the database
    when it groups the orders (CRMBOT_SUMMARY_IN_DATABASE; then no order line is loaded,
    and of the orders only a churn sample's, by `TrainingSource.sample`), else pandas over
    the loaded orders."""
    if summary_in_database(engine, settings.summary_in_database):
        return load_training_data(engine, as_of, with_orders=False), DatabaseSource(engine, as_of)
    data = load_training_data(engine, as_of)
    return data, PandasSource(data)


def table_row_counts(data: TrainingData, source: TrainingSource) -> dict[str, int]:
    """The rows of each table as of the run's day, as the run records them."""
    return {
        "customers": len(data.customers),
        "orders": source.order_count(),
        "order_lines": source.order_line_count(),
        "products": len(data.products),
        "tickets": len(data.tickets),
        "feedback": len(data.feedback),
        "referrals": len(data.referrals),
    }


__all__ = [
    "DatabaseSource",
    "PandasSource",
    "TrainingSource",
    "open_source",
    "table_row_counts",
]
