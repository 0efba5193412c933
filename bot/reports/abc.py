"""``/abc``: customers classed by their revenue over the period.

Customers are sorted by revenue, highest first. A customer's class depends on
the revenue of the customers *strictly above* them (``before``):

* A — ``before < abc_a_share × total``: the customers making the first 75 %
  of cumulative revenue, including the one who crosses the 75 % line;
* B — ``before < (abc_a_share + abc_b_share) × total``: the next 20 %;
* C — the rest.

Customers with equal revenue have the same ``before``, so a tie never
straddles a class boundary. Revenue leaves out cancelled orders; customers
without a counted order in the period are not classed. The classing runs in
SQL: per-customer revenue (one pass over the orders, into a temporary
table), then one row per distinct revenue value, then a running sum over
those rows; a class is then "revenue at least the lowest revenue of the
class", which lists its members.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.reports.periods import Period
from bot.reports.sql import counted_orders_by_customer, scratch, share
from storage.models import Customer, Order

CLASSES = ("A", "B", "C")
DEFAULT_PERIOD = "12m"


@dataclass
class AbcClass:
    name: str
    customers: int = 0
    revenue: int = 0
    customer_share: float | None = None
    revenue_share: float | None = None


@dataclass
class AbcCustomer:
    customer_id: int
    name: str | None  # None once the customer asked to be forgotten
    revenue: int
    orders: int
    revenue_share: float | None
    klass: str


@dataclass
class AbcReport:
    period: Period
    total_revenue: int
    total_customers: int
    classes: list[AbcClass]
    top: list[AbcCustomer]  # the top customers of class A
    a_share: float
    b_share: float


def customer_revenue(session: AsyncSession, period_days: int, start: datetime, end: datetime) -> Any:
    """Per-customer revenue and order count in ``[start, end)`` (a select)."""
    return (
        select(Order.customer_id.label("customer_id"), func.sum(Order.total).label("revenue"),
               func.count().label("orders"))
        .where(counted_orders_by_customer(session, start, end, period_days))
        .group_by(Order.customer_id)
    )


def class_levels(per_customer: Any, a_share: float, b_share: float) -> Any:
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
    ranked = select(levels.c.revenue, levels.c.customers, before.label("before"), total.label("total")).subquery("ranked")
    klass = case(
        (ranked.c.before < ranked.c.total * a_share, literal("A")),
        (ranked.c.before < ranked.c.total * (a_share + b_share), literal("B")),
        else_=literal("C"),
    )
    return select(ranked.c.revenue, ranked.c.customers, klass.label("klass")).subquery("classed")


async def _classes(session: AsyncSession, settings: Settings, table: Any) -> dict[str, tuple[int, int, int]]:
    """class → (customers, revenue, lowest revenue in the class)."""
    classed = class_levels(table, settings.abc_a_share, settings.abc_b_share)
    stmt = (
        select(classed.c.klass, func.sum(classed.c.customers).label("customers"),
               func.sum(classed.c.revenue * classed.c.customers).label("revenue"),
               func.min(classed.c.revenue).label("lowest"))
        .group_by(classed.c.klass)
    )
    return {row.klass: (int(row.customers), int(row.revenue), int(row.lowest))
            for row in (await session.execute(stmt)).all()}


def _class_of(found: dict[str, tuple[int, int, int]], revenue: Any) -> Any:
    """The class as SQL, from the lowest revenue of A and B (ties share a revenue, so a class)."""
    whens = [(revenue >= found[name][2], literal(name)) for name in ("A", "B") if name in found]
    return case(*whens, else_=literal("C")) if whens else literal("C")


async def compute(session: AsyncSession, settings: Settings, period: Period, now: datetime) -> AbcReport:
    start, end = period.bounds(settings.tz)
    top: list[AbcCustomer] = []
    async with scratch(session, customer_revenue(session, period.days, start, end), "abc") as table:
        found = await _classes(session, settings, table)
        total_revenue = sum(r for _, r, _ in found.values())
        if "A" in found:
            top_stmt = (
                select(table.c.customer_id, table.c.revenue, table.c.orders, Customer.name)
                .join(Customer, Customer.id == table.c.customer_id)
                .where(table.c.revenue >= found["A"][2])
                .order_by(table.c.revenue.desc(), table.c.customer_id)
                .limit(settings.report_top_n)
            )
            for row in (await session.execute(top_stmt)).all():
                top.append(AbcCustomer(row.customer_id, row.name, int(row.revenue), int(row.orders),
                                       share(row.revenue, total_revenue), "A"))
    total_customers = sum(c for c, _, _ in found.values())
    classes = []
    for name in CLASSES:
        customers, revenue, _ = found.get(name, (0, 0, 0))
        classes.append(AbcClass(name, customers, revenue, share(customers, total_customers),
                                share(revenue, total_revenue)))
    return AbcReport(period=period, total_revenue=total_revenue, total_customers=total_customers,
                     classes=classes, top=top, a_share=settings.abc_a_share, b_share=settings.abc_b_share)


async def csv_detail(session: AsyncSession, settings: Settings, period: Period) -> list[list[Any]]:
    """Every classed customer (the export): id, name, orders, revenue, class."""
    start, end = period.bounds(settings.tz)
    async with scratch(session, customer_revenue(session, period.days, start, end), "abc") as table:
        found = await _classes(session, settings, table)
        stmt = (
            select(table.c.customer_id, Customer.name, table.c.orders, table.c.revenue,
                   _class_of(found, table.c.revenue).label("klass"))
            .join(Customer, Customer.id == table.c.customer_id)
            .order_by(table.c.revenue.desc(), table.c.customer_id)
        )
        rows = (await session.execute(stmt)).all()
    return [[row.customer_id, row.name or "", row.orders, row.revenue, row.klass] for row in rows]
