"""an order's creation is the order row itself: order_status_changes holds changes only

The first history row of every order ("→ new", by the customer, at ``created_at``) repeated what the
order row already says, and kept a copy of the customer's name. Readers show the placing from the
order row; confirming an order writes one row fewer.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 12:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("DELETE FROM order_status_changes WHERE from_status IS NULL AND to_status = 'new'")


def downgrade() -> None:
    op.execute(
        "INSERT INTO order_status_changes (order_id, from_status, to_status, actor_role, created_at) "
        "SELECT id, NULL, 'new', 'customer', created_at FROM orders ORDER BY id"
    )
