"""Shared by the report tests: a database on SQLite *and* PostgreSQL, and
small builders for customers, orders, tickets and outbox rows.

``rdb`` is parametrised: every test that takes it runs once on a copy of the
migrated SQLite database and once on PostgreSQL (one schema for the run, tables
from the models, emptied before each test), or is skipped there with the reason when
PostgreSQL is unreachable. ``TEST_POSTGRES_URL`` points elsewhere.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from bot.config import Settings
from storage.db import create_engine
from storage.models import Base, Customer, Order, OrderItem, OutboxMessage, Product, SurveyAnswer, Ticket

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
_pg_reachable: bool | None = None


async def _postgres_reachable() -> bool:
    global _pg_reachable
    if _pg_reachable is None:
        try:
            import asyncpg  # noqa: F401  (the driver; without it PostgreSQL cannot be reached)
        except ImportError:
            _pg_reachable = False
            return False
        engine = create_async_engine(POSTGRES_URL)
        try:
            async with asyncio.timeout(3):
                async with engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
            _pg_reachable = True
        except Exception:  # noqa: BLE001  (any failure means: not reachable)
            _pg_reachable = False
        finally:
            await engine.dispose()
    return _pg_reachable


class ReportDB:
    """A session factory on one database, and the dialect's name."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], dialect: str) -> None:
        self.sessionmaker = sessionmaker
        self.dialect = dialect

    def session(self) -> AsyncSession:
        return self.sessionmaker()


@pytest.fixture(scope="session")
def pg_schema() -> Iterator[str | None]:
    """One PostgreSQL schema for the whole run (tables from the models), or None when unreachable."""
    if not asyncio.run(_postgres_reachable()):
        yield None
        return
    schema = f"t_reports_{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        engine = create_async_engine(POSTGRES_URL, connect_args={"server_settings": {"search_path": schema}})
        try:
            async with engine.begin() as connection:
                await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
                await connection.run_sync(Base.metadata.create_all)
        finally:
            await engine.dispose()

    async def drop() -> None:
        engine = create_async_engine(POSTGRES_URL)
        try:
            async with engine.begin() as connection:
                await connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        finally:
            await engine.dispose()

    asyncio.run(create())
    try:
        yield schema
    finally:
        asyncio.run(drop())


@pytest.fixture(params=["sqlite", "postgresql"])
async def rdb(request: pytest.FixtureRequest, settings: Settings, pg_schema: str | None) -> AsyncIterator[ReportDB]:
    if request.param == "sqlite":
        engine = create_engine(settings.database_url)  # a copy of the database migrated to head
        try:
            yield ReportDB(async_sessionmaker(engine, expire_on_commit=False), "sqlite")
        finally:
            await engine.dispose()
        return
    schema = pg_schema
    if schema is None:
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_URL.split('@')[-1]}")
    engine = create_async_engine(POSTGRES_URL, connect_args={"server_settings": {"search_path": schema}})
    try:
        async with engine.begin() as connection:  # DELETE is quicker than TRUNCATE on tiny tables
            for table in reversed(Base.metadata.sorted_tables):
                await connection.execute(table.delete())
        yield ReportDB(async_sessionmaker(engine, expire_on_commit=False), "postgresql")
    finally:
        await engine.dispose()


# ----- builders -------------------------------------------------------------------------

def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=timezone.utc)


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


async def fix_sequences(session: AsyncSession) -> None:
    """After inserting explicit ids on PostgreSQL, move the id sequences past them."""
    if session.bind is None or session.bind.dialect.name != "postgresql":
        return
    for table in ("customers", "products", "orders", "order_items", "tickets", "outbox"):
        await session.execute(text(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"))
    await session.commit()


__all__ = ["Data", "ReportDB", "fix_sequences", "pg_schema", "rdb", "utc"]
