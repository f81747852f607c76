"""How much room the tables take, and giving room back, on every database.

* `table_sizes`: rows and bytes per table. Bytes come from what each database can tell:
  SQLite's `dbstat` table (every page of the table and its indexes; it reads the whole
  file) or, where SQLite was built without it, nothing per table (only the file's pages,
  in `database_size`); PostgreSQL's `pg_total_relation_size` (table, indexes and TOAST);
  MariaDB's `information_schema.TABLES` (InnoDB's estimate of data and index length).
* `reclaim_free_pages`: after a large delete, SQLite hands the freed pages back to the
  file system when the database has `auto_vacuum=INCREMENTAL` (every file crmbot creates,
  `crmbot.core.db`); PostgreSQL and MariaDB reuse the space inside their files and need
  nothing here beyond fresh planner statistics.
* `vacuum`: the full, slower clean-up of `crmbot db vacuum`: SQLite rewrites the file (and
  switches an older database to `auto_vacuum=INCREMENTAL` on the way); PostgreSQL runs
  `VACUUM (ANALYZE)`; MariaDB `OPTIMIZE TABLE` (a rebuild of each table).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, inspect, select, table, text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from crmbot.core.db import is_sqlite, refresh_statistics

# Pages `reclaim_free_pages` frees per statement (16,384 pages = 64 MiB at 4 KiB); the WAL
# is checkpointed in between, so it never holds more than about that much.
RECLAIM_PAGES_PER_STEP = 16_384

AUTO_VACUUM_MODES = {0: "none", 1: "full", 2: "incremental"}


@dataclass(frozen=True)
class TableSize:
    name: str
    rows: int
    bytes: int | None  # None: the database cannot tell per table


@dataclass(frozen=True)
class DatabaseSize:
    bytes: int | None  # the whole database (SQLite: the file and its WAL)
    free_bytes: int | None  # allocated but unused (SQLite: free pages; MariaDB: data_free)
    note: str  # how the figures were taken, in words


def crmbot_tables(engine: Engine) -> list[str]:
    """crmbot's tables that exist in the database, in the models' order."""
    present = set(inspect(engine).get_table_names())
    return [table.name for table in SQLModel.metadata.sorted_tables if table.name in present]


def table_sizes(engine: Engine, tables: list[str] | None = None) -> list[TableSize]:
    """Exact row counts and bytes (where the database can tell) of `tables` (default:
    every crmbot table), largest first."""
    names = crmbot_tables(engine) if tables is None else tables
    with engine.connect() as connection:
        rows = {
            name: int(
                connection.execute(select(func.count()).select_from(table(name))).scalar_one()
            )
            for name in names
        }
        sizes = _bytes_per_table(connection, engine, names)
    found = [TableSize(name, rows[name], sizes.get(name)) for name in names]
    return sorted(found, key=lambda t: (t.bytes or 0, t.rows), reverse=True)


def _bytes_per_table(connection: Any, engine: Engine, names: list[str]) -> dict[str, int]:
    dialect = engine.dialect.name
    if dialect == "sqlite":
        if not _has_dbstat(connection):
            return {}
        owners = dict(
            connection.exec_driver_sql(
                "SELECT name, tbl_name FROM sqlite_master WHERE type IN ('table', 'index')"
            ).all()
        )
        sizes: dict[str, int] = {}
        for btree, size in connection.exec_driver_sql(
            "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"
        ).all():
            owner = owners.get(btree, btree)
            sizes[owner] = sizes.get(owner, 0) + int(size or 0)
        return {name: sizes.get(name, 0) for name in names}
    if dialect == "postgresql":
        return {
            name: int(
                connection.execute(
                    text("SELECT pg_total_relation_size(CAST(:name AS regclass))"),
                    {"name": engine.dialect.identifier_preparer.quote(name)},
                ).scalar_one()
            )
            for name in names
        }
    if dialect in ("mysql", "mariadb"):
        found = connection.execute(
            text(
                "SELECT TABLE_NAME, COALESCE(DATA_LENGTH, 0) + COALESCE(INDEX_LENGTH, 0) "
                "FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"
            )
        ).all()
        return {str(name): int(size) for name, size in found if name in names}
    return {}


def _has_dbstat(connection: Any) -> bool:
    try:
        connection.exec_driver_sql("SELECT 1 FROM dbstat LIMIT 1").all()
    except Exception:
        connection.rollback()
        return False
    return True


def database_size(engine: Engine) -> DatabaseSize:
    """The whole database's size and its unused part, as far as the database can tell."""
    dialect = engine.dialect.name
    with engine.connect() as connection:
        if dialect == "sqlite":
            page_size = int(connection.exec_driver_sql("PRAGMA page_size").scalar_one())
            pages = int(connection.exec_driver_sql("PRAGMA page_count").scalar_one())
            free = int(connection.exec_driver_sql("PRAGMA freelist_count").scalar_one())
            mode = sqlite_auto_vacuum(engine)
            path = engine.url.database
            on_disk = pages * page_size
            if path and path != ":memory:" and os.path.exists(path):
                wal = f"{path}-wal"
                on_disk = os.path.getsize(path) + (
                    os.path.getsize(wal) if os.path.exists(wal) else 0
                )
            return DatabaseSize(
                on_disk,
                free * page_size,
                f"SQLite file and WAL; {pages:,} pages of {page_size:,} bytes, "
                f"{free:,} free; auto_vacuum={mode}",
            )
        if dialect == "postgresql":
            total = connection.execute(
                text("SELECT pg_database_size(current_database())")
            ).scalar_one()
            return DatabaseSize(int(total), None, "pg_database_size (every table of the database)")
        if dialect in ("mysql", "mariadb"):
            total, free = connection.execute(
                text(
                    "SELECT COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0), "
                    "COALESCE(SUM(DATA_FREE), 0) FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = DATABASE()"
                )
            ).one()
            return DatabaseSize(
                int(total), int(free), "information_schema.TABLES (InnoDB's estimates)"
            )
    return DatabaseSize(None, None, f"{dialect}: sizes unknown")


def sqlite_auto_vacuum(engine: Engine) -> str:
    """SQLite's auto_vacuum mode: "none", "full" or "incremental"."""
    with engine.connect() as connection:
        mode = int(connection.exec_driver_sql("PRAGMA auto_vacuum").scalar_one())
    return AUTO_VACUUM_MODES.get(mode, str(mode))


def reclaim_free_pages(engine: Engine, *tables: str) -> int:
    """Give the room a large delete freed back, as far as the database does so on line.

    SQLite with auto_vacuum=INCREMENTAL: `PRAGMA incremental_vacuum`, a step of
    RECLAIM_PAGES_PER_STEP pages at a time with a WAL checkpoint after each, so the file
    shrinks by the pages freed; returns the bytes given back. SQLite without it (a file
    created before crmbot set it): nothing (the free pages are reused by the next writes;
    `vacuum` converts the file). PostgreSQL and MariaDB reuse the space themselves: the
    planner statistics of `tables` are refreshed. Returns 0 where nothing was given back.
    """
    if not is_sqlite(engine):
        refresh_statistics(engine, *tables)
        return 0
    if sqlite_auto_vacuum(engine) != "incremental":
        return 0
    raw = engine.raw_connection()
    try:
        driver: Any = raw.driver_connection
        page_size = int(driver.execute("PRAGMA page_size").fetchone()[0])
        before = int(driver.execute("PRAGMA page_count").fetchone()[0])
        while int(driver.execute("PRAGMA freelist_count").fetchone()[0]) > 0:
            # executescript runs the pragma to its end; `execute` frees one page per call.
            driver.executescript(f"PRAGMA incremental_vacuum({RECLAIM_PAGES_PER_STEP});")
            _checkpoint(driver)
        after = int(driver.execute("PRAGMA page_count").fetchone()[0])
    finally:
        raw.close()
    return max(before - after, 0) * page_size


def _checkpoint(driver: Any) -> None:
    # TRUNCATE empties the WAL file when no reader is using it; with readers it does what
    # it can and the next checkpoint finishes. Harmless on a database not in WAL mode.
    driver.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


def vacuum(engine: Engine) -> None:
    """The full clean-up of `crmbot db vacuum` (see the module docstring).

    SQLite: VACUUM rewrites the whole file and needs free disk space about its size;
    writers wait while it runs (readers carry on, from the WAL). PostgreSQL: VACUUM
    (ANALYZE) of crmbot's tables, which makes their dead rows' room reusable without
    locking readers out. MariaDB: OPTIMIZE TABLE rebuilds each table (InnoDB does it
    on line) and gives the room back to the file system.
    """
    tables = crmbot_tables(engine)
    quote = engine.dialect.identifier_preparer.quote
    if is_sqlite(engine):
        raw = engine.raw_connection()
        try:
            driver: Any = raw.driver_connection
            driver.execute("PRAGMA auto_vacuum=INCREMENTAL")
            driver.executescript("VACUUM;")
            _checkpoint(driver)
        finally:
            raw.close()
        return
    names = ", ".join(quote(name) for name in tables)
    if not names:
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql(f"VACUUM (ANALYZE) {names}")
        else:
            connection.exec_driver_sql(f"OPTIMIZE TABLE {names}").all()
