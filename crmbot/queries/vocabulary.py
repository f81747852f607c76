"""The names a reader may type, without reading every row: the segments and clusters of a
run from what training recorded with it, and the distinct regions, owners and companies
one index seek each.

At a million customers a `SELECT DISTINCT region FROM customer` reads a million index
entries (100-200 ms) to find four names. `distinct_values` asks instead for the smallest
value above the last one found, a seek in the column's index per distinct value (a
"loose index scan", one recursive statement on SQLite, PostgreSQL and MariaDB alike).
`run_segments` and `run_clusters` read the run's own record (`ModelRun.metrics` /
`params`), written by the segments and clusters stages; a run without them (older runs,
hand-made ones in tests) is answered from its scores instead.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlmodel import col

from crmbot.core.models import CustomerScore, ModelRun

# Above this many distinct values a loose scan is no cheaper than reading the index.
MAX_SEEKS = 5_000


def run_segments(run: ModelRun) -> list[str] | None:
    """The segments `run` put customers in, from the sizes training recorded; None when
    the run's record has none."""
    metrics = run.metrics if isinstance(run.metrics, dict) else {}
    segments = metrics.get("segments")
    sizes = segments.get("sizes") if isinstance(segments, dict) else None
    if not isinstance(sizes, dict) or not sizes:
        return None
    return sorted(str(name) for name, size in sizes.items() if isinstance(size, int) and size)


def run_clusters(run: ModelRun) -> dict[int, str] | None:
    """{cluster number: label} as training recorded them with `run`; None without."""
    params = run.params if isinstance(run.params, dict) else {}
    clusters = params.get("clusters")
    listed = clusters.get("clusters") if isinstance(clusters, dict) else None
    if not isinstance(listed, list):
        return None
    found: dict[int, str] = {}
    for cluster in listed:
        if isinstance(cluster, dict) and isinstance(cluster.get("cluster"), int):
            found[int(cluster["cluster"])] = str(cluster.get("label") or "")
    return found


def segment_names(*, session: Session, run: ModelRun) -> list[str]:
    """The segments of `run`: recorded with it, or else one index seek per segment."""
    recorded = run_segments(run)
    if recorded is not None:
        return recorded
    segment = col(CustomerScore.segment)
    return [s for s in distinct_values(session, segment, col(CustomerScore.run_id) == run.id) if s]


def distinct_values(session: Session, column: Any, *where: Any) -> list[Any]:
    """The distinct non-null values of an indexed `column` (rows matching `where`), in
    order of the column's collation: one seek per value in one recursive statement, not a
    read of every row.

    Each step asks for the smallest value above the previous one; the column's index
    answers it at once. With `where` conditions the index is still walked in order, rows
    that do not match are skipped. More than `MAX_SEEKS` values are read the ordinary way.
    """
    table = column.table
    conditions = [column.is_not(None), *where]
    first = select(func.min(column).label("value")).where(*conditions)
    steps = first.cte("steps", recursive=True)
    following = (
        select(func.min(column)).where(*conditions, column > steps.c.value).scalar_subquery()
    )
    steps = steps.union_all(
        select(following.label("value")).select_from(steps).where(steps.c.value.is_not(None))
    )
    statement = select(steps.c.value).where(steps.c.value.is_not(None)).limit(MAX_SEEKS + 1)
    values = list(session.execute(statement).scalars())
    if len(values) <= MAX_SEEKS:
        return values
    ordinary = select(column).select_from(table).where(*conditions).distinct().order_by(column)
    return list(session.execute(ordinary).scalars())
