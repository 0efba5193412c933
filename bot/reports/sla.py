"""``/sla``: complaint handling times against their targets.

Which tickets count where:

* *opened*: created in the period;
* *first response*: tickets whose first staff response came in the period
  (``first_response_minutes`` is the counted time the complaints module
  recorded, ``first_response_breached`` whether it missed its target);
* *resolution*: tickets resolved in the period (``resolution_minutes``,
  ``resolution_breached``);
* *overdue now*: tickets still open at the period's end whose target has
  passed by then.

Median and 90th percentile are ``percentile_cont`` style (see ``sql``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.reports.figures import share
from bot.reports.periods import Period
from storage.queries import sla as queries


@dataclass
class TimeStats:
    """Handling times of one kind (first response or resolution), minutes."""

    count: int = 0
    within: int = 0  # met the target
    median: float | None = None
    p90: float | None = None

    @property
    def within_share(self) -> float | None:
        return share(self.within, self.count)


@dataclass
class SlaSummary:
    opened: int = 0
    resolved: int = 0
    first_response: TimeStats = field(default_factory=TimeStats)
    resolution: TimeStats = field(default_factory=TimeStats)


@dataclass
class SlaRow:
    """One staff member, category or priority."""

    key: str | None  # staff name, category or priority; None = no one assigned
    first_response: TimeStats
    resolution: TimeStats


@dataclass
class SlaReport:
    period: Period
    previous: Period
    current: SlaSummary
    before: SlaSummary
    overdue_open: int
    by_staff: list[SlaRow]
    by_category: list[SlaRow]
    by_priority: list[SlaRow]


async def _stats(session: AsyncSession, kind: str, start: datetime, end: datetime,
                 group: str | None = None) -> dict[Any, TimeStats]:
    out = {key: TimeStats(count=count, within=within)
           for key, count, within in await queries.handling_counts(session, kind, start, end, group)}
    if not out:
        return out
    for key, (median, p90) in (await queries.handling_percentiles(session, kind, start, end, group)).items():
        if key in out:
            out[key].median, out[key].p90 = median, p90
    return out


async def sla_summary(session: AsyncSession, start: datetime, end: datetime) -> SlaSummary:
    opened, resolved = await queries.opened_resolved(session, start, end)
    first = (await _stats(session, "first_response", start, end)).get(None, TimeStats())
    resolution = (await _stats(session, "resolution", start, end)).get(None, TimeStats())
    return SlaSummary(opened=opened, resolved=resolved, first_response=first, resolution=resolution)


async def _rows(session: AsyncSession, start: datetime, end: datetime, group: str, limit: int) -> list[SlaRow]:
    first = await _stats(session, "first_response", start, end, group)
    resolution = await _stats(session, "resolution", start, end, group)
    keys = set(first) | set(resolution)
    rows = [SlaRow(key=k, first_response=first.get(k, TimeStats()), resolution=resolution.get(k, TimeStats()))
            for k in keys]
    rows.sort(key=lambda r: (-(r.first_response.count + r.resolution.count), str(r.key or "")))
    return rows[:limit]


async def overdue_open(session: AsyncSession, at: datetime) -> int:
    """Tickets open at ``at`` whose first-response or resolution target had passed."""
    return await queries.overdue_open(session, at)


async def compute(session: AsyncSession, settings: Settings, period: Period, now: datetime) -> SlaReport:
    tz = settings.tz
    start, end = period.bounds(tz)
    previous = period.previous()
    p_start, p_end = previous.bounds(tz)
    return SlaReport(
        period=period,
        previous=previous,
        current=await sla_summary(session, start, end),
        before=await sla_summary(session, p_start, p_end),
        overdue_open=await overdue_open(session, min(end, now)),
        by_staff=await _rows(session, start, end, "staff", settings.report_top_n),
        by_category=await _rows(session, start, end, "category", settings.report_top_n),
        by_priority=await _rows(session, start, end, "priority", settings.report_top_n),
    )


def csv_rows(report: SlaReport) -> list[list[Any]]:
    """Rows for the CSV export: one per group, the whole period first."""
    def line(scope: str, key: str | None, fr: TimeStats, res: TimeStats) -> list[Any]:
        return [scope, key or "", fr.count, _num(fr.median), _num(fr.p90), _pct(fr.within_share),
                res.count, _num(res.median), _num(res.p90), _pct(res.within_share)]

    rows = [line("total", report.period.label, report.current.first_response, report.current.resolution),
            line("previous", report.previous.label, report.before.first_response, report.before.resolution)]
    for scope, group in (("staff", report.by_staff), ("category", report.by_category),
                         ("priority", report.by_priority)):
        rows += [line(scope, r.key, r.first_response, r.resolution) for r in group]
    return rows


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}"
