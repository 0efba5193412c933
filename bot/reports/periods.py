"""Report periods: what a manager types, as days of the business.

A period is a range of whole days in ``settings.default_timezone`` (the
business's day, not UTC), ``start`` and ``end`` inclusive, never reaching past
today. :meth:`Period.bounds` turns it into the UTC instants the queries use:
``[start 00:00 local, end + 1 day 00:00 local)``.

Accepted words (``parse_period``):

=====================  ==================================================
``today``              today
``yesterday``          yesterday
``week``               this week, Monday to today
``month``              this month, the 1st to today
``year``               this year, 1 January to today
``30d``, ``12m``       the last 30 days / 12 months, ending today
``2026``               a year
``2026-03``            a month
``2026-03-02``         a day
``2026-01-01..2026-03-31``  a range of days
=====================  ==================================================

The Chinese words mean the same: 今天 (今日), 昨天 (昨日), 本周 (这周), 本月
(这个月), 今年 (本年), ``30天`` (``30日``) and ``12个月``.

The previous period (for "each figure with the previous period beside it")
has the same shape: the previous whole month or year for a whole month or
year; the same days of the previous month, year or week for "month", "year"
and "week" so far; otherwise the same number of days just before.
"""

from __future__ import annotations

import re
from calendar import monthrange
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

MAX_DAYS = 366 * 10


class PeriodError(ValueError):
    """The text is not a period a report understands."""


def add_months(day: date, months: int) -> date:
    """The same day ``months`` later (or earlier), clipped to the month's end."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(day.day, monthrange(year, month)[1]))


def month_start(day: date) -> date:
    return day.replace(day=1)


def month_end(day: date) -> date:
    return day.replace(day=monthrange(day.year, day.month)[1])


def local_midnight_utc(day: date, tz: ZoneInfo) -> datetime:
    """The UTC instant at which ``day`` begins in ``tz``."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def local_today(now: datetime, tz: ZoneInfo) -> date:
    return now.astimezone(tz).date()


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # inclusive
    kind: str = "range"  # day | week | month | year | range

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise PeriodError("the period ends before it starts")

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def bounds(self, tz: ZoneInfo) -> tuple[datetime, datetime]:
        """UTC ``[from, to)`` covering the period's local days."""
        return local_midnight_utc(self.start, tz), local_midnight_utc(self.end + timedelta(days=1), tz)

    def previous(self) -> Period:
        """The period to compare with: same shape, just before."""
        length = timedelta(days=self.days)
        if self.kind == "week":  # the same weekdays of the week before
            return Period(self.start - timedelta(days=7), self.end - timedelta(days=7), self.kind)
        if self.days == 1 and self.kind != "month":  # a day: the day before (on the 1st, "month" is month to date)
            return Period(self.start - length, self.end - length, self.kind)
        if self.start.month == 1 and self.start.day == 1 and (self.kind == "year" or self.days > 31):
            start = self.start.replace(year=self.start.year - 1)
            end = min(add_months(self.end, -12), date(start.year, 12, 31))
            return Period(start, max(end, start), self.kind)
        if self.start.day == 1 and self.end == month_end(self.start):  # a whole month
            start = add_months(self.start, -1)
            return Period(start, month_end(start), self.kind)
        if self.start.day == 1 and self.end <= month_end(self.start):  # month to date
            start = add_months(self.start, -1)
            end = min(start + (self.end - self.start), month_end(start))
            return Period(start, end, self.kind)
        return Period(self.start - length, self.end - length, self.kind)

    @property
    def token(self) -> str:
        """A canonical spelling that ``parse_period`` reads back (for buttons)."""
        if self.start == self.end:
            return self.start.isoformat()
        return f"{self.start.isoformat()}..{self.end.isoformat()}"

    @property
    def label(self) -> str:
        if self.start == self.end:
            return self.start.isoformat()
        return f"{self.start.isoformat()} – {self.end.isoformat()}"

    def day_list(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range(self.days)]


_RELATIVE = re.compile(r"^(\d{1,3})([dm])$")
_YEAR = re.compile(r"^(\d{4})$")
_MONTH = re.compile(r"^(\d{4})-(\d{1,2})$")
_DAY = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")


def _parse_day(text: str) -> date:
    match = _DAY.match(text)
    if not match:
        raise PeriodError(f"not a date: {text!r}")
    try:
        return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError as exc:
        raise PeriodError(f"not a date: {text!r}") from exc


def _clip(period: Period, today: date) -> Period:
    if period.start > today:
        raise PeriodError("the period is in the future")
    if period.end > today:
        return Period(period.start, today, period.kind)
    return period


_CHINESE_WORDS = {"今天": "today", "今日": "today", "昨天": "yesterday", "昨日": "yesterday", "本周": "week",
                  "这周": "week", "本星期": "week", "本月": "month", "这个月": "month", "今年": "year", "本年": "year"}
_CHINESE_RELATIVE = re.compile(r"^(\d{1,3})\s*(天|日|个月)$")


def _english_word(word: str) -> str:
    """A Chinese period word as its English twin (本月 → month, 30天 → 30d, 12个月 → 12m)."""
    if word in _CHINESE_WORDS:
        return _CHINESE_WORDS[word]
    if match := _CHINESE_RELATIVE.match(word):
        return match.group(1) + ("m" if match.group(2) == "个月" else "d")
    return word


def parse_period(text: str | None, today: date, default: str = "month") -> Period:
    """Read a period word (see the module doc); raise :class:`PeriodError`."""
    word = _english_word((text or "").strip().lower() or default)
    if word == "today":
        return Period(today, today, "day")
    if word == "yesterday":
        day = today - timedelta(days=1)
        return Period(day, day, "day")
    if word == "week":
        return Period(today - timedelta(days=today.weekday()), today, "week")
    if word == "month":
        return Period(month_start(today), today, "month")
    if word == "year":
        return Period(date(today.year, 1, 1), today, "year")
    if match := _RELATIVE.match(word):
        count, unit = int(match.group(1)), match.group(2)
        if count < 1:
            raise PeriodError("the period needs at least one day")
        start = today - timedelta(days=count - 1) if unit == "d" else add_months(today, -count) + timedelta(days=1)
        if (today - start).days > MAX_DAYS:
            raise PeriodError("the period is too long")
        return Period(start, today, "range")
    if match := _YEAR.match(word):
        year = int(match.group(1))
        if year < 1970:
            raise PeriodError("the period is too early")
        return _clip(Period(date(year, 1, 1), date(year, 12, 31), "year"), today)
    if match := _MONTH.match(word):
        year, month = int(match.group(1)), int(match.group(2))
        if not 1 <= month <= 12 or year < 1970:
            raise PeriodError(f"not a month: {word!r}")
        first = date(year, month, 1)
        return _clip(Period(first, month_end(first), "month"), today)
    if ".." in word:
        left, _, right = word.partition("..")
        start, end = _parse_day(left.strip()), _parse_day(right.strip())
        if end < start:
            raise PeriodError("the period ends before it starts")
        if (end - start).days > MAX_DAYS:
            raise PeriodError("the period is too long")
        kind = "month" if start.day == 1 and end == month_end(start) else "range"
        return _clip(Period(start, end, kind), today)
    if _DAY.match(word):
        day = _parse_day(word)
        return _clip(Period(day, day, "day"), today)
    raise PeriodError(f"not a period: {word!r}")
