"""Products and orders.

Status changes are compare-and-set (``UPDATE ... WHERE status = <expected>``):
when two staff press at once, exactly one update matches and wins; the other
sees zero rows and is told. Order creation is idempotent on the confirm
button's key (``INSERT ... ON CONFLICT DO NOTHING``, ``storage.dialect.insert_for``).

Creating an order costs two statements: the order (with the care message it
answered chosen inside the same ``INSERT``) and its items (one multi-row
``INSERT``), each ``RETURNING`` the rows; the order handed back is built from
them, items and products in place, without reading anything again. The
placing itself is the order row (``created_at``, ``source``); the history
holds the status changes that follow it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from bot.rules import care as care_rules
from bot.rules.tickets import Actor
from storage.dialect import insert_for
from storage.models import Order, OrderItem, OrderStatusChange, OutboxMessage, Product
from storage.repositories.outbox import SENT_LIKE

PRODUCT_FIELDS = ("sku", "name_en", "name_zh", "category", "unit", "unit_zh", "price", "days_per_unit_per_person",
                  "active")


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


class OrderRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _with_details(self):  # type: ignore[no-untyped-def]
        return (
            select(Order)
            .options(selectinload(Order.items).joinedload(OrderItem.product), selectinload(Order.history))
            .execution_options(populate_existing=True)
        )

    async def get(self, order_id: int) -> Order | None:
        """The order with its items (and their products) and history loaded, in one statement."""
        stmt = (
            select(Order)
            .options(joinedload(Order.items).joinedload(OrderItem.product), joinedload(Order.history))
            .where(Order.id == order_id)
            .execution_options(populate_existing=True)
        )
        return (await self.session.scalars(stmt)).unique().one_or_none()

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
    ) -> tuple[Order, bool]:
        """Create an order at the products' current prices.

        Returns ``(order, created)``; with a key that was used before, the
        existing order comes back and ``created`` is False (a double press).
        Without ``attributed_outbox_id``, the order is credited to the care
        message it answered (see :func:`_attribution`).
        """
        if not lines:
            raise ValueError("an order needs at least one item")
        total = sum(product.price * quantity for product, quantity in lines)
        values: dict[str, Any] = dict(
            customer_id=customer_id, status="new", source=source, idempotency_key=idempotency_key,
            address=address, note=note, total=total, currency=currency, created_at=now, updated_at=now,
            reorder_of_id=reorder_of_id, attributed_outbox_id=attributed_outbox_id,
        )
        if attributed_outbox_id is None:
            values.update(_attribution(customer_id, {product.id for product, _ in lines}, source, now))
        stmt = insert_for(self.session)(Order).values(**values)
        if idempotency_key is not None:
            stmt = stmt.on_conflict_do_nothing(index_elements=["idempotency_key"])
        order = (await self.session.scalars(stmt.returning(Order))).one_or_none()
        if order is None:  # the key was used before: a double press, or a concurrent one got there first
            existing = await self.by_key(idempotency_key or "")
            assert existing is not None
            return existing, False
        products = {product.id: product for product, _ in lines}
        items = list(await self.session.scalars(
            insert(OrderItem).values([
                dict(order_id=order.id, product_id=product.id, quantity=quantity, unit_price=product.price)
                for product, quantity in lines
            ]).returning(OrderItem)
        ))
        # The order as a reload would give it, from what the statements returned. Its placing is the
        # order row itself (created_at, source); the history holds the changes that follow.
        for item in items:
            set_committed_value(item, "product", products[item.product_id])
            set_committed_value(item, "order", order)
        set_committed_value(order, "items", sorted(items, key=lambda item: item.id))
        set_committed_value(order, "history", [])
        return order, True

    async def change_status(self, order_id: int, expected: str, new: str, actor: Actor, now: datetime,
                            reason: str | None = None, *, order: Order | None = None) -> bool:
        """Compare-and-set: move the order only if it is still ``expected``.

        True when this call made the change (and wrote the history row); then
        ``order``, the order as loaded before, shows the change too, without
        being read again.
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
        change = (await self.session.scalars(
            insert(OrderStatusChange).values(
                order_id=order_id, from_status=expected, to_status=new, actor_telegram_id=actor.telegram_id,
                actor_name=actor.name, actor_role=actor.role, reason=reason, created_at=now,
            ).returning(OrderStatusChange)
        )).one()
        if order is not None:
            for key, value in values.items():
                set_committed_value(order, key, value)
            set_committed_value(change, "order", order)
            set_committed_value(order, "history", [*order.history, change])
        return True

    async def set_card(self, order: Order, chat_id: int, message_id: int) -> None:
        """Remember the order's staff-chat card: one ``UPDATE``; ``order`` shows it without another."""
        await self.session.execute(
            update(Order).where(Order.id == order.id)
            .values(staff_chat_id=chat_id, staff_message_id=message_id)
            .execution_options(synchronize_session=False)
        )
        set_committed_value(order, "staff_chat_id", chat_id)
        set_committed_value(order, "staff_message_id", message_id)

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
                    {"status": "new", "by": "customer", "at": order.created_at.isoformat()},
                    *({"status": change.to_status, "by": change.actor_role, "at": change.created_at.isoformat()}
                      for change in order.history),
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


def _attribution(customer_id: int, product_ids: set[int], source: str, now: datetime) -> dict[str, Any]:
    """The care message a new order answered, as expressions for the order's ``INSERT``.

    Candidates: this customer's reminders and win-backs that were sent and
    whose attribution window (``ATTRIBUTION_DAYS`` from sending, stored on the
    row as ``attribute_until``) is still open. The latest reminder for one of
    the ordered products wins; else the latest win-back, which also marks the
    order's source ``winback`` (an order made from a reminder's button keeps
    ``reminder``). Chosen by the database inside the ``INSERT``: no statement
    of its own.
    """

    def latest(kind: str, *more: Any) -> Any:
        return (
            select(OutboxMessage.id)
            .where(OutboxMessage.customer_id == customer_id, OutboxMessage.kind == kind,
                   OutboxMessage.status.in_(SENT_LIKE), OutboxMessage.attribute_until >= now,
                   OutboxMessage.sent_at <= now, *more)
            .order_by(OutboxMessage.sent_at.desc(), OutboxMessage.id.desc())
            .limit(1)
            .scalar_subquery()
        )

    reminder = latest(care_rules.KIND_REORDER, OutboxMessage.ref_product_id.in_(sorted(product_ids)))
    winback = latest(care_rules.KIND_WINBACK)
    values: dict[str, Any] = {"attributed_outbox_id": func.coalesce(reminder, winback)}
    if source != "reminder":
        values["source"] = case((and_(reminder.is_(None), winback.is_not(None)), "winback"), else_=source)
    return values
