"""model runs can be pinned (kept by retention)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 14:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN, not a batch (copy-and-move) alter: on SQLite a batch alter drops
    # and recreates model_run, which the foreign keys of a database with scores refuse.
    op.add_column(
        "model_run",
        sa.Column("pinned", sa.Boolean(), server_default=sa.false(), nullable=False),
    )


def downgrade() -> None:
    with op.batch_alter_table("model_run", schema=None) as batch_op:
        batch_op.drop_column("pinned")
