"""``/churn``'s SQL: names, last orders and last contacts of listed customers (in chunks of ids)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Customer, Order, OutboxMessage
from storage.queries.common import as_utc, counted_orders, id_chunks


async def names(session: AsyncSession, customer_ids: list[int]) -> dict[int, str | None]:
    found: dict[int, str | None] = {}
    for chunk in id_chunks(customer_ids):
        found.update((await session.execute(select(Customer.id, Customer.name).where(Customer.id.in_(chunk)))).all())
    return found


async def last_orders(session: AsyncSession, customer_ids: list[int], now: datetime) -> dict[int, datetime]:
    """Each customer's last counted order (a range of ix_orders_customer_created each)."""
    last: dict[int, datetime] = {}
    for chunk in id_chunks(customer_ids):
        stmt = (select(Order.customer_id, func.max(Order.created_at))
                .where(Order.customer_id.in_(chunk), counted_orders(None, now))
                .group_by(Order.customer_id))
        last.update((customer_id, as_utc(at)) for customer_id, at in (await session.execute(stmt)).all())
    return last


async def last_contacts(session: AsyncSession, customer_ids: list[int], now: datetime) -> dict[int, datetime]:
    """The last message the bot sent each customer (any outbox message) up to ``now``."""
    if not customer_ids:
        return {}
    stmt = (
        select(OutboxMessage.customer_id, func.max(OutboxMessage.sent_at).label("at"))
        .where(OutboxMessage.customer_id.in_(customer_ids), OutboxMessage.status == "sent",
               OutboxMessage.sent_at <= now)
        .group_by(OutboxMessage.customer_id)
    )
    return {row.customer_id: as_utc(row.at) for row in (await session.execute(stmt)).all() if row.at is not None}
