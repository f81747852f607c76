"""The live run's summary cells (`crmbot.core.run_summary`), read once per build.

A question about a group of customers ("compare churn risk by region") is answered from
these cells instead of every score row. They are read from the database when a run's
summary was built again (its `revision` changed) and kept in memory until then: one
index seek per question tells which.
"""

from __future__ import annotations

import threading

import pandas as pd
from sqlalchemy import select
from sqlmodel import Session

from crmbot.core.models import RUN_SUMMARY

# Cell sets kept at once (one per engine and live run).
MAX_CACHED = 8

_cache: dict[tuple[int, int], tuple[int, pd.DataFrame]] = {}
_lock = threading.Lock()


def run_cells(session: Session, run_id: int) -> pd.DataFrame | None:
    """Run `run_id`'s cells, one row per cell with RUN_SUMMARY's columns, or None when the
    run has no summary (an older run, or a database upgraded before its first retrain)."""
    revision = session.execute(
        select(RUN_SUMMARY.c.revision).where(RUN_SUMMARY.c.run_id == run_id).limit(1)
    ).scalar()
    if revision is None:
        return None
    key = (id(session.get_bind()), run_id)
    with _lock:
        cached = _cache.get(key)
    if cached is not None and cached[0] == revision:
        return cached[1]
    rows = session.execute(select(RUN_SUMMARY).where(RUN_SUMMARY.c.run_id == run_id)).all()
    frame = pd.DataFrame([tuple(row) for row in rows], columns=list(RUN_SUMMARY.c.keys()))
    frame = _settled(frame)
    if frame["revision"].nunique() > 1:
        return None  # read while being rebuilt on a database without snapshots: ask again
    with _lock:
        if len(_cache) >= MAX_CACHED and key not in _cache:
            _cache.pop(next(iter(_cache)))
        _cache[key] = (revision, frame)
    return frame


def _settled(frame: pd.DataFrame) -> pd.DataFrame:
    """Grouping columns as objects (None for missing), counts as integers, sums as floats."""
    for name in ("segment", "region", "owner", "cluster_label", "nps_category"):
        frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
    for name in ("cluster", "risk_band"):
        frame[name] = frame[name].astype("Float64")
    for name in frame.columns:
        if name.endswith("_sum"):
            frame[name] = frame[name].astype(float)
        elif name.endswith("_n") or name == "customers":
            frame[name] = frame[name].astype("int64")
    return frame


def clear_cache() -> None:
    """Forget every cell set read (tests that rebuild a database under the same engine)."""
    with _lock:
        _cache.clear()
