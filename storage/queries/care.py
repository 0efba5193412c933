"""``/care``'s SQL: care messages sent, the orders attributed to them, the ones not sent, campaigns."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Order, OutboxMessage
from storage.models.outbox import CATEGORY_CARE
from storage.models.reports import SegmentCampaign
from storage.queries.common import REVENUE_EXCLUDED, in_range


def _care_unindexed() -> Any:
    """``category = 'care'`` written so the database does not pick the (category, sent_at) index.

    Rows that were not sent have no ``sent_at``: that index would walk every care message
    ever sent; the (status, ...) index finds the few skipped and failed ones directly.
    """
    return func.coalesce(OutboxMessage.category, "") == CATEGORY_CARE


def _sent_in(start: datetime, end: datetime) -> tuple[Any, ...]:
    return (OutboxMessage.category == CATEGORY_CARE, OutboxMessage.status == "sent",
            in_range(OutboxMessage.sent_at, start, end))


async def sent_by_kind(session: AsyncSession, start: datetime, end: datetime) -> list[tuple[str, int]]:
    """Care messages sent in ``[start, end)`` per kind."""
    stmt = select(OutboxMessage.kind, func.count().label("sent")).where(*_sent_in(start, end)) \
        .group_by(OutboxMessage.kind)
    return [(row.kind, int(row.sent)) for row in (await session.execute(stmt)).all()]


async def attributed_by_kind(session: AsyncSession, start: datetime, end: datetime) -> list[tuple[str, int, int]]:
    """(kind, orders, revenue) of the counted orders attributed to the care messages sent in ``[start, end)``."""
    stmt = (
        select(OutboxMessage.kind, func.count().label("orders"), func.sum(Order.total).label("revenue"))
        .join(Order, Order.attributed_outbox_id == OutboxMessage.id)
        .where(*_sent_in(start, end), Order.status.notin_(REVENUE_EXCLUDED))
        .group_by(OutboxMessage.kind)
    )
    return [(row.kind, int(row.orders), int(row.revenue or 0)) for row in (await session.execute(stmt)).all()]


async def unsent_by_kind(session: AsyncSession, start: datetime, end: datetime) -> list[tuple[str, str, int]]:
    """(kind, status, count) of the care messages written in ``[start, end)`` and skipped or failed."""
    stmt = (
        select(OutboxMessage.kind, OutboxMessage.status, func.count().label("n"))
        .where(_care_unindexed(), OutboxMessage.status.in_(("skipped", "failed")),
               in_range(OutboxMessage.created_at, start, end))
        .group_by(OutboxMessage.kind, OutboxMessage.status)
    )
    return [(row.kind, row.status, int(row.n)) for row in (await session.execute(stmt)).all()]


async def skip_reasons(session: AsyncSession, start: datetime, end: datetime, limit: int) -> list[tuple[str, int]]:
    """The commonest reasons care messages written in ``[start, end)`` were skipped, with their counts."""
    stmt = (
        select(func.coalesce(OutboxMessage.skip_reason, "").label("reason"), func.count().label("n"))
        .where(_care_unindexed(), OutboxMessage.status == "skipped",
               in_range(OutboxMessage.created_at, start, end))
        .group_by("reason")
        .order_by(func.count().desc(), "reason")
        .limit(limit)
    )
    return [(row.reason, int(row.n)) for row in (await session.execute(stmt)).all()]


async def campaigns(session: AsyncSession, start: datetime, end: datetime, limit: int) -> Sequence[Row[Any]]:
    """The latest segment campaigns started in ``[start, end)``: rows of key, source, segment, template,
    created_at, members, queued."""
    c = SegmentCampaign
    stmt = (
        select(c.key, c.source, c.segment, c.template, c.created_at, c.members, c.queued)
        .where(in_range(c.created_at, start, end))
        .order_by(c.created_at.desc(), c.id.desc())
        .limit(limit)
    )
    return (await session.execute(stmt)).all()


async def sent_with_key_prefix(session: AsyncSession, kind: str, prefix: str) -> int:
    """Messages of ``kind`` sent whose dedupe key starts with ``prefix`` (one campaign's)."""
    sent = await session.scalar(
        select(func.count()).where(OutboxMessage.kind == kind, OutboxMessage.status == "sent",
                                   OutboxMessage.dedupe_key.startswith(prefix, autoescape=True)))
    return int(sent or 0)
