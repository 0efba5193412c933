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

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.reports.periods import Period
from bot.reports.sql import grouped_percentiles, in_range, share
from storage.models import Ticket

OPEN_STATUSES = ("new", "taken", "in_progress", "waiting_customer")


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


def _not_breached(column: Any) -> Any:
    return func.coalesce(func.sum(case((column.is_(True), 0), else_=1)), 0)


async def _stats(session: AsyncSession, kind: str, start: datetime, end: datetime,
                 group: Any | None = None) -> dict[Any, TimeStats]:
    if kind == "first_response":
        moment, minutes, breached = Ticket.first_response_at, Ticket.first_response_minutes, Ticket.first_response_breached
    else:
        moment, minutes, breached = Ticket.resolved_at, Ticket.resolution_minutes, Ticket.resolution_breached
    where = and_(in_range(moment, start, end), minutes.is_not(None))
    columns = [group.label("k")] if group is not None else []
    stmt = select(*columns, func.count().label("n"), _not_breached(breached).label("within")).where(where)
    if group is not None:
        stmt = stmt.group_by(group)
    out: dict[Any, TimeStats] = {}
    for row in (await session.execute(stmt)).all():
        key = row.k if group is not None else None
        if row.n:
            out[key] = TimeStats(count=int(row.n), within=int(row.within))
    if not out:
        return out
    groups = (group,) if group is not None else ()
    found = await grouped_percentiles(session, minutes, where, groups)
    for key_tuple, (median, p90) in found.items():
        key = key_tuple[0] if group is not None else None
        if key in out:
            out[key].median, out[key].p90 = median, p90
    return out


async def sla_summary(session: AsyncSession, start: datetime, end: datetime) -> SlaSummary:
    opened = await session.scalar(select(func.count()).where(in_range(Ticket.created_at, start, end)))
    resolved = await session.scalar(select(func.count()).where(in_range(Ticket.resolved_at, start, end)))
    first = (await _stats(session, "first_response", start, end)).get(None, TimeStats())
    resolution = (await _stats(session, "resolution", start, end)).get(None, TimeStats())
    return SlaSummary(opened=int(opened or 0), resolved=int(resolved or 0), first_response=first, resolution=resolution)


async def _rows(session: AsyncSession, start: datetime, end: datetime, group: Any, limit: int) -> list[SlaRow]:
    first = await _stats(session, "first_response", start, end, group)
    resolution = await _stats(session, "resolution", start, end, group)
    keys = set(first) | set(resolution)
    rows = [SlaRow(key=k, first_response=first.get(k, TimeStats()), resolution=resolution.get(k, TimeStats()))
            for k in keys]
    rows.sort(key=lambda r: (-(r.first_response.count + r.resolution.count), str(r.key or "")))
    return rows[:limit]


async def overdue_open(session: AsyncSession, at: datetime) -> int:
    """Tickets open at ``at`` whose first-response or resolution target had passed."""
    still_open = or_(Ticket.resolved_at.is_(None), Ticket.resolved_at >= at)
    late_response = and_(Ticket.first_response_due_at < at,
                         or_(Ticket.first_response_at.is_(None), Ticket.first_response_at >= at))
    late_resolution = Ticket.resolution_due_at < at
    still_not_closed = or_(Ticket.closed_at.is_(None), Ticket.closed_at >= at)
    stmt = select(func.count()).where(Ticket.created_at < at, still_open, still_not_closed,
                                      or_(late_response, late_resolution))
    return int(await session.scalar(stmt) or 0)


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
        by_staff=await _rows(session, start, end, Ticket.assignee_name, settings.report_top_n),
        by_category=await _rows(session, start, end, Ticket.category, settings.report_top_n),
        by_priority=await _rows(session, start, end, Ticket.priority, settings.report_top_n),
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
