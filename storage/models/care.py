"""The care engine's own records: reminders a customer stopped or put off,
and answers to the post-delivery survey. (Care messages themselves are
outbox rows, see ``storage.models.outbox``.)"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, UTCDateTime

STOP = "stop"  # "Stop these reminders": no more reorder reminders for this product
SNOOZE = "snooze"  # "Not now": ask again after ``until``


class CareStop(Base):
    """A customer's "stop" or "not now" for the reorder reminders of one product."""

    __tablename__ = "care_stops"
    __table_args__ = (UniqueConstraint("customer_id", "product_id", "kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # stop | snooze
    until: Mapped[datetime | None] = mapped_column(UTCDateTime)  # snoozes only
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SurveyAnswer(Base):
    """The customer's 1–5 rating of a delivered order, and an optional comment."""

    __tablename__ = "care_survey_answers"
    __table_args__ = (Index("ix_care_survey_answers_created", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id", ondelete="SET NULL"))
    rating: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
