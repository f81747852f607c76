"""request claims: a retried or replayed Slack delivery is recognised after a restart

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('request_claim',
    sa.Column('request_id', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('claimed_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('request_id')
    )
    with op.batch_alter_table('request_claim', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_request_claim_claimed_at'), ['claimed_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('request_claim', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_request_claim_claimed_at'))

    op.drop_table('request_claim')
