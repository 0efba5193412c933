"""``/csat``'s SQL: ratings of resolved complaints, answers to the post-delivery survey."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import OutboxMessage, SurveyAnswer, Ticket
from storage.models.outbox import CATEGORY_CARE
from storage.queries.common import in_range, ticket_group


async def ratings(session: AsyncSession, start: datetime, end: datetime,
                  group: str | None = None) -> list[tuple[Any, int | None, int]]:
    """(group key, rating or None, tickets) of the tickets resolved in ``[start, end)``.

    ``group``: None (the key is None), or a name of ``common.TICKET_GROUPS``.
    """
    column = ticket_group(group)
    columns = [column.label("k")] if column is not None else []
    stmt = (
        select(
            *columns,
            Ticket.rating.label("rating"),
            func.count().label("n"),
        )
        .where(in_range(Ticket.resolved_at, start, end))
        .group_by(*([column] if column is not None else []), Ticket.rating)
    )
    return [(row.k if column is not None else None, None if row.rating is None else int(row.rating), int(row.n))
            for row in (await session.execute(stmt)).all()]


async def survey_answers(session: AsyncSession, start: datetime, end: datetime) -> tuple[int, int, int]:
    """(answers, sum of ratings, answers rated 4 or 5) of the survey answers given in ``[start, end)``."""
    answers = (await session.execute(
        select(func.count().label("n"), func.coalesce(func.sum(SurveyAnswer.rating), 0).label("total"),
               func.count(case((SurveyAnswer.rating >= 4, 1))).label("good"))
        .where(in_range(SurveyAnswer.created_at, start, end))
    )).one()
    return int(answers.n or 0), int(answers.total or 0), int(answers.good or 0)


async def care_sent(session: AsyncSession, kind: str, start: datetime, end: datetime) -> int:
    """Care messages of ``kind`` sent in ``[start, end)``."""
    sent = await session.scalar(
        select(func.count()).where(OutboxMessage.category == CATEGORY_CARE, OutboxMessage.kind == kind,
                                   OutboxMessage.status == "sent", in_range(OutboxMessage.sent_at, start, end)))
    return int(sent or 0)
