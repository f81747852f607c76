"""The per-customer summary every model starts from, computed by pandas over the loaded orders.

`customer_summary(data)` gives one row per customer (index `customer_pk`, every customer in
`data.customers`, with or without orders). Definitions, all in days and as of
`data.as_of` (the end of that day):

Purchases
* A *purchase* is an order with amount >= 0; an order with a negative amount is a refund.
  Refunds never count as purchases and never add to spend.
* `frequency`: distinct purchase days (0 for a customer without purchases).
  `repeat_purchases` = frequency - 1 (BG/NBD's x).
* `recency_days`: days from the last purchase day to as_of (RFM recency; NaN without one).
* `t_x_days`: days from the first to the last purchase day; `age_days`: days from the first
  purchase day to as_of (BG/NBD's t_x and T).
* `monetary`: mean spend per *repeat* purchase day (days after the first), as Gamma-Gamma
  expects; 0 for a customer with one purchase day. `day_spend_mean`: mean spend over every
  purchase day. `purchases_total`: sum of purchases; `refunds_total`: sum of refunds
  (positive); `total_spend`: purchases - refunds, never below 0.
* `orders_count`: purchase orders; `refunds_count`: refund orders.
* `tenure_days`: days since the earlier of sign-up and first order (NaN when neither).
* Gaps between consecutive purchase days: `gap_mean_days`, `gap_std_days` (population),
  `gap_last_days`; `overdue_ratio` = recency / mean gap (> 1: later than usual).
* Trends, last 90 days (as_of-89 .. as_of) against the time before: purchase days and spend
  per 30 days in each window (`purchase_rate_last_90d`, `purchase_rate_before_90d`,
  `spend_rate_last_90d`, `spend_rate_before_90d`) and their differences
  (`purchase_rate_trend`, `spend_rate_trend`); the "before" window runs from the first
  purchase day to as_of-90 and its rates are NaN when that window is empty.

Support and feedback
* `tickets_count`, `tickets_open` (not closed by as_of), `tickets_last_90d`,
  `ticket_csat_mean`, `ticket_resolution_hours_mean`, `days_since_last_ticket`.
* `feedback_count`, `nps_latest`, `nps_mean`, `feedback_csat_latest`, `feedback_csat_mean`,
  `days_since_last_feedback`.

Everything is computed with grouped array operations (no per-customer Python loop), so a
million customers with ten million orders summarise in seconds. The database computes the
same frame without loading the orders (`sql_summary.sql_customer_summary`); the sources
(`pandas_source`, `database_source`) give the stages one or the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from crmbot.analytics.source.frames import (
    day_end,
    day_numbers,
    days_since_epoch,
    midnights,
    positions,
)
from crmbot.analytics.source.training_data import TrainingData
from crmbot.analytics.source.trends import TREND_WINDOW_DAYS, add_rate_trends


@dataclass(frozen=True)
class PurchaseDays:
    """One entry per (customer, purchase day), sorted by customer then day."""

    position: np.ndarray  # the customer's position in the summary index
    day: np.ndarray  # days since 1970-01-01
    spend: np.ndarray  # the day's purchases

    def up_to(self, day: int) -> PurchaseDays:
        keep = self.day <= day
        return PurchaseDays(self.position[keep], self.day[keep], self.spend[keep])


def customer_summary(data: TrainingData) -> pd.DataFrame:
    """One row per customer of `data` (index customer_pk); see the module docstring."""
    return summary_and_purchase_days(data)[0]


def summary_and_purchase_days(data: TrainingData) -> tuple[pd.DataFrame, PurchaseDays]:
    """`customer_summary`, and the purchase days it was made from (for summaries as of an
    earlier day without a second pass over the orders: `purchase_day_summary`)."""
    index = pd.Index(data.customers.index.to_numpy(), name="customer_pk")
    summary = pd.DataFrame(index=index)
    as_of_day = days_since_epoch(data.as_of)
    days = _purchase_features(summary, data.orders, as_of_day)
    _tenure(summary, data, as_of_day)
    _ticket_features(summary, data.tickets, as_of_day)
    _feedback_features(summary, data.feedback, as_of_day)
    return summary, days


def purchase_summary(orders: pd.DataFrame, customers: pd.Index, as_of: date) -> pd.DataFrame:
    """Only the purchase columns of `customer_summary`, from orders dated up to `as_of`.

    For refits on earlier dates (the CLV holdout) without re-reading tickets and surveys.
    """
    summary = pd.DataFrame(index=pd.Index(customers.to_numpy(), name="customer_pk"))
    earlier = orders[orders["ordered_at"] < day_end(as_of)]
    _purchase_features(summary, earlier, days_since_epoch(as_of))
    return summary


def purchase_day_summary(
    days: PurchaseDays, customers: pd.Index, as_of: date, *, rfm_only: bool = False
) -> pd.DataFrame:
    """The purchase-day columns (frequency, repeat_purchases, recency_days, t_x_days,
    age_days, monetary, day_spend_mean, purchases_total; with `rfm_only=False` also gaps
    and trends) as of an earlier `as_of`, from the run's purchase days
    (`summary_and_purchase_days`): no second pass over the orders."""
    as_of_day = days_since_epoch(as_of)
    summary = pd.DataFrame(index=pd.Index(customers.to_numpy(), name="customer_pk"))
    _day_features(summary, days.up_to(as_of_day), as_of_day, rfm_only=rfm_only)
    return summary


def _purchase_features(summary: pd.DataFrame, orders: pd.DataFrame, as_of_day: int) -> PurchaseDays:
    n = len(summary)
    amounts = orders["amount"].to_numpy(dtype=float)
    where = positions(summary.index, orders["customer_pk"].to_numpy())
    known = where >= 0
    is_purchase = (amounts >= 0) & known
    is_refund = (amounts < 0) & known

    # One entry per (customer, purchase day), sorted by customer then day, with the day's
    # spend: a combined integer key sorted once (far faster than a two-key groupby).
    buyer = where[is_purchase].astype(np.int64)
    day = day_numbers(orders["ordered_at"])[is_purchase]
    spend = amounts[is_purchase]
    first_known_day = int(day.min()) if len(day) else 0
    span = int(day.max()) - first_known_day + 1 if len(day) else 1
    keys, which = np.unique(buyer * span + (day - first_known_day), return_inverse=True)
    days = PurchaseDays(
        position=keys // span,
        day=keys % span + first_known_day,
        spend=np.bincount(which, weights=spend, minlength=len(keys)),
    )
    _day_features(summary, days, as_of_day)

    refunds_total = -np.bincount(where[is_refund], weights=amounts[is_refund], minlength=n)
    summary["refunds_total"] = refunds_total
    summary["refunds_count"] = np.bincount(where[is_refund], minlength=n).astype(np.int64)
    summary["total_spend"] = np.maximum(summary["purchases_total"] - refunds_total, 0.0)
    summary["orders_count"] = np.bincount(buyer, minlength=n).astype(np.int64)
    ordered_at = orders["ordered_at"].to_numpy(dtype="datetime64[ns]")[is_purchase]
    latest = pd.Series(ordered_at).groupby(buyer).max()
    last_order = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
    last_order[latest.index.to_numpy()] = latest.to_numpy()
    summary["last_order_at"] = last_order
    return days


def _day_features(
    summary: pd.DataFrame, days: PurchaseDays, as_of_day: int, *, rfm_only: bool = False
) -> None:
    """Every column that depends on purchase days alone (`rfm_only`: up to monetary)."""
    n = len(summary)
    daily_buyer, daily_day, daily_spend = days.position, days.day, days.spend
    # Each customer's first and last entry (entries are sorted by customer, then day).
    starts = (
        np.flatnonzero(np.r_[True, daily_buyer[1:] != daily_buyer[:-1]])
        if len(daily_buyer)
        else (np.zeros(0, dtype=np.int64))
    )
    ends = np.r_[starts[1:] - 1, len(daily_buyer) - 1] if len(daily_buyer) else starts
    owners = daily_buyer[starts]

    frequency = np.bincount(daily_buyer, minlength=n).astype(np.int64)
    first = np.full(n, np.nan)
    last = np.full(n, np.nan)
    first[owners] = daily_day[starts]
    last[owners] = daily_day[ends]
    total = np.bincount(daily_buyer, weights=daily_spend, minlength=n)
    first_day_spend = np.zeros(n)
    first_day_spend[owners] = daily_spend[starts]
    repeats = np.maximum(frequency - 1, 0)

    summary["frequency"] = frequency
    summary["repeat_purchases"] = repeats
    summary["recency_days"] = as_of_day - last
    summary["t_x_days"] = last - first
    summary["age_days"] = as_of_day - first
    summary["first_purchase_day"] = midnights(pd.Series(first, index=summary.index))
    summary["last_purchase_day"] = midnights(pd.Series(last, index=summary.index))
    with np.errstate(divide="ignore", invalid="ignore"):
        summary["monetary"] = np.where(repeats > 0, (total - first_day_spend) / repeats, 0.0)
        summary["day_spend_mean"] = np.where(frequency > 0, total / frequency, 0.0)
    summary["purchases_total"] = total

    if rfm_only:
        return
    _gap_features(summary, days, owners, ends, frequency)
    _trend_features(summary, days, first, as_of_day)


def _gap_features(
    summary: pd.DataFrame,
    days: PurchaseDays,
    owners: np.ndarray,
    ends: np.ndarray,
    frequency: np.ndarray,
) -> None:
    """Gaps between consecutive purchase days of the same customer; `owners` and `ends`:
    each buyer's position and last entry in `days`."""
    n = len(summary)
    daily_buyer, daily_day = days.position, days.day
    repeats = np.maximum(frequency - 1, 0)
    same = daily_buyer[1:] == daily_buyer[:-1]
    gap = np.diff(daily_day)[same].astype(float)
    gap_owner = daily_buyer[1:][same]
    with np.errstate(divide="ignore", invalid="ignore"):
        gap_mean = np.bincount(gap_owner, weights=gap, minlength=n) / repeats
        gap_square = np.bincount(gap_owner, weights=gap * gap, minlength=n) / repeats
        gap_std = np.sqrt(np.maximum(gap_square - gap_mean**2, 0.0))
    gap_mean[repeats == 0] = np.nan
    gap_std[repeats == 0] = np.nan
    gap_last = np.full(n, np.nan)
    several = frequency[owners] > 1
    gap_last[owners[several]] = daily_day[ends[several]] - daily_day[ends[several] - 1]
    summary["gap_mean_days"] = gap_mean
    summary["gap_std_days"] = gap_std
    summary["gap_last_days"] = gap_last
    with np.errstate(divide="ignore", invalid="ignore"):
        summary["overdue_ratio"] = np.where(
            gap_mean > 0, summary["recency_days"] / gap_mean, np.nan
        )


def _trend_features(
    summary: pd.DataFrame, days: PurchaseDays, first: np.ndarray, as_of_day: int
) -> None:
    """The last 90 days against the customer's time before them (`first`: each customer's
    first purchase day, NaN for none)."""
    n = len(summary)
    daily_buyer, daily_day, daily_spend = days.position, days.day, days.spend
    window_start = as_of_day - TREND_WINDOW_DAYS + 1
    recent = daily_day >= window_start
    recent_days = np.bincount(daily_buyer[recent], minlength=n)
    recent_spend = np.bincount(daily_buyer[recent], weights=daily_spend[recent], minlength=n)
    before_days = np.bincount(daily_buyer[~recent], minlength=n)
    before_spend = np.bincount(daily_buyer[~recent], weights=daily_spend[~recent], minlength=n)
    before_span = window_start - first
    before_span[~(before_span > 0)] = np.nan
    add_rate_trends(
        summary,
        recent_days=recent_days,
        recent_spend=recent_spend,
        before_days=before_days,
        before_spend=before_spend,
        before_span=before_span,
    )


def _tenure(summary: pd.DataFrame, data: TrainingData, as_of_day: int) -> None:
    signed = pd.to_datetime(data.customers["signed_up_at"]).reindex(summary.index)
    signed_day = pd.Series(np.nan, index=summary.index)
    known = signed.notna().to_numpy()
    signed_day[known] = day_numbers(signed[known]).astype(float)
    first_purchase = as_of_day - summary["age_days"]
    start = pd.concat([signed_day, first_purchase], axis=1).min(axis=1, skipna=True)
    summary["tenure_days"] = (as_of_day - start).clip(lower=0.0)


def _ticket_features(summary: pd.DataFrame, tickets: pd.DataFrame, as_of_day: int) -> None:
    index = summary.index
    if tickets.empty:
        tickets = pd.DataFrame(
            {
                "customer_pk": pd.Series(dtype=np.int64),
                "opened_at": pd.Series(dtype="datetime64[ns]"),
                "closed_at": pd.Series(dtype="datetime64[ns]"),
                "csat": pd.Series(dtype=float),
            }
        )
    opened_day = day_numbers(tickets["opened_at"])
    frame = pd.DataFrame(
        {
            "customer_pk": tickets["customer_pk"].to_numpy(),
            "opened_day": opened_day,
            "open": tickets["closed_at"].isna().to_numpy(),
            "recent": opened_day >= as_of_day - TREND_WINDOW_DAYS + 1,
            "csat": pd.to_numeric(tickets["csat"], errors="coerce").to_numpy(dtype=float),
            "resolution_hours": (
                (tickets["closed_at"] - tickets["opened_at"]).dt.total_seconds() / 3600.0
            ).to_numpy(dtype=float),
        }
    )
    grouped = frame.groupby("customer_pk")
    summary["tickets_count"] = grouped.size().reindex(index, fill_value=0).astype(np.int64)
    summary["tickets_open"] = grouped["open"].sum().reindex(index, fill_value=0).astype(np.int64)
    summary["tickets_last_90d"] = (
        grouped["recent"].sum().reindex(index, fill_value=0).astype(np.int64)
    )
    summary["ticket_csat_mean"] = grouped["csat"].mean().reindex(index)
    summary["ticket_resolution_hours_mean"] = grouped["resolution_hours"].mean().reindex(index)
    summary["days_since_last_ticket"] = (
        as_of_day - grouped["opened_day"].max().reindex(index)
    ).astype(float)


def _feedback_features(summary: pd.DataFrame, feedback: pd.DataFrame, as_of_day: int) -> None:
    index = summary.index
    if feedback.empty:
        feedback = pd.DataFrame(
            {
                "customer_pk": pd.Series(dtype=np.int64),
                "submitted_at": pd.Series(dtype="datetime64[ns]"),
                "nps": pd.Series(dtype=float),
                "csat": pd.Series(dtype=float),
            }
        )
    frame = pd.DataFrame(
        {
            "customer_pk": feedback["customer_pk"].to_numpy(),
            "submitted_at": feedback["submitted_at"].to_numpy(dtype="datetime64[ns]"),
            "nps": pd.to_numeric(feedback["nps"], errors="coerce").to_numpy(dtype=float),
            "csat": pd.to_numeric(feedback["csat"], errors="coerce").to_numpy(dtype=float),
        }
    )
    # Stable sort so "latest" is the last answer given, ties kept in load order.
    frame = frame.sort_values(["customer_pk", "submitted_at"], kind="stable")
    grouped = frame.groupby("customer_pk", sort=True)
    summary["feedback_count"] = grouped.size().reindex(index, fill_value=0).astype(np.int64)
    summary["nps_latest"] = grouped["nps"].last().reindex(index)  # last non-null answer
    summary["nps_mean"] = grouped["nps"].mean().reindex(index)
    summary["feedback_csat_latest"] = grouped["csat"].last().reindex(index)
    summary["feedback_csat_mean"] = grouped["csat"].mean().reindex(index)
    last_day = grouped["submitted_at"].max().reindex(index)
    known = last_day.notna().to_numpy()
    since = np.full(len(index), np.nan)
    since[known] = as_of_day - day_numbers(last_day[known])
    summary["days_since_last_feedback"] = since
