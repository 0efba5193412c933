"""Products and orders.

Status changes are compare-and-set (``UPDATE ... WHERE status = <expected>``):
when two staff press at once, exactly one update matches and wins; the other
sees zero rows and is told. Order creation is idempotent on the confirm
button's key (``INSERT ... ON CONFLICT DO NOTHING``, the one dialect switch).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from storage.models import Order, OrderItem, OrderStatusChange, Product

if TYPE_CHECKING:
    from storage.repositories import Repos

# Awaited right after an order is created, in the same transaction (the care
# engine records which care message the order answered).
OrderCreatedHook = Callable[["Repos", Order, datetime], Awaitable[None]]
ORDER_CREATED_HOOKS: list[OrderCreatedHook] = []

PRODUCT_FIELDS = ("sku", "name_en", "name_zh", "category", "unit", "unit_zh", "price", "days_per_unit_per_person", "active")


@dataclass(frozen=True)
class Actor:
    """Who changed an order: a staff member, the customer, or the system."""

    role: str  # customer | staff | system
    telegram_id: int | None = None
    name: str | None = None


class ProductRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, product_id: int) -> Product | None:
        return await self.session.get(Product, product_id)

    async def by_ids(self, ids: Iterable[int]) -> dict[int, Product]:
        ids = list(ids)
        if not ids:
            return {}
        rows = await self.session.scalars(select(Product).where(Product.id.in_(ids)))
        return {p.id: p for p in rows}

    async def count(self) -> int:
        return await self.session.scalar(select(func.count()).select_from(Product)) or 0

    async def all(self) -> list[Product]:
        return list(await self.session.scalars(select(Product).order_by(Product.id)))

    async def categories(self) -> list[str]:
        """Categories with at least one active product, in catalog order."""
        stmt = (
            select(Product.category, func.min(Product.id).label("first_id"))
            .where(Product.active.is_(True))
            .group_by(Product.category)
            .order_by("first_id")
        )
        return [row[0] for row in await self.session.execute(stmt)]

    async def in_category(self, category: str) -> list[Product]:
        stmt = (
            select(Product)
            .where(Product.category == category, Product.active.is_(True))
            .order_by(Product.id)
        )
        return list(await self.session.scalars(stmt))

    async def upsert(self, rows: Sequence[dict[str, Any]]) -> tuple[int, int, int]:
        """Insert or update by SKU; returns (created, updated, unchanged)."""
        skus = [row["sku"] for row in rows]
        existing = {
            p.sku: p for p in await self.session.scalars(select(Product).where(Product.sku.in_(skus)))
        } if skus else {}
        created = updated = unchanged = 0
        for row in rows:
            product = existing.get(row["sku"])
            if product is None:
                self.session.add(Product(**{f: row[f] for f in PRODUCT_FIELDS}))
                created += 1
                continue
            changed = False
            for field in PRODUCT_FIELDS:
                if getattr(product, field) != row[field]:
                    setattr(product, field, row[field])
                    changed = True
            updated += changed
            unchanged += not changed
        await self.session.flush()
        return created, updated, unchanged

    async def set_active(self, product_id: int, active: bool) -> None:
        await self.session.execute(update(Product).where(Product.id == product_id).values(active=active))


class OrderRepo:
    def __init__(self, session: AsyncSession, repos: "Repos | None" = None) -> None:
        self.session = session
        self.repos = repos

    def _with_details(self):  # type: ignore[no-untyped-def]
        return (
            select(Order)
            .options(selectinload(Order.items).joinedload(OrderItem.product), selectinload(Order.history))
            .execution_options(populate_existing=True)
        )

    async def get(self, order_id: int) -> Order | None:
        """The order with its items (and their products) and history loaded."""
        return await self.session.scalar(self._with_details().where(Order.id == order_id))

    async def of_customer(self, order_id: int, customer_id: int) -> Order | None:
        """The order if it belongs to this customer; None otherwise (nothing revealed)."""
        return await self.session.scalar(
            self._with_details().where(Order.id == order_id, Order.customer_id == customer_id)
        )

    async def by_key(self, idempotency_key: str) -> Order | None:
        return await self.session.scalar(self._with_details().where(Order.idempotency_key == idempotency_key))

    async def recent(self, customer_id: int, limit: int = 10) -> list[Order]:
        stmt = (
            self._with_details()
            .where(Order.customer_id == customer_id)
            .order_by(Order.created_at.desc(), Order.id.desc())
            .limit(limit)
        )
        return list(await self.session.scalars(stmt))

    async def all_of_customer(self, customer_id: int) -> list[Order]:
        stmt = self._with_details().where(Order.customer_id == customer_id).order_by(Order.id)
        return list(await self.session.scalars(stmt))

    async def create(
        self,
        *,
        customer_id: int,
        lines: Sequence[tuple[Product, int]],
        currency: str,
        now: datetime,
        idempotency_key: str | None = None,
        source: str = "dialog",
        address: str | None = None,
        note: str | None = None,
        reorder_of_id: int | None = None,
        attributed_outbox_id: int | None = None,
        actor: Actor | None = None,
    ) -> tuple[Order, bool]:
        """Create an order at the products' current prices.

        Returns ``(order, created)``; with a key that was used before, the
        existing order comes back and ``created`` is False (a double press).
        """
        if not lines:
            raise ValueError("an order needs at least one item")
        if idempotency_key is not None:
            existing = await self.by_key(idempotency_key)
            if existing is not None:
                return existing, False
        total = sum(product.price * quantity for product, quantity in lines)
        values = dict(
            customer_id=customer_id, status="new", source=source, idempotency_key=idempotency_key,
            address=address, note=note, total=total, currency=currency, created_at=now, updated_at=now,
            reorder_of_id=reorder_of_id, attributed_outbox_id=attributed_outbox_id,
        )
        dialect = self.session.bind.dialect.name if self.session.bind else "sqlite"
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = insert(Order).values(**values).returning(Order.id)
        if idempotency_key is not None:
            stmt = stmt.on_conflict_do_nothing(index_elements=["idempotency_key"])
        order_id = (await self.session.execute(stmt)).scalar_one_or_none()
        if order_id is None:  # a concurrent press with the same key got there first
            existing = await self.by_key(idempotency_key or "")
            assert existing is not None
            return existing, False
        for product, quantity in lines:
            self.session.add(OrderItem(order_id=order_id, product_id=product.id, quantity=quantity,
                                       unit_price=product.price))
        actor = actor or Actor("customer")
        self.session.add(OrderStatusChange(
            order_id=order_id, from_status=None, to_status="new", actor_telegram_id=actor.telegram_id,
            actor_name=actor.name, actor_role=actor.role, created_at=now,
        ))
        await self.session.flush()
        order = await self.get(order_id)
        assert order is not None
        if self.repos is not None:
            for hook in ORDER_CREATED_HOOKS:
                await hook(self.repos, order, now)
        return order, True

    async def change_status(self, order_id: int, expected: str, new: str, actor: Actor, now: datetime,
                            reason: str | None = None) -> bool:
        """Compare-and-set: move the order only if it is still ``expected``.

        True when this call made the change (and wrote the history row).
        """
        values: dict[str, Any] = {"status": new, "updated_at": now}
        if new == "delivered":
            values["delivered_at"] = now
        if new == "cancelled":
            values["cancelled_at"] = now
            values["cancel_reason"] = reason
        result = await self.session.execute(
            update(Order)
            .where(Order.id == order_id, Order.status == expected)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if (result.rowcount or 0) != 1:
            return False
        self.session.add(OrderStatusChange(
            order_id=order_id, from_status=expected, to_status=new, actor_telegram_id=actor.telegram_id,
            actor_name=actor.name, actor_role=actor.role, reason=reason, created_at=now,
        ))
        await self.session.flush()
        return True

    async def set_card(self, order_id: int, chat_id: int, message_id: int) -> None:
        await self.session.execute(
            update(Order).where(Order.id == order_id)
            .values(staff_chat_id=chat_id, staff_message_id=message_id)
            .execution_options(synchronize_session=False)
        )

    async def export_customer(self, customer_id: int) -> list[dict[str, Any]]:
        """A customer's orders as JSON-ready dicts (for /mydata)."""
        return [
            {
                "number": order.id, "status": order.status, "source": order.source,
                "created_at": order.created_at.isoformat(), "address": order.address, "note": order.note,
                "total_minor_units": order.total, "currency": order.currency,
                "delivered_at": order.delivered_at.isoformat() if order.delivered_at else None,
                "cancelled_at": order.cancelled_at.isoformat() if order.cancelled_at else None,
                "cancel_reason": order.cancel_reason,
                "items": [
                    {"sku": item.product.sku, "name": item.product.name_en, "quantity": item.quantity,
                     "unit_price_minor_units": item.unit_price}
                    for item in order.items
                ],
                "history": [
                    {"status": change.to_status, "by": change.actor_role, "at": change.created_at.isoformat()}
                    for change in order.history
                ],
            }
            for order in await self.all_of_customer(customer_id)
        ]

    async def anonymise_customer(self, customer_id: int) -> int:
        """Erase the personal parts of a customer's orders; the orders stay for reports."""
        result = await self.session.execute(
            update(Order).where(Order.customer_id == customer_id)
            .values(address=None, note=None)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount or 0
