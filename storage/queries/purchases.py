"""The purchase model's SQL: every customer's counted orders as lists of integers, a block of customers a row.

One row per customer (count and revenue of counted orders, their times in
whole minutes as one "m,m,…" list — the care engine's feed format), read by
customer from the customer-ordered covering index; then a block of
:data:`BLOCK` customers per row (four lists in the same customer order): a
hundred rows cross into Python instead of one per customer, and the caller
reads each list in one call.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.dialect import epoch_minutes, int_list
from storage.models import Order
from storage.queries.common import counted_orders, counted_orders_by_customer

BLOCK = 1_024  # customers (by id) per row


async def blocks(session: AsyncSession, now: datetime, customer_id: int | None = None) -> list[tuple[Any, ...]]:
    """Rows of four "1,2,3" lists: customer ids, their counted orders, revenue, and all their orders'
    minutes since 1970 (each customer's ``orders`` of them in turn), for the orders before ``now``
    (one customer's only, with ``customer_id``).

    Blocks come in order of id; within one, on SQLite, customers come in the order it visits them.
    """
    o = Order.__table__.c
    count = func.count()
    per_customer = (
        select(o.customer_id.label("customer_id"), count.label("orders"),
               func.coalesce(func.sum(o.total), 0).label("revenue"),
               int_list(epoch_minutes(o.created_at), o.created_at, o.id).label("minutes"))
        .where(counted_orders_by_customer(session, None, now) if customer_id is None
               else and_(o.customer_id == customer_id, counted_orders(None, now)))
        .group_by(o.customer_id)
        .subquery("per_customer")
    )
    c = per_customer.c
    block = c.customer_id // literal_column(str(BLOCK))  # (a literal: the same text in GROUP BY and ORDER BY)
    stmt = (
        select(int_list(c.customer_id, c.customer_id), int_list(c.orders, c.customer_id),
               int_list(c.revenue, c.customer_id), int_list(c.minutes, c.customer_id))
        .group_by(block)
        .order_by(block)
    )
    return [tuple(row) for row in (await session.execute(stmt)).all()]
