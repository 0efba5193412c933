"""The tests' one set of helpers: expected texts, rows written straight to the database and read back,
and walks through the dialogs. (The harness itself, the app, the fake Telegram and the database of each
backend, is ``tests/conftest.py``; PostgreSQL and Redis, ``tests/servers.py``.)

Expected texts come from the templates themselves, rendered the way a reader sees them, so a test checks
that the right message came at the right moment. Rows written directly stand in for the conversations
that have tests of their own; ``Data`` builds a report's data set with explicit ids and times.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from bot.app import App
from bot.catalog import SAMPLE_CATALOG, import_rows, parse_catalog
from bot.fake_telegram import FakeTelegram, FakeUser, SentMessage
from bot.rules import customer_file as customer_rules
from bot.telegram_html import check
from bot.texts import TextRenderer
from jobs.runner import advance
from storage.models import (
    Base,
    Customer,
    Order,
    OrderItem,
    OrderStatusChange,
    OutboxMessage,
    Product,
    SurveyAnswer,
    Ticket,
    TicketEvent,
    TicketMessage,
)
from storage.repositories import Repos
from tests.conftest import STAFF_CHAT_ID

RENDERER = TextRenderer()


# ----- texts as the reader sees them -----------------------------------------------------------

def shown(template: str, lang: str = "en", /, **context: Any) -> str:
    """A message template as the reader sees it (also proves it is valid HTML)."""
    return check(RENDERER.render(lang, template, **context))


def label(name: str, lang: str = "en", /, **context: Any) -> str:
    return RENDERER.render(lang, f"buttons/{name}", **context)


def error(code: str, lang: str = "en", /, **params: Any) -> str:
    return shown(f"errors/{code}", lang, **params)


def texts_of(messages: list[SentMessage]) -> list[str]:
    return [m.text or "" for m in messages]


# ----- customers -------------------------------------------------------------------------------

async def add_customer(app: App, telegram_id: int, *, name: str | None = "Mei", consent: bool = True,
                       household: int | None = 3, birthday: date | None = None, tz: str | None = None,
                       language: str = "en", reachable: bool = True, address: str | None = "12 Rice Street") -> int:
    """A registered customer written straight to the database (registration has its own tests); its id.

    The phone is the one a FakeUser of this Telegram id shares.
    """
    now = app.clock.now()
    async with app.db.session() as session:
        customer = Customer(telegram_id=telegram_id, name=name, phone=f"+86138{telegram_id % 100_000_000:08d}"[:14],
                            birthday=birthday, household_size=household, language=language, timezone=tz,
                            address=address, care_consent=consent, care_consent_changed_at=now, reachable=reachable,
                            registered_at=now - timedelta(days=400), updated_at=now)
        session.add(customer)
        await session.commit()
        return customer.id


async def customer_row(app: App, telegram_id: int) -> Customer | None:
    """The customer file of this Telegram user, as stored (None: there is none)."""
    async with app.db.session() as session:
        return await session.scalar(select(Customer).where(Customer.telegram_id == telegram_id))


async def customer_count(app: App) -> int:
    async with app.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(Customer)) or 0)


async def set_language(app: App, telegram_id: int, lang: str) -> None:
    async with app.db.session() as session:
        await session.execute(update(Customer).where(Customer.telegram_id == telegram_id).values(language=lang))
        await session.commit()


# ----- products and orders ---------------------------------------------------------------------

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


async def load_catalog(app: App, text: str | None = None) -> None:
    data = text.encode() if text is not None else SAMPLE_CATALOG.read_bytes()
    await import_rows(app.db, parse_catalog(data, "csv", app.settings.currency))


async def add_product(app: App, sku: str = "rice-5kg", *, name: str = "Jasmine rice 5 kg", price: int = 4500,
                      days_per_unit_per_person: float | None = 10.0) -> int:
    """A product (the one of this sku if there is one already); its id."""
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


async def product(app: App, sku: str) -> Product:
    async with app.db.session() as session:
        found = await session.scalar(select(Product).where(Product.sku == sku))
        assert found is not None, sku
        return found


async def set_product(app: App, sku: str, **values: Any) -> None:
    async with app.db.session() as session:
        await session.execute(update(Product).where(Product.sku == sku).values(**values))
        await session.commit()


async def add_order(app: App, customer_id: int, product_id: int | None, at: datetime, *, quantity: int = 1,
                    total: int | None = None, status: str = "delivered", delivered_at: datetime | None = None,
                    source: str = "dialog") -> int:
    """An order written straight to the database; its id.

    ``product_id`` None: an order without items, of ``total``. A delivered order was delivered a day
    after ``at`` unless ``delivered_at`` says when.
    """
    async with app.db.session() as session:
        item = await session.get(Product, product_id) if product_id is not None else None
        if total is None:
            assert item is not None, "an order without a product needs its total"
            total = item.price * quantity
        order = Order(customer_id=customer_id, status=status, source=source, total=total, currency="CNY",
                      created_at=at, updated_at=at,
                      delivered_at=(delivered_at or at + timedelta(days=1)) if status == "delivered" else None)
        if item is not None:
            order.items.append(OrderItem(product_id=item.id, quantity=quantity, unit_price=item.price))
        session.add(order)
        await session.commit()
        return order.id


async def quick_order(app: App, user: FakeUser, lines: list[tuple[str, int]] | None = None, *,
                      card: bool = True) -> int:
    """An order of catalog products written through the repository, its card posted (the dialog has its
    own tests); its id."""
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


@pytest.fixture
async def shop(app: App, customer: FakeUser) -> FakeUser:
    """A registered customer (saved address "12 Rice Street") and the small catalog."""
    await load_catalog(app, SMALL_CATALOG)
    await add_customer(app, customer.id, name="Mei Lin")
    return customer


# ----- the outbox ------------------------------------------------------------------------------

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


async def outbox(app: App, prefix: str = "") -> list[OutboxMessage]:
    """The outbox rows whose key starts with ``prefix``, oldest first."""
    async with app.db.session() as session:
        rows = await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
        return [r for r in rows if r.dedupe_key.startswith(prefix)]


async def outbox_by_key(app: App) -> dict[str, OutboxMessage]:
    return {row.dedupe_key: row for row in await outbox(app)}


async def deliver(app: App, minutes: int = 1) -> None:
    """Move the clock; the outbox rows that fell due go out (the delivery worker's job runs)."""
    await advance(app.jobs, timedelta(minutes=minutes))


# ----- registration ----------------------------------------------------------------------------

# The order registration asks its questions in, and a good answer to each.
STEP_ORDER = ("name", "phone", "birthday", "address", "household", "consent", "confirm")


def question(step: str, lang: str = "en", /, **context: Any) -> str:
    """The question registration asks at ``step`` (without a current value)."""
    if step == "confirm":
        raise ValueError("the summary depends on the answers; build it with summary()")
    if step == "household":
        context = {"low": customer_rules.HOUSEHOLD_MIN, "high": customer_rules.HOUSEHOLD_MAX, **context}
    if step == "name":
        context = {"suggested": None, **context}
    return shown(f"registration/ask_{step}", lang, **context)


async def walk_to(user: FakeUser, step: str, name: str = "Mei Lin") -> list[SentMessage]:
    """Start registration and answer every question before ``step``; return the last replies."""
    replies = await user.send("/start")
    answers = {
        "name": lambda: user.send(name),
        "phone": lambda: user.send_contact(),
        "birthday": lambda: user.send("1990-03-25"),
        "address": lambda: user.send("12 Rice Street"),
        "household": lambda: user.send("3"),
        "consent": lambda: user.press(label("yes")),
    }
    for current in STEP_ORDER[: STEP_ORDER.index(step)]:
        replies = await answers[current]()
    return replies


async def finish_from(user: FakeUser, step: str) -> None:
    """From ``step`` on: skip the optional questions, say yes, confirm."""
    for current in STEP_ORDER[STEP_ORDER.index(step):]:
        if current == "name":
            await user.send("Mei Lin")
        elif current == "phone":
            await user.send_contact()
        elif current in ("birthday", "address", "household"):
            await user.press(label("skip"))
        elif current == "consent":
            await user.press(label("yes"))
        else:
            await user.press(label("confirm"))


# ----- ordering --------------------------------------------------------------------------------

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


# ----- complaints and tickets ------------------------------------------------------------------

async def file_complaint(customer: FakeUser, text: str = "The rice bag was torn", *, category: str = "Delivery",
                         order: str | int | None = None) -> list[SentMessage]:
    """Walk the /complaint dialog to the end; ``order`` is a button (when the customer has orders)."""
    await customer.send("/complaint")
    await customer.press(category)
    if order is not None:
        await customer.press(order)
    await customer.send(text)
    return await customer.press("Submit")


async def ticket(app: App, ticket_id: int = 1) -> Ticket:
    async with app.db.session() as session:
        found = await session.get(Ticket, ticket_id)
        assert found is not None, f"no ticket {ticket_id}"
        return found


async def tickets(app: App) -> list[Ticket]:
    async with app.db.session() as session:
        return list(await session.scalars(select(Ticket).order_by(Ticket.id)))


async def events(app: App, ticket_id: int = 1) -> list[TicketEvent]:
    async with app.db.session() as session:
        return list(await session.scalars(
            select(TicketEvent).where(TicketEvent.ticket_id == ticket_id).order_by(TicketEvent.id)))


async def messages(app: App, ticket_id: int = 1) -> list[TicketMessage]:
    async with app.db.session() as session:
        return list(await session.scalars(
            select(TicketMessage).where(TicketMessage.ticket_id == ticket_id).order_by(TicketMessage.id)))


def card(world: FakeTelegram, ticket_id: int = 1) -> SentMessage:
    """The ticket's card in the staff chat (its latest version)."""
    for message in world.sent(STAFF_CHAT_ID):
        if message.html and f"no. {ticket_id}</b>" in message.html and "🎫" in message.html:
            return message
    raise AssertionError(f"no card of ticket {ticket_id} in the staff chat")


# ----- a report's data set ---------------------------------------------------------------------

def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


class Data:
    """Adds rows with explicit ids and times to a session (of the ``db`` fixture); ``commit`` at the end."""

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

    def outbox(self, kind: str, customer_id: int | None, *, sent: datetime | None = None,
               created: datetime | None = None, status: str = "sent", category: str = "care",
               skip_reason: str | None = None, dedupe_key: str | None = None) -> int:
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
        await _sequences_past_ids(self.session)  # rows added later (by the bot) get the next ids, as on SQLite


async def _sequences_past_ids(session: AsyncSession) -> None:
    """After inserting explicit ids on PostgreSQL, move the id sequences past them."""
    if session.bind is None or session.bind.dialect.name != "postgresql":
        return
    for table in Base.metadata.sorted_tables:
        if "id" in table.c and table.c.id.primary_key and table.c.id.autoincrement in (True, "auto"):
            await session.execute(text(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                f"COALESCE((SELECT MAX(id) FROM {table.name}), 0) + 1, false)"))
    await session.commit()
