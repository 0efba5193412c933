"""Shared helpers for the care-engine tests: customers, orders and outbox rows
written straight to the database, and a look at the outbox."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select

from bot.app import App
from storage.models import Customer, Order, OrderItem, OutboxMessage, Product
from storage.repositories import Repos


async def add_customer(app: App, telegram_id: int, *, name: str = "Mei", consent: bool = True,
                       household: int | None = 3, birthday: date | None = None, tz: str | None = None,
                       language: str = "en", reachable: bool = True, address: str | None = "12 Rice Street") -> int:
    now = app.clock.now()
    async with app.db.session() as session:
        customer = Customer(telegram_id=telegram_id, name=name, phone=f"+86138{telegram_id:08d}"[:14],
                            birthday=birthday, household_size=household, language=language, timezone=tz,
                            address=address,
                            care_consent=consent, care_consent_changed_at=now, reachable=reachable,
                            registered_at=now - timedelta(days=400), updated_at=now)
        session.add(customer)
        await session.commit()
        return customer.id


async def add_product(app: App, sku: str = "rice-5kg", *, name: str = "Jasmine rice 5 kg", price: int = 4500,
                      days_per_unit_per_person: float | None = 10.0) -> int:
    async with app.db.session() as session:
        existing = await session.scalar(select(Product).where(Product.sku == sku))
        if existing is not None:
            return existing.id
        product = Product(sku=sku, name_en=name, name_zh="泰国香米 5 公斤" if sku == "rice-5kg" else name,
                          category="Staples", unit="bag", price=price, active=True,
                          days_per_unit_per_person=days_per_unit_per_person)
        session.add(product)
        await session.commit()
        return product.id


async def add_order(app: App, customer_id: int, product_id: int, at: datetime, *, quantity: int = 1,
                    status: str = "delivered", delivered_at: datetime | None = None, source: str = "dialog") -> int:
    async with app.db.session() as session:
        product = await session.get(Product, product_id)
        assert product is not None
        order = Order(customer_id=customer_id, status=status, source=source, total=product.price * quantity,
                      currency="CNY", created_at=at, updated_at=at,
                      delivered_at=(delivered_at or at + timedelta(days=1)) if status == "delivered" else None)
        order.items.append(OrderItem(product_id=product_id, quantity=quantity, unit_price=product.price))
        session.add(order)
        await session.commit()
        return order.id


async def enqueue(app: App, key: str, chat_id: int, *, text: str = "Hello", category: str = "care",
                  customer_id: int | None = None, kind: str = "reorder", priority: int | None = None,
                  not_before: datetime | None = None, **extra: Any) -> None:
    async with app.db.session() as session:
        written = await Repos(session).outbox.enqueue(
            dedupe_key=key, kind=kind, chat_id=chat_id, text=text, now=app.clock.now(), not_before=not_before,
            category=category, priority=priority if priority is not None else (0 if category == "service" else 11),
            customer_id=customer_id, **extra,
        )
        await session.commit()
        assert written, key


async def outbox(app: App) -> dict[str, OutboxMessage]:
    async with app.db.session() as session:
        return {row.dedupe_key: row for row in await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))}


async def customer_row(app: App, customer_id: int) -> Customer:
    async with app.db.session() as session:
        customer = await session.get(Customer, customer_id)
        assert customer is not None
        return customer
