"""Shared helpers for the complaint / ticket / SLA tests (not fixtures in conftest:
other areas edit that file)."""

from __future__ import annotations

import importlib.util
from datetime import datetime, timedelta
from typing import Any

from aiogram.types import InlineKeyboardMarkup, ReplyParameters
from sqlalchemy import select

from bot.app import App
from bot.fake_telegram import FakeTelegram, FakeUser, SentMessage
from jobs.runner import advance
from storage.models import Customer, Order, OutboxMessage, Ticket, TicketEvent, TicketMessage
from tests.conftest import STAFF_CHAT_ID

HAS_DELIVERY = importlib.util.find_spec("jobs.delivery") is not None


async def file_complaint(customer: FakeUser, text: str = "The rice bag was torn", *, category: str = "Delivery",
                         order: str | int | None = None) -> list[SentMessage]:
    """Walk the /complaint dialog to the end; ``order`` is a button (when the customer has orders)."""
    await customer.send("/complaint")
    await customer.press(category)
    if order is not None:
        await customer.press(order)
    await customer.send(text)
    return await customer.press("Submit")


async def ticket(app: App, ticket_id: int = 1) -> Ticket:
    async with app.db.session() as session:
        found = await session.get(Ticket, ticket_id)
        assert found is not None, f"no ticket {ticket_id}"
        return found


async def tickets(app: App) -> list[Ticket]:
    async with app.db.session() as session:
        return list(await session.scalars(select(Ticket).order_by(Ticket.id)))


async def events(app: App, ticket_id: int = 1) -> list[TicketEvent]:
    async with app.db.session() as session:
        return list(await session.scalars(
            select(TicketEvent).where(TicketEvent.ticket_id == ticket_id).order_by(TicketEvent.id)))


async def messages(app: App, ticket_id: int = 1) -> list[TicketMessage]:
    async with app.db.session() as session:
        return list(await session.scalars(
            select(TicketMessage).where(TicketMessage.ticket_id == ticket_id).order_by(TicketMessage.id)))


async def outbox(app: App, prefix: str = "") -> list[OutboxMessage]:
    async with app.db.session() as session:
        rows = await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
        return [r for r in rows if r.dedupe_key.startswith(prefix)]


async def customer_row(app: App, telegram_id: int) -> Customer:
    async with app.db.session() as session:
        found = await session.scalar(select(Customer).where(Customer.telegram_id == telegram_id))
        assert found is not None
        return found


async def add_order(app: App, telegram_id: int, total: int, created_at: datetime, status: str = "delivered") -> int:
    async with app.db.session() as session:
        customer = await session.scalar(select(Customer).where(Customer.telegram_id == telegram_id))
        assert customer is not None
        order = Order(customer_id=customer.id, status=status, source="dialog", total=total, currency="CNY",
                      created_at=created_at, updated_at=created_at)
        session.add(order)
        await session.commit()
        return order.id


def card(world: FakeTelegram, ticket_id: int = 1) -> SentMessage:
    """The ticket's card in the staff chat (its latest version)."""
    for message in world.sent(STAFF_CHAT_ID):
        if message.html and f"no. {ticket_id}</b>" in message.html and "🎫" in message.html:
            return message
    raise AssertionError(f"no card of ticket {ticket_id} in the staff chat")


async def deliver(app: App, minutes: int = 1) -> None:
    """Move the clock; the outbox rows that fell due go out.

    With the care engine's delivery worker (jobs.delivery) that is simply the
    registered job; until it exists, a minimal stand-in sends the rows here.
    """
    await advance(app.jobs, timedelta(minutes=minutes))
    if HAS_DELIVERY:
        return
    now = app.clock.now()
    async with app.db.session() as session:
        rows = list(await session.scalars(
            select(OutboxMessage).where(OutboxMessage.status == "pending", OutboxMessage.not_before <= now)
            .order_by(OutboxMessage.priority, OutboxMessage.id)))
        for row in rows:
            options: dict[str, Any] = row.options or {}
            reply_to = options.get("reply_to_message_id")
            sent = await app.bot.send_message(
                row.chat_id, row.text,
                reply_markup=InlineKeyboardMarkup.model_validate(row.reply_markup) if row.reply_markup else None,
                message_thread_id=options.get("message_thread_id"),
                reply_parameters=ReplyParameters(message_id=reply_to, allow_sending_without_reply=True)
                if reply_to else None,
            )
            row.status, row.sent_at, row.telegram_message_id = "sent", now, sent.message_id
        await session.commit()
