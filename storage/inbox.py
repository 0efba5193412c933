"""The inbox: updates acknowledged to Telegram, kept until handled.

All of its SQL. Acceptance inserts with ``ON CONFLICT DO NOTHING`` on the
update id, so an update Telegram delivers twice (it retries when it did not
see our ``200``) is taken once; the handler's unit of work marks it handled
(``storage.unit_of_work.mark_handled``); handled ids are kept for a day (how
long Telegram keeps an undelivered update) and then pruned.

Webhook retries: https://core.telegram.org/bots/api#setwebhook; ``update_id`` is what tells
a repeated update: https://core.telegram.org/bots/api#update
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, select

from storage.db import Database
from storage.dialect import insert_for
from storage.models import InboxUpdate
from storage.unit_of_work import mark_handled

# Telegram keeps an undelivered update for 24 hours (https://core.telegram.org/bots/api#getting-updates).
KEEP_HANDLED = timedelta(hours=25)


@dataclass(frozen=True)
class Accepted:
    update_id: int
    lane: int
    payload: str


async def accept(db: Database, items: list[Accepted], now: datetime) -> list[Accepted]:
    """Store these updates; returns the ones not seen before (in the order given)."""
    items = list({item.update_id: item for item in items}.values())
    if not items:
        return []
    values = [{"update_id": i.update_id, "lane": i.lane, "payload": i.payload, "received_at": now} for i in items]
    insert = insert_for(db)
    statement = (insert(InboxUpdate).values(values)
                 .on_conflict_do_nothing(index_elements=[InboxUpdate.update_id])
                 .returning(InboxUpdate.update_id))
    if db.sync_engine is not None:
        def run(engine: Engine) -> set[int]:
            with engine.begin() as connection:
                return set(connection.scalars(statement))

        inserted = await db.run_sync(run)
    else:
        async with db.session() as session:
            inserted = set(await session.scalars(statement))
            await session.commit()
    return [item for item in items if item.update_id in inserted]


async def unhandled(db: Database) -> list[Accepted]:
    """Updates acknowledged but never handled (a crash), oldest first."""
    async with db.session() as session:
        rows = (await session.execute(
            select(InboxUpdate.update_id, InboxUpdate.lane, InboxUpdate.payload)
            .where(InboxUpdate.handled_at.is_(None)).order_by(InboxUpdate.update_id))).all()
    return [Accepted(update_id=r[0], lane=r[1], payload=r[2]) for r in rows]


async def give_up(db: Database, update_id: int, now: datetime) -> None:
    """Mark an update handled although its handler failed (its transaction was rolled back)."""
    async with db.session() as session:
        await session.execute(*mark_handled(update_id, now))
        await session.commit()


async def prune(db: Database, now: datetime) -> int:
    async with db.session() as session:
        result: Any = await session.execute(
            delete(InboxUpdate).where(InboxUpdate.handled_at < now - KEEP_HANDLED))
        await session.commit()
    return int(result.rowcount or 0)
