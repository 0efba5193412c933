"""Dialog state (aiogram FSM) kept in the database, so dialogs survive restarts.

Inside an update the state goes through the update's unit of work
(``storage.unit_of_work``): read once, cached, written once when the update
commits. Outside one (tests of the storage contract, jobs) each call uses
the session of the update, or a short one of its own.

Data goes through JSON, like aiogram's RedisStorage, so state that would not
survive a restart (a datetime, an object) fails at once instead of later.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from aiogram.exceptions import DataNotDictLikeError
from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, DefaultKeyBuilder, KeyBuilder, StateType, StorageKey
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock, SystemClock
from storage.db import current_session
from storage.models import DialogState
from storage.unit_of_work import current_uow


class SQLStorage(BaseStorage):
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        key_builder: KeyBuilder | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.key_builder = key_builder or DefaultKeyBuilder(with_destiny=True)
        self.clock = clock or SystemClock()

    def _key(self, key: StorageKey) -> str:
        return self.key_builder.build(key)

    @asynccontextmanager
    async def _session(self, write: bool) -> AsyncIterator[AsyncSession]:
        """The update's session when inside one, else a short one of our own."""
        shared = current_session.get()
        if shared is not None:
            yield shared
            if write:
                await shared.flush()
            return
        async with self.sessionmaker() as own:
            yield own
            if write:
                await own.commit()

    async def _upsert(self, key: StorageKey, **values: Any) -> None:
        async with self._session(write=True) as session:
            row = await session.get(DialogState, self._key(key))
            is_new = row is None
            if row is None:
                row = DialogState(key=self._key(key), state=None, data="{}")
            for name, value in values.items():
                setattr(row, name, value)
            row.updated_at = self.clock.now()
            empty = row.state is None and row.data == "{}"
            if empty and not is_new:
                await session.delete(row)  # nothing left to remember
            elif not empty and is_new:
                session.add(row)

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        value = state.state if isinstance(state, State) else state
        uow = current_uow.get()
        if uow is not None:
            await uow.set_state(self._key(key), value)
            return
        await self._upsert(key, state=value)

    async def get_state(self, key: StorageKey) -> str | None:
        uow = current_uow.get()
        if uow is not None:
            return (await uow.state(self._key(key))).state
        async with self._session(write=False) as session:
            return await session.scalar(select(DialogState.state).where(DialogState.key == self._key(key)))

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        if not isinstance(data, dict):
            msg = f"Data must be a dict or dict-like object, got {type(data).__name__}"
            raise DataNotDictLikeError(msg)  # as MemoryStorage and RedisStorage do
        uow = current_uow.get()
        if uow is not None:
            await uow.set_data(self._key(key), data)
            return
        await self._upsert(key, data=json.dumps(data, ensure_ascii=False))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        uow = current_uow.get()
        if uow is not None:
            return json.loads((await uow.state(self._key(key))).data)
        async with self._session(write=False) as session:
            raw = await session.scalar(select(DialogState.data).where(DialogState.key == self._key(key)))
        return json.loads(raw) if raw else {}

    async def clear_all(self) -> None:
        """Drop every dialog (used by tests)."""
        async with self._session(write=True) as session:
            await session.execute(delete(DialogState))

    async def close(self) -> None:
        # The engine belongs to the Database object, which disposes it.
        return None
