from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, UTCDateTime


class Lease(Base):
    """Who does a piece of singleton work (care planning, SLA checks, digests, recovery).

    A replica holds the lease while ``expires_at`` is in the future and renews
    it well before then; when the holder dies, another replica takes the row
    over once it has expired (see ``jobs.leases``). On SQLite the ``delivery``
    lease keeps a second process from delivering the outbox.
    """

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
