"""erasure lock: an erasure and an import of people never overlap

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-09 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Its one row is created by the first erasure or import that locks it.
    op.create_table('erasure_lock',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade() -> None:
    op.drop_table('erasure_lock')
