"""Alembic environment: migrations run on the engine crmbot hands over (or the URL)."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import crmbot.core.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from crmbot.core.db import make_engine

# Tables other libraries own in the same database (APScheduler's job store).
FOREIGN_TABLES = {"apscheduler_jobs"}


def include_object(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    return not (type_ == "table" and name in FOREIGN_TABLES)


def run_migrations() -> None:
    engine = context.config.attributes.get("engine") or make_engine(
        context.config.get_main_option("sqlalchemy.url")
    )
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=SQLModel.metadata,
            include_object=include_object,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations()
