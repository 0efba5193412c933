"""``/seasonal``: the monthly seasonal index.

The window is up to 36 whole months (the business's months) ending with the
last complete month — or with the month a period names (``/seasonal 2025-12``
ends with December 2025) — starting no earlier than the first whole month of
orders (a history that begins on the 20th leaves that month out). For each
calendar month, the index is that month's average sales over the average
month of the window, × 100 (the textbook's "monthly seasonal index"): 100 is
an ordinary month, 130 a month 30 % above it.
Months of the window without any order count as zero sales.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.reports.periods import Period, add_months, month_end, month_start
from storage.queries.common import local_totals

WINDOW_MONTHS = 36


@dataclass
class MonthSales:
    label: str  # YYYY-MM
    revenue: int
    orders: int


@dataclass
class MonthIndex:
    month: int  # 1..12
    years: int  # how many times this calendar month is in the window
    average_revenue: float | None
    index: float | None  # None when the month is not in the window


@dataclass
class SeasonalReport:
    window: Period | None  # None when there is no counted order at all
    months: list[MonthSales]  # every month of the window, oldest first
    indexes: list[MonthIndex]  # January..December
    average_month: float | None

    @property
    def busiest(self) -> MonthIndex | None:
        """The month with the highest index (None with fewer than two months to compare)."""
        known = [i for i in self.indexes if i.index is not None]
        return max(known, key=lambda i: (i.index, -i.month)) if len(known) > 1 else None

    @property
    def quietest(self) -> MonthIndex | None:
        known = [i for i in self.indexes if i.index is not None]
        return min(known, key=lambda i: (i.index, i.month)) if len(known) > 1 else None


async def compute(session: AsyncSession, settings: Settings, period: Period | None, now: datetime) -> SeasonalReport:
    tz = settings.tz
    today = now.astimezone(tz).date()
    if period is not None:
        last_month = month_start(period.end)
        if period.end < month_end(period.end) and last_month == month_start(today):
            last_month = add_months(last_month, -1)  # the current month is not complete yet
    else:
        last_month = add_months(month_start(today), -1)
    first_month = add_months(last_month, -(WINDOW_MONTHS - 1))
    start, end = Period(first_month, month_end(last_month)).bounds(tz)
    days = await local_totals(session, tz, start, end, "day")
    if not days:
        return SeasonalReport(window=None, months=[], indexes=[MonthIndex(m, 0, None, None) for m in range(1, 13)],
                              average_month=None)
    first_day = date.fromisoformat(min(days))
    # A history that starts in the middle of a month would show that month too low: start at the
    # first whole month.
    first_month = max(first_month, first_day if first_day.day == 1 else add_months(month_start(first_day), 1))
    if first_month > last_month:
        return SeasonalReport(window=None, months=[], indexes=[MonthIndex(m, 0, None, None) for m in range(1, 13)],
                              average_month=None)
    found: dict[str, tuple[int, int]] = {}
    for day, (revenue, orders) in days.items():
        month_revenue, month_orders = found.get(day[:7], (0, 0))
        found[day[:7]] = (month_revenue + revenue, month_orders + orders)
    months: list[MonthSales] = []
    cursor = first_month
    while cursor <= last_month:
        label = f"{cursor.year:04d}-{cursor.month:02d}"
        months.append(MonthSales(label, *found.get(label, (0, 0))))
        cursor = add_months(cursor, 1)
    average_month = sum(m.revenue for m in months) / len(months)
    indexes = []
    for month in range(1, 13):
        values = [m.revenue for m in months if int(m.label[5:7]) == month]
        if not values:
            indexes.append(MonthIndex(month, 0, None, None))
            continue
        average = sum(values) / len(values)
        index = average / average_month * 100 if average_month else None
        indexes.append(MonthIndex(month, len(values), average, index))
    return SeasonalReport(window=Period(first_month, month_end(last_month), "range"), months=months,
                          indexes=indexes, average_month=average_month)


def csv_rows(report: SeasonalReport) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for item in report.indexes:
        rows.append(["index", f"{item.month:02d}", item.years,
                     "" if item.average_revenue is None else f"{item.average_revenue:.0f}",
                     "" if item.index is None else f"{item.index:.1f}"])
    for month in report.months:
        rows.append(["month", month.label, 1, month.revenue, month.orders])
    return rows


