"""``/csat``: customer satisfaction.

Complaints: one population throughout, the tickets *resolved in the period*.
Of those, the ones the customer rated (1–5) give the average and the share
rated 4–5; the response rate is rated / resolved.

Deliveries: the care engine's survey after a delivery. The answers given in
the period (1–5) give the average and the share rated 4–5; the response rate
is answers / surveys sent in the period.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.reports.figures import share
from bot.reports.periods import Period
from storage.queries import csat as queries

SURVEY_KIND = "survey"  # the care engine's outbox kind for the post-delivery survey


@dataclass
class CsatSummary:
    resolved: int = 0
    rated: int = 0
    rating_sum: int = 0
    good: int = 0  # rated 4 or 5
    distribution: dict[int, int] = field(default_factory=lambda: {r: 0 for r in range(1, 6)})

    @property
    def average(self) -> float | None:
        return share(self.rating_sum, self.rated)

    @property
    def good_share(self) -> float | None:
        return share(self.good, self.rated)

    @property
    def response_rate(self) -> float | None:
        return share(self.rated, self.resolved)


@dataclass
class SurveySummary:
    """Answers to the post-delivery survey."""

    sent: int = 0
    answered: int = 0
    rating_sum: int = 0
    good: int = 0

    @property
    def average(self) -> float | None:
        return share(self.rating_sum, self.answered)

    @property
    def good_share(self) -> float | None:
        return share(self.good, self.answered)

    @property
    def response_rate(self) -> float | None:
        return share(self.answered, self.sent)


@dataclass
class CsatRow:
    key: str | None
    summary: CsatSummary


@dataclass
class CsatReport:
    period: Period
    previous: Period
    current: CsatSummary
    before: CsatSummary
    by_staff: list[CsatRow]
    by_category: list[CsatRow]
    survey: SurveySummary = field(default_factory=SurveySummary)
    survey_before: SurveySummary = field(default_factory=SurveySummary)


async def _summaries(session: AsyncSession, start: datetime, end: datetime,
                     group: str | None = None) -> dict[Any, CsatSummary]:
    out: dict[Any, CsatSummary] = {}
    for key, rating, count in await queries.ratings(session, start, end, group):
        summary = out.setdefault(key, CsatSummary())
        summary.resolved += count
        if rating is not None:
            summary.rated += count
            summary.rating_sum += rating * count
            summary.good += count if rating >= 4 else 0
            if rating in summary.distribution:
                summary.distribution[rating] += count
    return out


async def survey_summary(session: AsyncSession, start: datetime, end: datetime) -> SurveySummary:
    answered, rating_sum, good = await queries.survey_answers(session, start, end)
    sent = await queries.care_sent(session, SURVEY_KIND, start, end)
    return SurveySummary(sent=sent, answered=answered, rating_sum=rating_sum, good=good)


async def csat_summary(session: AsyncSession, start: datetime, end: datetime) -> CsatSummary:
    return (await _summaries(session, start, end)).get(None, CsatSummary())


async def _rows(session: AsyncSession, start: datetime, end: datetime, group: str, limit: int) -> list[CsatRow]:
    found = await _summaries(session, start, end, group)
    rows = [CsatRow(key=k, summary=v) for k, v in found.items()]
    rows.sort(key=lambda r: (-r.summary.resolved, str(r.key or "")))
    return rows[:limit]


async def compute(session: AsyncSession, settings: Settings, period: Period, now: datetime) -> CsatReport:
    tz = settings.tz
    start, end = period.bounds(tz)
    previous = period.previous()
    return CsatReport(
        period=period,
        previous=previous,
        current=await csat_summary(session, start, end),
        before=await csat_summary(session, *previous.bounds(tz)),
        by_staff=await _rows(session, start, end, "staff", settings.report_top_n),
        by_category=await _rows(session, start, end, "category", settings.report_top_n),
        survey=await survey_summary(session, start, end),
        survey_before=await survey_summary(session, *previous.bounds(tz)),
    )


def csv_rows(report: CsatReport) -> list[list[Any]]:
    def line(scope: str, key: str | None, s: CsatSummary) -> list[Any]:
        return [scope, key or "", s.resolved, s.rated, _fmt(s.average, 2), _pct(s.good_share), _pct(s.response_rate),
                *[s.distribution[r] for r in range(1, 6)]]

    rows = [line("total", report.period.label, report.current), line("previous", report.previous.label, report.before)]
    rows += [line("staff", r.key, r.summary) for r in report.by_staff]
    rows += [line("category", r.key, r.summary) for r in report.by_category]
    for scope, survey in (("survey", report.survey), ("survey_previous", report.survey_before)):
        rows.append([scope, "", survey.sent, survey.answered, _fmt(survey.average, 2), _pct(survey.good_share),
                     _pct(survey.response_rate), "", "", "", "", ""])
    return rows


def _fmt(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}"
