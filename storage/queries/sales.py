"""``/report``'s SQL: the period's order figures and top products."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Customer, Order, OrderItem, Product
from storage.queries.common import REVENUE_EXCLUDED, counted_orders, in_range


@dataclass(frozen=True)
class OrderFigures:
    orders: int  # counted orders created in the period
    revenue: int
    active: int  # customers with a counted order
    cancelled: int  # orders created in the period that are not sales
    new_customers: int  # customer files registered in the period


async def figures(session: AsyncSession, start: datetime, end: datetime) -> OrderFigures:
    counted = (await session.execute(
        select(func.count().label("orders"), func.coalesce(func.sum(Order.total), 0).label("revenue"),
               func.count(func.distinct(Order.customer_id)).label("active"))
        .where(counted_orders(start, end))
    )).one()
    cancelled = await session.scalar(
        select(func.count()).where(Order.status.in_(REVENUE_EXCLUDED), in_range(Order.created_at, start, end)))
    new = await session.scalar(select(func.count()).where(in_range(Customer.registered_at, start, end)))
    return OrderFigures(orders=int(counted.orders or 0), revenue=int(counted.revenue or 0),
                        active=int(counted.active or 0), cancelled=int(cancelled or 0), new_customers=int(new or 0))


async def top_products(session: AsyncSession, start: datetime, end: datetime, limit: int) -> Sequence[Row[Any]]:
    """The best-selling products by revenue at the order's prices: rows of id, name_en, name_zh, unit,
    unit_zh, qty, revenue (highest revenue first)."""
    revenue = func.sum(OrderItem.quantity * OrderItem.unit_price)
    top = (
        select(OrderItem.product_id.label("product_id"), func.sum(OrderItem.quantity).label("qty"),
               revenue.label("revenue"))
        .join(Order, Order.id == OrderItem.order_id)
        .where(counted_orders(start, end))
        .group_by(OrderItem.product_id)
        .order_by(revenue.desc(), OrderItem.product_id)
        .limit(limit)
        .subquery("top")
    )
    stmt = (
        select(Product.id, Product.name_en, Product.name_zh, Product.unit, Product.unit_zh, top.c.qty, top.c.revenue)
        .join(top, top.c.product_id == Product.id)
        .order_by(top.c.revenue.desc(), Product.id)
    )
    return (await session.execute(stmt)).all()
