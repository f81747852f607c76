"""The database side of an import: look rows up by natural key, write new and changed rows
in bulk, on SQLite, PostgreSQL and MariaDB/MySQL.

Every statement is a SQLAlchemy Core bulk statement run with executemany, never one ORM
object per row. Rows are written as upserts on the natural key (`INSERT ... ON CONFLICT DO
UPDATE` / `ON DUPLICATE KEY UPDATE`), so a row another writer inserted since we looked is
updated rather than failing the whole file. PostgreSQL gets its fastest path: COPY into a
temporary table, then one INSERT ... SELECT ... ON CONFLICT.

Imports into one database run one at a time (`import_lock`), so what an import reads to
tell new rows from changed and unchanged ones is what it then writes over: two imports
started together report each row once as inserted, not both.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from itertools import islice
from operator import itemgetter, le, lt, methodcaller
from typing import Any, cast

from sqlalchemy import Table, func, select, text, tuple_
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

# Bind parameters per statement stay under every driver's limit (SQLite: 32766).
LOOKUP_CHUNK = 900
WRITE_CHUNK = 20_000

Progress = Callable[[int], None]

# --- One import at a time ---------------------------------------------------------------
#
# An import reads the stored rows under its keys and then upserts. Two imports running
# together both read before either commits: each saw nothing, each counted every row as
# inserted, and the upserts of the second quietly updated what the first had inserted
# (PostgreSQL, MariaDB). The database's own answer cannot settle it on MariaDB (ON
# DUPLICATE KEY's affected-row count sums inserts, updates and unchanged rows), so the read
# and the write are made one step instead: an import holds the import lock from before its
# transaction begins until after it commits, and the next one begins only then, reading
# what the first wrote. SQLite needs nothing: BEGIN IMMEDIATE already admits one writer.
# The lock is taken on a connection of its own and is the session's (PostgreSQL advisory
# lock, MariaDB GET_LOCK), so it is released when that connection ends, also when the
# process dies, and the import's own transaction holds nothing while it waits.

# "crmbotim" in ASCII: every crmbot process sharing a PostgreSQL database contends for it.
IMPORT_LOCK_KEY = int.from_bytes(b"crmbotim", "big")
# How long an import waits for the one before it to finish.
IMPORT_LOCK_WAIT_SECONDS = 3600.0
_POLL_SECONDS = 0.2


class ImportLockTimeout(RuntimeError):
    """Another import held the import lock for longer than the wait allows."""


@contextmanager
def import_lock(
    engine: Engine, *, wait_seconds: float = IMPORT_LOCK_WAIT_SECONDS
) -> Iterator[None]:
    """Hold the import lock of `engine`'s database for the block (nothing on SQLite).

    Raises `ImportLockTimeout` when another import keeps it longer than `wait_seconds`."""
    dialect = engine.dialect.name
    if dialect not in ("postgresql", "mysql", "mariadb"):
        yield
        return
    with engine.connect() as connection:
        if dialect == "postgresql":
            take = text("SELECT pg_try_advisory_lock(:key)").bindparams(key=IMPORT_LOCK_KEY)
            release = text("SELECT pg_advisory_unlock(:key)").bindparams(key=IMPORT_LOCK_KEY)
        else:
            database = connection.execute(text("SELECT DATABASE()")).scalar() or ""
            # GET_LOCK names are server-wide: the database's name makes them its own.
            name = "crmbot_import." + hashlib.sha256(str(database).encode()).hexdigest()[:32]
            take = text("SELECT GET_LOCK(:name, 0)").bindparams(name=name)
            release = text("SELECT RELEASE_LOCK(:name)").bindparams(name=name)
        deadline = time.monotonic() + wait_seconds
        while not connection.execute(take).scalar():
            connection.commit()  # hold no snapshot while waiting
            if time.monotonic() >= deadline:
                raise ImportLockTimeout(
                    f"another import into this database has been running for over "
                    f"{wait_seconds:,.0f} s"
                )
            time.sleep(_POLL_SECONDS)
        connection.commit()
        try:
            yield
        finally:
            try:
                connection.execute(release)
                connection.commit()
            except DBAPIError:
                # Gone with the connection: the lock was the session's.
                connection.invalidate()


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# A table this small is read whole rather than searched key by key.
WHOLE_TABLE_ROWS = 10_000


def _whole_table_is_cheaper(connection: Connection, table: Table, wanted: int) -> bool:
    # Reading a table that is not much bigger than the file beats many IN (...) queries.
    total = connection.execute(select(func.count()).select_from(table)).scalar_one()
    return total <= max(5 * wanted, WHOLE_TABLE_ROWS)


def _all_ids(connection: Connection, table: Table, natural_column: str) -> dict[str, int]:
    """{natural id: surrogate id} of the whole table, through the driver's own cursor (a
    million customers: 0.9 s, where SQLAlchemy's rows and the dict made of them took 2.7 s)."""
    statement = select(table.c[natural_column], table.c["id"])
    cursor = connection.connection.cursor()
    try:
        cursor.execute(str(statement.compile(dialect=connection.dialect)))
        return dict(cursor.fetchall())
    finally:
        cursor.close()


def surrogate_ids(
    connection: Connection, table: Table, natural_column: str, values: Sequence[str | None]
) -> list[int | None]:
    """Each value's surrogate id in `table`, None where the table has no such natural id.

    For a big file the whole table is read once and each value looked up in it: the set of
    distinct values that the search key by key needs took longer than the lookups (7.1
    million orders of a million customers: 1.5 s).
    """
    if not values:
        return []
    found: dict[Any, int]
    if _whole_table_is_cheaper(connection, table, len(values)):
        found = _all_ids(connection, table, natural_column)
    else:
        found = _search_ids(connection, table, natural_column, {v for v in values if v is not None})
    return list(map(found.get, values))  # type: ignore[arg-type]  # dict.get's overloads


def lookup_ids(
    connection: Connection, table: Table, natural_column: str, natural_ids: Iterable[str | None]
) -> dict[str, int]:
    """{natural id: surrogate id} for those of `natural_ids` present in `table`."""
    wanted = {natural for natural in natural_ids if natural is not None}
    if not wanted:
        return {}
    if _whole_table_is_cheaper(connection, table, len(wanted)):
        everything = _all_ids(connection, table, natural_column)
        return {natural: everything[natural] for natural in wanted if natural in everything}
    return _search_ids(connection, table, natural_column, wanted)


def _search_ids(
    connection: Connection, table: Table, natural_column: str, wanted: set[str]
) -> dict[str, int]:
    """`lookup_ids` key by key, LOOKUP_CHUNK natural ids a query."""
    key, pk = table.c[natural_column], table.c["id"]
    found: dict[str, int] = {}
    for chunk in _chunks(sorted(wanted), LOOKUP_CHUNK):
        found.update(
            (natural, surrogate)
            for natural, surrogate in connection.execute(select(key, pk).where(key.in_(chunk)))
        )
    return found


def create_bare(
    connection: Connection, table: Table, natural_column: str, natural_ids: Iterable[str]
) -> None:
    """Rows with nothing but their natural id (`--create-missing`)."""
    rows = [{natural_column: natural} for natural in sorted(set(natural_ids))]
    if rows:
        connection.execute(table.insert(), rows)


def is_empty(connection: Connection, table: Table) -> bool:
    return connection.execute(select(table.c["id"]).limit(1)).first() is None


def existing_rows(
    connection: Connection,
    table: Table,
    key_columns: Sequence[str],
    value_columns: Sequence[str],
    keys: Sequence[tuple[Any, ...]],
) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """{key: values} for the rows of `table` whose key is among `keys`."""
    if not keys:
        return {}
    key_cols = [table.c[name] for name in key_columns]
    selected = select(*key_cols, *(table.c[name] for name in value_columns))
    width = len(key_columns)
    wanted = set(keys)
    found: dict[tuple[Any, ...], tuple[Any, ...]] = {}

    def collect(rows: Any) -> None:
        for row in rows.all():
            key = tuple(row[:width])
            if key in wanted:
                found[key] = tuple(row[width:])

    if _whole_table_is_cheaper(connection, table, len(keys)):
        collect(connection.execute(selected))
        return found
    if width == 1:
        column = key_cols[0]
        for chunk in _chunks(sorted(k[0] for k in wanted), LOOKUP_CHUNK):
            collect(connection.execute(selected.where(column.in_(chunk))))
    else:
        for chunk in _chunks(sorted(wanted), LOOKUP_CHUNK // width):
            collect(connection.execute(selected.where(tuple_(*key_cols).in_(chunk))))
    return found


def upsert(
    connection: Connection,
    table: Table,
    key_columns: Sequence[str],
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    *,
    progress: Progress | None = None,
) -> None:
    """Insert `rows` (tuples in the order of `columns`), updating those whose key exists."""
    if not rows:
        return
    dialect = connection.dialect.name
    if dialect == "postgresql":
        _copy_upsert_postgresql(connection, table, key_columns, columns, rows, progress)
        return
    if dialect == "sqlite":
        by_column = [list(column) for column in zip(*rows, strict=True)]
        upsert_columns(connection, table, key_columns, columns, by_column, progress=progress)
        return
    # Sorted on the key, every row lands next to the previous one in the unique index.
    rows = sorted(rows, key=itemgetter(*range(len(key_columns))))
    statement = _upsert_statement(dialect, table, key_columns, columns)
    for chunk in _chunks(rows, WRITE_CHUNK):
        connection.execute(statement, [dict(zip(columns, row, strict=True)) for row in chunk])
        if progress is not None:
            progress(len(chunk))


def upsert_columns(
    connection: Connection,
    table: Table,
    key_columns: Sequence[str],
    columns: Sequence[str],
    values: Sequence[Sequence[Any]],
    *,
    iso_text: Mapping[int, Sequence[str]] | None = None,
    progress: Progress | None = None,
) -> None:
    """`upsert` for rows given column by column: values[i] holds the column `columns[i]`.

    `iso_text` may give, for a datetime column (by position), each value's
    `isoformat(" ", "microseconds")`, which SQLite then binds instead of formatting them.
    """
    if not values or not values[0]:
        return
    if connection.dialect.name != "sqlite":
        upsert(
            connection,
            table,
            key_columns,
            columns,
            list(zip(*values, strict=True)),
            progress=progress,
        )
        return
    width = len(key_columns)
    keys: Sequence[Any] = values[0] if width == 1 else list(zip(*values[:width], strict=True))
    # Strictly increasing keys are sorted and each key is there once (the usual export).
    keys_unique = all(map(lt, keys, islice(keys, 1, None)))
    if not keys_unique and not all(map(le, keys, islice(keys, 1, None))):
        # Sorted on the key, every row lands next to the previous one in the unique index.
        order = sorted(range(len(keys)), key=keys.__getitem__)
        values = [list(map(column.__getitem__, order)) for column in values]
        iso_text = {
            position: list(map(text.__getitem__, order))
            for position, text in (iso_text or {}).items()
        }
        keys = list(map(keys.__getitem__, order))
        keys_unique = all(map(lt, keys, islice(keys, 1, None)))
    _executemany_sqlite(
        connection, table, key_columns, columns, values, progress, iso_text or {}, keys_unique
    )


# Enough page cache that the indexes of a big table stay in memory while rows pour in;
# SQLite's default (2 MB) makes a 200,000-row load spend most of its time re-reading pages.
SQLITE_IMPORT_CACHE_KIB = 128 * 1024
# Helper threads SQLite may sort with while it builds the deferred indexes (its default is
# none): the two order indexes over 7.1 million rows took 11.6 s alone and 9.1 s with two.
SQLITE_INDEX_SORT_THREADS = min(4, os.cpu_count() or 1)


def _executemany_sqlite(
    connection: Connection,
    table: Table,
    key_columns: Sequence[str],
    columns: Sequence[str],
    values: Sequence[Sequence[Any]],
    progress: Progress | None,
    iso_text: Mapping[int, Sequence[str]],
    keys_unique: bool,
) -> None:
    """The upsert as a compiled Core statement, run as one driver executemany per chunk.

    SQLAlchemy's per-row parameter handling (a dict per row, a Python call per datetime)
    costs more than SQLite's insert itself, so values are converted a column at a time into
    exactly what SQLAlchemy's own type processing would have produced.
    """
    dialect = connection.dialect
    count = len(values[0])
    previous_cache = connection.exec_driver_sql("PRAGMA cache_size").scalar()
    connection.exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_IMPORT_CACHE_KIB}")
    deferred = _defer_indexes(connection, table, count, unique_too=keys_unique)
    statement: Any = (
        # Into an empty table, each key once: every row is new, and the unique index on the
        # key that ON CONFLICT names is rebuilt afterwards with the others.
        table.insert()
        if any(sql.startswith("CREATE UNIQUE") for sql in deferred)
        else _upsert_statement("sqlite", table, key_columns, columns)
    )
    compiled = statement.compile(dialect=dialect, column_keys=list(columns))
    order = [columns.index(name) for name in compiled.positiontup]
    bound: list[Sequence[Any]] = []
    for position in order:
        convert = _column_converter(table.c[columns[position]].type, dialect)
        if convert is None:
            bound.append(values[position])
        elif position in iso_text and convert.binds_iso_text:
            bound.append(iso_text[position])
        else:
            bound.append(convert(values[position]))
    sql = str(compiled)
    if any(len(column) != count for column in bound):
        raise ValueError("the columns to write differ in length")
    # The driver's cursor, in the transaction SQLAlchemy began, takes the rows as an iterator:
    # each tuple is bound and dropped before the next is made (zip then reuses it). One zip
    # over the whole columns, taken WRITE_CHUNK rows at a time: no column is copied.
    rows = zip(*bound, strict=True)
    cursor = cast(sqlite3.Cursor, connection.connection.cursor())  # the pysqlite driver
    try:
        for start in range(0, count, WRITE_CHUNK):
            size = min(WRITE_CHUNK, count - start)
            try:
                cursor.executemany(sql, islice(rows, size))
            except sqlite3.Error as exc:
                # What SQLAlchemy would have raised, so callers see one kind of error.
                raise DBAPIError.instance(
                    sql, None, exc, sqlite3.Error, hide_parameters=True, dialect=connection.dialect
                ) from exc
            if progress is not None:
                progress(size)
        # Same transaction: if anything above fails, the drops roll back with the rows.
        if deferred:
            connection.exec_driver_sql(f"PRAGMA threads={SQLITE_INDEX_SORT_THREADS}")
        for create_index in deferred:
            connection.exec_driver_sql(create_index)
    finally:
        cursor.close()
        connection.exec_driver_sql(f"PRAGMA cache_size={previous_cache}")
        connection.exec_driver_sql("PRAGMA threads=0")


# Below this many rows, keeping indexes up to date row by row is cheap enough.
DEFER_INDEXES_FROM_ROWS = 20_000


def _defer_indexes(
    connection: Connection, table: Table, rows: int, *, unique_too: bool
) -> list[str]:
    """Drop the indexes of an empty `table` about to get many rows; their SQL.

    Building an index once over sorted data is several times faster than growing it one
    insert at a time. Unique indexes go too when `unique_too` (the rows' keys are known to
    be distinct, so rebuilding them cannot fail); otherwise they stay to enforce the
    natural key. Constraints declared in the table itself (no SQL of their own) always stay.
    The exact SQL SQLite has on record is replayed, so the schema ends as it began.
    """
    if rows < DEFER_INDEXES_FROM_ROWS:
        return []
    if not is_empty(connection, table):
        return []
    indexes = connection.exec_driver_sql(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
        "AND sql IS NOT NULL AND (? OR sql NOT LIKE 'CREATE UNIQUE%')",
        (table.name, unique_too),
    ).all()
    for name, _sql in indexes:
        connection.exec_driver_sql(f'DROP INDEX "{name}"')
    return [sql for _name, sql in indexes]


class _Converter:
    """Turns a column of values into what SQLAlchemy's bind processing would make of them."""

    def __init__(
        self, convert: Callable[[Sequence[Any]], list[Any]], *, binds_iso_text: bool = False
    ) -> None:
        self.convert = convert
        # True when the driver gets `value.isoformat(" ", "microseconds")` for each value.
        self.binds_iso_text = binds_iso_text

    def __call__(self, values: Sequence[Any]) -> list[Any]:
        return self.convert(values)


def _column_converter(type_: Any, dialect: Any) -> _Converter | None:
    processor = type_.dialect_impl(dialect).bind_processor(dialect)
    if processor is None:
        return None
    # Dates and datetimes: the ISO text SQLAlchemy stores, made by C code rather than a
    # Python format per value -- used only after checking both give the same text.
    probe_moment = datetime(2026, 3, 1, 14, 5, 6, 7)
    try:
        fast_datetime = processor(probe_moment) == probe_moment.isoformat(" ", "microseconds")
    except (TypeError, ValueError, AttributeError):
        fast_datetime = False
    if fast_datetime:
        as_text = methodcaller("isoformat", " ", "microseconds")
        return _Converter(
            lambda values: (
                list(map(as_text, values))
                if None not in values
                else [None if v is None else as_text(v) for v in values]
            ),
            binds_iso_text=True,
        )
    probe_day = date(2026, 3, 1)
    try:
        fast_date = processor(probe_day) == probe_day.isoformat()
    except (TypeError, ValueError, AttributeError):
        fast_date = False
    if fast_date:
        return _Converter(lambda values: [None if v is None else v.isoformat() for v in values])
    return _Converter(lambda values: list(map(processor, values)))


def _upsert_statement(
    dialect: str, table: Table, key_columns: Sequence[str], columns: Sequence[str]
) -> Any:
    updated = [name for name in columns if name not in key_columns]
    if dialect == "sqlite":
        statement = sqlite.insert(table)
        if not updated:
            return statement.on_conflict_do_nothing(index_elements=list(key_columns))
        return statement.on_conflict_do_update(
            index_elements=list(key_columns),
            set_={name: statement.excluded[name] for name in updated},
        )
    if dialect in ("mysql", "mariadb"):
        mysql_statement = mysql.insert(table)
        # With nothing else to set, "update" the key to itself: a no-op that keeps the row.
        names = updated or list(key_columns[:1])
        return mysql_statement.on_duplicate_key_update(
            {name: mysql_statement.inserted[name] for name in names}
        )
    raise NotImplementedError(f"no bulk upsert for the {dialect} dialect")


def _copy_upsert_postgresql(
    connection: Connection,
    table: Table,
    key_columns: Sequence[str],
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    progress: Progress | None,
) -> None:
    staging = f"crmbot_import_{uuid.uuid4().hex[:12]}"
    column_list = ", ".join(f'"{name}"' for name in columns)
    connection.exec_driver_sql(
        f'CREATE TEMPORARY TABLE "{staging}" ON COMMIT DROP AS '
        f'SELECT {column_list} FROM "{table.name}" WITH NO DATA'
    )
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(f'COPY "{staging}" ({column_list}) FROM STDIN') as copy:
            for done, row in enumerate(rows, start=1):
                copy.write_row(row)
                if progress is not None and done % WRITE_CHUNK == 0:
                    progress(WRITE_CHUNK)
    finally:
        cursor.close()
    updated = [name for name in columns if name not in key_columns]
    conflict = ", ".join(f'"{name}"' for name in key_columns)
    action = (
        "DO UPDATE SET " + ", ".join(f'"{name}" = EXCLUDED."{name}"' for name in updated)
        if updated
        else "DO NOTHING"
    )
    connection.exec_driver_sql(
        f'INSERT INTO "{table.name}" ({column_list}) SELECT {column_list} FROM "{staging}" '
        f"ON CONFLICT ({conflict}) {action}"
    )
    if progress is not None:
        progress(len(rows) % WRITE_CHUNK)
