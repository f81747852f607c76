"""name index: misspelt names are matched through the words near them, not every customer

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-10 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql, postgresql


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def _word() -> sa.types.TypeEngine:
    # Compared byte for byte everywhere, as in crmbot.core.models.
    return (
        sa.String(40)
        .with_variant(mysql.VARCHAR(40, collation="utf8mb4_bin"), "mysql", "mariadb")
        .with_variant(postgresql.VARCHAR(40, collation="C"), "postgresql")
    )


def upgrade() -> None:
    op.create_table('customer_name_token',
    sa.Column('token', _word(), nullable=False),
    sa.Column('customer_pk', sa.Integer(), autoincrement=False, nullable=False),
    sa.PrimaryKeyConstraint('token', 'customer_pk'),
    sqlite_with_rowid=False,
    )
    op.create_index('ix_customer_name_token_customer_pk', 'customer_name_token', ['customer_pk'], unique=False)
    op.create_table('name_token',
    sa.Column('token', _word(), nullable=False),
    sa.Column('customers', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('token')
    )
    op.create_table('name_token_variant',
    sa.Column('variant', _word(), nullable=False),
    sa.Column('token', _word(), nullable=False),
    sa.PrimaryKeyConstraint('variant', 'token'),
    sqlite_with_rowid=False,
    )
    op.create_index('ix_name_token_variant_token', 'name_token_variant', ['token'], unique=False)
    # The customers already imported get their words now.
    from crmbot.core import name_index

    name_index.rebuild(op.get_bind())


def downgrade() -> None:
    op.drop_index('ix_name_token_variant_token', table_name='name_token_variant')
    op.drop_table('name_token_variant')
    op.drop_table('name_token')
    op.drop_index('ix_customer_name_token_customer_pk', table_name='customer_name_token')
    op.drop_table('customer_name_token')
