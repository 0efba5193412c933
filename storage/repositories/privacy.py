"""What ``/forget`` erases across tables that several parts of the product write:
the outbox (texts, the customer's chat id), who changed an order's status, and
where the customer's details were shown in the staff chat (to edit them away).

The customer file itself, tickets, orders and care answers are erased by their
own repositories (see ``bot/privacy.py``).
"""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    Conversation,
    ConversationMessage,
    Order,
    OrderStatusChange,
    OutboxMessage,
    Ticket,
    TicketMessage,
)

# The chat id a forgotten customer's outbox rows keep: no Telegram chat has it.
NO_CHAT = 0


class ShownMessage(NamedTuple):
    """A message in a staff chat that shows the customer's details."""

    chat_id: int
    message_id: int
    caption: bool  # a photo (its caption is edited), else a text message
    order_id: int | None = None  # the card of this order (redrawn without the customer, not blanked)


class PrivacyRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _outbox_about(self, customer_id: int, telegram_id: int | None):  # type: ignore[no-untyped-def]
        tickets = select(Ticket.id).where(Ticket.customer_id == customer_id)
        orders = select(Order.id).where(Order.customer_id == customer_id)
        conditions = [
            OutboxMessage.customer_id == customer_id,
            OutboxMessage.ref_ticket_id.in_(tickets),
            OutboxMessage.ref_order_id.in_(orders),
        ]
        if telegram_id is not None:
            conditions.append(OutboxMessage.chat_id == telegram_id)
        return or_(*conditions)

    async def shown_in_staff_chats(self, customer_id: int, telegram_id: int | None) -> list[ShownMessage]:
        """Order and ticket cards, relayed messages (of tickets and conversations) and sent notices about
        the customer (not their own chat)."""
        shown: dict[tuple[int, int], bool] = {}
        cards: dict[tuple[int, int], int] = {}
        orders = await self.session.execute(
            select(Order.staff_chat_id, Order.staff_message_id, Order.id)
            .where(Order.customer_id == customer_id, Order.staff_chat_id.is_not(None),
                   Order.staff_message_id.is_not(None)))
        for chat_id, message_id, order_id in orders:
            shown.setdefault((chat_id, message_id), False)
            cards[(chat_id, message_id)] = order_id
        tickets = await self.session.execute(
            select(Ticket.staff_chat_id, Ticket.staff_message_id)
            .where(Ticket.customer_id == customer_id, Ticket.staff_chat_id.is_not(None),
                   Ticket.staff_message_id.is_not(None)))
        for chat_id, message_id in tickets:
            shown.setdefault((chat_id, message_id), False)
        relayed = await self.session.execute(
            select(TicketMessage.staff_chat_id, TicketMessage.staff_message_id, TicketMessage.photo_file_id)
            .join(Ticket, Ticket.id == TicketMessage.ticket_id)
            .where(Ticket.customer_id == customer_id, TicketMessage.direction == "in",
                   TicketMessage.staff_chat_id.is_not(None), TicketMessage.staff_message_id.is_not(None)))
        for chat_id, message_id, photo in relayed:
            shown.setdefault((chat_id, message_id), photo is not None)
        conversed = await self.session.execute(
            select(ConversationMessage.staff_chat_id, ConversationMessage.staff_message_id,
                   ConversationMessage.photo_file_id)
            .join(Conversation, Conversation.id == ConversationMessage.conversation_id)
            .where(Conversation.customer_id == customer_id, ConversationMessage.direction == "in",
                   ConversationMessage.staff_chat_id.is_not(None), ConversationMessage.staff_message_id.is_not(None)))
        for chat_id, message_id, photo in conversed:
            shown.setdefault((chat_id, message_id), photo is not None)
        sent = await self.session.execute(
            select(OutboxMessage.chat_id, OutboxMessage.telegram_message_id, OutboxMessage.options)
            .where(self._outbox_about(customer_id, telegram_id), OutboxMessage.telegram_message_id.is_not(None),
                   OutboxMessage.chat_id != (telegram_id if telegram_id is not None else NO_CHAT),
                   OutboxMessage.chat_id != NO_CHAT))
        for chat_id, message_id, options in sent:
            shown.setdefault((chat_id, message_id), bool((options or {}).get("photo")))
        return [ShownMessage(chat, message, caption, cards.get((chat, message)))
                for (chat, message), caption in sorted(shown.items())]

    async def erase_outbox(self, customer_id: int, telegram_id: int | None) -> None:
        """Every outbox row about the customer loses its text, buttons, routing and error; rows to the
        customer's chat lose the chat id; what was still to go does not go."""
        about = self._outbox_about(customer_id, telegram_id)
        await self.session.execute(
            update(OutboxMessage).where(about, OutboxMessage.status.in_(("pending", "sending")))
            .values(status="skipped", skip_reason="forgotten")
            .execution_options(synchronize_session=False))
        values = {"text": "", "reply_markup": None, "options": None, "last_error": None}
        if telegram_id is not None:
            await self.session.execute(
                update(OutboxMessage).where(OutboxMessage.chat_id == telegram_id)
                .values(chat_id=NO_CHAT, **values).execution_options(synchronize_session=False))
        await self.session.execute(
            update(OutboxMessage).where(about).values(**values).execution_options(synchronize_session=False))

    async def erase_order_actors(self, customer_id: int) -> None:
        """Who changed the status of the customer's orders, when it was the customer (name, id, reason)."""
        orders = select(Order.id).where(Order.customer_id == customer_id)
        await self.session.execute(
            update(OrderStatusChange)
            .where(OrderStatusChange.order_id.in_(orders), OrderStatusChange.actor_role == "customer")
            .values(actor_name=None, actor_telegram_id=None, reason=None)
            .execution_options(synchronize_session=False))
        await self.session.execute(
            update(Order).where(Order.customer_id == customer_id, Order.id.in_(
                select(OrderStatusChange.order_id).where(and_(OrderStatusChange.actor_role == "customer",
                                                              OrderStatusChange.to_status == "cancelled"))))
            .values(cancel_reason=None).execution_options(synchronize_session=False))
        await self.session.flush()
