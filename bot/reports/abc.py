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
SQL (``storage.queries.abc``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.reports.figures import share
from bot.reports.periods import Period
from storage.queries import abc as queries

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


async def compute(session: AsyncSession, settings: Settings, period: Period, now: datetime) -> AbcReport:
    start, end = period.bounds(settings.tz)
    found, rows = await queries.classes_and_top(session, start, end, period.days, settings.abc_a_share,
                                                settings.abc_b_share, settings.report_top_n)
    total_revenue = sum(r for _, r, _ in found.values())
    top = [AbcCustomer(row.customer_id, row.name, int(row.revenue), int(row.orders),
                       share(row.revenue, total_revenue), "A") for row in rows]
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
    rows = await queries.classed_customers(session, start, end, period.days, settings.abc_a_share,
                                           settings.abc_b_share)
    return [[row.customer_id, row.name or "", row.orders, row.revenue, row.klass] for row in rows]
