"""Leases: one holder at a time for a named piece of work, taken over once it expires."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import case, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.dialect import insert_for
from storage.models.leases import Lease


class LeaseRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def acquire(self, name: str, holder: str, now: datetime, expires_at: datetime) -> bool:
        """Take or renew the lease ``name`` until ``expires_at``; False while someone else holds it.

        One conditional UPDATE (the row lock makes two replicas agree), then an
        INSERT .. ON CONFLICT DO NOTHING for the very first holder.
        """
        result = await self.session.execute(
            update(Lease)
            .where(Lease.name == name, (Lease.holder == holder) | (Lease.expires_at <= now))
            .values(holder=holder, expires_at=expires_at,
                    acquired_at=case((Lease.holder == holder, Lease.acquired_at), else_=now))
            .execution_options(synchronize_session=False)
        )
        if (result.rowcount or 0) == 1:
            return True
        insert = insert_for(self.session)
        inserted = await self.session.execute(
            insert(Lease).values(name=name, holder=holder, acquired_at=now, expires_at=expires_at)
            .on_conflict_do_nothing(index_elements=["name"]).returning(Lease.name)
        )
        return inserted.scalar_one_or_none() is not None

    async def release(self, name: str, holder: str, now: datetime) -> bool:
        """Give the lease up at once (a clean stop): the next replica need not wait for it to expire."""
        result = await self.session.execute(
            update(Lease).where(Lease.name == name, Lease.holder == holder, Lease.expires_at > now)
            .values(expires_at=now).execution_options(synchronize_session=False)
        )
        return (result.rowcount or 0) == 1

    async def get(self, name: str) -> Lease | None:
        return await self.session.scalar(select(Lease).where(Lease.name == name))
