from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.dialect import insert_for
from storage.models.reports import ReportDigest, SegmentCampaign


class ReportRepo:
    """Managers' digests and segment campaigns (the reports themselves only read)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # ----- daily digest -----------------------------------------------------------
    async def digest(self, manager_telegram_id: int) -> ReportDigest | None:
        return await self.session.scalar(
            select(ReportDigest).where(ReportDigest.manager_telegram_id == manager_telegram_id))

    async def set_digest(self, manager_telegram_id: int, *, chat_id: int, enabled: bool, hour: int | None,
                         language: str, now: datetime, last_sent_on: date | None = None) -> ReportDigest:
        digest = await self.digest(manager_telegram_id)
        if digest is None:
            digest = ReportDigest(manager_telegram_id=manager_telegram_id, created_at=now, hour=hour or 0)
            self.session.add(digest)
        digest.chat_id = chat_id
        digest.enabled = enabled
        if hour is not None:
            digest.hour = hour
        digest.language = language
        if last_sent_on is not None:
            digest.last_sent_on = last_sent_on
        digest.updated_at = now
        await self.session.flush()
        return digest

    async def digests_due(self, today: date, hour: int) -> list[ReportDigest]:
        """Enabled digests whose hour has come today and that were not queued today yet."""
        stmt = (
            select(ReportDigest)
            .where(ReportDigest.enabled.is_(True), ReportDigest.hour <= hour,
                   (ReportDigest.last_sent_on.is_(None)) | (ReportDigest.last_sent_on < today))
            .order_by(ReportDigest.id)
        )
        return list(await self.session.scalars(stmt))

    # ----- segment campaigns ----------------------------------------------------------
    async def campaign(self, key: str) -> SegmentCampaign | None:
        return await self.session.scalar(select(SegmentCampaign).where(SegmentCampaign.key == key))

    async def add_campaign(self, *, key: str, source: str, segment: str, template: str, period: str,
                           created_by: int, now: datetime, members: int, queued: int) -> SegmentCampaign | None:
        """Write a campaign; None when one with this key exists (INSERT .. ON CONFLICT DO NOTHING)."""
        insert = insert_for(self.session)
        stmt = (
            insert(SegmentCampaign)
            .values(key=key, source=source, segment=segment, template=template, period=period,
                    created_by=created_by, created_at=now, members=members, queued=queued)
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(SegmentCampaign.id)
        )
        campaign_id = (await self.session.execute(stmt)).scalar_one_or_none()
        if campaign_id is None:
            return None
        return await self.session.get(SegmentCampaign, campaign_id)
