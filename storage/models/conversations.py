from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.models.base import Base, UTCDateTime

CONVERSATION_STATUSES = ("open", "complaint")


class Conversation(Base):
    """What a customer wrote outside any dialog while no ticket was open (an answer to a
    survey, a greeting, a reminder...), passed on to the staff chat. Not a complaint,
    unless staff make it one (``ticket_id``)."""

    __tablename__ = "conversations"
    __table_args__ = (
        Index("ix_conversations_customer_updated", "customer_id", "updated_at"),
        Index("ix_conversations_staff_message", "staff_chat_id", "staff_message_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="open")
    # The message the customer most likely answered (outbox kind and what it was about).
    context_kind: Mapped[str | None] = mapped_column(String(32))
    context_order_id: Mapped[int | None] = mapped_column(Integer)
    context_ticket_id: Mapped[int | None] = mapped_column(Integer)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    # The first message in the staff chat (carries the "Make it a complaint" button).
    staff_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    staff_message_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    messages: Mapped[list[ConversationMessage]] = relationship(
        back_populates="conversation", cascade="all, delete-orphan", order_by="ConversationMessage.id"
    )


class ConversationMessage(Base):
    """One message of a conversation: in (customer → staff chat) or out (staff → customer)."""

    __tablename__ = "conversation_messages"
    __table_args__ = (Index("ix_conversation_messages_staff_message", "staff_chat_id", "staff_message_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    direction: Mapped[str] = mapped_column(String(8))
    author_telegram_id: Mapped[int | None] = mapped_column(BigInteger)
    author_name: Mapped[str | None] = mapped_column(String(64))
    text: Mapped[str | None] = mapped_column(Text)
    photo_file_id: Mapped[str | None] = mapped_column(String(200))
    staff_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    staff_message_id: Mapped[int | None] = mapped_column(BigInteger)
    delivered: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    conversation: Mapped[Conversation] = relationship(back_populates="messages")
