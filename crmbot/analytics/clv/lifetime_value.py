"""Customer lifetime value: expected purchases month by month, times spend, discounted."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from crmbot.analytics.clv.bgnbd import BgNbdParams, conditional_expected_purchases
from crmbot.analytics.clv.fitting import group_rows

DAYS_PER_MONTH = 365.25 / 12


def customer_lifetime_value(
    bgnbd: BgNbdParams,
    spend_per_purchase: np.ndarray,
    x: Any,
    t_x: Any,
    T: Any,
    *,
    months: int,
    monthly_discount_rate: float,
    margin: float,
    days_per_unit: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(CLV, expected purchases over the horizon) per customer.

    CLV = sum over m = 1..months of margin * spend * (E[Y(m)] - E[Y(m-1)]) / (1 + d)^m.
    Distinct (x, t_x, T) rows are evaluated once.
    """
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    (ux, ut, uT), _w = group_rows(x, t_x, T)
    keys = pd.MultiIndex.from_arrays([ux, ut, uT])
    position = keys.get_indexer(pd.MultiIndex.from_arrays([x, t_x, T]))
    month = DAYS_PER_MONTH / days_per_unit
    previous = np.zeros(len(ux))
    discounted = np.zeros(len(ux))
    for m in range(1, months + 1):
        cumulative = conditional_expected_purchases(bgnbd, m * month, ux, ut, uT)
        discounted += (cumulative - previous) / (1.0 + monthly_discount_rate) ** m
        previous = cumulative
    clv = margin * np.asarray(spend_per_purchase, dtype=float) * discounted[position]
    return clv, previous[position]
