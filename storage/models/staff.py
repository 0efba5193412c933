from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, UTCDateTime

# ``StaffLanguage.key`` of the staff chat (a group has one language for everyone in it).
STAFF_CHAT_KEY = "staff_chat"


def member_key(telegram_id: int) -> str:
    """``StaffLanguage.key`` of a staff member's private chat with the bot."""
    return f"staff:{telegram_id}"


class StaffLanguage(Base):
    """The language staff chose with /language for what the bot posts on its own: in the staff chat
    (key ``staff_chat``: cards, notices, SLA warnings, alerts) or in one staff member's private chat
    (key ``staff:<telegram id>``: reminders, alerts, digests). Shared by every replica; no row: the
    STAFF_LANGUAGE setting."""

    __tablename__ = "staff_languages"

    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    language: Mapped[str] = mapped_column(String(8))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
