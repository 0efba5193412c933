"""The whole bot with dialog state in Redis (on each database backend). Skipped,
with the reason, when Redis does not answer. The bot on PostgreSQL is the whole
suite's ``[postgresql]`` half (``tests/conftest.py``)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from aiogram.fsm.storage.redis import RedisStorage
from sqlalchemy import select

from bot.app import App, create_app
from bot.clock import ManualClock
from bot.config import Settings
from bot.fake_telegram import FakeTelegram, FakeUser
from storage.models import Customer, DialogState
from tests.conftest import restart
from tests.servers import redis_delete_prefix, redis_url

NAME = "<b>Li & Co</b> 🍚"


async def row(app: App, telegram_id: int) -> Customer | None:
    async with app.db.session() as session:
        return await session.scalar(select(Customer).where(Customer.telegram_id == telegram_id))


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
