"""The tables one training run loads, as of a date (`loading.load_training_data`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pandas as pd

from crmbot.analytics.source.frames import day_end


class ReleasedTable:
    """Stands in for a loaded table once no stage still to run reads it (freed, so a large
    book's later stages do not carry every order and ticket text). Any use of it is a
    stage reading a table it did not declare (`crmbot.training.pipeline.STAGE_READS`)."""

    def __init__(self, name: str, after: str) -> None:
        self._why = (
            f"the training data's {name!r} was released after the {after} stage: a stage "
            f"that reads it must list it in crmbot.training.pipeline.STAGE_READS"
        )

    def __getattr__(self, attribute: str) -> Any:
        raise RuntimeError(self._why)

    def __getitem__(self, key: Any) -> Any:
        raise RuntimeError(self._why)

    def __len__(self) -> int:
        raise RuntimeError(self._why)


@dataclass
class TrainingData:
    as_of: date
    customers: pd.DataFrame  # index customer_pk: signed_up_at
    orders: pd.DataFrame  # order_pk, customer_pk, ordered_at, amount
    lines: pd.DataFrame  # order_pk, product_pk (orders up to as_of)
    products: pd.DataFrame  # index product_pk: product_id, name, category, price, margin
    tickets: pd.DataFrame  # customer_pk, opened_at, closed_at, subject, body, csat
    feedback: pd.DataFrame  # customer_pk, submitted_at, nps, csat, comment
    referrals: pd.DataFrame  # referrer_pk, referred_pk, referred_at

    @property
    def cutoff(self) -> datetime:
        return day_end(self.as_of)

    def release(self, name: str, *, after: str) -> None:
        """Free the table `name` (see `ReleasedTable`)."""
        setattr(self, name, ReleasedTable(name, after))

    def as_of_earlier(self, as_of: date) -> TrainingData:
        """The same data seen from an earlier date (for time-split snapshots)."""
        if as_of > self.as_of:
            raise ValueError("a snapshot cannot look past the run's as_of")
        end = day_end(as_of)
        orders = self.orders[self.orders["ordered_at"] < end]
        tickets = self.tickets[self.tickets["opened_at"] < end].copy()
        # A ticket closed after the snapshot was still open on that day.
        tickets.loc[tickets["closed_at"] >= end, "closed_at"] = pd.NaT
        referred_at = self.referrals["referred_at"]
        # As in load_training_data: a customer who signed up later does not exist yet.
        signed = pd.to_datetime(self.customers["signed_up_at"])
        return TrainingData(
            as_of=as_of,
            customers=self.customers[signed.isna() | (signed < end)],
            orders=orders,
            lines=self.lines[self.lines["order_pk"].isin(orders["order_pk"])],
            products=self.products,
            tickets=tickets,
            feedback=self.feedback[self.feedback["submitted_at"] < end],
            referrals=self.referrals[referred_at.isna() | (referred_at < end)],
        )

    def for_customers(self, keep: pd.Index) -> TrainingData:
        """The same data restricted to these customers' own rows (for a sample of them)."""
        orders = self.orders[self.orders["customer_pk"].isin(keep)]
        referrals = self.referrals
        return TrainingData(
            as_of=self.as_of,
            customers=self.customers[self.customers.index.isin(keep)],
            orders=orders,
            lines=self.lines[self.lines["order_pk"].isin(orders["order_pk"])],
            products=self.products,
            tickets=self.tickets[self.tickets["customer_pk"].isin(keep)],
            feedback=self.feedback[self.feedback["customer_pk"].isin(keep)],
            referrals=referrals[
                referrals["referrer_pk"].isin(keep) | referrals["referred_pk"].isin(keep)
            ],
        )
