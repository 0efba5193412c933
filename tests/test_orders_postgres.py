"""Orders on PostgreSQL: the idempotent create and the compare-and-set status
change hold with real concurrent transactions, and the whole order path runs.
Skipped (with the reason) when PostgreSQL does not answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.app import App, create_app
from bot.clock import ManualClock
from bot.config import Settings
from bot.fake_telegram import FakeTelegram, FakeUser
from storage.db import Database
from storage.repositories import Repos
from storage.repositories.orders import Actor
from tests.conftest import STAFF_CHAT_ID, STAFF_ID, STAFF2_ID
from tests.orders_helpers import SMALL_CATALOG, history, load_catalog, make_customer, orders, place_order
from tests.servers import pg_migrated_url  # noqa: F401  (a fixture)


@pytest.fixture
async def pg_app(pg_migrated_url: str, settings: Settings, clock: ManualClock,  # noqa: F811
                 world: FakeTelegram, app: App) -> AsyncIterator[App]:
    """The bot on PostgreSQL; set up after the SQLite ``app`` (which the person fixtures
    ask for), so the fake Telegram feeds this one."""
    pg = create_app(settings.model_copy(update={"database_url": pg_migrated_url}), clock=clock,
                     session=world.session())
    world.attach(pg.dispatcher, pg.bot)
    yield pg
    await pg.close()


async def test_idempotent_create_and_compare_and_set(pg_app: App, customer: FakeUser) -> None:
    await load_catalog(pg_app, SMALL_CATALOG)
    await make_customer(pg_app, customer)
    db: Database = pg_app.db
    now = pg_app.clock.now()

    async def create() -> tuple[int, bool]:
        async with db.session() as session:
            repos = Repos(session)
            owner = await repos.customers.by_telegram_id(customer.id)
            [rice] = [p for p in await repos.products.all() if p.sku == "RICE-1"]
            order, created = await repos.orders.create(customer_id=owner.id, lines=[(rice, 2)], currency="CNY",
                                                       now=now, idempotency_key="k-1", address="x")
            await asyncio.sleep(0.05)  # hold the transaction open while the other one tries
            await repos.commit()
            return order.id, created

    results = await asyncio.gather(create(), create())
    assert sorted(created for _, created in results) == [False, True]
    assert len({order_id for order_id, _ in results}) == 1

    async def accept(who: int) -> bool:
        async with db.session() as session:
            won = await Repos(session).orders.change_status(results[0][0], "new", "accepted",
                                                            Actor("staff", who, str(who)), now)
            await asyncio.sleep(0.05)
            await session.commit()
            return won

    assert sorted(await asyncio.gather(accept(1), accept(2))) == [False, True]
    assert [c.to_status for c in await history(pg_app, results[0][0])] == ["new", "accepted"]
    async with db.session() as session:
        assert await Repos(session).products.categories() == ["rice", "oil"]


async def test_the_order_path_and_two_staff_on_postgres(pg_app: App, world: FakeTelegram, customer: FakeUser,
                                                        staff: FakeUser, staff2: FakeUser) -> None:
    await load_catalog(pg_app, SMALL_CATALOG)
    await make_customer(pg_app, customer)
    await place_order(customer)
    card = world.last(STAFF_CHAT_ID)
    _, accept = staff.find_button("Accept", card)
    await asyncio.gather(staff.press_data(accept["callback_data"], card),
                         staff2.press_data(accept["callback_data"], card))
    changes = await history(pg_app, 1)
    assert [c.to_status for c in changes] == ["new", "accepted"]
    assert changes[1].actor_telegram_id in (STAFF_ID, STAFF2_ID)
    [order] = await orders(pg_app)
    assert order.status == "accepted" and order.total == 27500
