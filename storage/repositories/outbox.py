from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models.outbox import CATEGORY_SERVICE, PRIORITY_SERVICE, OutboxMessage


class OutboxRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def enqueue(
        self,
        *,
        dedupe_key: str,
        kind: str,
        chat_id: int,
        text: str,
        now: datetime,
        not_before: datetime | None = None,
        category: str = CATEGORY_SERVICE,
        priority: int = PRIORITY_SERVICE,
        customer_id: int | None = None,
        reply_markup: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
        ref_order_id: int | None = None,
        ref_ticket_id: int | None = None,
        ref_product_id: int | None = None,
    ) -> bool:
        """Write one outbox row; the same ``dedupe_key`` twice is a no-op.

        Returns True when a row was written. Uses INSERT .. ON CONFLICT DO
        NOTHING, which SQLite and PostgreSQL both speak (the one dialect switch).
        """
        values = dict(
            dedupe_key=dedupe_key,
            kind=kind,
            category=category,
            priority=priority,
            chat_id=chat_id,
            customer_id=customer_id,
            text=text,
            reply_markup=reply_markup,
            options=options,
            ref_order_id=ref_order_id,
            ref_ticket_id=ref_ticket_id,
            ref_product_id=ref_product_id,
            not_before=not_before or now,
            status="pending",
            attempts=0,
            created_at=now,
        )
        dialect = self.session.bind.dialect.name if self.session.bind else "sqlite"
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = (
            insert(OutboxMessage)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
            .returning(OutboxMessage.id)
        )
        result = await self.session.execute(stmt)
        return result.scalar_one_or_none() is not None

    async def by_key(self, dedupe_key: str) -> OutboxMessage | None:
        return await self.session.scalar(select(OutboxMessage).where(OutboxMessage.dedupe_key == dedupe_key))

    async def skip_pending_care(self, customer_id: int, reason: str) -> int:
        """Skip every pending care message of a customer (e.g. after /stop)."""
        result = await self.session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.customer_id == customer_id,
                OutboxMessage.category == "care",
                OutboxMessage.status == "pending",
            )
            .values(status="skipped", skip_reason=reason)
        )
        return result.rowcount or 0
