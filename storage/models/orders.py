from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.models.base import Base, UTCDateTime

ORDER_STATUSES = ("new", "accepted", "out_for_delivery", "delivered", "cancelled")
ORDER_SOURCES = ("dialog", "reorder", "reminder", "winback")


class Product(Base):
    __tablename__ = "products"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    name_en: Mapped[str] = mapped_column(String(120))
    name_zh: Mapped[str] = mapped_column(String(120))
    category: Mapped[str] = mapped_column(String(64), index=True)
    unit: Mapped[str] = mapped_column(String(64))
    unit_zh: Mapped[str | None] = mapped_column(String(64))  # the unit in Chinese ("5 公斤装"); else ``unit``
    price: Mapped[int] = mapped_column(Integer)  # minor units of settings.currency
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # How many days one unit lasts one person (the rice-shop rule); optional.
    days_per_unit_per_person: Mapped[float | None] = mapped_column(Float)

    def name(self, lang: str) -> str:
        return self.name_zh if lang == "zh" else self.name_en

    def unit_for(self, lang: str) -> str:
        return self.unit_zh if lang == "zh" and self.unit_zh else self.unit


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_customer_created", "customer_id", "created_at"),
        Index("ix_orders_status_created", "status", "created_at"),
        Index("ix_orders_created", "created_at"),
        # Care engine: surveys after delivery, supply predictions from the last delivery.
        Index("ix_orders_customer_delivered", "customer_id", "delivered_at"),
        Index("ix_orders_delivered", "delivered_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="RESTRICT"))
    status: Mapped[str] = mapped_column(String(20), default="new")
    source: Mapped[str] = mapped_column(String(16), default="dialog")
    # The confirm button's idempotency key: one order per key.
    idempotency_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    address: Mapped[str | None] = mapped_column(String(300))
    note: Mapped[str | None] = mapped_column(Text)
    total: Mapped[int] = mapped_column(Integer, default=0)  # minor units, at order time
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    reorder_of_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id", ondelete="SET NULL"))
    # The care message (outbox row) this order answered, for the reports.
    attributed_outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id", ondelete="SET NULL"))
    # The staff-chat card of this order.
    staff_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    staff_message_id: Mapped[int | None] = mapped_column(BigInteger)

    items: Mapped[list[OrderItem]] = relationship(
        back_populates="order", cascade="all, delete-orphan", order_by="OrderItem.id"
    )
    history: Mapped[list[OrderStatusChange]] = relationship(
        back_populates="order", cascade="all, delete-orphan", order_by="OrderStatusChange.id"
    )


class OrderItem(Base):
    __tablename__ = "order_items"
    __table_args__ = (Index("ix_order_items_product_order", "product_id", "order_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="RESTRICT"))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[int] = mapped_column(Integer)  # minor units, at order time

    order: Mapped[Order] = relationship(back_populates="items")
    product: Mapped[Product] = relationship(lazy="joined")


class OrderStatusChange(Base):
    __tablename__ = "order_status_changes"
    __table_args__ = (Index("ix_order_status_changes_to_created", "to_status", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    actor_telegram_id: Mapped[int | None] = mapped_column(BigInteger)
    actor_name: Mapped[str | None] = mapped_column(String(64))
    actor_role: Mapped[str] = mapped_column(String(16))  # customer | staff | system
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    order: Mapped[Order] = relationship(back_populates="history")
