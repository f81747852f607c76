"""The schema: migrations build exactly what the models declare, on every database."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import insert, inspect, text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from crmbot.core.db import current_revision, make_engine, refresh_statistics, upgrade
from crmbot.core.models import Customer


def test_migrations_match_the_models(storage_engine: Engine) -> None:
    with storage_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        differences = [
            d
            for d in compare_metadata(context, SQLModel.metadata)
            if not (d[0] == "remove_table" and d[1].name == "alembic_version")
        ]
    assert differences == [], "models.py and the migrations disagree; add a migration"


def test_upgrade_is_idempotent(storage_engine: Engine) -> None:
    first = current_revision(storage_engine)
    upgrade(storage_engine)
    assert current_revision(storage_engine) == first
    assert "customer" in inspect(storage_engine).get_table_names()


def test_statistics_are_refreshed_after_a_bulk_write(storage_engine: Engine) -> None:
    """PostgreSQL/MariaDB plan from statistics: a bulk write refreshes them; SQLite: no-op."""
    rows = [{"customer_id": f"C{n}", "name": f"Customer {n}"} for n in range(50)]
    with storage_engine.begin() as connection:
        connection.execute(insert(Customer.__table__), rows)  # type: ignore[attr-defined]
    refresh_statistics(storage_engine, "customer")
    with storage_engine.connect() as connection:
        if storage_engine.dialect.name == "postgresql":
            estimated = connection.execute(
                text("SELECT reltuples FROM pg_class WHERE relname = 'customer'")
            ).scalar_one()
            assert estimated == 50  # -1 (never analysed) without the refresh
        elif storage_engine.dialect.name == "sqlite":
            assert "sqlite_stat1" not in inspect(storage_engine).get_table_names()


def test_a_database_with_scores_upgrades_in_place(tmp_path: Path) -> None:
    """Every migration runs on a database that already holds runs and scores, as a real
    upgrade does (SQLite refuses to drop a table that other rows reference)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'crm.db'}")
    upgrade(engine, "0002")
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO customer (id, customer_id) VALUES (1, 'C1')"))
        connection.execute(
            text(
                "INSERT INTO model_run (id, as_of, started_at, status, forced) "
                "VALUES (1, '2026-06-30', '2026-07-01 02:00:00', 'succeeded', 0)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO customer_score (run_id, customer_pk, frequency, monetary, "
                "total_spend, orders_count, segment, referred_customers, referred_spend, "
                "referred_active) VALUES (1, 1, 2, 50.0, 100.0, 2, 'Loyal', 0, 0.0, 0)"
            )
        )
    upgrade(engine)
    columns = {c["name"] for c in inspect(engine).get_columns("model_run")}
    assert "pinned" in columns
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM customer_score")).scalar() == 1
    engine.dispose()


def test_training_reads_sqlite_without_the_memory_map(tmp_path: Path) -> None:
    from crmbot.core.db import without_memory_map

    engine = make_engine(f"sqlite:///{tmp_path / 'crm.db'}")

    def mapped() -> int:
        with engine.connect() as connection:
            return int(connection.exec_driver_sql("PRAGMA mmap_size").scalar_one())

    assert mapped() > 0  # the commands' reads go through the map
    with without_memory_map():
        assert mapped() == 0  # the same pooled connection, the map turned off
    assert mapped() > 0  # and on again for the next command
    engine.dispose()
