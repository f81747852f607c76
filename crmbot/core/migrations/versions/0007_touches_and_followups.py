"""touches and follow-ups: what account managers do about a customer, and who follows it

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-11 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('touch',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_pk', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('author', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    # The live run when the touch was logged; not a foreign key (retention prunes runs).
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['customer_pk'], ['customer.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_touch_customer_created', 'touch', ['customer_pk', 'created_at'], unique=False)
    op.create_index(op.f('ix_touch_created_at'), 'touch', ['created_at'], unique=False)
    op.create_index(op.f('ix_touch_run_id'), 'touch', ['run_id'], unique=False)
    op.create_table('follow_up',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_pk', sa.Integer(), nullable=False),
    sa.Column('assignee', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('done_at', sa.DateTime(), nullable=True),
    sa.Column('sent_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['customer_pk'], ['customer.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_follow_up_assignee'), 'follow_up', ['assignee'], unique=False)
    op.create_index(op.f('ix_follow_up_customer_pk'), 'follow_up', ['customer_pk'], unique=False)
    op.create_index('ix_follow_up_due_sent', 'follow_up', ['due_on', 'sent_at'], unique=False)
    op.create_table('follow',
    sa.Column('customer_pk', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('user_id', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['customer_pk'], ['customer.id'], ),
    sa.PrimaryKeyConstraint('customer_pk', 'user_id')
    )
    op.create_index(op.f('ix_follow_user_id'), 'follow', ['user_id'], unique=False)
    op.create_table('snooze',
    sa.Column('customer_pk', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('user_id', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('until', sa.Date(), nullable=False),
    sa.ForeignKeyConstraint(['customer_pk'], ['customer.id'], ),
    sa.PrimaryKeyConstraint('customer_pk', 'user_id')
    )
    op.create_table('alert_delivery',
    sa.Column('run_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('customer_pk', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('recipient', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('sent_at', sa.DateTime(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.ForeignKeyConstraint(['customer_pk'], ['customer.id'], ),
    sa.PrimaryKeyConstraint('run_id', 'customer_pk', 'recipient')
    )
    op.create_index(op.f('ix_alert_delivery_customer_pk'), 'alert_delivery', ['customer_pk'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_alert_delivery_customer_pk'), table_name='alert_delivery')
    op.drop_table('alert_delivery')
    op.drop_table('snooze')
    op.drop_index(op.f('ix_follow_user_id'), table_name='follow')
    op.drop_table('follow')
    op.drop_index('ix_follow_up_due_sent', table_name='follow_up')
    op.drop_index(op.f('ix_follow_up_customer_pk'), table_name='follow_up')
    op.drop_index(op.f('ix_follow_up_assignee'), table_name='follow_up')
    op.drop_table('follow_up')
    op.drop_index(op.f('ix_touch_run_id'), table_name='touch')
    op.drop_index(op.f('ix_touch_created_at'), table_name='touch')
    op.drop_index('ix_touch_customer_created', table_name='touch')
    op.drop_table('touch')
