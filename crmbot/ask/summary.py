"""Questions about groups of customers, answered from the live run's summary cells.

"Compare churn risk by region", "how many customers are in the At risk segment" and
"total spend of Champions" count and add up score rows by what the summary groups on
(`crmbot.core.run_summary`): the cells give the same figures as the rows in a few
milliseconds where the rows take a second at a million customers. A question whose every
filter is a column of the cells is answered here; any other (a company, a date, a product,
a threshold other than churn risk at a tenth) goes to the rows, as before. A customer list
still reads its rows; only the number of customers it found comes from the cells.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from crmbot.ask.query import StructuredQuery
from crmbot.core.models import SUMMED_SCORES
from crmbot.core.run_summary import band_limit
from crmbot.queries.scope import Scope
from crmbot.queries.summary import run_cells

# What a question may group customers by, as a column of the cells.
GROUP_COLUMNS = {
    "segment": "segment",
    "cluster": "cluster_label",
    "region": "region",
    "owner": "owner",
    "nps_category": "nps_category",
}

_COMPARE = {
    ">": np.greater,
    ">=": np.greater_equal,
    "<": np.less,
    "<=": np.less_equal,
}


def answerable(query: StructuredQuery) -> bool:
    """Whether every filter and the grouping of a customers question are cell columns."""
    q = query
    if q.entity != "customers" or q.compare_range is not None:
        return False
    if q.companies or q.not_companies or q.customer or q.customer_name or q.date_range:
        return False
    if q.products or q.not_products or q.categories or q.bands:
        return False
    if q.group_by is not None and q.group_by not in GROUP_COLUMNS:
        return False
    if q.metric in ("sum", "avg") and q.measure not in SUMMED_SCORES:
        return False
    if q.metric not in ("list", "count", "sum", "avg"):
        return False
    return all(
        t.field == "churn_risk" and band_limit(t.op, t.value) is not None for t in q.thresholds
    )


def matching_cells(session: Any, run_id: int, query: StructuredQuery, scope: Scope) -> Any:
    """The cells of the customers `query` keeps that `scope` may see, or None when the run
    has no summary or the question has a filter the cells do not hold."""
    if not answerable(query):
        return None
    cells = run_cells(session, run_id)
    if cells is None:
        return None
    q = query
    keep = np.ones(len(cells), dtype=bool)
    if scope.owners is not None:
        owners = cells["owner"].map(lambda owner: owner.lower() if owner else None)
        keep &= owners.isin(scope.owners).to_numpy()
    for column, wanted in (
        ("region", q.regions),
        ("owner", q.owners),
        ("segment", q.segments),
        ("nps_category", q.nps_categories),
    ):
        if wanted:
            keep &= cells[column].isin(list(wanted)).to_numpy()
    for column, unwanted in (
        ("region", q.not_regions),
        ("owner", q.not_owners),
        ("segment", q.not_segments),
    ):
        if unwanted:  # as `x IS NULL OR x NOT IN (...)`
            keep &= ~cells[column].isin(list(unwanted)).to_numpy()
    if q.clusters:
        keep &= cells["cluster"].isin([float(c) for c in q.clusters]).fillna(False).to_numpy()
    for threshold in q.thresholds:
        limit = band_limit(threshold.op, threshold.value)
        assert limit is not None  # `answerable` checked
        op, band = limit
        bands = cells["risk_band"]
        present = bands.notna().to_numpy()
        keep &= present & _COMPARE[op](bands.fillna(-1).to_numpy(dtype=float), band)
    return cells[keep]


def customer_count(cells: pd.DataFrame) -> int:
    return int(cells["customers"].sum())


def total(cells: pd.DataFrame, measure: str, metric: str) -> float | None:
    """The sum or the average of `measure` over the cells' customers (None: no value), as
    SQL's SUM and AVG give it over their rows."""
    counted = int(cells[f"{measure}_n"].sum())
    if counted == 0:
        return None
    added = float(cells[f"{measure}_sum"].sum())
    return added / counted if metric == "avg" else added


def grouped_rows(
    cells: pd.DataFrame, query: StructuredQuery, limit: int
) -> list[tuple[Any, int, Any]]:
    """(group, customers, figure) per group, in the grouped statement's order; at most
    `limit`."""
    column = GROUP_COLUMNS[query.group_by or ""]
    rows: list[tuple[Any, int, Any]] = []
    for _, group in cells.groupby(column, dropna=False, sort=False):
        label = group[column].iloc[0]
        customers = customer_count(group)
        if query.metric in ("sum", "avg"):
            figure: Any = total(group, query.measure or "", query.metric)
        else:
            figure = customers
        rows.append((label, customers, figure))

    def figure_order(row: tuple[Any, int, Any]) -> tuple[bool, float]:
        figure = row[2]
        missing = figure is None or (isinstance(figure, float) and math.isnan(figure))
        value = 0.0 if missing else float(figure)
        return missing, -value if query.descending else value

    # As the grouped statement orders them: by the figure, then the group's name; groups
    # without a figure, then without a name, last.
    rows.sort(key=lambda row: (row[0] is None, row[0] if row[0] is not None else ""))
    rows.sort(key=figure_order)
    return rows[:limit]
