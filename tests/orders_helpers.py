"""Helpers for the order tests: a small catalog, walking the /order dialog,
reading orders back. (Not fixtures in conftest: other areas edit that file.)"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import selectinload

from bot.app import App
from bot.catalog import SAMPLE_CATALOG, import_rows, parse_catalog
from bot.fake_telegram import FakeUser, SentMessage
from bot.telegram_html import check
from bot.texts import TextRenderer
from storage.models import Customer, Order, OrderItem, OrderStatusChange, Product
from storage.repositories import Repos

RENDERER = TextRenderer("CNY")

# Two categories; "rice" has 10 products, so it needs two pages.
SMALL_CATALOG = """sku,name_en,name_zh,category,unit,price,days_per_unit_per_person,active
RICE-1,Jasmine rice,泰国香米,rice,5 kg bag,68.00,10,true
RICE-2,Northeast rice,东北大米,rice,5 kg bag,59.00,10,true
RICE-3,Brown rice,糙米,rice,2 kg bag,32.00,5,true
RICE-4,Black rice,黑米,rice,1 kg bag,18.00,,true
RICE-5,Red rice,红米,rice,1 kg bag,17.00,,true
RICE-6,Glutinous rice,糯米,rice,2 kg bag,26.00,,true
RICE-7,Basmati rice,印度香米,rice,2 kg bag,40.00,,true
RICE-8,Japonica rice,粳米,rice,5 kg bag,62.00,10,true
RICE-9,Wild rice,菰米,rice,500 g bag,30.00,,true
RICE-10,Broken rice,碎米,rice,5 kg bag,35.00,10,true
OIL-1,Peanut oil,花生油,oil,5 L bottle,139.00,150,true
OIL-2,Rapeseed oil,菜籽油,oil,5 L bottle,89.00,150,true
OLD-1,Old tea,老茶,oil,1 tin,9.00,,false
"""


def shown(template: str, lang: str = "en", /, **context: Any) -> str:
    """A message template as the reader sees it (also proves it is valid HTML)."""
    return check(RENDERER.render(lang, template, **context))


def label(name: str, lang: str = "en", /, **context: Any) -> str:
    return RENDERER.render(lang, f"buttons/{name}", **context)


def texts_of(messages: list[SentMessage]) -> list[str]:
    return [m.text or "" for m in messages]


async def load_catalog(app: App, text: str | None = None) -> None:
    data = text.encode() if text is not None else SAMPLE_CATALOG.read_bytes()
    await import_rows(app.db, parse_catalog(data, "csv", app.settings.currency))


async def product(app: App, sku: str) -> Product:
    async with app.db.session() as session:
        found = await session.scalar(select(Product).where(Product.sku == sku))
        assert found is not None, sku
        return found


async def set_product(app: App, sku: str, **values: Any) -> None:
    async with app.db.session() as session:
        await session.execute(update(Product).where(Product.sku == sku).values(**values))
        await session.commit()


async def make_customer(app: App, user: FakeUser, name: str = "Mei Lin", *, address: str | None = "12 Rice Street",
                        lang: str = "en") -> None:
    """A registered customer, written straight to the database (registration has its own tests)."""
    async with app.db.session() as session:
        repos = Repos(session)
        await repos.customers.register(user.id, {
            "name": name, "phone": user.phone, "address": address, "household_size": 3, "care_consent": True,
        }, lang, app.clock.now())
        await repos.commit()


async def quick_order(app: App, user: FakeUser, lines: list[tuple[str, int]] | None = None, *,
                      card: bool = True) -> int:
    """An order written straight to the database, its card posted (the dialog has its own tests); its id."""
    from handlers.order_desk import post_card

    lines = lines or [("RICE-1", 2), ("OIL-1", 1)]
    async with app.db.session() as session:
        repos = Repos(session)
        customer = await repos.customers.by_telegram_id(user.id)
        assert customer is not None
        products = {p.sku: p for p in await repos.products.all()}
        order, _ = await repos.orders.create(
            customer_id=customer.id, lines=[(products[sku], qty) for sku, qty in lines], currency="CNY",
            now=app.clock.now(), address=customer.address)
        if card:
            await post_card(app.bot, app.settings, app.renderer, repos, order, customer)
        await repos.commit()
        return order.id


async def set_language(app: App, telegram_id: int, lang: str) -> None:
    async with app.db.session() as session:
        await session.execute(update(Customer).where(Customer.telegram_id == telegram_id).values(language=lang))
        await session.commit()


async def orders(app: App) -> list[Order]:
    async with app.db.session() as session:
        stmt = (select(Order).options(selectinload(Order.items).joinedload(OrderItem.product),
                                      selectinload(Order.history)).order_by(Order.id))
        return list(await session.scalars(stmt))


async def history(app: App, order_id: int) -> list[OrderStatusChange]:
    async with app.db.session() as session:
        stmt = select(OrderStatusChange).where(OrderStatusChange.order_id == order_id).order_by(OrderStatusChange.id)
        return list(await session.scalars(stmt))


def items_of(order: Order) -> list[tuple[str, int, int]]:
    return [(item.product.sku, item.quantity, item.unit_price) for item in order.items]


async def fill_cart(customer: FakeUser) -> None:
    """/order: 2 × Jasmine rice and 1 × Peanut oil (the small catalog), then Checkout."""
    await customer.send("/order")
    await customer.press("Rice")
    await customer.press("Jasmine rice")
    await customer.send("2")
    await customer.press(label("order_add_more"))
    await customer.press("Cooking oil")
    await customer.press("Peanut oil")
    await customer.press("1")
    await customer.press("Checkout")


async def to_summary(customer: FakeUser) -> list[SentMessage]:
    """Fill the cart, use the saved address, skip the note: the summary with Confirm."""
    await fill_cart(customer)
    await customer.press("📍")
    return await customer.press(label("skip"))


async def place_order(customer: FakeUser) -> list[SentMessage]:
    await to_summary(customer)
    return await customer.press(label("order_confirm"))
