"""Manager reports: one module per report, each a few SQL aggregates.

Every report module has ``compute(session, settings, period, now)`` returning
a small dataclass; figures come from SQL aggregates (``GROUP BY``, window
functions), never from loading orders into Python. :func:`run_report` parses
the period a manager typed and runs the right one; ``bot.reports.output``
turns a result into text, a chart and a CSV file. The handlers
(``handlers/reports.py``), the command line (``caredesk report``) and the
daily digest all go through here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.reports import abc, care, churn, csat, rfm, sales, seasonal, sla
from bot.reports.periods import Period, PeriodError, local_today, parse_period
from storage.queries.common import prepare

ComputeFn = Callable[[AsyncSession, Settings, Any, datetime], Awaitable[Any]]


@dataclass(frozen=True)
class ReportSpec:
    name: str
    compute: ComputeFn
    # The period when none is typed; None: the report takes no period.
    default_period: str | None
    # The period is optional and changes what the report reads (seasonal: the last month).
    optional_period: bool = False


REPORTS: dict[str, ReportSpec] = {
    spec.name: spec
    for spec in (
        ReportSpec("report", sales.compute, "month"),
        ReportSpec("abc", abc.compute, abc.DEFAULT_PERIOD),
        ReportSpec("rfm", rfm.compute, rfm.DEFAULT_PERIOD),
        ReportSpec("churn", churn.compute, None),
        ReportSpec("seasonal", seasonal.compute, None, optional_period=True),
        ReportSpec("sla", sla.compute, "month"),
        ReportSpec("csat", csat.compute, "month"),
        ReportSpec("care", care.compute, "month"),
    )
}
REPORT_NAMES: tuple[str, ...] = tuple(REPORTS)


class UnknownReport(ValueError):
    pass


def report_period(name: str, text: str | None, settings: Settings, now: datetime) -> Period | None:
    """The period a report reads, from what was typed (raises PeriodError)."""
    spec = REPORTS.get(name)
    if spec is None:
        raise UnknownReport(name)
    today = local_today(now, settings.tz)
    if spec.optional_period:
        return parse_period(text, today) if (text or "").strip() else None
    if spec.default_period is None:
        if (text or "").strip():
            raise PeriodError(f"/{name} takes no period")
        return None
    return parse_period(text, today, spec.default_period)


async def run_report(name: str, session: AsyncSession, settings: Settings, period: Period | None,
                     now: datetime) -> Any:
    spec = REPORTS.get(name)
    if spec is None:
        raise UnknownReport(name)
    await prepare(session)
    return await spec.compute(session, settings, period, now)


__all__ = ["REPORTS", "REPORT_NAMES", "Period", "PeriodError", "ReportSpec", "UnknownReport", "report_period",
           "run_report"]
