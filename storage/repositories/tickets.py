"""Tickets (complaints), their events and relayed messages.

Flushes only; the update's middleware or the job commits. State changes that
two people could make at once (Take, Resolve, a rating) first *claim* the row
with a conditional UPDATE, which takes the row's write lock (the database's
on SQLite) for the rest of the transaction, then re-read it.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.rules import tickets as rules
from storage.models import ConversationMessage, Customer, Order, OutboxMessage, Ticket, TicketEvent, TicketMessage


def _value_since(now: datetime) -> datetime:
    """The start of the months a customer's value class looks at."""
    return now - timedelta(days=365 * rules.TOP_CLASS_MONTHS // 12)


def _revenue_by_customer(now: datetime) -> Any:
    """Each customer's revenue (orders not cancelled) over the months value classes look at (a subquery)."""
    return (
        select(Order.customer_id.label("customer_id"), func.sum(Order.total).label("revenue"))
        .where(Order.status != "cancelled", Order.created_at >= _value_since(now))
        .group_by(Order.customer_id)
        .subquery()
    )


class TicketRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # ----- reading ----------------------------------------------------------------
    async def get(self, ticket_id: int) -> Ticket | None:
        return await self.session.get(Ticket, ticket_id)

    async def reload(self, ticket_id: int) -> Ticket | None:
        """The row as the database has it now (not the session's cached copy)."""
        return await self.session.scalar(
            select(Ticket).where(Ticket.id == ticket_id).execution_options(populate_existing=True)
        )

    async def by_idempotency_key(self, key: str) -> Ticket | None:
        return await self.session.scalar(select(Ticket).where(Ticket.idempotency_key == key))

    async def by_staff_message(self, chat_id: int, message_id: int) -> Ticket | None:
        """The ticket a staff-chat message belongs to: its card, a relayed message, or a bot notice."""
        ticket = await self.session.scalar(
            select(Ticket).where(Ticket.staff_chat_id == chat_id, Ticket.staff_message_id == message_id)
        )
        if ticket is not None:
            return ticket
        ticket_id = await self.session.scalar(
            select(TicketMessage.ticket_id)
            .where(TicketMessage.staff_chat_id == chat_id, TicketMessage.staff_message_id == message_id)
            .limit(1)
        )
        if ticket_id is None:
            # A card or notice that went out through the outbox.
            ticket_id = await self.session.scalar(
                select(OutboxMessage.ref_ticket_id)
                .where(OutboxMessage.chat_id == chat_id, OutboxMessage.telegram_message_id == message_id,
                       OutboxMessage.ref_ticket_id.is_not(None))
                .limit(1)
            )
        return await self.get(ticket_id) if ticket_id is not None else None

    async def by_thread(self, chat_id: int, thread_id: int) -> Ticket | None:
        return await self.session.scalar(
            select(Ticket).where(Ticket.staff_chat_id == chat_id, Ticket.staff_thread_id == thread_id)
        )

    async def open_for_customer(self, customer_id: int) -> list[Ticket]:
        stmt = (
            select(Ticket)
            .where(Ticket.customer_id == customer_id, Ticket.status.in_(rules.OPEN_STATUSES))
            .order_by(Ticket.id)
        )
        return list(await self.session.scalars(stmt))

    async def for_customer(self, customer_id: int, limit: int | None = None) -> list[Ticket]:
        stmt = select(Ticket).where(Ticket.customer_id == customer_id).order_by(Ticket.id.desc())
        if limit:
            stmt = stmt.limit(limit)
        return list(await self.session.scalars(stmt))

    async def open_tickets(self) -> list[Ticket]:
        stmt = select(Ticket).where(Ticket.status.in_(rules.OPEN_STATUSES)).order_by(Ticket.id)
        return list(await self.session.scalars(stmt))

    async def resolved_before(self, cutoff: datetime) -> list[Ticket]:
        stmt = (
            select(Ticket)
            .where(Ticket.status == "resolved", Ticket.resolved_at <= cutoff)
            .order_by(Ticket.id)
        )
        return list(await self.session.scalars(stmt))

    async def events(self, ticket_id: int) -> list[TicketEvent]:
        stmt = select(TicketEvent).where(TicketEvent.ticket_id == ticket_id).order_by(TicketEvent.id)
        return list(await self.session.scalars(stmt))

    async def sla_events(self, ticket_ids: Collection[int]) -> set[tuple[int, str, str | None]]:
        """(ticket id, kind, target) of the SLA warnings and breaches these tickets had; no query for none."""
        if not ticket_ids:
            return set()
        rows = await self.session.execute(
            select(TicketEvent.ticket_id, TicketEvent.kind, TicketEvent.detail).where(
                TicketEvent.kind.in_(("sla_warning", "sla_breach")),
                TicketEvent.ticket_id.in_(list(ticket_ids)),
            )
        )
        return {(r[0], r[1], r[2]) for r in rows}

    async def messages(self, ticket_id: int) -> list[TicketMessage]:
        stmt = select(TicketMessage).where(TicketMessage.ticket_id == ticket_id).order_by(TicketMessage.id)
        return list(await self.session.scalars(stmt))

    async def message(self, message_id: int) -> TicketMessage | None:
        return await self.session.get(TicketMessage, message_id)

    async def customers(self, customer_ids: set[int]) -> dict[int, Customer]:
        if not customer_ids:
            return {}
        rows = await self.session.scalars(select(Customer).where(Customer.id.in_(customer_ids)))
        return {c.id: c for c in rows}

    async def latest_staff_target(self, chat_id: int) -> int | None:
        """The newest ticket card or relayed customer message (of a ticket or a conversation) in the
        staff chat (the sandbox's :reply)."""
        card = await self.session.scalar(
            select(func.max(Ticket.staff_message_id)).where(Ticket.staff_chat_id == chat_id)
        )
        relayed = await self.session.scalar(
            select(func.max(TicketMessage.staff_message_id))
            .where(TicketMessage.staff_chat_id == chat_id, TicketMessage.direction == "in")
        )
        conversation = await self.session.scalar(
            select(func.max(ConversationMessage.staff_message_id))
            .where(ConversationMessage.staff_chat_id == chat_id, ConversationMessage.direction == "in")
        )
        candidates = [m for m in (card, relayed, conversation) if m is not None]
        return max(candidates) if candidates else None

    # ----- the customer's value ------------------------------------------------------
    async def recent_orders(self, customer_id: int, limit: int = 5) -> list[Order]:
        stmt = (
            select(Order)
            .where(Order.customer_id == customer_id)
            .order_by(Order.created_at.desc(), Order.id.desc())
            .limit(limit)
        )
        return list(await self.session.scalars(stmt))

    async def customer_order(self, customer_id: int, order_id: int) -> Order | None:
        return await self.session.scalar(
            select(Order).where(Order.id == order_id, Order.customer_id == customer_id)
        )

    async def is_top_revenue(self, customer_id: int, now: datetime, a_share: float) -> bool:
        """Class A by revenue over the last 12 months.

        Customers sorted by revenue (orders not cancelled); A are those making
        the first ``a_share`` of the cumulative revenue: a customer is A when
        the customers strictly ahead of them make less than that share.
        """
        revenue = _revenue_by_customer(now)
        mine = await self.session.scalar(select(revenue.c.revenue).where(revenue.c.customer_id == customer_id))
        if not mine or mine <= 0:
            return False
        total, ahead = (await self.session.execute(
            select(
                func.coalesce(func.sum(revenue.c.revenue), 0),
                func.coalesce(func.sum(case((revenue.c.revenue > mine, revenue.c.revenue), else_=0)), 0),
            )
        )).one()
        # PostgreSQL sums integers as numeric (Decimal): compare as floats.
        return float(total) > 0 and float(ahead) < a_share * float(total)

    async def value_history(self, now: datetime) -> tuple[int, int]:
        """Customers with an order, and orders (not cancelled), over the months value classes look at."""
        since = _value_since(now)
        customers, orders = (await self.session.execute(
            select(func.count(func.distinct(Order.customer_id)), func.count(Order.id))
            .where(Order.status != "cancelled", Order.created_at >= since)
        )).one()
        return int(customers or 0), int(orders or 0)

    async def top_customer_rank(self, customer_id: int, now: datetime, a_share: float) -> tuple[int, int] | None:
        """For a class-A customer (see :meth:`is_top_revenue`): (customers at or ahead by revenue, customers).

        None when the customer is not class A.
        """
        if not await self.is_top_revenue(customer_id, now, a_share):
            return None
        revenue = _revenue_by_customer(now)
        mine = select(revenue.c.revenue).where(revenue.c.customer_id == customer_id).scalar_subquery()
        at_or_ahead, total = (await self.session.execute(
            select(func.coalesce(func.sum(case((revenue.c.revenue >= mine, 1), else_=0)), 0), func.count())
        )).one()
        return int(at_or_ahead), int(total)

    async def has_recent_unresolved(self, customer_id: int, now: datetime) -> bool:
        since = now - timedelta(days=rules.RECENT_COMPLAINT_DAYS)
        found = await self.session.scalar(
            select(Ticket.id)
            .where(Ticket.customer_id == customer_id, Ticket.status.in_(rules.OPEN_STATUSES),
                   Ticket.created_at >= since)
            .limit(1)
        )
        return found is not None

    # ----- writing ---------------------------------------------------------------------
    async def create(self, *, customer: Customer, category: str, order_id: int | None, description: str,
                     photos: list[str], priority: str, idempotency_key: str, now: datetime,
                     sla: rules.SlaPolicy, reasons: list[str]) -> tuple[Ticket, bool]:
        """A new ticket, or the one this key already made (a second Submit press). (ticket, created)."""
        existing = await self.by_idempotency_key(idempotency_key)
        if existing is not None:
            return existing, False
        ticket = Ticket(
            customer_id=customer.id, order_id=order_id, category=category, priority=priority, status="new",
            idempotency_key=idempotency_key, description=description,
            priority_reason=",".join(reasons)[:64] or None,
            photo_file_ids=json.dumps(photos) if photos else None,
            created_at=now, updated_at=now, waiting_minutes=0.0, reopen_count=0,
        )
        rules.refresh_due(ticket, sla, now)
        self.session.add(ticket)
        await self.session.flush()
        actor = rules.Actor("customer", customer.telegram_id, customer.name)
        await self.add_event(ticket, "status", actor, now, to_status="new",
                             detail=f"priority={priority}" + (f" ({', '.join(reasons)})" if reasons else ""))
        return ticket, True

    async def claim(self, ticket_id: int, statuses: tuple[str, ...] | None = None) -> Ticket | None:
        """Lock the ticket for this transaction if its status is one of ``statuses``; re-read it."""
        stmt = update(Ticket).where(Ticket.id == ticket_id)
        if statuses is not None:
            stmt = stmt.where(Ticket.status.in_(statuses))
        result = await self.session.execute(
            stmt.values(updated_at=Ticket.updated_at).execution_options(synchronize_session=False)
        )
        if not result.rowcount:
            return None
        return await self.reload(ticket_id)

    async def add_event(self, ticket: Ticket, kind: str, actor: rules.Actor, now: datetime, *,
                        from_status: str | None = None, to_status: str | None = None,
                        detail: str | None = None) -> TicketEvent:
        event = TicketEvent(
            ticket_id=ticket.id, kind=kind, from_status=from_status, to_status=to_status,
            actor_telegram_id=actor.telegram_id, actor_name=actor.name, actor_role=actor.role,
            detail=detail, created_at=now,
        )
        self.session.add(event)
        await self.session.flush()
        return event

    async def transition(self, ticket: Ticket, to: str, actor: rules.Actor, now: datetime, sla: rules.SlaPolicy,
                         detail: str | None = None) -> TicketEvent:
        old = rules.change_status(ticket, to, now, sla)
        return await self.add_event(ticket, "status", actor, now, from_status=old, to_status=to, detail=detail)

    async def assign(self, ticket: Ticket, actor: rules.Actor, now: datetime, sla: rules.SlaPolicy) -> None:
        """Give the ticket to a staff member (Take, or the first to answer a new ticket)."""
        ticket.assignee_telegram_id = actor.telegram_id
        ticket.assignee_name = actor.name
        if ticket.status == "new":
            await self.transition(ticket, "taken", actor, now, sla)
        else:
            ticket.updated_at = now
            await self.add_event(ticket, "assigned", actor, now)

    async def set_priority(self, ticket: Ticket, priority: str, actor: rules.Actor, now: datetime,
                           sla: rules.SlaPolicy) -> None:
        old = ticket.priority
        ticket.priority = priority
        ticket.priority_reason = None  # set by a person now
        ticket.updated_at = now
        rules.refresh_due(ticket, sla, now)
        await self.add_event(ticket, "priority", actor, now, detail=f"{old}→{priority}")

    async def add_message(self, ticket: Ticket, *, direction: str, actor: rules.Actor, now: datetime,
                          text: str | None = None, photo_file_id: str | None = None,
                          staff_chat_id: int | None = None, staff_message_id: int | None = None,
                          delivered: bool | None = None) -> TicketMessage:
        message = TicketMessage(
            ticket_id=ticket.id, direction=direction, author_telegram_id=actor.telegram_id,
            author_name=actor.name, text=text, photo_file_id=photo_file_id, staff_chat_id=staff_chat_id,
            staff_message_id=staff_message_id, delivered=delivered, created_at=now,
        )
        self.session.add(message)
        await self.session.flush()
        return message

    async def set_card(self, ticket: Ticket, chat_id: int, message_id: int, thread_id: int | None) -> None:
        ticket.staff_chat_id = chat_id
        ticket.staff_message_id = message_id
        ticket.staff_thread_id = thread_id
        await self.session.flush()

    async def rate(self, ticket_id: int, customer_id: int, rating: int, now: datetime) -> bool:
        """Store a rating once: False when this ticket was rated already (a double press)."""
        result = await self.session.execute(
            update(Ticket)
            .where(Ticket.id == ticket_id, Ticket.customer_id == customer_id, Ticket.rating.is_(None))
            .values(rating=rating, rated_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)

    # ----- privacy ------------------------------------------------------------------------
    async def anonymise_customer(self, customer_id: int, now: datetime) -> None:
        """Erase what the customer (and staff about them) wrote; keep the timings and ratings."""
        ids = select(Ticket.id).where(Ticket.customer_id == customer_id).scalar_subquery()
        for ticket in await self.open_for_customer(customer_id):
            old = ticket.status
            ticket.status = "closed"
            ticket.closed_at = now
            ticket.waiting_since = None
            ticket.updated_at = now
            await self.add_event(ticket, "status", rules.SYSTEM, now, from_status=old, to_status="closed",
                                 detail="customer forgotten")
        await self.session.execute(
            update(Ticket)
            .where(Ticket.customer_id == customer_id)
            .values(description="", photo_file_ids=None, resolution_note=None, rating_comment=None)
            .execution_options(synchronize_session=False)
        )
        await self.session.execute(
            update(TicketMessage)
            .where(TicketMessage.ticket_id.in_(ids))
            .values(
                text=None, photo_file_id=None,
                author_name=case((TicketMessage.direction == "in", None), else_=TicketMessage.author_name),
                author_telegram_id=case((TicketMessage.direction == "in", None),
                                        else_=TicketMessage.author_telegram_id),
            )
            .execution_options(synchronize_session=False)
        )
        await self.session.execute(
            update(TicketEvent)
            .where(TicketEvent.ticket_id.in_(ids), TicketEvent.actor_role == "customer")
            .values(actor_name=None, actor_telegram_id=None)
            .execution_options(synchronize_session=False)
        )
        await self.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.ref_ticket_id.in_(ids), OutboxMessage.status == "pending")
            .values(status="skipped", skip_reason="forgotten")
            .execution_options(synchronize_session=False)
        )
        await self.session.flush()

    async def export_customer(self, customer_id: int) -> list[dict[str, Any]]:
        """The customer's tickets and messages, JSON-ready, for /mydata."""
        out = []
        for ticket in reversed(await self.for_customer(customer_id)):
            messages = await self.messages(ticket.id)
            out.append({
                "number": ticket.id,
                "category": ticket.category,
                "status": ticket.status,
                "order": ticket.order_id,
                "description": ticket.description,
                "photos": json.loads(ticket.photo_file_ids) if ticket.photo_file_ids else [],
                "created_at": ticket.created_at.isoformat(),
                "resolved_at": ticket.resolved_at.isoformat() if ticket.resolved_at else None,
                "resolution_note": ticket.resolution_note,
                "closed_at": ticket.closed_at.isoformat() if ticket.closed_at else None,
                "rating": ticket.rating,
                "rating_comment": ticket.rating_comment,
                "messages": [
                    {
                        "from": "you" if m.direction == "in" else "staff",
                        "text": m.text,
                        "photo": m.photo_file_id,
                        "at": m.created_at.isoformat(),
                        "delivered": m.delivered,
                    }
                    for m in messages
                ],
            })
        return out


def photos_of(ticket: Ticket) -> list[str]:
    return json.loads(ticket.photo_file_ids) if ticket.photo_file_ids else []


__all__ = ["TicketRepo", "photos_of"]
