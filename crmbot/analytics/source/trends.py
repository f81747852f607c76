"""The trend columns of the per-customer summary, shared by its two computations.

Both the pandas summary (`pandas_summary`) and the database's (`sql_summary`) count purchase
days and spend in the last TREND_WINDOW_DAYS and before them; `add_rate_trends` turns those
counts into the same rates, so the two agree to the last digit. A leaf: imports nothing of
crmbot.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

TREND_WINDOW_DAYS = 90
RATE_PERIOD_DAYS = 30.0


def add_rate_trends(
    summary: pd.DataFrame,
    *,
    recent_days: Any,
    recent_spend: Any,
    before_days: Any,
    before_spend: Any,
    before_span: Any,
) -> None:
    """Purchase days and spend per RATE_PERIOD_DAYS in the last 90 days, before them, and
    the change; `before_span` is the days from the first purchase to the window (NaN where
    there were none).
    """
    per_recent = RATE_PERIOD_DAYS / TREND_WINDOW_DAYS
    summary["purchase_rate_last_90d"] = recent_days * per_recent
    summary["spend_rate_last_90d"] = recent_spend * per_recent
    summary["purchase_rate_before_90d"] = before_days * RATE_PERIOD_DAYS / before_span
    summary["spend_rate_before_90d"] = before_spend * RATE_PERIOD_DAYS / before_span
    summary["purchase_rate_trend"] = (
        summary["purchase_rate_last_90d"] - summary["purchase_rate_before_90d"]
    )
    summary["spend_rate_trend"] = summary["spend_rate_last_90d"] - summary["spend_rate_before_90d"]
