"""The care engine on PostgreSQL: the planner's SQL (aggregated purchase lists, epoch minutes),
two planners at once, delivery, stops, ratings and attribution. Skipped when PostgreSQL does not answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from bot.app import App, create_app
from bot.clock import ManualClock
from bot.config import Settings
from bot.fake_telegram import FakeTelegram, FakeUser
from jobs.care import plan
from jobs.runner import run_job
from storage.models import Order, OutboxMessage
from storage.repositories import Repos
from tests.care_helpers import add_customer, add_order, add_product, outbox
from tests.servers import pg_migrated_url  # noqa: F401  (a fixture)


@pytest.fixture
async def pg_app(pg_migrated_url: str, settings: Settings, clock: ManualClock,  # noqa: F811
                 world: FakeTelegram, app: App) -> AsyncIterator[App]:
    pg = create_app(settings.model_copy(update={"database_url": pg_migrated_url}), clock=clock,
                    session=world.session())
    world.attach(pg.dispatcher, pg.bot)
    yield pg
    await pg.close()


async def test_planning_and_delivery_on_postgres(pg_app: App, customer: FakeUser) -> None:
    app = pg_app
    now = app.clock.now()
    rice = await add_product(app)
    tea = await add_product(app, "tea", name="Green tea", days_per_unit_per_person=None)
    cid = await add_customer(app, customer.id, birthday=date(1988, 3, 2))
    await add_order(app, cid, rice, now - timedelta(days=19), quantity=2)
    await add_order(app, cid, rice, now - timedelta(days=9), quantity=2)
    await add_order(app, cid, tea, now - timedelta(days=3), delivered_at=now - timedelta(days=2))
    lapsed = await add_customer(app, customer.id + 1, name="Bo")
    await add_order(app, lapsed, rice, now - timedelta(days=60))
    results = await asyncio.gather(plan(app, now), plan(app, now))  # two planners at once
    rows = await outbox(app)
    keys = sorted(k.split(":")[0] for k in rows)
    assert keys == ["birthday", "reorder", "survey", "survey", "winback"]
    assert sum(sum(r.written.values()) for r in results) == len(rows)
    reminder = next(r for k, r in rows.items() if k.startswith("reorder:"))
    assert reminder.ref_product_id == rice and reminder.dedupe_key.endswith(":2026-03-03")
    app.settings.care_cap_per_day = 5
    await run_job(app, "deliver_outbox")
    texts = [m.text or "" for m in customer.inbox()]
    assert any("Happy birthday" in t for t in texts) and any("runs out around" in t for t in texts)
    await customer.press("Stop these reminders", next(m for m in customer.inbox() if "runs out" in (m.text or "")))
    async with app.db.session() as session:
        repos = Repos(session)
        stops = await repos.care.stops()
        assert stops[cid][rice][0] == "stop"
        order, _ = await repos.orders.create(customer_id=cid, lines=[(await repos.products.get(rice), 1)],
                                             currency="CNY", now=app.clock.now())
        await session.commit()
    assert order.attributed_outbox_id == reminder.id
    async with app.db.session() as session:
        survey = await session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "survey",
                                                                  OutboxMessage.customer_id == cid))
        assert survey is not None and survey.status == "sent"
        assert (await session.get(Order, order.id)).source == "dialog"  # type: ignore[union-attr]
