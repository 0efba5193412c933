"""care engine: reminder stops and snoozes, survey answers; outbox expiry, attribution window, message lookup

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.models.base

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('care_stops',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('until', storage.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('outbox_id', sa.Integer(), nullable=True),
    sa.Column('created_at', storage.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_care_stops_customer_id_customers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['outbox_id'], ['outbox.id'], name=op.f('fk_care_stops_outbox_id_outbox'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_care_stops_product_id_products'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_care_stops')),
    sa.UniqueConstraint('customer_id', 'product_id', 'kind', name=op.f('uq_care_stops_customer_id_product_id_kind'))
    )
    op.create_table('care_survey_answers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('outbox_id', sa.Integer(), nullable=True),
    sa.Column('rating', sa.Integer(), nullable=False),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('created_at', storage.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', storage.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_care_survey_answers_customer_id_customers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_care_survey_answers_order_id_orders'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['outbox_id'], ['outbox.id'], name=op.f('fk_care_survey_answers_outbox_id_outbox'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_care_survey_answers')),
    sa.UniqueConstraint('order_id', name=op.f('uq_care_survey_answers_order_id'))
    )
    with op.batch_alter_table('care_survey_answers', schema=None) as batch_op:
        batch_op.create_index('ix_care_survey_answers_created', ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_care_survey_answers_customer_id'), ['customer_id'], unique=False)

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expires_at', storage.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('attribute_until', storage.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_outbox_chat_message', ['chat_id', 'telegram_message_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_chat_message')
        batch_op.drop_column('attribute_until')
        batch_op.drop_column('expires_at')

    with op.batch_alter_table('care_survey_answers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_care_survey_answers_customer_id'))
        batch_op.drop_index('ix_care_survey_answers_created')

    op.drop_table('care_survey_answers')
    op.drop_table('care_stops')
