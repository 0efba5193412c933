"""Segment actions' SQL: who of a segment can receive care messages, and their chats.

A segment is either a list of customer ids (the churn list; read in chunks of
ids) or an RFM members handle (``storage.queries.rfm.Customers.members``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Customer
from storage.queries.common import id_chunks

_RECIPIENT = (Customer.id, Customer.telegram_id, Customer.name, Customer.language)


def _reachable() -> tuple[Any, ...]:
    return (
        Customer.telegram_id.is_not(None),
        Customer.forgotten_at.is_(None),
        Customer.care_consent.is_(True),
        Customer.reachable.is_(True),
    )


async def reachable_count(session: AsyncSession, customer_ids: list[int]) -> int:
    """How many of these customers can receive care messages now."""
    reachable = 0
    for chunk in id_chunks(customer_ids):
        reachable += await session.scalar(
            select(func.count()).select_from(Customer).where(Customer.id.in_(chunk), *_reachable())) or 0
    return reachable


async def reachable_customers(session: AsyncSession, customer_ids: list[int]) -> list[Row[Any]]:
    """Rows of id, telegram_id, name, language of these customers who can receive care messages,
    chunk after chunk of ``customer_ids`` (ascending ids when they are)."""
    rows: list[Row[Any]] = []
    for chunk in id_chunks(customer_ids):
        rows += (await session.execute(
            select(*_RECIPIENT).where(Customer.id.in_(chunk), *_reachable()).order_by(Customer.id))).all()
    return rows


async def member_counts(session: AsyncSession, members: Any) -> tuple[int, int]:
    """(members of an RFM members handle, of whom can receive care messages now)."""
    members = members.subquery("members")
    total = await session.scalar(select(func.count()).select_from(members))
    reachable = await session.scalar(
        select(func.count()).select_from(members).join(Customer, Customer.id == members.c.customer_id)
        .where(*_reachable()))
    return int(total or 0), int(reachable or 0)


async def member_recipients(session: AsyncSession, members: Any) -> Sequence[Row[Any]]:
    """Rows of id, telegram_id, name, language of the members who can receive care messages, by id."""
    members = members.subquery("members")
    stmt = (
        select(*_RECIPIENT)
        .join(members, members.c.customer_id == Customer.id)
        .where(*_reachable())
        .order_by(Customer.id)
    )
    return (await session.execute(stmt)).all()
