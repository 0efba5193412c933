"""The whole bot on the server backends: PostgreSQL as the database, Redis for
dialog state. Skipped, with the reason, when the server does not answer."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import date

import pytest
from aiogram.fsm.storage.redis import RedisStorage
from sqlalchemy import select

from bot.app import App, create_app
from bot.clock import ManualClock
from bot.config import Settings
from bot.fake_telegram import FakeTelegram, FakeUser
from storage.models import Customer, DialogState
from tests.conftest import START, register, restart
from tests.servers import drop_postgres, postgres_url, redis_delete_prefix, redis_url

NAME = "<b>Li & Co</b> 🍚"


async def row(app: App, telegram_id: int) -> Customer | None:
    async with app.db.session() as session:
        return await session.scalar(select(Customer).where(Customer.telegram_id == telegram_id))


@pytest.fixture
async def pg_app(settings: Settings, clock: ManualClock, world: FakeTelegram) -> AsyncIterator[App]:
    url = postgres_url(migrated=True)
    app = create_app(settings.model_copy(update={"database_url": url}), clock=clock, session=world.session())
    world.attach(app.dispatcher, app.bot)
    yield app
    await app.close()
    drop_postgres(url)


async def test_postgres_registers_a_customer(pg_app: App, world: FakeTelegram) -> None:
    assert pg_app.db.dialect == "postgresql"
    mei = FakeUser(world, 100001, "Mei")
    await register(mei, NAME, birthday="1990-03-25", household="3", address="12 Rice Street")
    assert NAME in mei.last().text
    customer = await row(pg_app, 100001)
    assert customer is not None
    assert (customer.name, customer.birthday, customer.household_size, customer.care_consent) == (
        NAME, date(1990, 3, 25), 3, True)
    assert customer.phone is not None and customer.phone.startswith("+86")
    assert customer.registered_at == START and customer.registered_at.tzinfo is not None  # UTC, aware
    await mei.send("/profile")
    assert NAME in mei.last().text


async def test_postgres_keeps_a_dialog_across_a_restart(pg_app: App, world: FakeTelegram) -> None:
    mei = FakeUser(world, 100002, "Mei")
    await mei.send("/start")
    await mei.send(NAME)
    async with pg_app.db.session() as session:
        states = (await session.scalars(select(DialogState.state))).all()
    assert states == ["RegistrationForm:phone"]
    app = await restart(pg_app, world)
    try:
        await mei.send_contact()
        await mei.press("Skip")
        await mei.press("Skip")
        await mei.press("Skip")
        await mei.press("No")
        await mei.press("Confirm")
        customer = await row(app, 100002)
        assert customer is not None and customer.name == NAME and customer.care_consent is False
    finally:
        pg_app.db = app.db  # the fixture closes what is open now
        pg_app.bot = app.bot
        pg_app.storage = app.storage


@pytest.fixture
async def redis_app(settings: Settings, clock: ManualClock, world: FakeTelegram) -> AsyncIterator[App]:
    app = create_app(settings.model_copy(update={"redis_url": redis_url()}), clock=clock, session=world.session())
    world.attach(app.dispatcher, app.bot)
    yield app
    await app.close()


async def test_redis_keeps_a_dialog_across_a_restart(redis_app: App, world: FakeTelegram) -> None:
    assert isinstance(redis_app.storage, RedisStorage)
    user_id = 10**9 + uuid.uuid4().int % 10**9  # other test runs may share the Redis database
    mei = FakeUser(world, user_id, "Mei")
    try:
        await mei.send("/start")
        await mei.send(NAME)
        app = await restart(redis_app, world)
        try:
            await mei.send_contact()  # the dialog went on where it was: the phone step
            await mei.press("Skip")
            await mei.press("Skip")
            await mei.press("Skip")
            await mei.press("Yes")
            await mei.press("Confirm")
            customer = await row(app, user_id)
            assert customer is not None and customer.name == NAME
            async with app.db.session() as session:  # state lives in Redis, not in the database
                assert (await session.scalars(select(DialogState))).all() == []
        finally:
            redis_app.db, redis_app.bot, redis_app.storage = app.db, app.bot, app.storage
    finally:
        redis_delete_prefix(f"fsm:{user_id}:")
