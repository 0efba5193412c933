"""``/rfm``'s SQL: the per-customer aggregate of a period, its histograms, and the scores in SQL.

The scores are ``1 + thresholds passed`` (the thresholds come from
``bot.reports.rfm``): R ``last_day >= r[k]``, F ``orders > f[k]``, M
``revenue > m[k]``. Segments are matched in SQL by rules given as
``(code, (r_low, r_high), (f_low, f_high), (m_low, m_high))``, first match
wins; a range of :data:`ANY` puts no condition.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Row, and_, case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Order
from storage.queries.common import counted_orders_by_customer, local_bucket, scratch

ANY = (1, 5)  # every score
Rule = tuple[str, tuple[int, int], tuple[int, int], tuple[int, int]]


def _per_customer(session: AsyncSession, tz: ZoneInfo, start: datetime, end: datetime, days: int) -> Any:
    """customer_id, last_day, orders, revenue of every customer with a counted order in ``[start, end)`` (a select)."""
    # The shop's day of each customer's last order: converted once per customer, not per order.
    last_day = local_bucket(session, func.max(Order.created_at), tz, start, end, "day")
    return (
        select(Order.customer_id.label("customer_id"), last_day.label("last_day"),
               func.count().label("orders"), func.sum(Order.total).label("revenue"))
        .where(counted_orders_by_customer(session, start, end, days))
        .group_by(Order.customer_id)
    )


class Customers:
    """The customers of a period (customer_id, last_day, orders, revenue): a temporary table, or a
    subquery that every query reads the orders for again."""

    def __init__(self, session: AsyncSession, table: Any) -> None:
        self.session = session
        self.table = table

    async def last_days(self) -> list[tuple[Any, int]]:
        """(business day of the last order, customers), ascending."""
        t = self.table.c
        return [(row[0], int(row[1])) for row in (await self.session.execute(
            select(t.last_day, func.count()).group_by(t.last_day).order_by(t.last_day))).all()]

    async def order_counts(self) -> list[tuple[int, int]]:
        """(orders in the period, customers), ascending."""
        t = self.table.c
        return [(int(row[0]), int(row[1])) for row in (await self.session.execute(
            select(t.orders, func.count()).group_by(t.orders).order_by(t.orders))).all()]

    async def revenues_at(self, positions: Sequence[int]) -> dict[int, int]:
        """1-based position in ascending order → the revenue there."""
        t = self.table.c
        ranked = select(t.revenue, func.row_number().over(order_by=t.revenue).label("position")).subquery()
        return dict((int(p), int(v)) for v, p in (await self.session.execute(
            select(ranked.c.revenue, ranked.c.position).where(ranked.c.position.in_(sorted(set(positions)))))).all())

    def _scores(self, r: Sequence[Any], f: Sequence[Any], m: Sequence[Any]) -> tuple[Any, Any, Any]:
        def steps(conditions: list[Any]) -> Any:
            total: Any = literal(1)
            for condition in conditions:
                total = total + case((condition, 1), else_=0)
            return total

        t = self.table.c
        return (steps([t.last_day >= value for value in r]), steps([t.orders > value for value in f]),
                steps([t.revenue > value for value in m]))

    async def score_counts(self, r: Sequence[Any], f: Sequence[Any], m: Sequence[Any]) -> Sequence[Row[Any]]:
        """Rows of r, f, m, customers, orders, revenue: one per (R, F, M) with customers."""
        t = self.table.c
        r_score, f_score, m_score = self._scores(r, f, m)
        stmt = (
            select(r_score.label("r"), f_score.label("f"), m_score.label("m"), func.count().label("customers"),
                   func.sum(t.orders).label("orders"), func.sum(t.revenue).label("revenue"))
            .group_by("r", "f", "m")
        )
        return (await self.session.execute(stmt)).all()

    def members(self, limits: tuple[Sequence[Any], Sequence[Any], Sequence[Any]] | None, rules: Sequence[Rule],
                segment: str | None = None) -> Any:
        """The scored customers (one segment's, or all): a handle for :func:`scored` and
        ``storage.queries.segments`` (customer_id, last_day, orders, revenue, r, f, m, segment).
        ``limits`` None: no customer."""
        t = self.table.c
        if limits is None:
            return select(t.customer_id, t.last_day, t.orders, t.revenue,
                          literal(1).label("r"), literal(1).label("f"), literal(1).label("m"),
                          literal("lost").label("segment")).where(literal(False))
        r, f, m = self._scores(*limits)
        stmt = select(t.customer_id, t.last_day, t.orders, t.revenue,
                      r.label("r"), f.label("f"), m.label("m"), _segment_case(r, f, m, rules).label("segment"))
        if segment is not None:
            stmt = stmt.where(_segment_case(r, f, m, rules) == segment)
        return stmt


def _segment_case(r: Any, f: Any, m: Any, rules: Sequence[Rule]) -> Any:
    """The segment code of scores R, F, M (SQL expressions), by the rules."""
    whens = []
    for code, r_range, f_range, m_range in rules:
        conditions = []
        for column, (low, high) in ((r, r_range), (f, f_range), (m, m_range)):
            if (low, high) != ANY:
                conditions.append(column.between(low, high))
        whens.append((and_(*conditions) if conditions else literal(True), literal(code)))
    return case(*whens, else_=literal("lost"))


def customers(session: AsyncSession, tz: ZoneInfo, start: datetime, end: datetime, days: int) -> Customers:
    """The customers of ``[start, end)`` as a subquery (each query reads the orders again)."""
    return Customers(session, _per_customer(session, tz, start, end, days).subquery("per_customer"))


@asynccontextmanager
async def customers_once(session: AsyncSession, tz: ZoneInfo, start: datetime, end: datetime,
                         days: int) -> AsyncIterator[Customers]:
    """The customers of ``[start, end)`` in a temporary table for the block (the orders read once)."""
    async with scratch(session, _per_customer(session, tz, start, end, days), "rfm") as table:
        yield Customers(session, table)


async def scored(session: AsyncSession, members: Any) -> Sequence[Row[Any]]:
    """The rows of a :meth:`Customers.members` handle, by customer id."""
    return (await session.execute(members.order_by("customer_id"))).all()
