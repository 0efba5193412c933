"""Shared by the report tests: a database on SQLite *and* PostgreSQL, and
small builders for customers, orders, tickets and outbox rows.

``rdb`` is the test's database: like every database test, a test that takes it
runs once per backend (``[sqlite]``, ``[postgresql]``; see ``tests/conftest.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from storage.db import create_engine
from storage.models import Base, Customer, Order, OrderItem, OutboxMessage, Product, SurveyAnswer, Ticket


class ReportDB:
    """A session factory on one database, and the dialect's name."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], dialect: str) -> None:
        self.sessionmaker = sessionmaker
        self.dialect = dialect

    def session(self) -> AsyncSession:
        return self.sessionmaker()


@pytest.fixture
async def rdb(settings: Settings) -> AsyncIterator[ReportDB]:
    """The test's database (``[sqlite]`` and ``[postgresql]``, from ``db_url``), migrated and empty."""
    engine = create_engine(settings.database_url)
    try:
        yield ReportDB(async_sessionmaker(engine, expire_on_commit=False), engine.dialect.name)
    finally:
        await engine.dispose()


# ----- builders -------------------------------------------------------------------------

def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


class Data:
    """Adds rows with explicit ids and times; call ``commit`` at the end."""

    def __init__(self, session: AsyncSession, first_id: int = 1) -> None:
        self.session = session
        self.first_id = first_id
        self._ids: dict[str, int] = {}

    def _next(self, kind: str) -> int:
        self._ids[kind] = self._ids.get(kind, self.first_id - 1) + 1
        return self._ids[kind]

    def customer(self, name: str | None = None, *, registered: datetime | None = None, telegram_id: int | None = None,
                 consent: bool = True, reachable: bool = True, language: str = "en", forgotten: bool = False) -> int:
        number = self._next("customer")
        registered = registered or utc(2025, 1, 1)
        self.session.add(Customer(
            id=number, telegram_id=None if forgotten else (telegram_id or 500_000 + number),
            name=None if forgotten else (name or f"Customer {number}"), language=language, care_consent=consent,
            reachable=reachable, registered_at=registered, updated_at=registered,
            forgotten_at=registered if forgotten else None,
        ))
        return number

    def product(self, name: str = "Rice", price: int = 1000, name_zh: str | None = None) -> int:
        number = self._next("product")
        self.session.add(Product(id=number, sku=f"SKU-{number}", name_en=name, name_zh=name_zh or f"{name}（中）",
                                 category="rice", unit="bag", price=price, active=True))
        return number

    def order(self, customer_id: int, created: datetime, total: int, *, status: str = "delivered",
              items: list[tuple[int, int, int]] | None = None, attributed: int | None = None,
              source: str = "dialog") -> int:
        number = self._next("order")
        self.session.add(Order(
            id=number, customer_id=customer_id, status=status, source=source, total=total, currency="CNY",
            created_at=created, updated_at=created, attributed_outbox_id=attributed,
            delivered_at=created + timedelta(hours=3) if status == "delivered" else None,
        ))
        for product_id, quantity, unit_price in items or []:
            self.session.add(OrderItem(order_id=number, product_id=product_id, quantity=quantity,
                                       unit_price=unit_price))
        return number

    def ticket(self, customer_id: int, created: datetime, **fields: Any) -> int:
        number = self._next("ticket")
        values: dict[str, Any] = dict(category="quality", priority="normal", status="new", description="bad rice",
                                      updated_at=created, waiting_minutes=0.0, reopen_count=0)
        values.update(fields)
        self.session.add(Ticket(id=number, customer_id=customer_id, created_at=created, **values))
        return number

    def outbox(self, kind: str, customer_id: int | None, *, sent: datetime | None = None, created: datetime | None = None,
               status: str = "sent", category: str = "care", skip_reason: str | None = None,
               dedupe_key: str | None = None) -> int:
        number = self._next("outbox")
        created = created or sent or utc(2025, 1, 1)
        self.session.add(OutboxMessage(
            id=number, dedupe_key=dedupe_key or f"test:{number}", kind=kind, category=category, priority=10,
            chat_id=500_000 + (customer_id or 0), customer_id=customer_id, text="hi", not_before=created,
            status=status, skip_reason=skip_reason, attempts=1 if status == "sent" else 0, created_at=created,
            sent_at=sent if status == "sent" else None,
        ))
        return number

    def survey_answer(self, order_id: int, customer_id: int, rating: int, created: datetime) -> int:
        number = self._next("survey")
        self.session.add(SurveyAnswer(id=number, order_id=order_id, customer_id=customer_id, rating=rating,
                                      created_at=created, updated_at=created))
        return number

    async def commit(self) -> None:
        await self.session.flush()
        await self.session.commit()
        await fix_sequences(self.session)  # rows added later (by the bot) get the next ids, as on SQLite


async def fix_sequences(session: AsyncSession) -> None:
    """After inserting explicit ids on PostgreSQL, move the id sequences past them."""
    if session.bind is None or session.bind.dialect.name != "postgresql":
        return
    for table in Base.metadata.sorted_tables:
        if "id" in table.c and table.c.id.primary_key and table.c.id.autoincrement in (True, "auto"):
            await session.execute(text(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                f"COALESCE((SELECT MAX(id) FROM {table.name}), 0) + 1, false)"))
    await session.commit()


__all__ = ["Data", "ReportDB", "fix_sequences", "rdb", "utc"]
