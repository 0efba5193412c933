"""The ticket queries on PostgreSQL: the whole cycle against a migrated schema
(skipped, with the reason, when PostgreSQL does not answer)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from bot.app import App, create_app
from bot.config import Settings
from bot.fake_telegram import FakeTelegram, FakeUser
from jobs.runner import run_job
from tests.conftest import START, STAFF_CHAT_ID, register
from tests.servers import drop_postgres, postgres_url
from tests.tickets_helpers import add_order, card, deliver, file_complaint, outbox, ticket


@pytest.fixture
async def pg_app(settings: Settings, clock, world: FakeTelegram) -> AsyncIterator[App]:  # type: ignore[no-untyped-def]
    url = postgres_url(migrated=True)
    app = create_app(settings.model_copy(update={"database_url": url}), clock=clock, session=world.session())
    world.attach(app.dispatcher, app.bot)
    yield app
    await app.close()
    drop_postgres(url)


async def test_cycle_on_postgres(pg_app: App, world: FakeTelegram) -> None:
    app = pg_app
    customer = FakeUser(world, 100001, "Mei")
    other = FakeUser(world, 100002, "Li")
    staff = FakeUser(world, 200001, "Sam", chat_id=STAFF_CHAT_ID)
    staff2 = FakeUser(world, 200002, "Kim", chat_id=STAFF_CHAT_ID)
    await register(customer, "Mei")
    await register(other, "Li")
    await add_order(app, customer.id, 9000, START - timedelta(days=10))
    await add_order(app, other.id, 1000, START - timedelta(days=10))
    await file_complaint(customer, "musty", category="Other", order="Not about an order")
    assert (await ticket(app)).priority == "high"  # class A by revenue
    await asyncio.gather(staff.press("Take", card(world)), staff2.press("Take", card(world)))
    assert (await ticket(app)).assignee_name in ("Sam", "Kim")
    await staff.send("Sorry!", reply_to=card(world).message_id)
    await customer.send("ok")
    assert (await ticket(app)).status == "in_progress"
    app.clock.advance(timedelta(hours=7))  # type: ignore[attr-defined]  # high: 8 h to resolve
    await run_job(app, "watch_tickets")
    assert [r.dedupe_key for r in await outbox(app, "sla:1:resolution")] == ["sla:1:resolution:warn"]
    await staff.press("Resolve", card(world))
    await staff.send("Replaced")
    await deliver(app)
    survey = customer.last_with_buttons()
    five = survey.buttons[4]["callback_data"]
    await customer.press_data(five, survey)
    await customer.press_data(five, survey)  # a double press
    assert "already rated" in customer.alerts()[-1]
    await customer.press("Skip")
    saved = await ticket(app)
    assert (saved.status, saved.rating) == ("closed", 5)
    await staff.send("/tickets")
    await staff.send("/ticket 1")
    assert "History of no. 1" in world.last(STAFF_CHAT_ID).text
    await staff.send("/customer mei")
    assert "Mei" in world.sent(STAFF_CHAT_ID)[-1].text
    await customer.send("/forget")
    await customer.press("Yes")
    assert (await ticket(app)).description == ""
