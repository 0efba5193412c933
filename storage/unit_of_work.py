"""The unit of work of one update: read once, decide, write once, commit.

One :class:`UnitOfWork` per update (opened by the update pipeline,
``bot.pipeline``). It holds the update's database session and a cache of the
dialog states the update touches, so aiogram's FSM can read and write state
as often as a handler likes while the database sees one read and one write:

* **load** — the person's customer file and their dialog state, together, in
  one ``SELECT`` (:meth:`load`); on SQLite through the plain driver
  (``Database.run_sync``), on PostgreSQL on the session. The same row brings
  the staff chat's language and the person's own staff language (if they are
  staff), left in the session's cache for ``Repos.staff_languages``: a card
  posted to the staff chat costs no statement of its own to pick its language.
* **decide** — the handler runs. Its own repository calls go through
  :attr:`session` as before.
* **write once** — :meth:`commit` writes the changed dialog states (an upsert,
  or a delete when nothing is left), marks the update handled in the inbox when it
  came through one, and commits. When the handler wrote nothing else, this
  runs on SQLite as one function in the database thread; otherwise in the
  session's own transaction, so state and data commit together.

The pipeline calls :meth:`commit` before every Telegram call the handler
makes (see ``bot.pipeline.SendPath``): no transaction, and so no SQLite write
lock or PostgreSQL row lock, is ever held across a network call. Whatever the
handler writes after such a call goes into a short follow-up transaction.
"""

from __future__ import annotations

import json
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, bindparam, delete, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, aliased

from storage.db import Database
from storage.dialect import insert_for
from storage.models import Customer, DialogState, InboxUpdate, StaffLanguage
from storage.models.staff import STAFF_CHAT_KEY, member_key
from storage.repositories.staff_languages import remember

current_uow: ContextVar[UnitOfWork | None] = ContextVar("current_uow", default=None)

EMPTY = "{}"


@dataclass
class StateEntry:
    state: str | None
    data: str  # JSON text, as stored
    in_db: bool
    dirty: bool = False

    @property
    def empty(self) -> bool:
        return self.state is None and self.data == EMPTY


class UnitOfWork:
    def __init__(self, db: Database, now: datetime) -> None:
        self.db = db
        self.now = now
        self.session: AsyncSession = db.session()
        self.states: dict[str, StateEntry] = {}
        self.customer: Customer | None = None
        self.inbox_update_id: int | None = None
        # Something of this update is committed (the people involved must not be told "nothing was saved").
        self.committed_something = False
        # Telegram calls kept until the commit (bot.pipeline.SendPath), and whether they are being made.
        self.outgoing: list[tuple[Any, Any]] = []
        self.sending = False
        # Set by the pipeline's middlewares: the person's texts, and the handler that took the update.
        self.texts: Any = None
        self.handler_name: str | None = None

    # ----- reading -----------------------------------------------------------------------
    async def load(self, telegram_id: int | None, state_key: str | None) -> Customer | None:
        """The customer with this Telegram id and the dialog state under this key: one statement."""
        params = _load_params(telegram_id, state_key)
        if self.db.sync_engine is not None:
            customer, row, languages = await self.db.run_sync(lambda engine: _load_sync(engine, params))
            if customer is not None:
                self.session.add(customer)  # no SQL: handlers may change it through repositories
        else:
            customer, row, languages = _split((await self.session.execute(_LOAD, params)).first())
        known = {STAFF_CHAT_KEY: languages[0]}
        if telegram_id is not None:
            known[params["staff_key"]] = languages[1]
        remember(self.session.info, known)
        if state_key is not None:
            self.states[state_key] = _entry(row)
        self.customer = customer
        return customer

    async def state(self, key: str) -> StateEntry:
        entry = self.states.get(key)
        if entry is None:
            row = (await self.session.execute(
                select(DialogState.state, DialogState.data).where(DialogState.key == key))).first()
            entry = self.states[key] = _entry(row)
        return entry

    # ----- changing dialog state ------------------------------------------------------------
    async def set_state(self, key: str, state: str | None) -> None:
        entry = await self.state(key)
        if entry.state != state:
            entry.state, entry.dirty = state, True

    async def set_data(self, key: str, data: dict[str, Any]) -> None:
        entry = await self.state(key)
        text = json.dumps(data, ensure_ascii=False)
        if entry.data != text:
            entry.data, entry.dirty = text, True

    # ----- writing -------------------------------------------------------------------------
    @property
    def session_in_use(self) -> bool:
        """The handler talked to the database through the session, or has changes for it."""
        s = self.session
        return bool(s.info.get("began") or s.new or s.dirty or s.deleted)

    @property
    def pending(self) -> bool:
        return self.session_in_use or self.inbox_update_id is not None or any(e.dirty for e in self.states.values())

    async def commit(self) -> None:
        """Write the changed states (and drop the inbox row) and commit; a no-op when nothing changed."""
        if not self.pending:
            return
        dirty = [(key, entry) for key, entry in self.states.items() if entry.dirty]
        inbox_id = self.inbox_update_id
        if self.session_in_use or self.db.sync_engine is None:
            for key, entry in dirty:
                await self.session.execute(*_state_write(self.db.dialect, key, entry, self.now))
            if inbox_id is not None:
                await self.session.execute(*mark_handled(inbox_id, self.now))
            await self.session.commit()
        else:
            statements = [_state_write("sqlite", key, entry, self.now) for key, entry in dirty]
            if inbox_id is not None:
                statements.append(mark_handled(inbox_id, self.now))
            await self.db.run_sync(lambda engine: _write_sync(engine, statements))
        self.session.info.pop("began", None)
        for _key, entry in dirty:
            entry.dirty = False
            entry.in_db = not entry.empty
        self.inbox_update_id = None
        self.committed_something = True

    async def note_unreachable(self, telegram_id: int) -> None:
        """A private chat refused a message (blocked, deactivated): its customer is unreachable (own transaction)."""
        async with self.db.session() as session:
            await session.execute(
                update(Customer).where(Customer.telegram_id == telegram_id, Customer.reachable.is_(True))
                .values(reachable=False, unreachable_since=self.now))
            await session.commit()

    async def rollback(self) -> None:
        await self.session.rollback()
        self.session.info.pop("began", None)
        for entry in self.states.values():
            entry.dirty = False

    async def close(self) -> None:
        await self.session.close()


_MARK_HANDLED = (update(InboxUpdate).where(InboxUpdate.update_id == bindparam("handled_id"))
                 .values(handled_at=bindparam("when_handled"), payload="", lane=0))


def mark_handled(update_id: int, now: datetime) -> tuple[Any, dict[str, Any]]:
    """The inbox row of a handled update keeps only its id (duplicates stay no-ops; no personal data kept:
    not the update, not even the chat id it came from). A statement and its parameters."""
    return _MARK_HANDLED, {"handled_id": update_id, "when_handled": now}


def _entry(row: Any) -> StateEntry:
    if row is None:
        return StateEntry(state=None, data=EMPTY, in_db=False)
    return StateEntry(state=row[0], data=row[1] or EMPTY, in_db=True)


# The statements of every update, built once (building one costs more than running it on SQLite);
# values travel as bound parameters.
_DELETE_STATE = delete(DialogState).where(DialogState.key == bindparam("key"))
_UPSERT_STATE: dict[str, Any] = {}
# Telegram ids and storage keys are never these: "no such row" for an update without a user or a dialog key.
_NO_USER = -1
_NO_KEY = ""


def _upsert_state(dialect: str) -> Any:
    statement = _UPSERT_STATE.get(dialect)
    if statement is None:
        insert = insert_for(dialect)
        values = insert(DialogState).values(key=bindparam("key"), state=bindparam("state"), data=bindparam("data"),
                                            updated_at=bindparam("updated_at"))
        statement = _UPSERT_STATE[dialect] = values.on_conflict_do_update(
            index_elements=[DialogState.key],
            set_={"state": values.excluded.state, "data": values.excluded.data,
                  "updated_at": values.excluded.updated_at},
        )
    return statement


def _state_write(dialect: str, key: str, entry: StateEntry, now: datetime) -> tuple[Any, dict[str, Any]]:
    if entry.empty:
        return _DELETE_STATE, {"key": key}
    return _upsert_state(dialect), {"key": key, "state": entry.state, "data": entry.data, "updated_at": now}


_ONE = select(literal(1).label("one")).subquery()
_GROUP_LANGUAGE = aliased(StaffLanguage, name="group_language")
_OWN_LANGUAGE = aliased(StaffLanguage, name="own_language")
# ``(customer or None, state, data, staff chat's language, own staff language)`` in one row, whichever exist.
_LOAD = (select(Customer, DialogState.state, DialogState.data, _GROUP_LANGUAGE.language, _OWN_LANGUAGE.language)
         .select_from(_ONE)
         .outerjoin(Customer, Customer.telegram_id == bindparam("telegram_id"))
         .outerjoin(DialogState, DialogState.key == bindparam("key"))
         .outerjoin(_GROUP_LANGUAGE, _GROUP_LANGUAGE.key == bindparam("group_key"))
         .outerjoin(_OWN_LANGUAGE, _OWN_LANGUAGE.key == bindparam("staff_key")))


def _load_params(telegram_id: int | None, state_key: str | None) -> dict[str, Any]:
    return {"telegram_id": _NO_USER if telegram_id is None else telegram_id,
            "key": _NO_KEY if state_key is None else state_key,
            "group_key": STAFF_CHAT_KEY,
            "staff_key": _NO_KEY if telegram_id is None else member_key(telegram_id)}


def _split(row: Any) -> tuple[Customer | None, Any, tuple[str | None, str | None]]:
    if row is None:
        return None, None, (None, None)
    customer, state, data, group_language, own_language = row
    return (customer, ((state, data) if (state is not None or data is not None) else None),
            (group_language, own_language))


def _load_sync(engine: Engine, params: dict[str, Any]) -> tuple[Customer | None, Any, tuple[str | None, str | None]]:
    with Session(engine, expire_on_commit=False) as session:
        customer, row, languages = _split(session.execute(_LOAD, params).first())
        if customer is not None:
            session.expunge(customer)
        session.rollback()
    return customer, row, languages


def _write_sync(engine: Engine, statements: list[tuple[Any, dict[str, Any]]]) -> None:
    with engine.begin() as connection:
        for statement, params in statements:
            connection.execute(statement, params)
