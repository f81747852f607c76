"""The schema: migrations build exactly what the models declare, on every database."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from crmbot.db import current_revision, upgrade


def test_migrations_match_the_models(storage_engine: Engine) -> None:
    with storage_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        differences = [
            d for d in compare_metadata(context, SQLModel.metadata)
            if not (d[0] == "remove_table" and d[1].name == "alembic_version")
        ]
    assert differences == [], "models.py and the migrations disagree; add a migration"


def test_upgrade_is_idempotent(storage_engine: Engine) -> None:
    first = current_revision(storage_engine)
    upgrade(storage_engine)
    assert current_revision(storage_engine) == first
    assert "customer" in inspect(storage_engine).get_table_names()
