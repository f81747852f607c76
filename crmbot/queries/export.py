"""A run's scores in bulk: as a frame (the CLI, comparisons) and as a CSV export."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from crmbot.core import spreadsheet
from crmbot.core.models import Customer, CustomerScore
from crmbot.runs import active_run_id

# Export order: the columns people look for first, then every other score column.
EXPORT_LEADING_COLUMNS = [
    "customer_id",
    "segment",
    "cluster",
    "clv",
    "expected_purchases",
    "p_alive",
    "churn_risk",
]
_SCORE_TABLE: Any = CustomerScore.__table__  # type: ignore[attr-defined]
_SCORE_COLUMNS = [c.name for c in _SCORE_TABLE.columns if c.name != "run_id"]


def _run_scores_statement(run_id: int | None) -> Any:
    columns: list[Any] = [Customer.customer_id]
    columns += [_SCORE_TABLE.c[name] for name in _SCORE_COLUMNS]
    return (
        select(*columns)
        .join(Customer, Customer.id == _SCORE_TABLE.c.customer_pk)  # type: ignore[arg-type]
        .where(_SCORE_TABLE.c.run_id == run_id)
        .order_by(_SCORE_TABLE.c.customer_pk)
    )


def scores_frame(
    *, session: Session, run_id: int | None = None, columns: list[str] | None = None
) -> pd.DataFrame:
    """Every score column of a run (default: the active one) plus `customer_id`, or only
    `columns` (without `customer_id`) when given — a million rows of forty columns take a
    while to read.

    Index customer_pk; empty when there is no such run.
    """
    if run_id is None:
        run_id = active_run_id(session=session)
    if columns is not None:
        names = ["customer_pk", *[c for c in columns if c != "customer_pk"]]
        result = session.execute(
            select(*[_SCORE_TABLE.c[name] for name in names]).where(_SCORE_TABLE.c.run_id == run_id)
        )
        rows = [tuple(row) for row in result]
        return pd.DataFrame.from_records(rows, columns=names).set_index("customer_pk")
    result = session.execute(_run_scores_statement(run_id))
    # Plain tuples: pandas' per-row attribute probes are slow on SQLAlchemy Rows.
    rows = [tuple(row) for row in result]
    frame = pd.DataFrame.from_records(rows, columns=["customer_id", *_SCORE_COLUMNS])
    return frame.set_index("customer_pk")


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return "; ".join(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return value


def export_scores(*, session: Session, path: Path, run_id: int | None = None) -> int:
    """Write one CSV row per customer of a run (default: the active one); rows written.

    Rows stream from the database in batches, so the export's memory stays flat. Cells are
    written through `crmbot.core.spreadsheet`: no id or reason runs as a formula.
    """
    if run_id is None:
        run_id = active_run_id(session=session)
    names = ["customer_id", *_SCORE_COLUMNS]
    header = EXPORT_LEADING_COLUMNS + [
        c for c in names if c not in EXPORT_LEADING_COLUMNS and c != "customer_pk"
    ]
    positions = [names.index(name) for name in header]
    written = 0
    result = session.execute(_run_scores_statement(run_id), execution_options={"yield_per": 10_000})
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = spreadsheet.writer(handle)
        writer.writerow(header)
        for row in result:
            writer.writerow([_csv_value(row[i]) for i in positions])
            written += 1
    return written
