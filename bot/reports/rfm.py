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

How it runs (the SQL is ``storage.queries.rfm``): the per-customer aggregate (one pass over the orders) goes to a
temporary table; the score thresholds come from the histograms of last-order
days and of order counts (a few hundred rows) and from four order statistics
of the revenues; the scores are then ``1 + thresholds passed``, counted per
(R, F, M) in one more query. No per-customer row leaves the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.reports.figures import share
from bot.reports.periods import Period
from storage.queries import rfm as queries

DEFAULT_PERIOD = "12m"


@dataclass(frozen=True)
class SegmentRule:
    code: str
    r: tuple[int, int]
    f: tuple[int, int]
    m: tuple[int, int]

    def matches(self, r: int, f: int, m: int) -> bool:
        return self.r[0] <= r <= self.r[1] and self.f[0] <= f <= self.f[1] and self.m[0] <= m <= self.m[1]


ANY = queries.ANY
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
# The rules as the SQL matches them (storage.queries.rfm).
SQL_RULES: tuple[queries.Rule, ...] = tuple((rule.code, rule.r, rule.f, rule.m) for rule in RULES)


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


@dataclass(frozen=True)
class Thresholds:
    """Where the scores step up: score = 1 + how many of the four thresholds a value passes.

    R: ``last_day >= r[k]``; F: ``orders > f[k]``; M: ``revenue > m[k]`` (k = 2..5).
    """

    n: int
    r: tuple[Any, ...]
    f: tuple[Any, ...]
    m: tuple[Any, ...]

    @property
    def limits(self) -> tuple[tuple[Any, ...], tuple[Any, ...], tuple[Any, ...]]:
        return self.r, self.f, self.m


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


async def thresholds(customers: queries.Customers) -> Thresholds | None:
    """The score thresholds over the customers of a period, or None if there are none.

    R and F from their histograms (a few hundred distinct days and order
    counts); M from four order statistics of the revenues, found in SQL.
    """
    days = await customers.last_days()
    n = sum(count for _, count in days)
    if n == 0:
        return None
    counts = await customers.order_counts()
    low = _positions_low(n)
    found = await customers.revenues_at(low)
    return Thresholds(
        n=n,
        r=tuple(_value_at(days, q) for q in _positions_high(n)),
        f=tuple(_value_at(counts, p) for p in low),
        m=tuple(found[p] for p in low),
    )


async def compute(session: AsyncSession, settings: Settings, period: Period, now: datetime) -> RfmReport:
    segments = {code: Segment(code) for code in SEGMENTS}
    grid: dict[tuple[int, int], int] = {}
    start, end = period.bounds(settings.tz)
    async with queries.customers_once(session, settings.tz, start, end, period.days) as customers:
        limits = await thresholds(customers)
        rows = await customers.score_counts(*limits.limits) if limits is not None else []
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


async def members_handle(session: AsyncSession, settings: Settings, period: Period,
                         segment: str | None = None) -> Any:
    """The scored customers of the period (optionally one segment's), as a handle for
    ``storage.queries`` (:func:`storage.queries.rfm.scored`, ``storage.queries.segments``).

    The thresholds are computed first; the handle's query then reads the orders once more.
    """
    start, end = period.bounds(settings.tz)
    customers = queries.customers(session, settings.tz, start, end, period.days)
    limits = await thresholds(customers)
    return customers.members(limits.limits if limits is not None else None, SQL_RULES, segment)


async def members(session: AsyncSession, settings: Settings, period: Period, segment: str | None = None) -> list[Any]:
    """The scored customers (optionally one segment's), by id: rows of customer_id, last_day, orders,
    revenue, r, f, m, segment."""
    return list(await queries.scored(session, await members_handle(session, settings, period, segment)))


async def csv_detail(session: AsyncSession, settings: Settings, period: Period) -> list[list[Any]]:
    """Every scored customer: id, last order day, orders, revenue, R, F, M, segment."""
    return [[row.customer_id, row.last_day, row.orders, row.revenue, row.r, row.f, row.m, row.segment]
            for row in await members(session, settings, period)]
