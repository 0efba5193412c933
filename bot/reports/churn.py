"""``/churn``: customers whose next order is overdue, most valuable first.

The expected next order follows the care engine's rule of thumb (last
purchase plus the usual interval, over the last year of purchases), computed
here in SQL for every customer at once: the last order plus the customer's
average interval between their orders of the last ``churn_lookback_days``,
``(last − first) / (orders − 1)``. (The care engine predicts per product,
with the median interval, in Python for one customer at a time; for a list
of all customers the per-customer average is what one pass of SQL gives.)
A customer is *overdue* when that moment plus ``churn_grace_days`` has
passed. Only customers with at least two counted orders in that window (an
interval to go by) are considered — those who stopped longer ago are already
lost and show up in ``/rfm``.

Value is the customer's revenue over their counted orders. Last contact is
the last message the bot sent the customer (any outbox message).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.reports.periods import Period
from bot.reports.sql import counted_orders_by_customer, epoch_days, epoch_days_value
from storage.models import Customer, Order, OutboxMessage


@dataclass
class ChurnCustomer:
    customer_id: int
    name: str | None
    orders: int
    revenue: int
    last_order: datetime
    interval_days: float
    overdue_days: float
    last_contact: datetime | None = None

    @property
    def expected(self) -> datetime:
        return self.last_order + timedelta(days=self.interval_days)


@dataclass
class ChurnReport:
    as_of: date
    considered: int  # customers with an interval to go by
    overdue: int
    overdue_revenue: int
    top: list[ChurnCustomer]
    grace_days: int
    lookback_days: int


def regulars(session: AsyncSession, settings: Settings, now: datetime) -> Any:
    """Customers with a rhythm (a subquery): customer_id, orders, revenue, last_at, interval_days,
    overdue_days (days past the expected next order; negative: not yet due) and is_overdue (1/0)."""
    now_days = epoch_days_value(session, now)
    since = now - timedelta(days=settings.churn_lookback_days)
    count = func.count()
    per_customer = (
        select(
            Order.customer_id.label("customer_id"),
            count.label("orders"),
            func.sum(Order.total).label("revenue"),
            func.max(Order.created_at).label("last_at"),
            epoch_days(session, func.max(Order.created_at)).label("last_days"),
            epoch_days(session, func.min(Order.created_at)).label("first_days"),
        )
        .where(counted_orders_by_customer(session, since, now, settings.churn_lookback_days))
        .group_by(Order.customer_id)
        .having(count >= 2)
        .subquery("per_customer")
    )
    # Each date converted once per customer (the conversions are most of the cost).
    with_interval = select(
        per_customer.c.customer_id, per_customer.c.orders, per_customer.c.revenue, per_customer.c.last_at,
        per_customer.c.last_days,
        ((per_customer.c.last_days - per_customer.c.first_days) / (per_customer.c.orders - 1)).label("interval_days"),
    ).subquery("with_interval")
    overdue_days = (now_days - with_interval.c.last_days - with_interval.c.interval_days).label("overdue_days")
    timed = select(with_interval, overdue_days).subquery("timed")
    return select(
        timed,
        case((timed.c.overdue_days > settings.churn_grace_days, 1), else_=0).label("is_overdue"),
    ).subquery("regulars")


def overdue_customers(session: AsyncSession, settings: Settings, now: datetime) -> Any:
    """A subquery of the overdue customers (the columns of :func:`regulars`)."""
    every = regulars(session, settings, now)
    return select(every).where(every.c.is_overdue == 1).subquery("overdue")


async def compute(session: AsyncSession, settings: Settings, period: Period | None, now: datetime) -> ChurnReport:
    every = regulars(session, settings, now)
    # One pass over the orders: the most valuable overdue customers first, each row
    # carrying the totals over all regular customers.
    stmt = (
        select(
            every.c.customer_id, every.c.orders, every.c.revenue, every.c.last_at, every.c.interval_days,
            every.c.overdue_days, every.c.is_overdue,
            func.count().over().label("considered"),
            func.sum(every.c.is_overdue).over().label("overdue"),
            func.sum(every.c.revenue * every.c.is_overdue).over().label("overdue_revenue"),
        )
        .order_by(every.c.is_overdue.desc(), every.c.revenue.desc(), every.c.customer_id)
        .limit(settings.report_top_n)
    )
    rows = (await session.execute(stmt)).all()
    top = [
        ChurnCustomer(customer_id=row.customer_id, name=None, orders=int(row.orders), revenue=int(row.revenue),
                      last_order=_aware(row.last_at), interval_days=float(row.interval_days),
                      overdue_days=float(row.overdue_days))
        for row in rows if row.is_overdue
    ]
    if top:
        ids = [c.customer_id for c in top]
        names = dict((await session.execute(select(Customer.id, Customer.name).where(Customer.id.in_(ids)))).all())
        contacts = await last_contacts(session, ids, now)
        for item in top:
            item.name = names.get(item.customer_id)
            item.last_contact = contacts.get(item.customer_id)
    first = rows[0] if rows else None
    return ChurnReport(
        as_of=now.astimezone(settings.tz).date(),
        considered=int(first.considered) if first else 0,
        overdue=int(first.overdue or 0) if first else 0,
        overdue_revenue=int(first.overdue_revenue or 0) if first else 0,
        top=top,
        grace_days=settings.churn_grace_days,
        lookback_days=settings.churn_lookback_days,
    )


async def last_contacts(session: AsyncSession, customer_ids: list[int], now: datetime) -> dict[int, datetime]:
    if not customer_ids:
        return {}
    stmt = (
        select(OutboxMessage.customer_id, func.max(OutboxMessage.sent_at).label("at"))
        .where(OutboxMessage.customer_id.in_(customer_ids), OutboxMessage.status == "sent",
               OutboxMessage.sent_at <= now)
        .group_by(OutboxMessage.customer_id)
    )
    return {row.customer_id: _aware(row.at) for row in (await session.execute(stmt)).all() if row.at is not None}


def _aware(value: Any) -> datetime:
    """Aggregates (max) may bypass the column type on SQLite: parse and mark UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


async def csv_detail(session: AsyncSession, settings: Settings, now: datetime) -> list[list[Any]]:
    """Every overdue customer: id, name, orders, revenue, last order, interval, days overdue."""
    overdue = overdue_customers(session, settings, now)
    stmt = (
        select(overdue, Customer.name)
        .join(Customer, Customer.id == overdue.c.customer_id)
        .order_by(overdue.c.revenue.desc(), overdue.c.customer_id)
    )
    return [[row.customer_id, row.name or "", row.orders, row.revenue, _aware(row.last_at).isoformat(),
             f"{float(row.interval_days):.1f}", f"{float(row.overdue_days):.1f}"]
            for row in (await session.execute(stmt)).all()]
