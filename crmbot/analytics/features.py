"""The per-customer summary every model starts from, as of the data's date.

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
million customers with ten million orders summarise in seconds. The churn model calls
`customer_summary(data.as_of_earlier(day))` for its time-split snapshots.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crmbot.analytics.base import RunContext, TrainingData

TREND_WINDOW_DAYS = 90
RATE_PERIOD_DAYS = 30.0

# Summary columns copied to the score row (CustomerScore field -> summary column).
SCORE_FIELDS = {
    "recency_days": "recency_days",
    "frequency": "frequency",
    "monetary": "monetary",
    "total_spend": "total_spend",
    "orders_count": "orders_count",
    "tenure_days": "tenure_days",
    "last_order_at": "last_order_at",
}


def _day_numbers(values: pd.Series) -> np.ndarray:
    """Datetimes as whole days since 1970-01-01 (int64)."""
    return values.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]").astype(np.int64)


def _as_of_day(data: TrainingData) -> int:
    return int(np.datetime64(data.as_of, "D").astype(np.int64))


def customer_summary(data: TrainingData) -> pd.DataFrame:
    """One row per customer of `data` (index customer_pk); see the module docstring."""
    index = pd.Index(data.customers.index.to_numpy(), name="customer_pk")
    summary = pd.DataFrame(index=index)
    as_of_day = _as_of_day(data)
    _purchase_features(summary, data.orders, as_of_day)
    _tenure(summary, data, as_of_day)
    _ticket_features(summary, data.tickets, as_of_day)
    _feedback_features(summary, data.feedback, as_of_day)
    return summary


def _purchase_features(summary: pd.DataFrame, orders: pd.DataFrame, as_of_day: int) -> None:
    index = summary.index
    amounts = orders["amount"].to_numpy(dtype=float)
    is_purchase = amounts >= 0
    purchases = orders.loc[is_purchase, ["customer_pk", "ordered_at", "amount"]]
    refunds = orders.loc[~is_purchase, ["customer_pk", "amount"]]

    # One row per (customer, purchase day) with that day's spend, sorted by customer, day.
    purchase_days = pd.DataFrame(
        {
            "customer_pk": purchases["customer_pk"].to_numpy(),
            "day": _day_numbers(purchases["ordered_at"]),
            "spend": purchases["amount"].to_numpy(dtype=float),
        }
    )
    daily = purchase_days.groupby(["customer_pk", "day"], sort=True, as_index=False)["spend"].sum()
    by_customer = daily.groupby("customer_pk", sort=True)
    first_day = by_customer["day"].min()
    last_day = by_customer["day"].max()
    frequency = by_customer["day"].size()
    purchases_total = by_customer["spend"].sum()
    first_day_spend = by_customer["spend"].first()  # rows are sorted by day within customer

    freq = frequency.reindex(index, fill_value=0).astype(np.int64)
    summary["frequency"] = freq
    summary["repeat_purchases"] = (freq - 1).clip(lower=0)
    first = first_day.reindex(index)
    last = last_day.reindex(index)
    summary["recency_days"] = (as_of_day - last).astype(float)
    summary["t_x_days"] = (last - first).astype(float)
    summary["age_days"] = (as_of_day - first).astype(float)
    summary["first_purchase_day"] = _to_dates(first)
    summary["last_purchase_day"] = _to_dates(last)

    total = purchases_total.reindex(index, fill_value=0.0)
    repeat_spend = (purchases_total - first_day_spend).reindex(index, fill_value=0.0)
    repeats = summary["repeat_purchases"]
    summary["monetary"] = np.where(repeats > 0, repeat_spend / repeats.where(repeats > 0), 0.0)
    summary["day_spend_mean"] = np.where(freq > 0, total / freq.where(freq > 0), 0.0)
    summary["purchases_total"] = total

    refunds_total = (-refunds.groupby("customer_pk")["amount"].sum()).reindex(index, fill_value=0.0)
    summary["refunds_total"] = refunds_total
    summary["refunds_count"] = (
        refunds.groupby("customer_pk").size().reindex(index, fill_value=0).astype(np.int64)
    )
    summary["total_spend"] = (total - refunds_total).clip(lower=0.0)
    summary["orders_count"] = (
        purchases.groupby("customer_pk").size().reindex(index, fill_value=0).astype(np.int64)
    )
    summary["last_order_at"] = purchases.groupby("customer_pk")["ordered_at"].max().reindex(index)

    # Gaps between consecutive purchase days of the same customer.
    same_customer = daily["customer_pk"].to_numpy()[1:] == daily["customer_pk"].to_numpy()[:-1]
    gaps = pd.DataFrame(
        {
            "customer_pk": daily["customer_pk"].to_numpy()[1:][same_customer],
            "gap": np.diff(daily["day"].to_numpy())[same_customer].astype(float),
        }
    )
    by_gap = gaps.groupby("customer_pk", sort=True)["gap"]
    summary["gap_mean_days"] = by_gap.mean().reindex(index)
    summary["gap_std_days"] = by_gap.std(ddof=0).reindex(index)
    summary["gap_last_days"] = by_gap.last().reindex(index)
    summary["overdue_ratio"] = summary["recency_days"] / summary["gap_mean_days"].where(
        summary["gap_mean_days"] > 0
    )

    # Last 90 days against the customer's time before them.
    window_start = as_of_day - TREND_WINDOW_DAYS + 1
    recent = daily[daily["day"] >= window_start].groupby("customer_pk")
    before = daily[daily["day"] < window_start].groupby("customer_pk")
    recent_days = recent.size().reindex(index, fill_value=0)
    recent_spend = recent["spend"].sum().reindex(index, fill_value=0.0)
    before_days = before.size().reindex(index, fill_value=0)
    before_spend = before["spend"].sum().reindex(index, fill_value=0.0)
    before_span = (window_start - first).astype(float)
    before_span = before_span.where(before_span > 0)
    per_recent = RATE_PERIOD_DAYS / TREND_WINDOW_DAYS
    summary["purchase_rate_last_90d"] = (recent_days * per_recent).astype(float)
    summary["spend_rate_last_90d"] = recent_spend * per_recent
    summary["purchase_rate_before_90d"] = before_days * RATE_PERIOD_DAYS / before_span
    summary["spend_rate_before_90d"] = before_spend * RATE_PERIOD_DAYS / before_span
    summary["purchase_rate_trend"] = (
        summary["purchase_rate_last_90d"] - summary["purchase_rate_before_90d"]
    )
    summary["spend_rate_trend"] = summary["spend_rate_last_90d"] - summary["spend_rate_before_90d"]


def _to_dates(days: pd.Series) -> pd.Series:
    values = days.to_numpy(dtype=float)
    out = np.full(len(values), np.datetime64("NaT"), dtype="datetime64[ns]")
    known = ~np.isnan(values)
    out[known] = values[known].astype(np.int64).astype("datetime64[D]").astype("datetime64[ns]")
    return pd.Series(out, index=days.index)


def _tenure(summary: pd.DataFrame, data: TrainingData, as_of_day: int) -> None:
    signed = pd.to_datetime(data.customers["signed_up_at"]).reindex(summary.index)
    signed_day = pd.Series(np.nan, index=summary.index)
    known = signed.notna().to_numpy()
    signed_day[known] = _day_numbers(signed[known]).astype(float)
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
    opened_day = _day_numbers(tickets["opened_at"])
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
    since[known] = as_of_day - _day_numbers(last_day[known])
    summary["days_since_last_feedback"] = since


def run(ctx: RunContext) -> None:
    """Compute the summary, keep it for later stages and fill the RFM score columns."""
    summary = customer_summary(ctx.data)
    ctx.features = summary
    for score_field, column in SCORE_FIELDS.items():
        ctx.scores[score_field] = summary[column]
    has_orders = summary["frequency"] > 0
    ctx.metrics["features"] = {
        "customers": int(len(summary)),
        "customers_with_purchases": int(has_orders.sum()),
        "repeat_customers": int((summary["repeat_purchases"] > 0).sum()),
        "customers_with_refunds": int((summary["refunds_count"] > 0).sum()),
    }
    ctx.params["features"] = {
        "trend_window_days": TREND_WINDOW_DAYS,
        "rate_period_days": RATE_PERIOD_DAYS,
    }
