"""The benchmarks' copy of a SQLite dataset into PostgreSQL (bench/postgres.py) keeps every row and value."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta

from sqlalchemy import func, select

from bench import dataset, postgres
from storage.db import Database
from storage.models import Customer, Order, OrderItem, Product


def test_a_dataset_copied_into_postgresql_has_the_same_rows_and_values() -> None:
    path = dataset.build(200, 1000, quiet=True)
    url, info = postgres.load(path, quiet=True)  # skips the test when PostgreSQL does not answer
    try:
        source = sqlite3.connect(path)
        try:
            expected = {t: source.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                        for t in ("customers", "orders", "order_items", "products")}
            consenting = source.execute("SELECT COUNT(*) FROM customers WHERE care_consent = 1").fetchone()[0]
            last_id = source.execute("SELECT MAX(id) FROM orders").fetchone()[0]
        finally:
            source.close()
        assert {t: info["rows"][t] for t in expected} == expected

        async def check() -> None:
            db = Database(url)
            try:
                async with db.session() as session:
                    counted = {t.__tablename__: await session.scalar(select(func.count()).select_from(t))
                               for t in (Customer, Order, OrderItem, Product)}
                    assert counted == expected
                    consented = select(func.count()).where(Customer.care_consent.is_(True))
                    assert await session.scalar(consented) == consenting
                    order = await session.scalar(select(Order).where(Order.delivered_at.is_not(None)).limit(1))
                    assert order is not None and order.delivered_at - order.created_at == timedelta(days=1)
                    # New rows take ids after the copied ones.
                    customer = await session.scalar(select(Customer).limit(1))
                    session.add(Order(customer_id=customer.id, status="new", source="dialog", total=100, currency="CNY",
                                      created_at=dataset.NOW, updated_at=dataset.NOW))
                    await session.flush()
                    assert await session.scalar(select(func.max(Order.id))) == last_id + 1
                    await session.rollback()
            finally:
                await db.dispose()

        asyncio.run(check())
    finally:
        postgres.drop(url)
