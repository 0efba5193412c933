"""``/care``: what the care messages did, by kind.

* *sent*: care messages (outbox rows of category ``care``) sent in the period;
* *orders*, *revenue*: the orders attributed to those messages (an order's
  ``attributed_outbox_id``, set by the orders module when an order answers a
  care message), cancelled ones left out — counted with the message's period;
* *skipped*, *failed*: care messages written in the period that were not
  sent (caps, quiet hours, consent, blocked...), with the reasons;
* the segment campaigns managers started in the period.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.reports.figures import share
from bot.reports.periods import Period
from bot.rules import care as rules
from storage.queries import care as queries

# The outbox kind of the care messages managers send to a segment.
SEGMENT_KIND = "segment"


@dataclass
class CareLine:
    kind: str
    sent: int = 0
    orders: int = 0
    revenue: int = 0
    skipped: int = 0
    failed: int = 0

    @property
    def attributed(self) -> bool:
        """Whether orders are credited to this kind.

        Reminders and win-backs ask for one; greetings and surveys don't.
        """
        return self.kind in rules.ATTRIBUTED_KINDS

    @property
    def conversion(self) -> float | None:
        return share(self.orders, self.sent) if self.attributed else None


@dataclass
class CareSummary:
    lines: list[CareLine] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return sum(line.sent for line in self.lines)

    @property
    def orders(self) -> int:
        return sum(line.orders for line in self.lines)

    @property
    def revenue(self) -> int:
        return sum(line.revenue for line in self.lines)

    @property
    def skipped(self) -> int:
        return sum(line.skipped for line in self.lines)

    @property
    def failed(self) -> int:
        return sum(line.failed for line in self.lines)

    @property
    def conversion(self) -> float | None:
        """Orders per message, over the kinds that ask for an order."""
        return share(self.orders, sum(line.sent for line in self.lines if line.attributed))

    def line(self, kind: str) -> CareLine:
        for line in self.lines:
            if line.kind == kind:
                return line
        return CareLine(kind=kind)


@dataclass
class CampaignLine:
    source: str
    segment: str
    template: str
    created_at: datetime
    members: int
    queued: int
    sent: int


@dataclass
class CareReport:
    period: Period
    previous: Period
    current: CareSummary
    before: CareSummary
    skip_reasons: list[tuple[str, int]]
    campaigns: list[CampaignLine]


async def care_summary(session: AsyncSession, start: datetime, end: datetime) -> CareSummary:
    lines: dict[str, CareLine] = {}
    for kind, sent in await queries.sent_by_kind(session, start, end):
        lines[kind] = CareLine(kind=kind, sent=sent)
    for kind, orders, revenue in await queries.attributed_by_kind(session, start, end):
        line = lines.setdefault(kind, CareLine(kind=kind))
        line.orders, line.revenue = orders, revenue
    for kind, status, count in await queries.unsent_by_kind(session, start, end):
        line = lines.setdefault(kind, CareLine(kind=kind))
        if status == "skipped":
            line.skipped += count
        else:
            line.failed += count
    return CareSummary(sorted(lines.values(), key=lambda line: (-line.sent, line.kind)))


async def compute(session: AsyncSession, settings: Settings, period: Period, now: datetime) -> CareReport:
    tz = settings.tz
    start, end = period.bounds(tz)
    previous = period.previous()
    reasons = await queries.skip_reasons(session, start, end, settings.report_top_n)
    campaigns = []
    for campaign in await queries.campaigns(session, start, end, settings.report_top_n):
        sent = await queries.sent_with_key_prefix(session, SEGMENT_KIND, f"seg:{campaign.key}:")
        campaigns.append(CampaignLine(source=campaign.source, segment=campaign.segment, template=campaign.template,
                                      created_at=campaign.created_at, members=campaign.members,
                                      queued=campaign.queued, sent=sent))
    return CareReport(
        period=period,
        previous=previous,
        current=await care_summary(session, start, end),
        before=await care_summary(session, *previous.bounds(tz)),
        skip_reasons=reasons,
        campaigns=campaigns,
    )


def csv_rows(report: CareReport) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for scope, summary in (("current", report.current), ("previous", report.before)):
        label = report.period.label if scope == "current" else report.previous.label
        for line in summary.lines:
            rows.append([scope, label, line.kind, line.sent, line.orders, line.revenue, line.skipped, line.failed])
    return rows
