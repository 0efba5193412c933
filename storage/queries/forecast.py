"""The forecast's SQL: purchase days (customer-days with a counted order) and the first order."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.dialect import epoch_minutes
from storage.models import Order
from storage.queries.common import counted_orders


async def purchase_days(session: AsyncSession, start: datetime, end: datetime, offset_minutes: int) -> int:
    """Customer-days with a counted order in ``[start, end)``, days taken at a UTC offset of ``offset_minutes``."""
    day = (epoch_minutes(Order.created_at) + offset_minutes) // 1440
    days = select(Order.customer_id, day.label("day")).where(counted_orders(start, end)).distinct().subquery()
    return int(await session.scalar(select(func.count()).select_from(days)) or 0)


async def first_order(session: AsyncSession, now: datetime) -> datetime | None:
    """When the first counted order before ``now`` was created."""
    return await session.scalar(select(func.min(Order.created_at)).where(counted_orders(None, now)))
