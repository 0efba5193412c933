"""``/sla``'s SQL: tickets opened and resolved, handling times against their targets, overdue ones."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Ticket
from storage.queries.common import grouped_percentiles, in_range, ticket_group

KINDS = ("first_response", "resolution")


def _not_breached(column: Any) -> Any:
    return func.coalesce(func.sum(case((column.is_(True), 0), else_=1)), 0)


def _handling(kind: str, start: datetime, end: datetime) -> tuple[Any, Any, Any]:
    """(minutes column, breached column, the tickets counted) of a kind of handling time."""
    if kind == "first_response":
        moment, minutes = Ticket.first_response_at, Ticket.first_response_minutes
        breached = Ticket.first_response_breached
    elif kind == "resolution":
        moment, minutes, breached = Ticket.resolved_at, Ticket.resolution_minutes, Ticket.resolution_breached
    else:
        raise ValueError(kind)
    return minutes, breached, and_(in_range(moment, start, end), minutes.is_not(None))


async def opened_resolved(session: AsyncSession, start: datetime, end: datetime) -> tuple[int, int]:
    """Tickets created, and tickets resolved, in ``[start, end)``."""
    opened = await session.scalar(select(func.count()).where(in_range(Ticket.created_at, start, end)))
    resolved = await session.scalar(select(func.count()).where(in_range(Ticket.resolved_at, start, end)))
    return int(opened or 0), int(resolved or 0)


async def handling_counts(session: AsyncSession, kind: str, start: datetime, end: datetime,
                          group: str | None = None) -> list[tuple[Any, int, int]]:
    """(group key, tickets, within the target) of the tickets whose ``kind`` (first_response,
    resolution) came in ``[start, end)``; groups without tickets are left out.

    ``group``: None (the key is None), or a name of ``common.TICKET_GROUPS``.
    """
    minutes, breached, where = _handling(kind, start, end)
    column = ticket_group(group)
    columns = [column.label("k")] if column is not None else []
    stmt = select(*columns, func.count().label("n"), _not_breached(breached).label("within")).where(where)
    if column is not None:
        stmt = stmt.group_by(column)
    return [(row.k if column is not None else None, int(row.n), int(row.within))
            for row in (await session.execute(stmt)).all() if row.n]


async def handling_percentiles(session: AsyncSession, kind: str, start: datetime, end: datetime,
                               group: str | None = None) -> dict[Any, list[float | None]]:
    """Group key → [median, 90th percentile] of the minutes of the same tickets as :func:`handling_counts`."""
    minutes, _, where = _handling(kind, start, end)
    column = ticket_group(group)
    found = await grouped_percentiles(session, minutes, where, (column,) if column is not None else ())
    return {(key[0] if column is not None else None): values for key, values in found.items()}


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
