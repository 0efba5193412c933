"""``/rfm``: recency, frequency and monetary scores, and named segments.

Customers with at least one counted order in the period are scored 1–5 by
quintiles of the customers, in SQL:

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
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.reports.periods import Period
from bot.reports.sql import BY_CUSTOMER_DAYS, counted_orders, local_bucket, orders_by_customer, share
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


def scored(session: AsyncSession, settings: Settings, period: Period) -> Any:
    """customer_id, last_day, orders, revenue, r, f, m for every scored customer (a subquery)."""
    start, end = period.bounds(settings.tz)
    # The shop's day of each customer's last order: converted once per customer, not per order.
    last_day = local_bucket(session, func.max(Order.created_at), settings.tz, start, end, "day")
    stmt = (
        select(Order.customer_id.label("customer_id"), last_day.label("last_day"),
               func.count().label("orders"), func.sum(Order.total).label("revenue"))
        .where(counted_orders(start, end))
        .group_by(Order.customer_id)
    )
    if period.days > BY_CUSTOMER_DAYS:
        stmt = orders_by_customer(stmt)
    per_customer = stmt.subquery("per_customer")
    n = func.count().over()
    upto = func.count().over(order_by=per_customer.c.last_day)  # customers with last_day <= this one's
    # Integer division ("//") on both databases.
    r = (5 * upto + n - 1) // n
    f = (5 * (func.rank().over(order_by=per_customer.c.orders) - 1)) // n + 1
    m = (5 * (func.rank().over(order_by=per_customer.c.revenue) - 1)) // n + 1
    return select(
        per_customer.c.customer_id, per_customer.c.last_day, per_customer.c.orders, per_customer.c.revenue,
        r.label("r"), f.label("f"), m.label("m"),
    ).subquery("scored")


def segment_case(scores: Any) -> Any:
    """The segment code of a row of :func:`scored`, as SQL."""
    whens = []
    for rule in RULES:
        conditions = []
        for column, (low, high) in ((scores.c.r, rule.r), (scores.c.f, rule.f), (scores.c.m, rule.m)):
            if (low, high) != ANY:
                conditions.append(column.between(low, high))
        whens.append((and_(*conditions) if conditions else literal(True), literal(rule.code)))
    return case(*whens, else_=literal("lost"))


async def compute(session: AsyncSession, settings: Settings, period: Period, now: datetime) -> RfmReport:
    scores = scored(session, settings, period)
    stmt = (
        select(scores.c.r, scores.c.f, scores.c.m, func.count().label("customers"),
               func.sum(scores.c.orders).label("orders"), func.sum(scores.c.revenue).label("revenue"))
        .group_by(scores.c.r, scores.c.f, scores.c.m)
    )
    segments = {code: Segment(code) for code in SEGMENTS}
    grid: dict[tuple[int, int], int] = {}
    for row in (await session.execute(stmt)).all():
        r, f, m = int(row.r), int(row.f), int(row.m)
        segment = segments[segment_of(r, f, m)]
        segment.customers += int(row.customers)
        segment.orders += int(row.orders)
        segment.revenue += int(row.revenue)
        grid[(r, f)] = grid.get((r, f), 0) + int(row.customers)
    total_customers = sum(s.customers for s in segments.values())
    total_revenue = sum(s.revenue for s in segments.values())
    for segment in segments.values():
        segment.customer_share = share(segment.customers, total_customers)
        segment.revenue_share = share(segment.revenue, total_revenue)
    return RfmReport(period=period, total_customers=total_customers, total_revenue=total_revenue,
                     segments=[segments[code] for code in SEGMENTS], grid=grid)


def members(session: AsyncSession, settings: Settings, period: Period, segment: str | None = None) -> Any:
    """A select of customer_id, last_day, orders, revenue, r, f, m, segment (optionally one segment)."""
    scores = scored(session, settings, period)
    code = segment_case(scores).label("segment")
    stmt = select(scores.c.customer_id, scores.c.last_day, scores.c.orders, scores.c.revenue,
                  scores.c.r, scores.c.f, scores.c.m, code)
    if segment is not None:
        stmt = stmt.where(segment_case(scores) == segment)
    return stmt


async def csv_detail(session: AsyncSession, settings: Settings, period: Period) -> list[list[Any]]:
    """Every scored customer: id, last order day, orders, revenue, R, F, M, segment."""
    stmt = members(session, settings, period).order_by("customer_id")
    return [[row.customer_id, row.last_day, row.orders, row.revenue, row.r, row.f, row.m, row.segment]
            for row in (await session.execute(stmt)).all()]
