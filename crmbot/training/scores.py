"""Writing a run's score rows and offers, fast, on every database.

A run's rows are invisible to readers until the run is activated (`crmbot.runs`), so
chunks may commit on their own: a crash half-way leaves only rows nobody reads, and a run
that fails while writing has them deleted (`crmbot.runs.lifecycle`). The values are
converted a column at a time with array operations, in the storage formats SQLAlchemy
itself would use, so SQLite and PostgreSQL take them at the driver level: SQLite through
the driver's executemany, PostgreSQL through COPY (psycopg 3's `cursor.copy`), any other
database through a Core insert (`_write_executemany`, what the tests compare COPY with).
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from json.encoder import encode_basestring_ascii
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import JSON, DateTime, insert
from sqlalchemy.engine import Engine

from crmbot.analytics.base import paused_gc
from crmbot.core.db import is_sqlite, refresh_statistics
from crmbot.core.models import CustomerScore, RunOffer

# Rows per transaction when writing scores: each commit costs a WAL sync on SQLite (50k rows
# per commit writes 100k scores in 1.7 s where 5k rows per commit took 2.7 s); PostgreSQL
# takes each chunk as one COPY, MariaDB as multi-row INSERTs of SQLAlchemy's batch size.
WRITE_CHUNK_ROWS = 50_000
SQLITE_WRITE_CACHE_KIB = 256 * 1024

SCORE_COLUMNS: list[str] = [c.name for c in CustomerScore.__table__.columns]  # type: ignore[attr-defined]

_SCORE_TABLE: Any = CustomerScore.__table__  # type: ignore[attr-defined]
# SQLAlchemy's storage format for DateTime on SQLite (what its result processor parses).
_SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"


def _non_null_defaults() -> dict[str, Any]:
    # Columns that are NOT NULL with a default in CustomerScore (frequency=0, segment...).
    defaults: dict[str, Any] = {}
    for name, info in CustomerScore.model_fields.items():
        if info.default is not None and not callable(info.default) and name in SCORE_COLUMNS:
            defaults[name] = info.default
    return defaults


def _column_values(name: str, values: pd.Series, *, as_text: bool) -> list[Any]:
    """One score column as plain Python values the driver accepts (None for missing);
    `as_text`: datetimes and JSON as the text SQLAlchemy would store (for a driver-level
    insert on SQLite and COPY on PostgreSQL).

    Converted a column at a time with array operations: a million customers times forty
    columns is too many values to inspect one by one.
    """
    column_type = _SCORE_TABLE.c[name].type
    default = _non_null_defaults().get(name)
    if isinstance(column_type, JSON):
        cells = [None if isinstance(v, float) or v is pd.NA else v for v in values.tolist()]
        if as_text:  # serialised here, numpy scalars included, in C
            return [None if v is None else _json_text(v) for v in cells]
        return [None if v is None else jsonable(v) for v in cells]
    if isinstance(column_type, DateTime):
        stamps = pd.to_datetime(values)
        missing = stamps.isna().to_numpy()
        if as_text:
            text = stamps.dt.strftime(_SQLITE_DATETIME).to_numpy(dtype=object)
        else:
            text = np.array(stamps.dt.to_pydatetime(), dtype=object)
        text[missing] = None
        return text.tolist()
    python_type = column_type.python_type
    if python_type in (int, float):
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
        missing = ~np.isfinite(numbers)
        if python_type is int:
            numeric = np.rint(np.where(missing, 0, numbers)).astype(np.int64).astype(object)
        else:
            numeric = numbers.astype(object)
        numeric[missing] = default
        return list(numeric.tolist())
    objects = values.to_numpy(dtype=object, copy=True)
    missing = pd.isna(values).to_numpy()
    objects[missing] = default
    return objects.tolist()


def score_columns(scores: pd.DataFrame) -> list[str]:
    """The CustomerScore columns a run's frame fills (besides run_id and customer_pk)."""
    return [c for c in scores.columns if c in SCORE_COLUMNS and c not in ("run_id", "customer_pk")]


def score_rows(
    run_id: int, scores: pd.DataFrame, *, as_text: bool = False
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """(column names, one tuple per customer) for the run's score rows (`as_text`: see
    `_column_values`)."""
    columns = score_columns(scores)
    pks = [int(pk) for pk in scores.index.to_numpy()]
    values = [_column_values(name, scores[name], as_text=as_text) for name in columns]
    # NOT NULL columns no stage filled (e.g. when a run has fewer stages) get their model
    # defaults here: the driver-level insert does not apply SQLAlchemy's Python defaults.
    for name, default in _non_null_defaults().items():
        if name not in columns and name not in ("run_id", "customer_pk"):
            columns.append(name)
            values.append([default] * len(pks))
    rows = list(zip([run_id] * len(pks), pks, *values, strict=True))
    return ["run_id", "customer_pk", *columns], rows


def score_records(run_id: int, scores: pd.DataFrame) -> list[dict[str, Any]]:
    """One dict per customer with every CustomerScore column the frame has."""
    names, rows = score_rows(run_id, scores)
    return [dict(zip(names, row, strict=True)) for row in rows]


def write_scores(engine: Engine, run_id: int, scores: pd.DataFrame) -> int:
    """Insert the run's score rows in chunks of WRITE_CHUNK_ROWS. Returns rows written.

    The rows are invisible to readers until the run is activated, so each chunk may
    commit on its own and a crash half-way leaves only rows of a run nobody reads. On
    SQLite the tuples go straight to the driver's executemany and on PostgreSQL through
    COPY (values already in SQLAlchemy's storage formats); on MariaDB through a Core
    insert, whose executemany batches rows into multi-row statements.
    """
    chunks = score_chunks(scores)
    if is_sqlite(engine):
        _write_sqlite(engine, run_id, chunks)
        return len(scores)
    if engine.dialect.name == "postgresql":
        _write_postgresql(engine, run_id, chunks)
    else:
        _write_executemany(engine, run_id, chunks)
    # Before activation, so the first reads of the new run are planned on its rows.
    refresh_statistics(engine, _SCORE_TABLE.name)
    return len(scores)


def score_chunks(scores: pd.DataFrame) -> list[pd.DataFrame]:
    """The frame in slices of WRITE_CHUNK_ROWS: rows are made a chunk at a time (a million
    customers' rows as Python tuples at once took a gigabyte)."""
    return [
        scores.iloc[start : start + WRITE_CHUNK_ROWS]
        for start in range(0, len(scores), WRITE_CHUNK_ROWS)
    ]


def _write_executemany(engine: Engine, run_id: int, chunks: list[pd.DataFrame]) -> None:
    """A Core insert per chunk, one transaction each (MariaDB: multi-row INSERTs)."""
    insert_statement = insert(_SCORE_TABLE)
    for chunk in chunks:
        with paused_gc():
            records = score_records(run_id, chunk)
            with engine.begin() as connection:
                connection.execute(insert_statement, records)


def _write_sqlite(engine: Engine, run_id: int, chunks: list[pd.DataFrame]) -> None:
    quote = engine.dialect.identifier_preparer.quote
    with paused_gc(), engine.connect() as connection:
        # Four indexes take each row at a random place: with SQLite's default 2 MB page
        # cache a million rows spend most of their time re-reading index pages.
        connection.exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_WRITE_CACHE_KIB}")
        connection.commit()
        try:
            for chunk in chunks:
                names, rows = score_rows(run_id, chunk, as_text=True)
                statement = (
                    f"INSERT INTO {quote(_SCORE_TABLE.name)} "
                    f"({', '.join(quote(n) for n in names)}) "
                    f"VALUES ({', '.join('?' for _ in names)})"
                )
                with connection.begin():
                    connection.exec_driver_sql(statement, rows)
        finally:
            connection.rollback()
            connection.exec_driver_sql("PRAGMA cache_size=-2000")
            connection.commit()


def _write_postgresql(engine: Engine, run_id: int, chunks: list[pd.DataFrame]) -> None:
    """One COPY per chunk, each in its own transaction (COPY: 100k score rows in 2.9 s
    where multi-row INSERTs took 4.8 s). The values are text in SQLAlchemy's storage
    formats (`score_rows(as_text=True)`), which PostgreSQL parses as it would the insert's."""
    quote = engine.dialect.identifier_preparer.quote
    for chunk in chunks:
        with paused_gc():
            names, rows = score_rows(run_id, chunk, as_text=True)
            statement = (
                f"COPY {quote(_SCORE_TABLE.name)} ({', '.join(quote(n) for n in names)}) FROM STDIN"
            )
            with engine.begin() as connection:
                # psycopg 3's own connection, in the transaction SQLAlchemy began on it.
                driver = connection.connection.driver_connection
                assert driver is not None  # a connection SQLAlchemy has just begun on
                with driver.cursor() as cursor, cursor.copy(statement) as copy:
                    for row in rows:
                        copy.write_row(row)


def write_offers(engine: Engine, run_id: int, offers: list[dict[str, Any]]) -> int:
    """Store the run's offers (`RunContext.offers`), numbered by position."""
    if offers:
        rows = [{**offer, "run_id": run_id, "offer": number} for number, offer in enumerate(offers)]
        with engine.begin() as connection:
            connection.execute(insert(RunOffer), jsonable(rows))
    return len(offers)


def _json_default(value: Any) -> Any:
    """For json.dumps: numpy scalars and dates that stages may leave in JSON columns."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


_JSON = json.JSONEncoder(default=_json_default)


def _json_text(value: Any) -> str:
    """`value` as JSON text, as json.dumps writes it; the two common cells (a list of offer
    numbers, a list of reasons) joined here in twice the speed of the encoder."""
    if isinstance(value, list) and all(type(item) is int for item in value):
        return "[" + ", ".join(map(str, value)) + "]"
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return "[" + ", ".join(map(encode_basestring_ascii, value)) + "]"
    return _JSON.encode(value)


def jsonable(value: Any) -> Any:
    """Plain JSON types only: stages should already comply; this guards numpy leftovers."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value
