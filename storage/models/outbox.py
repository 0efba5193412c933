from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, UTCDateTime

# Lower goes first: a reply to a person never waits behind bulk care messages.
PRIORITY_SERVICE = 0
PRIORITY_CARE = 10

CATEGORY_SERVICE = "service"
CATEGORY_CARE = "care"

STATUSES = ("pending", "sending", "sent", "failed", "skipped", "uncertain")


class OutboxMessage(Base):
    """A message the bot sends on its own initiative.

    Written in the same transaction as its cause; ``dedupe_key`` is unique so
    writing the same key twice is a no-op (see ``OutboxRepo.enqueue``).
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "not_before", "priority"),
        Index("ix_outbox_customer_kind_sent", "customer_id", "kind", "sent_at"),
        # A button press finds the care message it belongs to by the message it is on.
        Index("ix_outbox_chat_message", "chat_id", "telegram_message_id"),
        # Delivery keeps one chat's rows with one replica: "does another worker hold rows of this chat?"
        Index("ix_outbox_chat_status", "chat_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    category: Mapped[str] = mapped_column(String(16), default=CATEGORY_SERVICE)
    priority: Mapped[int] = mapped_column(Integer, default=PRIORITY_SERVICE)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"))
    text: Mapped[str] = mapped_column(Text)
    # An aiogram InlineKeyboardMarkup dumped to JSON, or NULL.
    reply_markup: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Extra routing: message_thread_id, reply_to_message_id, photo file_id...
    options: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # What the message is about, for attribution and reports.
    ref_order_id: Mapped[int | None] = mapped_column(Integer)
    ref_ticket_id: Mapped[int | None] = mapped_column(Integer)
    ref_product_id: Mapped[int | None] = mapped_column(Integer)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    skip_reason: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    telegram_message_id: Mapped[int | None] = mapped_column(BigInteger)
    # A care message held by quiet hours or caps is skipped once it is no
    # longer worth sending (a survey weeks late, a reminder after the run-out).
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Reminders and win-backs: an order placed until then is credited to this message.
    attribute_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The delivery worker (replica) that took the row, and until when the claim holds:
    # a pending row it reserved for its next batch, or the "sending" row it is sending.
    # Recovery touches a "sending" row only once its claim has expired.
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claim_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
