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

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.reports.periods import Period
from bot.reports.sql import REVENUE_EXCLUDED, in_range, share
from bot.rules import care as rules
from storage.models import Order, OutboxMessage
from storage.models.outbox import CATEGORY_CARE
from storage.models.reports import SegmentCampaign

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
        """Whether orders are credited to this kind (reminders and win-backs ask for one; greetings and surveys don't)."""
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


def _care_unindexed() -> Any:
    """``category = 'care'`` written so the database does not pick the (category, sent_at) index.

    Rows that were not sent have no ``sent_at``: that index would walk every care message
    ever sent; the (status, ...) index finds the few skipped and failed ones directly.
    """
    return func.coalesce(OutboxMessage.category, "") == CATEGORY_CARE


async def care_summary(session: AsyncSession, start: datetime, end: datetime) -> CareSummary:
    lines: dict[str, CareLine] = {}
    sent_in_period = (OutboxMessage.category == CATEGORY_CARE, OutboxMessage.status == "sent",
                      in_range(OutboxMessage.sent_at, start, end))
    sent = select(OutboxMessage.kind, func.count().label("sent")).where(*sent_in_period).group_by(OutboxMessage.kind)
    for row in (await session.execute(sent)).all():
        lines[row.kind] = CareLine(kind=row.kind, sent=int(row.sent))
    attributed = (
        select(OutboxMessage.kind, func.count().label("orders"), func.sum(Order.total).label("revenue"))
        .join(Order, Order.attributed_outbox_id == OutboxMessage.id)
        .where(*sent_in_period, Order.status.notin_(REVENUE_EXCLUDED))
        .group_by(OutboxMessage.kind)
    )
    for row in (await session.execute(attributed)).all():
        line = lines.setdefault(row.kind, CareLine(kind=row.kind))
        line.orders, line.revenue = int(row.orders), int(row.revenue or 0)
    unsent = (
        select(OutboxMessage.kind, OutboxMessage.status, func.count().label("n"))
        .where(_care_unindexed(), OutboxMessage.status.in_(("skipped", "failed")),
               in_range(OutboxMessage.created_at, start, end))
        .group_by(OutboxMessage.kind, OutboxMessage.status)
    )
    for row in (await session.execute(unsent)).all():
        line = lines.setdefault(row.kind, CareLine(kind=row.kind))
        if row.status == "skipped":
            line.skipped += int(row.n)
        else:
            line.failed += int(row.n)
    return CareSummary(sorted(lines.values(), key=lambda line: (-line.sent, line.kind)))


async def compute(session: AsyncSession, settings: Settings, period: Period, now: datetime) -> CareReport:
    tz = settings.tz
    start, end = period.bounds(tz)
    previous = period.previous()
    reasons_stmt = (
        select(func.coalesce(OutboxMessage.skip_reason, "").label("reason"), func.count().label("n"))
        .where(_care_unindexed(), OutboxMessage.status == "skipped",
               in_range(OutboxMessage.created_at, start, end))
        .group_by("reason")
        .order_by(func.count().desc(), "reason")
        .limit(settings.report_top_n)
    )
    reasons = [(row.reason, int(row.n)) for row in (await session.execute(reasons_stmt)).all()]
    campaigns_stmt = (
        select(SegmentCampaign)
        .where(in_range(SegmentCampaign.created_at, start, end))
        .order_by(SegmentCampaign.created_at.desc(), SegmentCampaign.id.desc())
        .limit(settings.report_top_n)
    )
    campaigns = []
    for campaign in await session.scalars(campaigns_stmt):
        prefix = f"seg:{campaign.key}:"
        sent = await session.scalar(
            select(func.count()).where(OutboxMessage.kind == SEGMENT_KIND, OutboxMessage.status == "sent",
                                       OutboxMessage.dedupe_key.startswith(prefix, autoescape=True)))
        campaigns.append(CampaignLine(source=campaign.source, segment=campaign.segment, template=campaign.template,
                                      created_at=campaign.created_at, members=campaign.members,
                                      queued=campaign.queued, sent=int(sent or 0)))
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
