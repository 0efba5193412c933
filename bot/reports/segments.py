"""Segment actions: a care message to an RFM segment or to the churn list.

The manager picks a segment and one of the campaign templates
(``templates/<lang>/reports/campaigns/``); each member who can receive care
messages gets one outbox row (category ``care``, kind ``segment``), rendered
in their language. The outbox's delivery applies the care rules (daily and
weekly caps, quiet hours, consent, /stop) when it sends them.

One campaign per source, segment and template per business day: its key is
stored (unique) and every row's dedupe key is ``seg:<campaign key>:<customer>``,
so a double press, or two managers pressing at once, queue each message once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.reports import churn, rfm
from bot.reports.care import SEGMENT_KIND
from bot.reports.periods import Period
from bot.texts import TextRenderer
from storage.models.outbox import CATEGORY_CARE, PRIORITY_CARE
from storage.queries import segments as queries
from storage.queries.common import prepare
from storage.repositories import Repos

SOURCES = ("rfm", "churn")
CHURN_SEGMENT = "overdue"
CAMPAIGN_TEMPLATES = ("miss_you", "thanks", "restock", "feedback")


@dataclass
class Recipient:
    customer_id: int
    telegram_id: int
    name: str | None
    language: str


@dataclass
class CampaignResult:
    status: str  # queued | already | empty
    key: str
    members: int
    queued: int = 0


def valid_segment(source: str, segment: str) -> bool:
    if source == "rfm":
        return segment in rfm.SEGMENTS
    return source == "churn" and segment == CHURN_SEGMENT


async def _rfm_members(session: AsyncSession, settings: Settings, source: str, segment: str,
                       period: Period | None) -> Any:
    """An RFM segment: a members handle (``storage.queries.rfm``)."""
    assert source == "rfm" and period is not None
    return await rfm.members_handle(session, settings, period, segment)


async def _churn_members(session: AsyncSession, settings: Settings, now: datetime) -> list[int]:
    """The churn list: exactly the overdue customers of the report (its rule runs in Python), by id."""
    return sorted(await churn.overdue_customers(session, settings, now))


async def segment_sizes(session: AsyncSession, settings: Settings, period: Period,
                        now: datetime) -> list[tuple[str, int]]:
    """RFM segments with members, in the rule table's order."""
    report = await rfm.compute(session, settings, period, now)
    return [(s.code, s.customers) for s in report.segments if s.customers]


async def audience(session: AsyncSession, settings: Settings, source: str, segment: str, period: Period | None,
                   now: datetime) -> tuple[int, int]:
    """(members of the segment, of whom can receive care messages now)."""
    await prepare(session)
    if source == "churn":
        ids = await _churn_members(session, settings, now)
        return len(ids), await queries.reachable_count(session, ids)
    return await queries.member_counts(session, await _rfm_members(session, settings, source, segment, period))


async def recipients(session: AsyncSession, settings: Settings, source: str, segment: str, period: Period | None,
                     now: datetime) -> list[Recipient]:
    if source == "churn":
        rows: Any = await queries.reachable_customers(session, await _churn_members(session, settings, now))
    else:
        rows = await queries.member_recipients(session, await _rfm_members(session, settings, source, segment, period))
    return [Recipient(row.id, row.telegram_id, row.name, row.language or settings.default_language)
            for row in rows]


def campaign_key(source: str, segment: str, template: str, day: date) -> str:
    return f"{source}:{segment}:{template}:{day:%Y%m%d}"


def campaign_text(renderer: TextRenderer, lang: str, template: str, name: str | None) -> str:
    texts = renderer.for_language(lang)
    return texts(f"reports/campaigns/{template}", name=name or texts("reports/campaign_customer.txt"))


async def queue_campaign(repos: Repos, renderer: TextRenderer, settings: Settings, *, source: str, segment: str,
                         template: str, period: Period | None, manager_id: int, now: datetime) -> CampaignResult:
    """Write the campaign and its care messages (in the caller's transaction)."""
    if template not in CAMPAIGN_TEMPLATES or not valid_segment(source, segment):
        raise ValueError(f"unknown campaign {source}/{segment}/{template}")
    key = campaign_key(source, segment, template, now.astimezone(settings.tz).date())
    if await repos.reports.campaign(key) is not None:
        return CampaignResult("already", key, 0)
    session = repos.session
    members, _ = await audience(session, settings, source, segment, period, now)
    people = await recipients(session, settings, source, segment, period, now)
    if not people:
        return CampaignResult("empty", key, members)
    campaign = await repos.reports.add_campaign(key=key, source=source, segment=segment, template=template,
                                                period=period.token if period else "", created_by=manager_id,
                                                now=now, members=members, queued=0)
    if campaign is None:  # another manager pressed at the same moment
        return CampaignResult("already", key, 0)
    queued = 0
    texts_cache: dict[tuple[str, str | None], str] = {}
    for person in people:
        cache_key = (person.language, person.name)
        text = texts_cache.get(cache_key)
        if text is None:
            text = texts_cache[cache_key] = campaign_text(renderer, person.language, template, person.name)
        written = await repos.outbox.enqueue(
            dedupe_key=f"seg:{key}:{person.customer_id}", kind=SEGMENT_KIND, chat_id=person.telegram_id, text=text,
            now=now, category=CATEGORY_CARE, priority=PRIORITY_CARE, customer_id=person.customer_id,
        )
        queued += int(written)
    campaign.queued = queued
    await session.flush()
    return CampaignResult("queued", key, members, queued)
