"""reports: managers' daily digests, segment campaigns, report indexes

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 02:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.models.base

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('report_digests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('manager_telegram_id', sa.BigInteger(), nullable=False),
    sa.Column('chat_id', sa.BigInteger(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('hour', sa.Integer(), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('last_sent_on', sa.Date(), nullable=True),
    sa.Column('created_at', storage.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', storage.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_digests')),
    sa.UniqueConstraint('manager_telegram_id', name=op.f('uq_report_digests_manager_telegram_id'))
    )
    op.create_table('segment_campaigns',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=120), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('segment', sa.String(length=32), nullable=False),
    sa.Column('template', sa.String(length=32), nullable=False),
    sa.Column('period', sa.String(length=32), nullable=False),
    sa.Column('created_by', sa.BigInteger(), nullable=False),
    sa.Column('created_at', storage.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('members', sa.Integer(), nullable=False),
    sa.Column('queued', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_segment_campaigns')),
    sa.UniqueConstraint('key', name=op.f('uq_segment_campaigns_key'))
    )
    with op.batch_alter_table('segment_campaigns', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_segment_campaigns_created_at'), ['created_at'], unique=False)

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index('ix_orders_attributed_outbox', ['attributed_outbox_id', 'status', 'total'],
                              unique=False)
        batch_op.create_index('ix_orders_report_created', ['created_at', 'status', 'customer_id', 'total'],
                              unique=False)
        batch_op.create_index('ix_orders_report_customer', ['customer_id', 'created_at', 'status', 'total'],
                              unique=False)

    with op.batch_alter_table('order_items', schema=None) as batch_op:
        batch_op.create_index('ix_order_items_report', ['order_id', 'product_id', 'quantity', 'unit_price'],
                              unique=False)

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_category_sent', ['category', 'sent_at', 'kind', 'status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_category_sent')

    with op.batch_alter_table('order_items', schema=None) as batch_op:
        batch_op.drop_index('ix_order_items_report')

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_report_customer')
        batch_op.drop_index('ix_orders_report_created')
        batch_op.drop_index('ix_orders_attributed_outbox')

    with op.batch_alter_table('segment_campaigns', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_segment_campaigns_created_at'))

    op.drop_table('segment_campaigns')
    op.drop_table('report_digests')
