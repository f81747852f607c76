"""Small helpers on dates and columns that every part of training shares.

A leaf: it imports nothing of crmbot, so the loaders, both summaries, both sources and the
stages can all use it. Days are counted from 1970-01-01, as numpy's datetime64[D] does.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

import numpy as np
import pandas as pd


def day_end(as_of: date) -> datetime:
    """The first instant after `as_of`: rows strictly before it belong to the run."""
    return datetime.combine(as_of + timedelta(days=1), time.min)


def days_since_epoch(as_of: date) -> int:
    """Whole days from 1970-01-01 to `as_of`."""
    return int(np.datetime64(as_of, "D").astype(np.int64))


def day_numbers(values: pd.Series) -> np.ndarray:
    """Datetimes as whole days since 1970-01-01 (int64)."""
    return values.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]").astype(np.int64)


def midnights(days: pd.Series) -> pd.Series:
    """Day numbers (float, NaN for none) as midnight datetimes (NaT for none)."""
    values = days.to_numpy(dtype=float)
    out = np.full(len(values), np.datetime64("NaT"), dtype="datetime64[ns]")
    known = ~np.isnan(values)
    out[known] = values[known].astype(np.int64).astype("datetime64[D]").astype("datetime64[ns]")
    return pd.Series(out, index=days.index)


def positions(index: pd.Index, values: Any) -> np.ndarray:
    """Where each value sits in `index` (-1 when it is not there)."""
    return np.asarray(index.get_indexer(pd.Index(values)), dtype=np.int64)


def no_integers() -> np.ndarray:
    return np.zeros(0, dtype=np.int64)
