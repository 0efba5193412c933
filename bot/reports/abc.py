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
SQL: per-customer revenue, then one row per distinct revenue value, then a
running sum over those rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.reports.periods import Period
from bot.reports.sql import counted_orders, share
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


def customer_revenue(start: datetime, end: datetime) -> Any:
    """Per-customer revenue and order count in ``[start, end)`` (a subquery)."""
    return (
        select(Order.customer_id.label("customer_id"), func.sum(Order.total).label("revenue"),
               func.count().label("orders"))
        .where(counted_orders(start, end))
        .group_by(Order.customer_id)
        .subquery("per_customer")
    )


def revenue_levels(per_customer: Any, a_share: float, b_share: float) -> Any:
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


def class_members(start: datetime, end: datetime, a_share: float, b_share: float) -> Select[Any]:
    """customer_id, revenue, orders, class for every classed customer."""
    per_customer = customer_revenue(start, end)
    classed = revenue_levels(per_customer, a_share, b_share)
    return (
        select(per_customer.c.customer_id, per_customer.c.revenue, per_customer.c.orders, classed.c.klass)
        .join(classed, classed.c.revenue == per_customer.c.revenue)
    )


async def compute(session: AsyncSession, settings: Settings, period: Period, now: datetime) -> AbcReport:
    start, end = period.bounds(settings.tz)
    a_share, b_share = settings.abc_a_share, settings.abc_b_share
    per_customer = customer_revenue(start, end)
    classed = revenue_levels(per_customer, a_share, b_share)
    stmt = (
        select(classed.c.klass, func.sum(classed.c.customers).label("customers"),
               func.sum(classed.c.revenue * classed.c.customers).label("revenue"))
        .group_by(classed.c.klass)
    )
    found = {row.klass: (int(row.customers), int(row.revenue)) for row in (await session.execute(stmt)).all()}
    total_customers = sum(c for c, _ in found.values())
    total_revenue = sum(r for _, r in found.values())
    classes = []
    for name in CLASSES:
        customers, revenue = found.get(name, (0, 0))
        classes.append(AbcClass(name, customers, revenue, share(customers, total_customers),
                                share(revenue, total_revenue)))
    top: list[AbcCustomer] = []
    if found.get("A"):
        members = class_members(start, end, a_share, b_share).subquery("members")
        top_stmt = (
            select(members.c.customer_id, members.c.revenue, members.c.orders, members.c.klass, Customer.name)
            .join(Customer, Customer.id == members.c.customer_id)
            .where(members.c.klass == "A")
            .order_by(members.c.revenue.desc(), members.c.customer_id)
            .limit(settings.report_top_n)
        )
        for row in (await session.execute(top_stmt)).all():
            top.append(AbcCustomer(row.customer_id, row.name, int(row.revenue), int(row.orders),
                                   share(row.revenue, total_revenue), row.klass))
    return AbcReport(period=period, total_revenue=total_revenue, total_customers=total_customers,
                     classes=classes, top=top, a_share=a_share, b_share=b_share)


async def csv_detail(session: AsyncSession, settings: Settings, period: Period) -> list[list[Any]]:
    """Every classed customer (the export): id, name, orders, revenue, class."""
    start, end = period.bounds(settings.tz)
    members = class_members(start, end, settings.abc_a_share, settings.abc_b_share).subquery("members")
    stmt = (
        select(members.c.customer_id, Customer.name, members.c.orders, members.c.revenue, members.c.klass)
        .join(Customer, Customer.id == members.c.customer_id)
        .order_by(members.c.revenue.desc(), members.c.customer_id)
    )
    return [[row.customer_id, row.name or "", row.orders, row.revenue, row.klass]
            for row in (await session.execute(stmt)).all()]
