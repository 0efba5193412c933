"""Orders under real concurrent transactions (on each backend): the idempotent
create and the compare-and-set status change each let exactly one through."""

from __future__ import annotations

import asyncio

from bot.app import App
from bot.fake_telegram import FakeUser
from bot.rules.tickets import Actor
from storage.db import Database
from storage.repositories import Repos
from tests.helpers import SMALL_CATALOG, add_customer, history, load_catalog


async def test_idempotent_create_and_compare_and_set(app: App, customer: FakeUser) -> None:
    await load_catalog(app, SMALL_CATALOG)
    await add_customer(app, customer.id, name="Mei Lin")
    db: Database = app.db
    now = app.clock.now()

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
    assert [c.to_status for c in await history(app, results[0][0])] == ["accepted"]
    async with db.session() as session:
        assert await Repos(session).products.categories() == ["rice", "oil"]
