"""What training asks the database for when it does not read every order.

With CRMBOT_SUMMARY_IN_DATABASE on (the default on PostgreSQL and MariaDB), training loads
customers, products, tickets, feedback and referrals as usual but no order lines and, besides
a churn sample's, no orders: every stage that would have grouped them asks a
`DatabaseSource` instead, and the database does the grouping. What comes back:

* the per-customer summary as of any date (`sql_summary.sql_customer_summary`): features
  and the CLV holdout's calibration summary — one row per customer;
* who bought in a window (the buyers churn samples from) and who ordered since a day
  (graph activity) — one row per such customer;
* each referral's spend since the referral day — one row per referral;
* each customer's first purchase of each product (what the graph's co-purchase ties and the
  rules read) — one row per (customer, product), not per order line.

A sample of customers (the churn model's snapshots: `sample`) gets its own orders, read by
customer, and pandas over them: its number of orders grows with the sample, not the book.

Each answer equals the pandas source's (`pandas_source.PandasSource`), computed from the
loaded orders: the training tests run both ways and compare every score.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from typing import Any, cast

import numpy as np
import pandas as pd
from sqlalchemy import Table, func, or_, select
from sqlalchemy.engine import Engine

from crmbot.analytics.cache_keys import SUMMARY
from crmbot.analytics.source.frames import day_end, positions
from crmbot.analytics.source.loading import no_orders, order_columns, read_frame
from crmbot.analytics.source.pandas_source import PandasSource
from crmbot.analytics.source.sql_summary import (
    MAX_LISTED_CUSTOMERS,
    among_condition,
    day_number,
    sql_customer_summary,
    sql_purchase_rfm,
)
from crmbot.analytics.source.training_data import TrainingData
from crmbot.core.models import Order, OrderLine, Referral

ORDERS = cast(Table, Order.__table__).c  # type: ignore[attr-defined]
LINES = cast(Table, OrderLine.__table__).c  # type: ignore[attr-defined]
REFERRALS = cast(Table, Referral.__table__).c  # type: ignore[attr-defined]


class DatabaseSource:
    """The grouped answers of one training run as of `as_of` (nothing dated after it), of
    every customer or only those `among` (a sample: see `narrowed`)."""

    def __init__(self, engine: Engine, as_of: date, *, among: pd.Index | None = None) -> None:
        self.engine = engine
        self.as_of = as_of
        self.among = among
        self.cache: dict[str, Any] = {}
        # Each customer's spend (purchases less refunds), kept from the summary: the graph
        # asks for it after the run has freed the summary itself.
        self._spend: pd.Series | None = None

    def narrowed(self, data: TrainingData) -> DatabaseSource:
        self._check(data.as_of)
        return DatabaseSource(self.engine, data.as_of, among=data.customers.index)

    def sample(self, data: TrainingData) -> tuple[TrainingData, PandasSource]:
        """The sample's orders up to as_of, read by customer (`orders_of`), and pandas over
        them: a churn snapshot of a sample took five grouping statements on the server
        (1.0-1.5 s each at 100k customers on PostgreSQL), where pandas over the sample's
        orders takes a tenth of that."""
        self._check(data.as_of)
        orders = orders_of(self.engine, self._end(), data.customers.index.to_numpy(np.int64))
        with_orders = replace(data, orders=orders)
        return with_orders, PandasSource(with_orders)

    # -- summaries -----------------------------------------------------------------------

    def summary(self) -> pd.DataFrame:
        """`sql_customer_summary` as of the source's day; asked once and kept in the
        source's cache (SUMMARY) until the run frees it after its last reader."""
        summary = self.cache.get(SUMMARY)
        if summary is None:
            if self.among is None:
                summary = sql_customer_summary(self.engine, self.as_of)
            else:
                sample = self.among.to_numpy(dtype=np.int64)
                summary = sql_customer_summary(self.engine, self.as_of, among=sample)
                summary = summary.reindex(self.among)
            self.cache[SUMMARY] = summary
            self._spend = summary["purchases_total"] - summary["refunds_total"]
        return summary

    def calibration_summary(self, as_of: date) -> pd.DataFrame:
        """`sql_purchase_rfm`: the BG/NBD columns as of the earlier `as_of`, without the
        window functions of the whole summary."""
        self._check(as_of)
        return sql_purchase_rfm(self.engine, as_of, customers_on=self.as_of)

    # -- counts and dates ----------------------------------------------------------------

    def order_count(self) -> int:
        return self._scalar(
            select(func.count()).select_from(Order).where(ORDERS.ordered_at < self._end())
        )

    def order_line_count(self) -> int:
        statement = (
            select(func.count())
            .select_from(OrderLine)
            .join(Order, ORDERS.id == LINES.order_pk)
            .where(ORDERS.ordered_at < self._end())
        )
        return self._scalar(statement)

    def first_purchase_at(self) -> datetime | None:
        """When the earliest purchase (amount >= 0) up to as_of was made."""
        statement = select(func.min(ORDERS.ordered_at)).where(
            ORDERS.ordered_at < self._end(), ORDERS.amount >= 0
        )
        with self.engine.connect() as connection:
            value = connection.execute(statement).scalar()
        return None if value is None else pd.Timestamp(value).to_pydatetime()

    # -- who bought when -----------------------------------------------------------------

    def buyers_between(self, after: date | None, until: date) -> pd.Index:
        """Of every customer, not only those `among`: a sample looks its own up in them."""
        self._check(until)
        window = [ORDERS.ordered_at < day_end(until), ORDERS.amount >= 0]
        if after is not None:
            window.append(ORDERS.ordered_at >= day_end(after))
        statement = select(ORDERS.customer_pk).where(*window).distinct()
        return self._customer_index(statement).sort_values()

    def customers_ordering_since(self, since: datetime) -> pd.Index:
        statement = (
            select(ORDERS.customer_pk)
            .where(ORDERS.ordered_at >= since, ORDERS.ordered_at < self._end())
            .distinct()
        )
        return self._customer_index(statement)

    # -- spend ---------------------------------------------------------------------------

    def customer_spend(self, customers: pd.Index) -> np.ndarray:
        """Purchases less refunds from the summary: the sum of every order's amount."""
        if self._spend is None:
            self.summary()
        assert self._spend is not None  # set with the summary
        return self._spend.reindex(customers).fillna(0.0).to_numpy(dtype=float)

    def spend_after_referral(self, referrals: pd.DataFrame, customers: pd.Index) -> np.ndarray:
        """The sums made by the database (`spend_since_referral`), looked up per referral."""
        if referrals.empty:
            return np.zeros(0)
        spent = self.spend_since_referral()
        # Undated referrals count everything; NaN keys would not match, a day number never -1e9.
        undated = -1e9
        asked = pd.DataFrame(
            {
                "referred_pk": customers.to_numpy(dtype=np.int64)[referrals["referred"].to_numpy()],
                "since_day": _day_numbers(referrals["at"]).fillna(undated).to_numpy(),
            }
        )
        spent["since_day"] = spent["since_day"].fillna(undated)
        joined = asked.merge(spent, on=["referred_pk", "since_day"], how="left")
        return joined["spend"].fillna(0.0).to_numpy(dtype=float)

    def spend_since_referral(self) -> pd.DataFrame:
        """Per referred customer and referral day (NaN: undated), what they spent from that
        day on up to as_of: columns referred_pk, since_day (days since 1970-01-01), spend."""
        end = self._end()
        referred = (
            select(
                REFERRALS.referred_pk.label("referred_pk"),
                day_number(REFERRALS.referred_at).label("since_day"),
            )
            .where(or_(REFERRALS.referred_at.is_(None), REFERRALS.referred_at < end))
            .distinct()
            .subquery("referred")
        )
        statement = (
            select(referred.c.referred_pk, referred.c.since_day, func.sum(ORDERS.amount))
            .join_from(referred, Order, ORDERS.customer_pk == referred.c.referred_pk)
            .where(
                ORDERS.ordered_at < end,
                or_(
                    referred.c.since_day.is_(None),
                    day_number(ORDERS.ordered_at) >= referred.c.since_day,
                ),
            )
            .group_by(referred.c.referred_pk, referred.c.since_day)
        )
        frame = read_frame(self.engine, statement, ["referred_pk", "since_day", "spend"])
        return frame.astype({"referred_pk": np.int64, "since_day": float, "spend": float})

    # -- products ------------------------------------------------------------------------

    def purchase_pairs(self, customers: pd.Index) -> pd.DataFrame:
        return pairs_of_first_purchases(self.first_purchases(), customers)

    def first_purchases(self) -> pd.DataFrame:
        """Each (customer, product) bought up to as_of and the first time: columns
        customer_pk, product_pk, first_at — what `pandas_source.purchase_pairs` groups
        order lines into."""
        statement = (
            select(ORDERS.customer_pk, LINES.product_pk, func.min(ORDERS.ordered_at))
            .join_from(OrderLine, Order, ORDERS.id == LINES.order_pk)
            .where(ORDERS.ordered_at < self._end())
            .group_by(ORDERS.customer_pk, LINES.product_pk)
        )
        frame = read_frame(self.engine, statement, ["customer_pk", "product_pk", "first_at"])
        return pd.DataFrame(
            {
                "customer_pk": frame["customer_pk"].to_numpy(dtype=np.int64),
                "product_pk": frame["product_pk"].to_numpy(dtype=np.int64),
                "first_at": pd.to_datetime(frame["first_at"], format="ISO8601").to_numpy(
                    dtype="datetime64[ns]"
                ),
            }
        )

    # -- helpers -------------------------------------------------------------------------

    def _end(self) -> datetime:
        return day_end(self.as_of)

    def _check(self, as_of: date) -> None:
        if as_of > self.as_of:
            raise ValueError("training cannot look past the run's as_of")

    def _scalar(self, statement: Any) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(statement).scalar() or 0)

    def _customer_index(self, statement: Any) -> pd.Index:
        frame = read_frame(self.engine, statement, ["customer_pk"])
        return pd.Index(frame["customer_pk"].to_numpy(dtype=np.int64), name="customer_pk")


def orders_of(engine: Engine, end: datetime, customers: np.ndarray) -> pd.DataFrame:
    """These customers' orders before `end`, as `load_training_data` loads every order
    (the same columns, types and order: by order id); each customer a lookup in the
    (customer, ordered_at) index. PostgreSQL takes the customers as one array parameter,
    other databases MAX_LISTED_CUSTOMERS at a time."""
    wanted = np.unique(customers)
    batch_size = len(wanted) if engine.dialect.name == "postgresql" else MAX_LISTED_CUSTOMERS
    columns = ["order_pk", "customer_pk", "ordered_at", "amount"]
    parts = []
    for start in range(0, len(wanted), max(batch_size, 1)):
        batch = among_condition(engine, wanted[start : start + batch_size])
        statement = select(ORDERS.id, ORDERS.customer_pk, ORDERS.ordered_at, ORDERS.amount).where(
            ORDERS.ordered_at < end, batch(ORDERS.customer_pk)
        )
        parts.append(read_frame(engine, statement, columns))
    if not parts:
        return no_orders()
    orders = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    orders = orders.sort_values("order_pk", kind="stable", ignore_index=True)
    return order_columns(orders)


def pairs_of_first_purchases(first: pd.DataFrame, customers: pd.Index) -> pd.DataFrame:
    """`pandas_source.purchase_pairs` from `DatabaseSource.first_purchases`."""
    customer = positions(customers, first["customer_pk"].to_numpy())
    known = customer >= 0
    product = first["product_pk"].to_numpy(dtype=np.int64)[known]
    customer = customer[known]
    order = np.lexsort((product, customer))
    return pd.DataFrame(
        {
            "customer": customer[order],
            "product_pk": product[order],
            "first_at": first["first_at"].to_numpy(dtype="datetime64[ns]")[known][order],
        }
    )


def _day_numbers(at: pd.Series) -> pd.Series:
    """Days since 1970-01-01 of each timestamp's date (NaN when undated)."""
    days = pd.to_datetime(at).dt.normalize().to_numpy(dtype="datetime64[D]")
    numbers = days.astype(np.int64).astype(float)
    numbers[np.isnat(days)] = np.nan
    return pd.Series(numbers)
