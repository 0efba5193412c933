"""One contract for every dialog-state storage (after aiogram's own storage tests).

The same class runs against aiogram's MemoryStorage, our SQLStorage on SQLite
and on PostgreSQL, and aiogram's RedisStorage — the last two when their
servers answer (skipped with the reason otherwise, see tests/servers.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from aiogram.exceptions import DataNotDictLikeError
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.fsm.storage.base import BaseStorage, DefaultKeyBuilder, StorageKey
from aiogram.fsm.storage.memory import MemoryStorage
from sqlalchemy import func, select

from bot.clock import ManualClock
from storage.db import Database, current_session
from storage.dialog_state import SQLStorage
from storage.models import DialogState
from tests.conftest import START
from tests.servers import redis_delete_prefix, redis_prefix, redis_url, shared_postgres_url

BOT_ID = 42
KEY = StorageKey(bot_id=BOT_ID, chat_id=-100123, user_id=42)


class Form(StatesGroup):
    name = State()
    phone = State()


@dataclass
class Subject:
    """A storage under test, and how to open a second one on the same data."""

    kind: str
    storage: BaseStorage
    reopen: object = None  # () -> BaseStorage on the same data; None for MemoryStorage

    @property
    def json(self) -> bool:
        return self.kind != "memory"


@pytest.fixture
async def subject(request: pytest.FixtureRequest) -> AsyncIterator[Subject]:
    kind: str = request.param
    if kind == "memory":
        yield Subject(kind, MemoryStorage())
        return
    if kind in ("sqlite", "postgres"):
        # PostgreSQL: one migrated schema for the module, emptied after each test.
        url = request.getfixturevalue("db_url") if kind == "sqlite" else shared_postgres_url()
        databases: list[Database] = []

        def open_sql() -> SQLStorage:
            db = Database(url)
            databases.append(db)
            return SQLStorage(db.sessionmaker, clock=ManualClock(START))

        first = open_sql()
        await first.clear_all()
        yield Subject(kind, first, open_sql)
        await first.clear_all()
        for db in databases:
            await db.dispose()
        return
    assert kind == "redis"
    from aiogram.fsm.storage.redis import RedisStorage

    url, prefix = redis_url(), redis_prefix()
    opened: list[RedisStorage] = []

    def open_redis() -> RedisStorage:
        storage = RedisStorage.from_url(url, key_builder=DefaultKeyBuilder(prefix=prefix, with_destiny=True))
        opened.append(storage)
        return storage

    yield Subject(kind, open_redis(), open_redis)
    for storage in opened:
        await storage.close()
    redis_delete_prefix(prefix)


ALL = pytest.mark.parametrize("subject", ["memory", "sqlite", "postgres", "redis"], indirect=True)


@ALL
class TestStorageContract:
    async def test_state_starts_empty_is_set_and_cleared(self, subject: Subject) -> None:
        storage = subject.storage
        assert await storage.get_state(KEY) is None
        await storage.set_state(KEY, "Form:name")
        assert await storage.get_state(KEY) == "Form:name"
        await storage.set_state(KEY, Form.phone)  # a State object is stored as its name
        assert await storage.get_state(KEY) == "Form:phone"
        await storage.set_state(KEY, None)
        assert await storage.get_state(KEY) is None

    async def test_data_is_set_replaced_and_read(self, subject: Subject) -> None:
        storage = subject.storage
        assert await storage.get_data(KEY) == {}
        await storage.set_data(KEY, {"foo": "bar", "n": 3})
        assert await storage.get_data(KEY) == {"foo": "bar", "n": 3}
        await storage.set_data(KEY, {"baz": "spam"})  # replaces, does not merge
        assert await storage.get_data(KEY) == {"baz": "spam"}
        await storage.set_data(KEY, {})
        assert await storage.get_data(KEY) == {}

    async def test_update_data_merges_and_returns_the_result(self, subject: Subject) -> None:
        storage = subject.storage
        assert await storage.update_data(KEY, {"foo": "bar"}) == {"foo": "bar"}
        assert await storage.update_data(KEY, {"baz": "spam"}) == {"foo": "bar", "baz": "spam"}
        assert await storage.update_data(KEY, {"foo": "new"}) == {"foo": "new", "baz": "spam"}
        assert await storage.get_data(KEY) == {"foo": "new", "baz": "spam"}

    async def test_get_value(self, subject: Subject) -> None:
        storage = subject.storage
        assert await storage.get_value(KEY, "foo") is None
        assert await storage.get_value(KEY, "foo", "fallback") == "fallback"
        await storage.set_data(KEY, {"foo": "bar", "zero": 0})
        assert await storage.get_value(KEY, "foo") == "bar"
        assert await storage.get_value(KEY, "zero", 5) == 0  # a falsy value is a value
        assert await storage.get_value(KEY, "missing", "fallback") == "fallback"

    async def test_state_and_data_are_independent(self, subject: Subject) -> None:
        storage = subject.storage
        await storage.set_state(KEY, Form.name)
        await storage.set_data(KEY, {"lang": "zh"})
        await storage.set_state(KEY, None)  # leaving the dialog keeps the data
        assert await storage.get_data(KEY) == {"lang": "zh"}
        await storage.set_state(KEY, Form.phone)
        await storage.set_data(KEY, {})  # clearing data keeps the state
        assert await storage.get_state(KEY) == "Form:phone"

    async def test_keys_are_isolated(self, subject: Subject) -> None:
        storage = subject.storage
        others = [
            StorageKey(bot_id=BOT_ID, chat_id=KEY.chat_id, user_id=43),  # another person, same group
            StorageKey(bot_id=BOT_ID, chat_id=43, user_id=KEY.user_id),  # same person, private chat
            StorageKey(bot_id=BOT_ID, chat_id=KEY.chat_id, user_id=KEY.user_id, thread_id=7),  # a forum topic
            StorageKey(bot_id=BOT_ID, chat_id=KEY.chat_id, user_id=KEY.user_id, destiny="other"),
        ]
        await storage.set_state(KEY, Form.name)
        await storage.set_data(KEY, {"who": "first"})
        for other in others:
            assert await storage.get_state(other) is None, other
            assert await storage.get_data(other) == {}, other
        for n, other in enumerate(others):
            await storage.set_state(other, Form.phone)
            await storage.set_data(other, {"who": n})
        assert await storage.get_state(KEY) == "Form:name"
        assert await storage.get_data(KEY) == {"who": "first"}
        for n, other in enumerate(others):
            assert await storage.get_state(other) == "Form:phone"
            assert await storage.get_data(other) == {"who": n}

    async def test_destiny_separates_dialogs_of_one_person(self, subject: Subject) -> None:
        storage = subject.storage
        side = StorageKey(bot_id=BOT_ID, chat_id=KEY.chat_id, user_id=KEY.user_id, destiny="side")
        await storage.set_state(side, Form.phone)
        await storage.update_data(side, {"x": 1})
        assert await storage.get_state(KEY) is None
        assert await storage.get_data(KEY) == {}
        await storage.set_state(KEY, Form.name)
        await storage.set_state(side, None)
        assert await storage.get_state(KEY) == "Form:name"
        assert await storage.get_data(side) == {"x": 1}

    async def test_fsm_context_clear_forgets_state_and_data(self, subject: Subject) -> None:
        context = FSMContext(storage=subject.storage, key=KEY)
        await context.set_state(Form.name)
        await context.update_data(name="<b>Li & Co</b> 🍚")
        assert await context.get_state() == "Form:name"
        await context.clear()
        assert await context.get_state() is None
        assert await context.get_data() == {}

    async def test_returned_data_is_a_copy(self, subject: Subject) -> None:
        storage = subject.storage
        await storage.set_data(KEY, {"a": 1})
        data = await storage.get_data(KEY)
        data["b"] = 2
        assert await storage.get_data(KEY) == {"a": 1}

    async def test_round_trips_unicode_and_nested_values(self, subject: Subject) -> None:
        value = {
            "name": "<b>Li & Co</b> 🍚",
            "address": "上海市 浦东新区 \"quoted\" 'single' \\ back",
            "items": [{"sku": "RICE-5", "qty": 2}, {"sku": "水", "qty": 1}],
            "none": None, "flag": True, "price": 1250, "ratio": 0.5,
        }
        await subject.storage.set_data(KEY, value)
        assert await subject.storage.get_data(KEY) == value

    async def test_data_that_is_not_a_dict_is_refused(self, subject: Subject) -> None:
        with pytest.raises(DataNotDictLikeError):
            await subject.storage.set_data(KEY, [("a", 1)])  # type: ignore[arg-type]

    async def test_json_storages_refuse_what_json_cannot_keep(self, subject: Subject) -> None:
        if not subject.json:
            pytest.skip("MemoryStorage keeps Python objects as they are")
        storage = subject.storage
        await storage.set_data(KEY, {"kept": 1})
        with pytest.raises(TypeError):
            await storage.set_data(KEY, {"when": datetime(2026, 3, 2, tzinfo=UTC)})
        with pytest.raises(TypeError):
            await storage.update_data(KEY, {"obj": object()})
        assert await storage.get_data(KEY) == {"kept": 1}  # a refused write changes nothing

    async def test_survives_a_new_storage_on_the_same_data(self, subject: Subject) -> None:
        if subject.reopen is None:
            pytest.skip("MemoryStorage forgets everything when the bot restarts")
        await subject.storage.set_state(KEY, Form.phone)
        await subject.storage.set_data(KEY, {"name": "Mei"})
        again: BaseStorage = subject.reopen()  # type: ignore[operator]
        assert await again.get_state(KEY) == "Form:phone"
        assert await again.get_data(KEY) == {"name": "Mei"}


# ----- what only the database storage does -------------------------------------------------
SQL = pytest.mark.parametrize("subject", ["sqlite", "postgres"], indirect=True)


async def _rows(storage: SQLStorage) -> int:
    async with storage.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(DialogState)) or 0)


@SQL
class TestSQLStorage:
    async def test_an_empty_dialog_leaves_no_row(self, subject: Subject) -> None:
        storage = subject.storage
        assert isinstance(storage, SQLStorage)
        await storage.set_state(KEY, None)
        await storage.set_data(KEY, {})
        assert await _rows(storage) == 0
        await storage.set_state(KEY, Form.name)
        await storage.set_data(KEY, {"a": 1})
        assert await _rows(storage) == 1
        await storage.set_state(KEY, None)
        assert await _rows(storage) == 1  # the data is still there
        await storage.set_data(KEY, {})
        assert await _rows(storage) == 0

    async def test_row_records_the_clock(self, subject: Subject) -> None:
        storage = subject.storage
        assert isinstance(storage, SQLStorage)
        await storage.set_state(KEY, Form.name)
        async with storage.sessionmaker() as session:
            row = (await session.scalars(select(DialogState))).one()
        assert row.updated_at == START
        assert row.key == "fsm:-100123:42:default"

    async def test_writes_inside_an_update_share_its_transaction(self, subject: Subject) -> None:
        """Inside an update (DatabaseMiddleware) state commits or rolls back with everything else."""
        storage = subject.storage
        assert isinstance(storage, SQLStorage)
        async with storage.sessionmaker() as session:
            token = current_session.set(session)
            try:
                await storage.set_state(KEY, Form.name)
                await storage.update_data(KEY, {"name": "Mei"})
                assert await storage.get_state(KEY) == "Form:name"  # visible inside the update
                await session.rollback()  # the handler failed
            finally:
                current_session.reset(token)
        assert await storage.get_state(KEY) is None
        assert await storage.get_data(KEY) == {}

        async with storage.sessionmaker() as session:
            token = current_session.set(session)
            try:
                await storage.set_state(KEY, Form.phone)
                await session.commit()
            finally:
                current_session.reset(token)
        assert await storage.get_state(KEY) == "Form:phone"

    async def test_clear_all(self, subject: Subject) -> None:
        storage = subject.storage
        assert isinstance(storage, SQLStorage)
        await storage.set_state(KEY, Form.name)
        await storage.set_state(StorageKey(bot_id=BOT_ID, chat_id=1, user_id=1), Form.phone)
        await storage.clear_all()
        assert await _rows(storage) == 0
