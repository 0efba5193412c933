"""Business-hours arithmetic for response targets.

Opening hours are written like ``mon-fri 09:00-18:00; sat 10:00-14:00``:
segments separated by ``;``, each a set of days (``mon``, ``mon-fri``,
``mon,wed,fri``, ``daily``) followed by one or more time ranges
(``09:00-12:00 13:00-18:00`` or ``09:00-12:00,13:00-18:00``). ``24:00`` ends a
day; a range that ends before it starts runs past midnight
(``fri 22:00-02:00``). The hours are wall-clock times in the configured time
zone, so a daylight-saving change moves them with the clock on the wall.

An empty specification means around the clock: every minute counts.

Nothing here reads the time: callers pass the moments in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_ALIASES = {
    "monday": "mon", "tuesday": "tue", "tues": "tue", "wednesday": "wed", "thursday": "thu", "thur": "thu",
    "thurs": "thu", "friday": "fri", "saturday": "sat", "sunday": "sun",
}
_RANGE = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
DAY_MINUTES = 24 * 60
# How far due_after looks ahead before deciding the hours can never be met.
_MAX_DAYS = 366 * 2


class BusinessHoursError(ValueError):
    """The opening hours cannot be read; the message says where."""


@dataclass(frozen=True)
class Schedule:
    """Opening intervals per weekday (0 = Monday), in minutes from local midnight."""

    tz: ZoneInfo
    intervals: tuple[tuple[tuple[int, int], ...], ...]  # 7 entries, sorted, not overlapping

    def open_on(self, day: date) -> list[tuple[datetime, datetime]]:
        """The open intervals of one local date, as UTC moments."""
        midnight = datetime.combine(day, time(0), tzinfo=self.tz)
        out = []
        for start, end in self.intervals[day.weekday()]:
            # Wall-clock arithmetic on an aware datetime, then to UTC: right across DST changes.
            a = (midnight + timedelta(minutes=start)).astimezone(UTC)
            b = (midnight + timedelta(minutes=end)).astimezone(UTC)
            if b > a:
                out.append((a, b))
        return out

    @property
    def weekly_minutes(self) -> int:
        return sum(end - start for day in self.intervals for start, end in day)


def _minutes(hours: str, minutes: str, where: str) -> int:
    h, m = int(hours), int(minutes)
    if m > 59 or h > 24 or (h == 24 and m):
        raise BusinessHoursError(f"{where}: not a time of day")
    return h * 60 + m


def _days(text: str, where: str) -> list[int]:
    text = text.strip().lower()
    if text in ("daily", "everyday", "every day", "*", "all"):
        return list(range(7))
    days: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        ends = [p.strip() for p in part.split("-")]
        if len(ends) > 2:
            raise BusinessHoursError(f"{where}: {part!r} is not a day or a range of days")
        names = [_DAY_ALIASES.get(e, e) for e in ends]
        for name in names:
            if name not in DAYS:
                raise BusinessHoursError(f"{where}: unknown day {name!r} (use mon, tue, wed, thu, fri, sat, sun)")
        first, last = DAYS.index(names[0]), DAYS.index(names[-1])
        span = range(first, last + 1) if first <= last else [*range(first, 7), *range(0, last + 1)]
        days.extend(span)
    if not days:
        raise BusinessHoursError(f"{where}: no days given")
    return days


def _merge(ranges: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    merged: list[list[int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return tuple((a, b) for a, b in merged)


def parse_business_hours(spec: str, tz: str | ZoneInfo = "UTC") -> Schedule | None:
    """Read opening hours; None when ``spec`` is empty (around the clock)."""
    zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
    spec = (spec or "").strip()
    if not spec:
        return None
    per_day: list[list[tuple[int, int]]] = [[] for _ in range(7)]
    for number, segment in enumerate(s for s in spec.split(";") if s.strip()):
        where = f"part {number + 1} ({segment.strip()!r})"
        tokens = segment.replace(",", " , ").split()
        # Days come first, ranges after: split at the first token with a ':'.
        first_range = next((i for i, tok in enumerate(tokens) if ":" in tok), None)
        if first_range is None or first_range == 0:
            raise BusinessHoursError(f"{where}: expected days then hours, e.g. 'mon-fri 09:00-18:00'")
        days = _days("".join(tokens[:first_range]), where)
        ranges = [tok for tok in tokens[first_range:] if tok != ","]
        for token in ranges:
            match = _RANGE.match(token)
            if not match:
                raise BusinessHoursError(f"{where}: {token!r} is not a range like 09:00-18:00")
            start = _minutes(match.group(1), match.group(2), where)
            end = _minutes(match.group(3), match.group(4), where)
            if start == end:
                raise BusinessHoursError(f"{where}: {token!r} is an empty range")
            for day in days:
                if end > start:
                    per_day[day].append((start, end))
                else:  # runs past midnight into the next day
                    per_day[day].append((start, DAY_MINUTES))
                    if end:
                        per_day[(day + 1) % 7].append((0, end))
    schedule = Schedule(tz=zone, intervals=tuple(_merge(day) for day in per_day))
    if schedule.weekly_minutes == 0:
        raise BusinessHoursError("no opening hours at all")
    return schedule


def counted_minutes(start: datetime, end: datetime, schedule: Schedule | None) -> float:
    """Minutes between two moments that fall within opening hours (0 if end <= start)."""
    if end <= start:
        return 0.0
    if schedule is None:
        return (end - start).total_seconds() / 60
    total = 0.0
    day = start.astimezone(schedule.tz).date() - timedelta(days=1)  # an interval may start the day before
    last = end.astimezone(schedule.tz).date()
    while day <= last:
        for a, b in schedule.open_on(day):
            lo, hi = max(a, start), min(b, end)
            if hi > lo:
                total += (hi - lo).total_seconds() / 60
        day += timedelta(days=1)
    return total


def due_after(start: datetime, minutes: float, schedule: Schedule | None) -> datetime:
    """The moment when ``minutes`` counted minutes have passed since ``start``."""
    if minutes <= 0:
        return start
    if schedule is None:
        return start + timedelta(minutes=minutes)
    left = timedelta(minutes=minutes)
    day = start.astimezone(schedule.tz).date() - timedelta(days=1)
    for _ in range(_MAX_DAYS):
        for a, b in schedule.open_on(day):
            lo = max(a, start)
            if b <= lo:
                continue
            available = b - lo
            if available >= left:
                return lo + left
            left -= available
        day += timedelta(days=1)
    raise BusinessHoursError("the opening hours never add up to the target")  # pragma: no cover


def is_open(moment: datetime, schedule: Schedule | None) -> bool:
    if schedule is None:
        return True
    day = moment.astimezone(schedule.tz).date()
    return any(a <= moment < b for d in (day - timedelta(days=1), day) for a, b in schedule.open_on(d))


def next_open(moment: datetime, schedule: Schedule | None) -> datetime:
    """``moment`` itself when open (or around the clock); else when the shop next opens."""
    if schedule is None or is_open(moment, schedule):
        return moment
    day = moment.astimezone(schedule.tz).date() - timedelta(days=1)
    for _ in range(_MAX_DAYS):
        starts = [a for a, b in schedule.open_on(day) if a > moment]
        if starts:
            return min(starts)
        day += timedelta(days=1)
    return moment  # pragma: no cover (a schedule always opens within a week)


def notice_time(now: datetime, schedule: Schedule | None, priority: str | None,
                any_hour_priorities: frozenset[str] | set[str]) -> datetime:
    """When a staff notice or escalation about a ticket of this priority may go out.

    Outside opening hours it waits for the opening, unless the priority is one
    that goes at any hour (``AFTER_HOURS_PRIORITIES``, by default high).
    """
    if priority is not None and priority in any_hour_priorities:
        return now
    return next_open(now, schedule)
