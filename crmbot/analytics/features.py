"""The features stage: the per-customer summary every later model starts from.

It asks the run's source for the summary as of the run's day (`TrainingSource.summary`:
definitions in `crmbot.analytics.source.pandas_summary`), keeps it for later stages
(`ctx.features`) and copies the RFM columns to the score row.
"""

from __future__ import annotations

from crmbot.analytics.base import RunContext
from crmbot.analytics.source.trends import RATE_PERIOD_DAYS, TREND_WINDOW_DAYS

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


def run(ctx: RunContext) -> None:
    """Compute the summary, keep it for later stages and fill the RFM score columns."""
    summary = ctx.source.summary()
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
