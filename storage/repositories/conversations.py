"""Conversations: a customer's free text outside a dialog, and the staff's answers."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Conversation, ConversationMessage, OutboxMessage
from storage.repositories.outbox import SENT_LIKE

# Care and service messages a customer may be answering when they write out of the blue.
CONTEXT_KINDS = ("survey", "birthday", "reorder", "winback", "csat", "segment")


class ConversationRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, conversation_id: int) -> Conversation | None:
        return await self.session.get(Conversation, conversation_id)

    async def current(self, customer_id: int, now: datetime, idle: timedelta) -> Conversation | None:
        """The customer's open conversation with a message within ``idle``, if any."""
        return await self.session.scalar(
            select(Conversation)
            .where(Conversation.customer_id == customer_id, Conversation.status == "open",
                   Conversation.updated_at >= now - idle)
            .order_by(Conversation.updated_at.desc(), Conversation.id.desc())
            .limit(1)
        )

    async def last_context(self, customer_id: int, since: datetime) -> tuple[str, int | None, int | None] | None:
        """The latest care or service message this customer got since ``since``: (kind, order, ticket)."""
        row = (await self.session.execute(
            select(OutboxMessage.kind, OutboxMessage.ref_order_id, OutboxMessage.ref_ticket_id)
            .where(OutboxMessage.customer_id == customer_id, OutboxMessage.kind.in_(CONTEXT_KINDS),
                   OutboxMessage.status.in_(SENT_LIKE), OutboxMessage.sent_at >= since)
            .order_by(OutboxMessage.sent_at.desc(), OutboxMessage.id.desc())
            .limit(1)
        )).first()
        return (row[0], row[1], row[2]) if row is not None else None

    async def start(self, customer_id: int, now: datetime,
                    context: tuple[str, int | None, int | None] | None) -> Conversation:
        kind, order_id, ticket_id = context or (None, None, None)
        conversation = Conversation(customer_id=customer_id, status="open", context_kind=kind,
                                    context_order_id=order_id, context_ticket_id=ticket_id,
                                    created_at=now, updated_at=now)
        self.session.add(conversation)
        await self.session.flush()
        return conversation

    async def add_message(self, conversation: Conversation, *, direction: str, author_telegram_id: int | None,
                          author_name: str | None, now: datetime, text: str | None = None,
                          photo_file_id: str | None = None, staff_chat_id: int | None = None,
                          staff_message_id: int | None = None, delivered: bool | None = None) -> ConversationMessage:
        message = ConversationMessage(
            conversation_id=conversation.id, direction=direction, author_telegram_id=author_telegram_id,
            author_name=author_name, text=text, photo_file_id=photo_file_id, staff_chat_id=staff_chat_id,
            staff_message_id=staff_message_id, delivered=delivered, created_at=now,
        )
        self.session.add(message)
        conversation.updated_at = now
        await self.session.flush()
        return message

    async def set_card(self, conversation: Conversation, chat_id: int, message_id: int) -> None:
        conversation.staff_chat_id = chat_id
        conversation.staff_message_id = message_id
        await self.session.flush()

    async def by_staff_message(self, chat_id: int, message_id: int) -> Conversation | None:
        """The conversation a staff-chat message belongs to: its first message or any relayed one."""
        conversation = await self.session.scalar(
            select(Conversation).where(Conversation.staff_chat_id == chat_id,
                                       Conversation.staff_message_id == message_id).limit(1)
        )
        if conversation is not None:
            return conversation
        conversation_id = await self.session.scalar(
            select(ConversationMessage.conversation_id)
            .where(ConversationMessage.staff_chat_id == chat_id, ConversationMessage.staff_message_id == message_id)
            .limit(1)
        )
        return await self.get(conversation_id) if conversation_id is not None else None

    async def messages(self, conversation_id: int) -> list[ConversationMessage]:
        return list(await self.session.scalars(
            select(ConversationMessage).where(ConversationMessage.conversation_id == conversation_id)
            .order_by(ConversationMessage.id)
        ))

    async def make_complaint(self, conversation_id: int, ticket_id: int) -> bool:
        """open → complaint (compare-and-set: of two presses, one wins)."""
        result = await self.session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id, Conversation.status == "open")
            .values(status="complaint", ticket_id=ticket_id)
            .execution_options(synchronize_session=False)
        )
        return (result.rowcount or 0) == 1

    # ----- privacy -------------------------------------------------------------------
    async def export_customer(self, customer_id: int) -> list[dict[str, Any]]:
        conversations = list(await self.session.scalars(
            select(Conversation).where(Conversation.customer_id == customer_id).order_by(Conversation.id)
        ))
        out: list[dict[str, Any]] = []
        for conversation in conversations:
            out.append({
                "id": conversation.id,
                "started": conversation.created_at.isoformat(),
                "messages": [
                    {"from": "you" if m.direction == "in" else "staff", "text": m.text,
                     "photo": bool(m.photo_file_id), "at": m.created_at.isoformat()}
                    for m in await self.messages(conversation.id)
                ],
            })
        return out

    async def forget_customer(self, customer_id: int) -> None:
        """Delete what the customer and staff wrote; the staff-chat links go with them."""
        ids = select(Conversation.id).where(Conversation.customer_id == customer_id).scalar_subquery()
        await self.session.execute(
            delete(ConversationMessage).where(ConversationMessage.conversation_id.in_(ids))
            .execution_options(synchronize_session=False)
        )
        await self.session.execute(
            delete(Conversation).where(Conversation.customer_id == customer_id)
            .execution_options(synchronize_session=False)
        )


__all__ = ["CONTEXT_KINDS", "ConversationRepo"]
