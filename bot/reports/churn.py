"""``/churn``: customers whose next order is overdue, most valuable first.

The expected next order is the care engine's prediction, the same rule that
times win-backs (:func:`bot.rules.care_batch.usual_intervals`, the vectorised
:func:`bot.rules.care.usual_interval`): the last order plus the customer's
*usual interval* — the median gap between consecutive orders of the last
``churn_lookback_days`` (365 by default, the care engine's
:data:`~bot.rules.care.HISTORY_DAYS`), gaps under a day (top-ups) left out.
A customer is *overdue* when that moment plus ``churn_grace_days`` has
passed. Only customers with such an interval (at least two counted orders a
day or more apart in the window) are considered — those who stopped longer
ago are already lost and show up in ``/rfm``.

Orders count as in the other reports: all but cancelled and refunded ones.
SQL reads them by customer from the customer-ordered covering index and, per
customer with two or more, lists the order times in whole minutes (as the
care engine's feed does), with the count and revenue; these lists are
streamed a block of customers per row and the intervals computed with numpy
for all customers at once (see :func:`regulars`). Ranking, names, last
orders and last contacts are then looked up for the customers listed only.
The segment action under the report ("message these customers") takes
exactly the overdue customers of the report (:func:`overdue_customers`).

Value is the customer's revenue over their counted orders in the window.
Last contact is the last message the bot sent the customer (any outbox
message) up to now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.reports.periods import Period
from bot.reports.sql import counted_orders, counted_orders_by_customer
from bot.rules import care as rules
from bot.rules.care_batch import MINUTES_PER_DAY, numbers, usual_intervals
from storage.models import Customer, Order, OutboxMessage
from storage.repositories.care import epoch_minutes, int_list

# Customers (by id) per row of the stream, rows per partition, and ids per ``IN (...)`` list.
BLOCK = 1_024
PARTITION = 5
ID_CHUNK = 1_000


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


@dataclass
class Regulars:
    """The customers with a usual interval, one entry per customer in each array.

    ``last_days`` (the last order) and ``overdue_days`` (days past the expected next order;
    negative: not yet due) come from the order times in whole minutes, as the care engine
    has them.
    """

    customer_id: np.ndarray
    orders: np.ndarray
    revenue: np.ndarray
    last_days: np.ndarray
    interval_days: np.ndarray
    overdue_days: np.ndarray
    grace_days: int

    @property
    def is_overdue(self) -> np.ndarray:
        return self.overdue_days > self.grace_days

    def ranked_overdue(self) -> np.ndarray:
        """Indexes of the overdue customers, most revenue first (ties: lower id first)."""
        overdue = np.flatnonzero(self.is_overdue)
        return overdue[np.lexsort((self.customer_id[overdue], -self.revenue[overdue]))]

    async def listed(self, session: AsyncSession, settings: Settings, now: datetime,
                     indexes: list[int]) -> list[ChurnCustomer]:
        """These customers as report lines, with their name and last order (exact, from the database)."""
        ids = [int(self.customer_id[index]) for index in indexes]
        names = await _names(session, ids)
        last = await _last_orders(session, settings, ids, now)
        return [ChurnCustomer(customer_id=customer_id, name=names.get(customer_id), orders=int(self.orders[index]),
                              revenue=int(self.revenue[index]),
                              # (to the minute, should the order have been cancelled meanwhile)
                              last_order=last.get(customer_id) or rules.from_days(float(self.last_days[index])),
                              interval_days=float(self.interval_days[index]),
                              overdue_days=float(self.overdue_days[index]))
                for customer_id, index in zip(ids, indexes)]


def _window(settings: Settings, now: datetime) -> datetime:
    return now - timedelta(days=settings.churn_lookback_days)


async def regulars(session: AsyncSession, settings: Settings, now: datetime) -> Regulars:
    """Every customer with a usual interval over the last ``churn_lookback_days``, and how overdue.

    Per customer with two or more counted orders in the window: the number of orders,
    revenue, and the order times as one "minutes,minutes,…" list in time order (the care
    engine's feed format). Those rows are then joined, :data:`BLOCK` customers at a time,
    into one row of four lists (customer ids, orders, revenue, all their minutes one
    customer after the other): a few hundred rows cross into Python instead of one per
    customer, and numpy reads each list in one call.
    """
    o = Order.__table__.c
    count = func.count()
    per_customer = (
        select(o.customer_id.label("customer_id"), count.label("orders"),
               func.coalesce(func.sum(o.total), 0).label("revenue"),
               int_list(epoch_minutes(o.created_at), o.created_at, o.id).label("minutes"))
        .where(counted_orders_by_customer(session, _window(settings, now), now, settings.churn_lookback_days))
        .group_by(o.customer_id)
        .having(count >= 2)
        .subquery("per_customer")
    )
    c = per_customer.c
    # The four lists of a block follow the same customer order (SQLite aggregates each row into
    # all four at once; PostgreSQL is told the order), so their entries line up.
    stmt = (
        select(int_list(c.customer_id, c.customer_id), int_list(c.orders, c.customer_id),
               int_list(c.revenue, c.customer_id), int_list(c.minutes, c.customer_id))
        .group_by(c.customer_id // BLOCK)
    )
    now_days = rules.to_days(now)
    parts: list[tuple[np.ndarray, ...]] = []
    result = await session.stream(stmt)
    async for partition in result.partitions(PARTITION):
        ids, orders, revenue, minutes = (numbers(texts) for texts in zip(*partition))
        usual, expected = usual_intervals(minutes / MINUTES_PER_DAY, orders)
        keep = np.flatnonzero(~np.isnan(usual))
        parts.append((ids[keep], orders[keep], revenue[keep], (expected - usual)[keep], usual[keep],
                      now_days - expected[keep]))
    if not parts:
        empty = np.array([], dtype=np.int64)
        return Regulars(empty, empty, empty, np.array([]), np.array([]), np.array([]), settings.churn_grace_days)
    columns = [np.concatenate(column) for column in zip(*parts)]
    return Regulars(*columns, grace_days=settings.churn_grace_days)


async def overdue_customers(session: AsyncSession, settings: Settings, now: datetime) -> list[int]:
    """The overdue customers' ids, in the report's order (most valuable first)."""
    every = await regulars(session, settings, now)
    return every.customer_id[every.ranked_overdue()].tolist()


async def compute(session: AsyncSession, settings: Settings, period: Period | None, now: datetime) -> ChurnReport:
    every = await regulars(session, settings, now)
    ranked = every.ranked_overdue()
    top = await every.listed(session, settings, now, ranked[:settings.report_top_n].tolist())
    contacts = await last_contacts(session, [c.customer_id for c in top], now)
    for item in top:
        item.last_contact = contacts.get(item.customer_id)
    return ChurnReport(
        as_of=now.astimezone(settings.tz).date(),
        considered=len(every.customer_id),
        overdue=len(ranked),
        overdue_revenue=int(every.revenue[ranked].sum()),
        top=top,
        grace_days=settings.churn_grace_days,
        lookback_days=settings.churn_lookback_days,
    )


def chunks(ids: list[int], size: int = ID_CHUNK) -> list[list[int]]:
    """``ids`` in lists short enough for ``IN (...)`` on every database."""
    return [ids[start:start + size] for start in range(0, len(ids), size)]


async def _names(session: AsyncSession, customer_ids: list[int]) -> dict[int, str | None]:
    names: dict[int, str | None] = {}
    for chunk in chunks(customer_ids):
        names.update((await session.execute(select(Customer.id, Customer.name).where(Customer.id.in_(chunk)))).all())
    return names


async def _last_orders(session: AsyncSession, settings: Settings, customer_ids: list[int],
                       now: datetime) -> dict[int, datetime]:
    """Each customer's last counted order in the window (a range of ix_orders_customer_created each)."""
    last: dict[int, datetime] = {}
    for chunk in chunks(customer_ids):
        stmt = (select(Order.customer_id, func.max(Order.created_at))
                .where(Order.customer_id.in_(chunk), counted_orders(_window(settings, now), now))
                .group_by(Order.customer_id))
        last.update((customer_id, _aware(at)) for customer_id, at in (await session.execute(stmt)).all())
    return last


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
    every = await regulars(session, settings, now)
    overdue = await every.listed(session, settings, now, every.ranked_overdue().tolist())
    return [[c.customer_id, c.name or "", c.orders, c.revenue, c.last_order.isoformat(),
             f"{c.interval_days:.1f}", f"{c.overdue_days:.1f}"]
            for c in overdue]
