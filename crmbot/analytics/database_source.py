"""What training asks the database for when it does not read every order.

With CRMBOT_SUMMARY_IN_DATABASE on (the default on PostgreSQL and MariaDB), training loads
customers, products, tickets, feedback and referrals as usual but no orders and no order
lines: every stage that would have grouped them asks a `DatabaseSource` instead, and the
database does the grouping. What comes back:

* the per-customer summary as of any date (`sql_summary.sql_customer_summary`): features,
  the CLV holdout's calibration summary and each churn snapshot — one row per customer;
* who bought in a window (churn labels) and who ordered since a day (graph activity) — one
  row per such customer;
* each referral's spend since the referral day — one row per referral;
* each customer's first purchase of each product (what the graph's co-purchase ties and the
  rules read) — one row per (customer, product), not per order line.

Each answer equals what the pandas code computes from the loaded orders (the training tests
run both ways and compare every score).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, cast

import numpy as np
import pandas as pd
from sqlalchemy import Table, func, or_, select
from sqlalchemy.engine import Engine

from crmbot.analytics.base import day_end, read_frame
from crmbot.analytics.sql_summary import day_number, sql_customer_summary, sql_purchase_rfm
from crmbot.core.models import Order, OrderLine, Referral

ORDERS = cast(Table, Order.__table__).c  # type: ignore[attr-defined]
LINES = cast(Table, OrderLine.__table__).c  # type: ignore[attr-defined]
REFERRALS = cast(Table, Referral.__table__).c  # type: ignore[attr-defined]


class DatabaseSource:
    """The grouped answers of one training run as of `as_of` (nothing dated after it)."""

    def __init__(self, engine: Engine, as_of: date) -> None:
        self.engine = engine
        self.as_of = as_of

    # -- summaries -----------------------------------------------------------------------

    def summary(self, as_of: date, *, among: pd.Index | None = None) -> pd.DataFrame:
        """`features.customer_summary` as of `as_of` (see `sql_customer_summary`), of
        every customer or only those `among` (a sample)."""
        self._check(as_of)
        sample = None if among is None else among.to_numpy(dtype=np.int64)
        return sql_customer_summary(self.engine, as_of, among=sample)

    def purchase_rfm(self, as_of: date) -> pd.DataFrame:
        """The BG/NBD columns as of an earlier `as_of` for the run's customers (see
        `sql_purchase_rfm`): the CLV holdout's calibration."""
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
        """Customers with a purchase (amount >= 0) in the days (after, until], ascending;
        `after` None: every day up to `until`."""
        self._check(until)
        window = [ORDERS.ordered_at < day_end(until), ORDERS.amount >= 0]
        if after is not None:
            window.append(ORDERS.ordered_at >= day_end(after))
        statement = select(ORDERS.customer_pk).where(*window).distinct()
        return self._customer_index(statement).sort_values()

    def customers_ordering_since(self, since: datetime) -> pd.Index:
        """Customers with any order (refunds too) from `since` up to as_of."""
        statement = (
            select(ORDERS.customer_pk)
            .where(ORDERS.ordered_at >= since, ORDERS.ordered_at < self._end())
            .distinct()
        )
        return self._customer_index(statement)

    # -- referrals and products ----------------------------------------------------------

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

    def first_purchases(self) -> pd.DataFrame:
        """Each (customer, product) bought up to as_of and the first time: columns
        customer_pk, product_pk, first_at — what `graph.purchase_pairs` groups order
        lines into."""
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


__all__ = ["DatabaseSource"]
