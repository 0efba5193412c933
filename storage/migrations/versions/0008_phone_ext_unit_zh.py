"""phone_extension and unit_zh: a customer's phone keeps its extension; products have a Chinese unit

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 08:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A new column, not a longer ``phone``: widening it would make SQLite copy the customers
    # table, which the foreign keys from orders and tickets forbid on a database with data.
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('phone_extension', sa.String(length=10), nullable=True))
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.add_column(sa.Column('unit_zh', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.drop_column('unit_zh')
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_column('phone_extension')
