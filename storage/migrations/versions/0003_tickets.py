"""tickets: complaints, their events and relayed messages

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 00:12:53.095166
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.models.base

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('tickets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=True),
    sa.Column('category', sa.String(length=16), nullable=False),
    sa.Column('priority', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('idempotency_key', sa.String(length=64), nullable=True),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('photo_file_ids', sa.Text(), nullable=True),
    sa.Column('assignee_telegram_id', sa.BigInteger(), nullable=True),
    sa.Column('assignee_name', sa.String(length=64), nullable=True),
    sa.Column('created_at', storage.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', storage.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('taken_at', storage.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('first_response_at', storage.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('resolved_at', storage.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('closed_at', storage.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('resolution_note', sa.Text(), nullable=True),
    sa.Column('first_response_due_at', storage.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('resolution_due_at', storage.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('first_response_minutes', sa.Float(), nullable=True),
    sa.Column('resolution_minutes', sa.Float(), nullable=True),
    sa.Column('first_response_breached', sa.Boolean(), nullable=True),
    sa.Column('resolution_breached', sa.Boolean(), nullable=True),
    sa.Column('waiting_since', storage.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('waiting_minutes', sa.Float(), nullable=False),
    sa.Column('reopen_count', sa.Integer(), nullable=False),
    sa.Column('rating', sa.Integer(), nullable=True),
    sa.Column('rating_comment', sa.Text(), nullable=True),
    sa.Column('rated_at', storage.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('staff_chat_id', sa.BigInteger(), nullable=True),
    sa.Column('staff_message_id', sa.BigInteger(), nullable=True),
    sa.Column('staff_thread_id', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_tickets_customer_id_customers'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_tickets_order_id_orders'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tickets')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_tickets_idempotency_key'))
    )
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.create_index('ix_tickets_created', ['created_at'], unique=False)
        batch_op.create_index('ix_tickets_customer_status', ['customer_id', 'status'], unique=False)
        batch_op.create_index('ix_tickets_status_created', ['status', 'created_at'], unique=False)
        batch_op.create_index('ix_tickets_staff_message', ['staff_chat_id', 'staff_message_id'], unique=False)
        batch_op.create_index('ix_tickets_staff_thread', ['staff_chat_id', 'staff_thread_id'], unique=False)

    op.create_table('ticket_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('from_status', sa.String(length=20), nullable=True),
    sa.Column('to_status', sa.String(length=20), nullable=True),
    sa.Column('actor_telegram_id', sa.BigInteger(), nullable=True),
    sa.Column('actor_name', sa.String(length=64), nullable=True),
    sa.Column('actor_role', sa.String(length=16), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('created_at', storage.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_ticket_events_ticket_id_tickets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ticket_events'))
    )
    with op.batch_alter_table('ticket_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ticket_events_ticket_id'), ['ticket_id'], unique=False)

    op.create_table('ticket_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('direction', sa.String(length=8), nullable=False),
    sa.Column('author_telegram_id', sa.BigInteger(), nullable=True),
    sa.Column('author_name', sa.String(length=64), nullable=True),
    sa.Column('text', sa.Text(), nullable=True),
    sa.Column('photo_file_id', sa.String(length=200), nullable=True),
    sa.Column('staff_chat_id', sa.BigInteger(), nullable=True),
    sa.Column('staff_message_id', sa.BigInteger(), nullable=True),
    sa.Column('delivered', sa.Boolean(), nullable=True),
    sa.Column('created_at', storage.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_ticket_messages_ticket_id_tickets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ticket_messages'))
    )
    with op.batch_alter_table('ticket_messages', schema=None) as batch_op:
        batch_op.create_index('ix_ticket_messages_staff_message', ['staff_chat_id', 'staff_message_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ticket_messages_ticket_id'), ['ticket_id'], unique=False)

    # ### end Alembic commands ###


def downgrade() -> None:
    # ### commands auto generated by Alembic - please adjust! ###
    with op.batch_alter_table('ticket_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ticket_messages_ticket_id'))
        batch_op.drop_index('ix_ticket_messages_staff_message')

    op.drop_table('ticket_messages')
    with op.batch_alter_table('ticket_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ticket_events_ticket_id'))

    op.drop_table('ticket_events')
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tickets_staff_thread')
        batch_op.drop_index('ix_tickets_staff_message')
        batch_op.drop_index('ix_tickets_status_created')
        batch_op.drop_index('ix_tickets_customer_status')
        batch_op.drop_index('ix_tickets_created')

    op.drop_table('tickets')
