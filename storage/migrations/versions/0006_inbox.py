"""inbox: acknowledged updates kept until handled

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.models.base

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('inbox_updates',
    sa.Column('update_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('lane', sa.BigInteger(), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('received_at', storage.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('handled_at', storage.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('update_id', name=op.f('pk_inbox_updates'))
    )
    with op.batch_alter_table('inbox_updates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inbox_updates_handled_at'), ['handled_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('inbox_updates', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inbox_updates_handled_at'))
    op.drop_table('inbox_updates')
