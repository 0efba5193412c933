"""What the reports keep: managers' daily digests and segment campaigns.

Also the indexes the reports need on other areas' tables (declared here so
those models stay as their owners wrote them; created by migration 0005).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, UTCDateTime
from storage.models.orders import Order, OrderItem
from storage.models.outbox import OutboxMessage


class ReportDigest(Base):
    """A manager's daily summary: on or off, and at which local hour."""

    __tablename__ = "report_digests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    manager_telegram_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    # Where it goes: the chat the manager turned it on in (private or the staff group).
    chat_id: Mapped[int] = mapped_column(BigInteger)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    hour: Mapped[int] = mapped_column(Integer, default=8)  # in settings.default_timezone
    language: Mapped[str] = mapped_column(String(8), default="en")
    # The business day of the last digest queued (never two on one day).
    last_sent_on: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SegmentCampaign(Base):
    """A care message a manager sent to a segment (from /rfm or /churn).

    ``key`` is unique (source, segment, template and business day): pressing
    "send" twice, or again the same day, queues nothing more.
    """

    __tablename__ = "segment_campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(120), unique=True)
    source: Mapped[str] = mapped_column(String(16))  # rfm | churn
    segment: Mapped[str] = mapped_column(String(32))
    template: Mapped[str] = mapped_column(String(32))
    period: Mapped[str] = mapped_column(String(32))  # the report period's token
    created_by: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    members: Mapped[int] = mapped_column(Integer, default=0)  # customers in the segment
    queued: Mapped[int] = mapped_column(Integer, default=0)  # care messages written to the outbox


# Covering indexes: what the reports read is in the index itself, in the order
# they read it, so a period (by time) or a per-customer aggregate (by customer)
# never touches the tables.
Index("ix_orders_report_created", Order.created_at, Order.status, Order.customer_id, Order.total)
Index("ix_orders_report_customer", Order.customer_id, Order.created_at, Order.status, Order.total)
Index("ix_order_items_report", OrderItem.order_id, OrderItem.product_id, OrderItem.quantity, OrderItem.unit_price)
# Care results: orders by the care message they answered; care messages sent, by time.
Index("ix_orders_attributed_outbox", Order.attributed_outbox_id, Order.status, Order.total)
Index("ix_outbox_category_sent", OutboxMessage.category, OutboxMessage.sent_at, OutboxMessage.kind,
      OutboxMessage.status)
