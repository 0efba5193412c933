from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Date, ForeignKey, Integer, String, Text
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bot.rules.customer_file import EXTENSION_MARK as PHONE_EXTENSION_MARK
from storage.models.base import Base, UTCDateTime


class Customer(Base):
    """The customer file (客户档案)."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # NULL once the customer asked to be forgotten; the row stays for the
    # orders and tickets that point at it.
    telegram_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    name: Mapped[str | None] = mapped_column(String(64))
    # E.164 (≤ 16 characters) in ``phone``, an extension beside it; read and set together as ``phone``.
    phone_number: Mapped[str | None] = mapped_column("phone", String(20), index=True)
    phone_extension: Mapped[str | None] = mapped_column(String(10))
    birthday: Mapped[date | None] = mapped_column(Date)
    address: Mapped[str | None] = mapped_column(String(300))
    household_size: Mapped[int | None] = mapped_column(Integer)
    preferences: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(8), default="en")
    timezone: Mapped[str | None] = mapped_column(String(64))
    care_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    care_consent_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reachable: Mapped[bool] = mapped_column(Boolean, default=True)
    unreachable_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    forgotten_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    notes: Mapped[list[StaffNote]] = relationship(
        back_populates="customer", cascade="all, delete-orphan", order_by="StaffNote.id"
    )

    @hybrid_property
    def phone(self) -> str | None:
        """The phone as the dialogs read it: E.164, with an extension in RFC 3966 form ("+861088889999;ext=12")."""
        if self.phone_number and self.phone_extension:
            return f"{self.phone_number}{PHONE_EXTENSION_MARK}{self.phone_extension}"
        return self.phone_number

    @phone.inplace.setter
    def _phone_setter(self, value: str | None) -> None:
        number, mark, extension = (value or "").partition(PHONE_EXTENSION_MARK)
        self.phone_number = number or None
        self.phone_extension = (extension or None) if mark else None

    @phone.inplace.expression
    @classmethod
    def _phone_expression(cls) -> Any:
        return cls.phone_number  # in SQL: the E.164 number (searches by digits)

    @property
    def is_forgotten(self) -> bool:
        return self.forgotten_at is not None


class StaffNote(Base):
    """A note that staff keep on a customer file."""

    __tablename__ = "staff_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    author_telegram_id: Mapped[int] = mapped_column(BigInteger)
    author_name: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    customer: Mapped[Customer] = relationship(back_populates="notes")
