from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, UTCDateTime


class InboxUpdate(Base):
    """An update Telegram handed us and we acknowledged, until it is handled.

    Written before the webhook answers 200 (or before polling moves its
    offset past it); deleted in the transaction of the handler that handled
    it. What is left on start was acknowledged but never handled: it is
    handled then. The primary key makes a redelivered update a no-op.
    A handled row keeps its id (its payload is emptied) for a day, as long
    as Telegram may deliver the same update again, then it is pruned.
    (``update_id`` lets a bot ignore repeated updates: https://core.telegram.org/bots/api#update)
    """

    __tablename__ = "inbox_updates"

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    # The chat (or user) whose updates must be handled one at a time, in order.
    lane: Mapped[int] = mapped_column(BigInteger)
    payload: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
