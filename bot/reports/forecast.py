"""``/report``'s forecast: orders expected in the next 30 days, beside the last 30 days' actual.

The expected orders are the purchase model's (:mod:`bot.prediction`): the sum over every
customer the shop has of their expected purchase days in the next 30 days (customers yet to
come are not in it). The actual is counted the same way: customer-days with a counted order
in the last 30 days. When the shop has more than a year of orders, the forecast is scaled by
the shop's own monthly seasonal index (``/seasonal``) over the 30 days ahead — the model's
rate is the average over the history, the index says how the coming weeks compare with an
average month; otherwise the report says the season is not known yet.

Computed at most once per business day per database (cached with the date), like the fit.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.reports import seasonal
from storage.queries import forecast as queries

DAYS = 30
HISTORY_FOR_SEASON_DAYS = 365

_CACHE: dict[tuple[int, str], tuple[Any, date, Forecast]] = {}


@dataclass
class Forecast:
    days: int
    expected: float  # orders (purchase days) expected in the next ``days`` days, seasonal index applied
    expected_base: float  # before the seasonal index
    actual: int  # purchase days in the last ``days`` days
    method: str  # bgnbd | fallback
    season_index: float | None  # the index applied (100 = an average month); None: season not known yet
    customers: int


async def _purchase_days(session: AsyncSession, settings: Settings, start: datetime, end: datetime) -> int:
    offset = int(((end.astimezone(settings.tz).utcoffset() or timedelta(0)).total_seconds()) // 60)
    return await queries.purchase_days(session, start, end, offset)


def _season_index(report: seasonal.SeasonalReport, start: date, days: int) -> float | None:
    """The day-weighted average index of the months the next ``days`` days fall in."""
    by_month = {item.month: item.index for item in report.indexes}
    values = [by_month.get((start + timedelta(days=n)).month) for n in range(days)]
    if not values or any(v is None for v in values):
        return None
    return sum(values) / len(values)  # type: ignore[arg-type]


async def compute(session: AsyncSession, settings: Settings, now: datetime) -> Forecast:
    from bot import prediction  # (bot.prediction imports bot.reports: not at import time)

    today = now.astimezone(settings.tz).date()
    bind = session.bind
    key = (id(bind), str(getattr(bind, "url", "")))
    cached = _CACHE.get(key)
    if cached is not None and cached[0]() is bind and cached[1] == today:
        return cached[2]
    scores = await prediction.compute(session, settings, now)
    base = float(scores.expected_30.sum())
    actual = await _purchase_days(session, settings, now - timedelta(days=DAYS), now)
    first = await queries.first_order(session, now)
    index = None
    if first is not None:
        if first.tzinfo is None:

            first = first.replace(tzinfo=UTC)
        if now - first > timedelta(days=HISTORY_FOR_SEASON_DAYS):
            index = _season_index(await seasonal.compute(session, settings, None, now), today + timedelta(days=1),
                                  DAYS)
    result = Forecast(days=DAYS, expected=base * (index / 100 if index else 1.0), expected_base=base, actual=actual,
                      method=scores.method, season_index=index, customers=len(scores.customer_id))
    try:
        _CACHE[key] = (weakref.ref(bind), today, result)
    except TypeError:
        pass
    return result
