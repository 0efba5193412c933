"""``/abc``'s SQL: customers classed A, B, C by their revenue (see ``bot.reports.abc`` for the rule).

Per-customer revenue (one pass over the orders, into a temporary table), then
one row per distinct revenue value, then a running sum over those rows; a
class is then "revenue at least the lowest revenue of the class", which lists
its members.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Customer, Order
from storage.queries.common import counted_orders_by_customer, scratch

# class → (customers, revenue, lowest revenue in the class)
Classes = dict[str, tuple[int, int, int]]


def _customer_revenue(session: AsyncSession, start: datetime, end: datetime, days: int) -> Any:
    """Per-customer revenue and order count in ``[start, end)`` (a select)."""
    return (
        select(Order.customer_id.label("customer_id"), func.sum(Order.total).label("revenue"),
               func.count().label("orders"))
        .where(counted_orders_by_customer(session, start, end, days))
        .group_by(Order.customer_id)
    )


def _class_levels(per_customer: Any, a_share: float, b_share: float) -> Any:
    """One row per distinct revenue value with its class (a subquery)."""
    levels = (
        select(per_customer.c.revenue.label("revenue"), func.count().label("customers"))
        .group_by(per_customer.c.revenue)
        .subquery("levels")
    )
    amount = levels.c.revenue * levels.c.customers
    before = func.coalesce(
        func.sum(amount).over(order_by=levels.c.revenue.desc(), rows=(None, -1)), 0)
    total = func.sum(amount).over()
    ranked = (select(levels.c.revenue, levels.c.customers, before.label("before"), total.label("total"))
              .subquery("ranked"))
    klass = case(
        (ranked.c.before < ranked.c.total * a_share, literal("A")),
        (ranked.c.before < ranked.c.total * (a_share + b_share), literal("B")),
        else_=literal("C"),
    )
    return select(ranked.c.revenue, ranked.c.customers, klass.label("klass")).subquery("classed")


async def _classes(session: AsyncSession, table: Any, a_share: float, b_share: float) -> Classes:
    classed = _class_levels(table, a_share, b_share)
    stmt = (
        select(classed.c.klass, func.sum(classed.c.customers).label("customers"),
               func.sum(classed.c.revenue * classed.c.customers).label("revenue"),
               func.min(classed.c.revenue).label("lowest"))
        .group_by(classed.c.klass)
    )
    return {row.klass: (int(row.customers), int(row.revenue), int(row.lowest))
            for row in (await session.execute(stmt)).all()}


def _class_of(found: Classes, revenue: Any) -> Any:
    """The class as SQL, from the lowest revenue of A and B (ties share a revenue, so a class)."""
    whens = [(revenue >= found[name][2], literal(name)) for name in ("A", "B") if name in found]
    return case(*whens, else_=literal("C")) if whens else literal("C")


async def classes_and_top(session: AsyncSession, start: datetime, end: datetime, days: int, a_share: float,
                          b_share: float, top_n: int) -> tuple[Classes, Sequence[Row[Any]]]:
    """The classes, and the ``top_n`` customers of class A: rows of customer_id, revenue, orders, name
    (highest revenue first)."""
    top: Sequence[Row[Any]] = []
    async with scratch(session, _customer_revenue(session, start, end, days), "abc") as table:
        found = await _classes(session, table, a_share, b_share)
        if "A" in found:
            top_stmt = (
                select(table.c.customer_id, table.c.revenue, table.c.orders, Customer.name)
                .join(Customer, Customer.id == table.c.customer_id)
                .where(table.c.revenue >= found["A"][2])
                .order_by(table.c.revenue.desc(), table.c.customer_id)
                .limit(top_n)
            )
            top = (await session.execute(top_stmt)).all()
    return found, top


async def classed_customers(session: AsyncSession, start: datetime, end: datetime, days: int, a_share: float,
                            b_share: float) -> Sequence[Row[Any]]:
    """Every classed customer: rows of customer_id, name, orders, revenue, klass (highest revenue first)."""
    async with scratch(session, _customer_revenue(session, start, end, days), "abc") as table:
        found = await _classes(session, table, a_share, b_share)
        stmt = (
            select(table.c.customer_id, Customer.name, table.c.orders, table.c.revenue,
                   _class_of(found, table.c.revenue).label("klass"))
            .join(Customer, Customer.id == table.c.customer_id)
            .order_by(table.c.revenue.desc(), table.c.customer_id)
        )
        return (await session.execute(stmt)).all()
