from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.models.base import Base, UTCDateTime

TICKET_CATEGORIES = ("quality", "delivery", "staff", "billing", "other")
TICKET_STATUSES = ("new", "taken", "in_progress", "waiting_customer", "resolved", "closed")
PRIORITIES = ("high", "normal", "low")


class Ticket(Base):
    """A complaint, served by staff until it is closed."""

    __tablename__ = "tickets"
    __table_args__ = (
        Index("ix_tickets_status_created", "status", "created_at"),
        Index("ix_tickets_customer_status", "customer_id", "status"),
        Index("ix_tickets_created", "created_at"),
        Index("ix_tickets_staff_message", "staff_chat_id", "staff_message_id"),
        Index("ix_tickets_staff_thread", "staff_chat_id", "staff_thread_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="RESTRICT"))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id", ondelete="SET NULL"))
    category: Mapped[str] = mapped_column(String(16))
    priority: Mapped[str] = mapped_column(String(8), default="normal")
    # Why the system chose that priority (codes: ``top_customer:20,recent_unresolved``); None once staff set it.
    priority_reason: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="new")
    # The Submit button's idempotency key: one ticket per complaint dialog.
    idempotency_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text)
    # JSON list of Telegram file_ids, kept to send the photos again; they do not expire:
    # https://core.telegram.org/bots/faq#can-i-count-on-file-ids-to-be-persistent
    photo_file_ids: Mapped[str | None] = mapped_column(Text)
    assignee_telegram_id: Mapped[int | None] = mapped_column(BigInteger)
    assignee_name: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    taken_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolution_note: Mapped[str | None] = mapped_column(Text)
    # Response-target bookkeeping (minutes of counted time, due moments, breaches).
    first_response_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolution_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_response_minutes: Mapped[float | None] = mapped_column(Float)
    resolution_minutes: Mapped[float | None] = mapped_column(Float)
    first_response_breached: Mapped[bool | None] = mapped_column(Boolean)
    resolution_breached: Mapped[bool | None] = mapped_column(Boolean)
    # The resolution clock is paused while waiting for the customer (waiting_since
    # set) and between a resolution and a reopening; waiting_minutes adds up the
    # counted minutes of those pauses (see bot/rules/tickets.py).
    waiting_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    waiting_minutes: Mapped[float] = mapped_column(Float, default=0.0)
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    # Satisfaction (CSAT), asked once after resolution.
    rating: Mapped[int | None] = mapped_column(Integer)
    rating_comment: Mapped[str | None] = mapped_column(Text)
    rated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The staff-chat card (or forum topic) of this ticket.
    staff_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    staff_message_id: Mapped[int | None] = mapped_column(BigInteger)
    staff_thread_id: Mapped[int | None] = mapped_column(BigInteger)

    @property
    def priority_reasons(self) -> list[tuple[str, int | None]]:
        """Why the system chose the priority, as (code, percent) pairs (see ``priority_reason``)."""
        from bot.rules.tickets import priority_reasons

        return priority_reasons(self.priority_reason)

    events: Mapped[list[TicketEvent]] = relationship(
        back_populates="ticket", cascade="all, delete-orphan", order_by="TicketEvent.id"
    )
    messages: Mapped[list[TicketMessage]] = relationship(
        back_populates="ticket", cascade="all, delete-orphan", order_by="TicketMessage.id"
    )


class TicketEvent(Base):
    """Every transition of a ticket, with actor and time."""

    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # status | priority | sla_warning | sla_breach | rating ...
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str | None] = mapped_column(String(20))
    actor_telegram_id: Mapped[int | None] = mapped_column(BigInteger)
    actor_name: Mapped[str | None] = mapped_column(String(64))
    actor_role: Mapped[str] = mapped_column(String(16))  # customer | staff | system
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    ticket: Mapped[Ticket] = relationship(back_populates="events")


class TicketMessage(Base):
    """A message relayed between the customer and the staff chat."""

    __tablename__ = "ticket_messages"
    __table_args__ = (Index("ix_ticket_messages_staff_message", "staff_chat_id", "staff_message_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    direction: Mapped[str] = mapped_column(String(8))  # in (customer → staff) | out (staff → customer)
    author_telegram_id: Mapped[int | None] = mapped_column(BigInteger)
    author_name: Mapped[str | None] = mapped_column(String(64))
    text: Mapped[str | None] = mapped_column(Text)
    photo_file_id: Mapped[str | None] = mapped_column(String(200))
    staff_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    staff_message_id: Mapped[int | None] = mapped_column(BigInteger)
    delivered: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    ticket: Mapped[Ticket] = relationship(back_populates="messages")
