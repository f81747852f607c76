"""run summary: questions about groups of customers read a few thousand cells, not every score

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-12 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

# The score columns the summary adds up, as crmbot.core.models.SUMMED_SCORES was when
# this revision was written (a migration does not follow later changes to the model).
SUMMED_SCORES = (
    "clv", "churn_risk", "value_at_risk", "satisfaction", "recency_days", "total_spend",
    "monetary", "orders_count", "influence", "referred_customers", "p_alive",
    "expected_purchases", "csat_avg", "nps_latest", "sentiment",
)


def upgrade() -> None:
    sums = []
    for name in SUMMED_SCORES:
        sums += [
            sa.Column(f'{name}_sum', sa.Double(), nullable=True),
            sa.Column(f'{name}_n', sa.Integer(), nullable=False),
        ]
    op.create_table('run_summary',
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('segment', sa.String(length=40), nullable=True),
    sa.Column('region', sa.String(length=80), nullable=True),
    sa.Column('owner', sa.String(length=120), nullable=True),
    sa.Column('cluster', sa.Integer(), nullable=True),
    sa.Column('cluster_label', sa.String(length=120), nullable=True),
    sa.Column('nps_category', sa.String(length=12), nullable=True),
    sa.Column('risk_band', sa.Integer(), nullable=True),
    sa.Column('customers', sa.Integer(), nullable=False),
    *sums,
    )
    op.create_index(op.f('ix_run_summary_run_id'), 'run_summary', ['run_id'], unique=False)
    # Customers in order of risk, partial so that only statements about churn risk use
    # them (see crmbot.core.models.CustomerScore).
    known = sa.text('churn_risk IS NOT NULL')
    op.create_index('ix_score_run_churn_risk', 'customer_score', ['run_id', 'churn_risk'], unique=False, sqlite_where=known, postgresql_where=known)
    op.create_index('ix_score_run_segment_risk', 'customer_score', ['run_id', 'segment', 'churn_risk'], unique=False, sqlite_where=known, postgresql_where=known)
    # A customer's orders summed from the index alone: the amount joins the key. Made
    # before the old one goes: MariaDB's foreign key on customer_pk needs one at all times.
    op.create_index('ix_orders_customer_ordered_amount', 'orders', ['customer_pk', 'ordered_at', 'amount'], unique=False)
    op.drop_index('ix_orders_customer_ordered', table_name='orders')
    # The live run's cells now, so the first questions after the upgrade are fast too.
    bind = op.get_bind()
    live = bind.execute(sa.text("SELECT run_id FROM active_run WHERE slot = 'scores'")).scalar()
    if live is not None:
        from crmbot.core import run_summary

        run_summary.build(bind, live)


def downgrade() -> None:
    op.create_index('ix_orders_customer_ordered', 'orders', ['customer_pk', 'ordered_at'], unique=False)
    op.drop_index('ix_orders_customer_ordered_amount', table_name='orders')
    op.drop_index('ix_score_run_segment_risk', table_name='customer_score')
    op.drop_index('ix_score_run_churn_risk', table_name='customer_score')
    op.drop_index(op.f('ix_run_summary_run_id'), table_name='run_summary')
    op.drop_table('run_summary')
