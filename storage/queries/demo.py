"""``caredesk demo-data``'s SQL: the sample catalog, the next free ids, bulk inserts of generated history.

Rows are written with explicit ids in bulk (``INSERT`` with many parameter
sets, a few thousand rows per statement). On SQLite the driver's executemany
gets plain tuples: several times faster than binding each value through the
column types, which is what makes 2,000 households × 36 months a matter of
seconds. PostgreSQL's id sequences are then moved past the new rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Row, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from storage.dialect import is_postgres, is_sqlite
from storage.models import Customer, Order, OrderItem, OutboxMessage, Product, SurveyAnswer, Ticket

CHUNK_ROWS = 5000
# What a batch may hold, in an order the foreign keys accept.
TABLES = {"customers": Customer, "outbox": OutboxMessage, "orders": Order, "items": OrderItem, "tickets": Ticket,
          "answers": SurveyAnswer}


async def product_count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Product)) or 0)


async def add_products(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    await session.execute(insert(Product.__table__), rows)


async def active_products(session: AsyncSession) -> Sequence[Row[Any]]:
    """Rows of id, price, category, days_per_unit_per_person of the active products, by id."""
    return (await session.execute(
        select(Product.id, Product.price, Product.category, Product.days_per_unit_per_person)
        .where(Product.active.is_(True)).order_by(Product.id))).all()


async def next_ids(session: AsyncSession) -> dict[str, int]:
    """The first free id of each table of :data:`TABLES` (past the highest there is)."""
    ids = {}
    for name, model in TABLES.items():
        ids[name] = int(await session.scalar(select(func.coalesce(func.max(model.id), 0))) or 0) + 1
    return ids


def _sqlite_value(value: Any) -> Any:
    """A Python value as the SQLite columns keep it (what the column types would bind)."""
    if isinstance(value, datetime):
        # UTCDateTime on SQLite: naive UTC text, SQLAlchemy's DATETIME storage format.
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return int(value)
    return value


async def insert_batch(session: AsyncSession, batch: dict[str, list[dict[str, Any]]]) -> None:
    """Insert a batch of rows with explicit ids: table name of :data:`TABLES` → rows (dicts with every column)."""
    sqlite = is_sqlite(session)
    for name, model in TABLES.items():
        rows = batch.get(name)
        if not rows:
            continue
        if sqlite:
            connection = await session.connection()
            await connection.exec_driver_sql("PRAGMA cache_size=-200000")  # 200 MB of pages while loading
            columns = list(rows[0])
            sql = (f"INSERT INTO {model.__tablename__} ({', '.join(columns)}) "
                   f"VALUES ({', '.join('?' for _ in columns)})")
            await connection.exec_driver_sql(sql, [tuple(_sqlite_value(row[c]) for c in columns) for row in rows])
            continue
        for offset in range(0, len(rows), CHUNK_ROWS):
            await session.execute(insert(model.__table__), rows[offset:offset + CHUNK_ROWS])


async def fix_sequences(session: AsyncSession) -> None:
    """PostgreSQL: explicit ids do not move the id sequences; move them past the new rows."""
    if not is_postgres(session):
        return
    for model in TABLES.values():
        table = model.__tablename__
        await session.execute(text(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
            f"COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"))
