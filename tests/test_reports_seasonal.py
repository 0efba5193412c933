"""/seasonal, the business's day in SQL (with daylight saving), and periods."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.config import Settings
from bot.reports import sales, seasonal
from bot.reports.periods import Period, PeriodError, parse_period
from storage.db import Database
from storage.queries.common import offset_segments
from tests.conftest import START
from tests.helpers import Data, utc

NOW = START  # 2026-03-02, so the last complete month is February 2026


async def _two_years(db: Database) -> None:
    """March 2024 – February 2026: 1000 a month, January 3000, July nothing."""
    async with db.session() as session:
        d = Data(session)
        ann = d.customer("Ann")
        for year, month in [(2024 + (m + 2) // 12, (m + 2) % 12 + 1) for m in range(24)]:
            if month == 7:
                continue
            if (year, month) == (2026, 1):
                d.order(ann, utc(2025, 12, 31, 16, 30), 1000)  # 1 January 2026, 00:30 in Shanghai
                d.order(ann, utc(2026, 1, 10), 2000)
                continue
            d.order(ann, utc(year, month, 1), 3000 if month == 1 else 1000)  # 08:00 on the 1st in Shanghai
        d.order(ann, utc(2026, 2, 11), 9999, status="cancelled")
        d.order(ann, utc(2026, 3, 1), 5000)  # the current month is not complete: left out
        await d.commit()


async def test_seasonal_index_by_hand(db: Database, settings: Settings) -> None:
    await _two_years(db)
    async with db.session() as session:
        report = await seasonal.compute(session, settings, None, NOW)
    assert report.window == Period(date(2024, 3, 1), date(2026, 2, 28), "range")
    assert len(report.months) == 24
    months = {m.label: m.revenue for m in report.months}
    assert months["2026-01"] == 3000 and months["2025-12"] == 1000 and months["2024-07"] == 0
    # 20 months of 1000 and two Januaries of 3000 over 24 months: 26000 / 24 per month.
    assert report.average_month == pytest.approx(26000 / 24)
    index = {i.month: i.index for i in report.indexes}
    assert index[1] == pytest.approx(3000 / (26000 / 24) * 100)  # 276.9
    assert index[7] == 0
    assert index[3] == pytest.approx(1000 / (26000 / 24) * 100)  # 92.3
    assert all(i.years == 2 for i in report.indexes)
    assert report.busiest.month == 1 and report.quietest.month == 7


async def test_seasonal_window_ends_with_the_named_month(db: Database, settings: Settings) -> None:
    await _two_years(db)
    async with db.session() as session:
        report = await seasonal.compute(session, settings, parse_period("2025-06", date(2026, 3, 2)), NOW)
    assert report.window == Period(date(2024, 3, 1), date(2025, 6, 30), "range")
    index = {i.month: i for i in report.indexes}
    # 16 months: Jan 2025 3000, Jul 2024 0, 14 × 1000 → 17000 / 16 per month.
    assert index[1].years == 1 and index[1].index == pytest.approx(3000 / (17000 / 16) * 100)
    assert index[3].years == 2


async def test_seasonal_without_orders_and_with_a_short_history(db: Database, settings: Settings) -> None:
    async with db.session() as session:
        empty = await seasonal.compute(session, settings, None, NOW)
    assert empty.window is None and all(i.index is None for i in empty.indexes) and empty.busiest is None
    async with db.session() as session:
        d = Data(session)
        ann = d.customer("Ann")
        d.order(ann, utc(2025, 11, 20), 5000)  # the history starts mid-November: November is left out
        d.order(ann, utc(2025, 12, 5), 1000)
        d.order(ann, utc(2026, 2, 5), 3000)
        await d.commit()
        short = await seasonal.compute(session, settings, None, NOW)
    index = {i.month: i.index for i in short.indexes}
    # December 1000, January 0, February 3000: average month 4000 / 3.
    assert index[12] == pytest.approx(75) and index[1] == 0 and index[2] == pytest.approx(225)
    assert index[6] is None and index[11] is None
    assert short.window == Period(date(2025, 12, 1), date(2026, 2, 28), "range")


async def test_seasonal_needs_one_whole_month(db: Database, settings: Settings) -> None:
    async with db.session() as session:
        d = Data(session)
        d.order(d.customer("Bo"), utc(2026, 2, 20), 1000)  # the only order, in the middle of February
        await d.commit()
        report = await seasonal.compute(session, settings, None, NOW)
    assert report.window is None and report.busiest is None


async def test_days_follow_daylight_saving(db: Database, settings: Settings) -> None:
    new_york = settings.model_copy(update={"default_timezone": "America/New_York"})
    async with db.session() as session:
        d = Data(session)
        ann = d.customer("Ann")
        d.order(ann, utc(2026, 3, 8, 4, 30), 100)  # 7 March, 23:30 EST
        d.order(ann, utc(2026, 3, 9, 4, 30), 200)  # 9 March, 00:30 EDT (a fixed -5 h would say 8 March)
        d.order(ann, utc(2026, 11, 1, 4, 30), 400)  # 1 November, 00:30 EDT
        d.order(ann, utc(2026, 11, 2, 4, 30), 800)  # 1 November, 23:30 EST
        await d.commit()
        march = await sales.revenue_trend(session, new_york, Period(date(2026, 3, 6), date(2026, 3, 10)), "day")
        november = await sales.revenue_trend(session, new_york, Period(date(2026, 10, 31), date(2026, 11, 2)), "day")
    assert {p.label: p.revenue for p in march if p.revenue} == {"2026-03-07": 100, "2026-03-09": 200}
    assert {p.label: p.revenue for p in november if p.revenue} == {"2026-11-01": 1200}


def test_offset_segments() -> None:
    tz = ZoneInfo("America/New_York")
    segments = offset_segments(tz, utc(2026, 1, 1), utc(2027, 1, 1))
    assert segments == [(utc(2026, 3, 8, 7), -300), (utc(2026, 11, 1, 6), -240), (None, -300)]
    assert offset_segments(ZoneInfo("Asia/Shanghai"), utc(2020, 1, 1), utc(2027, 1, 1)) == [(None, 480)]


# ----- periods --------------------------------------------------------------------------------

TODAY = date(2026, 3, 2)  # a Monday


@pytest.mark.parametrize(("text", "start", "end", "previous"), [
    ("today", "2026-03-02", "2026-03-02", ("2026-03-01", "2026-03-01")),
    ("yesterday", "2026-03-01", "2026-03-01", ("2026-02-28", "2026-02-28")),
    ("week", "2026-03-02", "2026-03-02", ("2026-02-23", "2026-02-23")),
    ("", "2026-03-01", "2026-03-02", ("2026-02-01", "2026-02-02")),
    ("month", "2026-03-01", "2026-03-02", ("2026-02-01", "2026-02-02")),
    ("2026-02", "2026-02-01", "2026-02-28", ("2026-01-01", "2026-01-31")),
    ("2026-03", "2026-03-01", "2026-03-02", ("2026-02-01", "2026-02-02")),
    ("2025", "2025-01-01", "2025-12-31", ("2024-01-01", "2024-12-31")),
    ("year", "2026-01-01", "2026-03-02", ("2025-01-01", "2025-03-02")),
    ("30d", "2026-02-01", "2026-03-02", ("2026-01-02", "2026-01-31")),
    ("12m", "2025-03-03", "2026-03-02", ("2024-03-03", "2025-03-02")),
    ("2026-01-15..2026-01-21", "2026-01-15", "2026-01-21", ("2026-01-08", "2026-01-14")),
    ("2026-01-01..2026-01-31", "2026-01-01", "2026-01-31", ("2025-12-01", "2025-12-31")),
    ("2026-02-20..2026-03-31", "2026-02-20", "2026-03-02", ("2026-02-09", "2026-02-19")),
    ("2026-01-05", "2026-01-05", "2026-01-05", ("2026-01-04", "2026-01-04")),
    (" MONTH ", "2026-03-01", "2026-03-02", ("2026-02-01", "2026-02-02")),
])
def test_periods(text: str, start: str, end: str, previous: tuple[str, str]) -> None:
    period = parse_period(text, TODAY)
    assert (period.start.isoformat(), period.end.isoformat()) == (start, end)
    before = period.previous()
    assert (before.start.isoformat(), before.end.isoformat()) == previous
    assert parse_period(period.token, TODAY) == Period(period.start, period.end, parse_period(period.token, TODAY).kind)


def test_on_the_first_this_month_is_compared_with_the_first_of_last_month() -> None:
    period = parse_period("month", date(2026, 12, 1))
    assert (period.start, period.end) == (date(2026, 12, 1), date(2026, 12, 1))
    assert (period.previous().start, period.previous().end) == (date(2026, 11, 1), date(2026, 11, 1))
    today = parse_period("today", date(2026, 12, 1))  # a day is still compared with the day before
    assert (today.previous().start, today.previous().end) == (date(2026, 11, 30), date(2026, 11, 30))


@pytest.mark.parametrize("text", ["soon", "2026-13", "2026-02-30", "2026-03-05", "2027", "2026-02-10..2026-02-01",
                                  "0d", "2000m", "1900-01", "2026-01-01..2040-01-01"])
def test_bad_periods(text: str) -> None:
    with pytest.raises(PeriodError):
        parse_period(text, TODAY)


def test_bounds_are_the_business_days_in_utc() -> None:
    start, end = Period(date(2026, 2, 1), date(2026, 2, 28)).bounds(ZoneInfo("Asia/Shanghai"))
    assert start == datetime(2026, 1, 31, 16, tzinfo=UTC)
    assert end == datetime(2026, 2, 28, 16, tzinfo=UTC)
