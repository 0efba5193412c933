"""``/rfm``: recency, frequency and monetary scores, and named segments.

Customers with at least one counted order in the period are scored 1–5 by
quintiles of the customers:

* **R** (recency: the business day of the last order): ``ceil(5 × c / n)``
  where ``c`` is the number of customers whose last order is on or before
  this one's — ties get the *higher* score, so one customer alone, or
  customers who last ordered on the same day as the most recent, get 5;
* **F** (frequency: orders in the period) and **M** (monetary: revenue in the
  period): ``floor(5 × (rank − 1) / n) + 1`` with ``rank`` the SQL ``RANK()``
  in ascending order — ties get the *lower* score, so when everyone ordered
  once, everyone has F = 1.

Segments, first matching rule wins (R, F and M are inclusive ranges):

================== ======= ======= ======= =====================================
segment             R       F       M      reading
================== ======= ======= ======= =====================================
Champions           4–5     4–5     any    bought recently, buy often
Loyal               3–5     3–5     any    regulars (not quite champions)
New                 4–5     1       any    first orders, recently
Potential loyalist  3–5     1–2     any    recent, not yet regular
Can't lose          1–2     4–5     4–5    were among the best, gone quiet
At risk             1–2     3–5     any    used to buy often, gone quiet
Hibernating         2       1–2     any    few orders, a while ago
Lost                1       1–2     any    few orders, long ago
================== ======= ======= ======= =====================================

Every (R, F, M) falls into exactly one segment (``tests`` check all 125).

How it runs: the per-customer aggregate (one pass over the orders) goes to a
temporary table; the score thresholds come from the histograms of last-order
days and of order counts (a few hundred rows) and from four order statistics
of the revenues; the scores are then ``1 + thresholds passed``, counted per
(R, F, M) in one more query. No per-customer row leaves the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.reports.periods import Period
from bot.reports.sql import counted_orders_by_customer, local_bucket, scratch, share
from storage.models import Order

DEFAULT_PERIOD = "12m"


@dataclass(frozen=True)
class SegmentRule:
    code: str
    r: tuple[int, int]
    f: tuple[int, int]
    m: tuple[int, int]

    def matches(self, r: int, f: int, m: int) -> bool:
        return self.r[0] <= r <= self.r[1] and self.f[0] <= f <= self.f[1] and self.m[0] <= m <= self.m[1]


ANY = (1, 5)
RULES: tuple[SegmentRule, ...] = (
    SegmentRule("champions", (4, 5), (4, 5), ANY),
    SegmentRule("loyal", (3, 5), (3, 5), ANY),
    SegmentRule("new", (4, 5), (1, 1), ANY),
    SegmentRule("potential", (3, 5), (1, 2), ANY),
    SegmentRule("cant_lose", (1, 2), (4, 5), (4, 5)),
    SegmentRule("at_risk", (1, 2), (3, 5), ANY),
    SegmentRule("hibernating", (2, 2), (1, 2), ANY),
    SegmentRule("lost", (1, 1), (1, 2), ANY),
)
SEGMENTS: tuple[str, ...] = tuple(rule.code for rule in RULES)


def segment_of(r: int, f: int, m: int) -> str:
    for rule in RULES:
        if rule.matches(r, f, m):
            return rule.code
    raise ValueError(f"no segment for R{r} F{f} M{m}")


@dataclass
class Segment:
    code: str
    customers: int = 0
    orders: int = 0
    revenue: int = 0
    customer_share: float | None = None
    revenue_share: float | None = None

    @property
    def orders_per_customer(self) -> float | None:
        return share(self.orders, self.customers)

    @property
    def revenue_per_customer(self) -> float | None:
        return share(self.revenue, self.customers)


@dataclass
class RfmReport:
    period: Period
    total_customers: int
    total_revenue: int
    segments: list[Segment]  # in RULES order, empty ones included
    grid: dict[tuple[int, int], int]  # (R, F) → customers

    def segment(self, code: str) -> Segment:
        return next(s for s in self.segments if s.code == code)


def per_customer(session: AsyncSession, settings: Settings, period: Period) -> Any:
    """customer_id, last_day, orders, revenue of every customer with a counted order in the period (a select)."""
    start, end = period.bounds(settings.tz)
    # The shop's day of each customer's last order: converted once per customer, not per order.
    last_day = local_bucket(session, func.max(Order.created_at), settings.tz, start, end, "day")
    return (
        select(Order.customer_id.label("customer_id"), last_day.label("last_day"),
               func.count().label("orders"), func.sum(Order.total).label("revenue"))
        .where(counted_orders_by_customer(session, start, end, period.days))
        .group_by(Order.customer_id)
    )


@dataclass(frozen=True)
class Thresholds:
    """Where the scores step up: score = 1 + how many of the four thresholds a value passes.

    R: ``last_day >= r[k]``; F: ``orders > f[k]``; M: ``revenue > m[k]`` (k = 2..5).
    """

    n: int
    r: tuple[Any, ...]
    f: tuple[Any, ...]
    m: tuple[Any, ...]


def _positions_low(n: int) -> list[int]:
    """1-based positions in ascending order: score >= k when the value is above the value here.

    ``floor(5 × (rank − 1) / n) + 1 >= k``  ⇔  at least ``ceil((k − 1) n / 5)`` values are smaller.
    """
    return [-(-(k - 1) * n // 5) for k in range(2, 6)]


def _positions_high(n: int) -> list[int]:
    """1-based positions: ``ceil(5 × c / n) >= k`` ⇔ ``c >= floor((k − 1) n / 5) + 1`` values are at most this one."""
    return [(k - 1) * n // 5 + 1 for k in range(2, 6)]


def _value_at(histogram: list[tuple[Any, int]], position: int) -> Any:
    """The value at a 1-based position of the sorted values a histogram (value, count), ascending, describes."""
    seen = 0
    for value, count in histogram:
        seen += count
        if seen >= position:
            return value
    raise ValueError(position)


async def thresholds(session: AsyncSession, table: Any) -> Thresholds | None:
    """The score thresholds over the customers of ``table`` (see :func:`per_customer`), or None if empty.

    R and F from their histograms (a few hundred distinct days and order
    counts); M from four order statistics of the revenues, found in SQL.
    """
    days = [(row[0], int(row[1])) for row in (await session.execute(
        select(table.c.last_day, func.count()).group_by(table.c.last_day).order_by(table.c.last_day))).all()]
    n = sum(count for _, count in days)
    if n == 0:
        return None
    counts = [(int(row[0]), int(row[1])) for row in (await session.execute(
        select(table.c.orders, func.count()).group_by(table.c.orders).order_by(table.c.orders))).all()]
    low = _positions_low(n)
    ranked = select(table.c.revenue, func.row_number().over(order_by=table.c.revenue).label("position")).subquery()
    found = dict((int(p), int(v)) for v, p in (await session.execute(
        select(ranked.c.revenue, ranked.c.position).where(ranked.c.position.in_(sorted(set(low)))))).all())
    return Thresholds(
        n=n,
        r=tuple(_value_at(days, q) for q in _positions_high(n)),
        f=tuple(_value_at(counts, p) for p in low),
        m=tuple(found[p] for p in low),
    )


def score_columns(table: Any, limits: Thresholds) -> tuple[Any, Any, Any]:
    """R, F and M of a row of ``table`` as SQL (1 + the thresholds passed)."""
    def steps(conditions: list[Any]) -> Any:
        total: Any = literal(1)
        for condition in conditions:
            total = total + case((condition, 1), else_=0)
        return total

    r = steps([table.c.last_day >= value for value in limits.r])
    f = steps([table.c.orders > value for value in limits.f])
    m = steps([table.c.revenue > value for value in limits.m])
    return r, f, m


def segment_case(r: Any, f: Any, m: Any) -> Any:
    """The segment code of scores R, F, M (SQL expressions), by :data:`RULES`."""
    whens = []
    for rule in RULES:
        conditions = []
        for column, (low, high) in ((r, rule.r), (f, rule.f), (m, rule.m)):
            if (low, high) != ANY:
                conditions.append(column.between(low, high))
        whens.append((and_(*conditions) if conditions else literal(True), literal(rule.code)))
    return case(*whens, else_=literal("lost"))


async def compute(session: AsyncSession, settings: Settings, period: Period, now: datetime) -> RfmReport:
    segments = {code: Segment(code) for code in SEGMENTS}
    grid: dict[tuple[int, int], int] = {}
    async with scratch(session, per_customer(session, settings, period), "rfm") as table:
        limits = await thresholds(session, table)
        rows = []
        if limits is not None:
            r, f, m = score_columns(table, limits)
            stmt = (
                select(r.label("r"), f.label("f"), m.label("m"), func.count().label("customers"),
                       func.sum(table.c.orders).label("orders"), func.sum(table.c.revenue).label("revenue"))
                .group_by("r", "f", "m")
            )
            rows = (await session.execute(stmt)).all()
    for row in rows:
        r_score, f_score, m_score = int(row.r), int(row.f), int(row.m)
        segment = segments[segment_of(r_score, f_score, m_score)]
        segment.customers += int(row.customers)
        segment.orders += int(row.orders)
        segment.revenue += int(row.revenue)
        grid[(r_score, f_score)] = grid.get((r_score, f_score), 0) + int(row.customers)
    total_customers = sum(s.customers for s in segments.values())
    total_revenue = sum(s.revenue for s in segments.values())
    for segment in segments.values():
        segment.customer_share = share(segment.customers, total_customers)
        segment.revenue_share = share(segment.revenue, total_revenue)
    return RfmReport(period=period, total_customers=total_customers, total_revenue=total_revenue,
                     segments=[segments[code] for code in SEGMENTS], grid=grid)


async def members(session: AsyncSession, settings: Settings, period: Period, segment: str | None = None) -> Any:
    """A select of customer_id, last_day, orders, revenue, r, f, m, segment (optionally one segment's).

    The thresholds are computed first; the select then reads the orders once more.
    """
    table = per_customer(session, settings, period).subquery("per_customer")
    limits = await thresholds(session, table)
    if limits is None:
        return select(table.c.customer_id, table.c.last_day, table.c.orders, table.c.revenue,
                      literal(1).label("r"), literal(1).label("f"), literal(1).label("m"),
                      literal("lost").label("segment")).where(literal(False))
    r, f, m = score_columns(table, limits)
    stmt = select(table.c.customer_id, table.c.last_day, table.c.orders, table.c.revenue,
                  r.label("r"), f.label("f"), m.label("m"), segment_case(r, f, m).label("segment"))
    if segment is not None:
        stmt = stmt.where(segment_case(r, f, m) == segment)
    return stmt


async def csv_detail(session: AsyncSession, settings: Settings, period: Period) -> list[list[Any]]:
    """Every scored customer: id, last order day, orders, revenue, R, F, M, segment."""
    stmt = (await members(session, settings, period)).order_by("customer_id")
    return [[row.customer_id, row.last_day, row.orders, row.revenue, row.r, row.f, row.m, row.segment]
            for row in (await session.execute(stmt)).all()]
