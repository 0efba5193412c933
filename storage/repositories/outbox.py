from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Select, TableClause, and_, column, func, or_, select, table, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from storage.dialect import insert_for, is_sqlite
from storage.models.base import SQLiteUTCText, UTCDateTime
from storage.models.outbox import CATEGORY_CARE, CATEGORY_SERVICE, PRIORITY_SERVICE, OutboxMessage

# Statuses counted as "went out" for caps and attribution (uncertain: it may have).
SENT_LIKE = ("sent", "uncertain")

# Due rows the delivery look-up ranks at most (the oldest first).
DUE_WINDOW = 1000

# Rows written by this process so far: the delivery worker under ``advance``
# skips its look-up when nothing was written and nothing fell due meanwhile.
WRITES = [0]


_JSON_COLUMNS = tuple(c.name for c in OutboxMessage.__table__.c if isinstance(c.type, JSON))


def _bulk_table(sqlite: bool) -> TableClause:
    """The outbox as :meth:`OutboxRepo.add_many` writes it: the same columns, the JSON ones untyped (they
    are given as their text) and, on SQLite, the datetimes bound by SQLiteUTCText (UTCDateTime's text
    and checks in one call)."""
    def type_of(c: Any) -> Any:
        if c.name in _JSON_COLUMNS:
            return None
        return SQLiteUTCText() if sqlite and isinstance(c.type, UTCDateTime) else c.type

    return table("outbox", *(column(c.name, type_of(c)) for c in OutboxMessage.__table__.c))


_BULK = {True: _bulk_table(sqlite=True), False: _bulk_table(sqlite=False)}


def json_text(value: Any) -> str:
    """What a JSON column of the outbox stores for ``value``: its text as SQLAlchemy's JSON type writes it
    with the engine's serializer (``json.dumps``, which the engine keeps; None is ``null``).

    :meth:`OutboxRepo.add_many` takes a JSON column given as this text: the care planner writes the same
    few button sets to tens of thousands of rows, and a row of plain values is one Python's collector
    does not track (see :meth:`OutboxRepo.add_many`).
    """
    return json.dumps(value)


class OutboxRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def enqueue(self, **fields: Any) -> bool:
        """Write one outbox row; the same ``dedupe_key`` twice is a no-op.

        Returns True when a row was written (see :meth:`add` for the fields).
        """
        return await self.add(**fields) is not None

    async def add(
        self,
        *,
        dedupe_key: str,
        kind: str,
        chat_id: int,
        text: str,
        now: datetime,
        not_before: datetime | None = None,
        category: str = CATEGORY_SERVICE,
        priority: int = PRIORITY_SERVICE,
        customer_id: int | None = None,
        reply_markup: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
        ref_order_id: int | None = None,
        ref_ticket_id: int | None = None,
        ref_product_id: int | None = None,
        expires_at: datetime | None = None,
    ) -> int | None:
        """Write one outbox row and return its id; None when the key was written before.

        Uses INSERT .. ON CONFLICT DO NOTHING, which SQLite and PostgreSQL
        both speak (the one dialect switch).
        """
        values = dict(
            dedupe_key=dedupe_key,
            kind=kind,
            category=category,
            priority=priority,
            chat_id=chat_id,
            customer_id=customer_id,
            text=text,
            reply_markup=reply_markup,
            options=options,
            ref_order_id=ref_order_id,
            ref_ticket_id=ref_ticket_id,
            ref_product_id=ref_product_id,
            expires_at=expires_at,
            not_before=not_before or now,
            status="pending",
            attempts=0,
            created_at=now,
        )
        insert = insert_for(self.session)
        stmt = (
            insert(OutboxMessage)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
            .returning(OutboxMessage.id)
        )
        result = await self.session.execute(stmt)
        row_id = result.scalar_one_or_none()
        if row_id is not None:
            WRITES[0] += 1
        return row_id

    async def add_many(self, rows: Sequence[dict[str, Any]], chunk: int = 1000) -> dict[str, int]:
        """Write many rows (the planner's batch): INSERT .. ON CONFLICT DO NOTHING, in chunks.

        Every dict has the same keys (all the NOT NULL columns: no column defaults are filled in); a
        key written before is left alone. Returns key → id of the rows this call wrote.

        A JSON column (``reply_markup``, ``options``: an object or None) may be given as its text,
        :func:`json_text` — the same text the column would store; any other value is dumped here, once
        per distinct object. A row whose values are all plain (text, numbers, datetimes, None) is not
        tracked by Python's collector: the planner's tens of thousands of rows, held while they are
        written, are then never promoted to the oldest generation, whose full collections walk every
        object of the bot (one full collection costs about as much as writing 4,000 rows).
        """
        if not rows:
            return {}
        insert = insert_for(self.session)
        target = _BULK[is_sqlite(self.session)]
        rows = self._json_as_text(rows)
        # One executemany per chunk: SQLAlchemy's "insertmanyvalues" sends it as multi-row INSERTs
        # (as many rows per statement as the driver's parameter limit allows), RETURNING included.
        stmt = (insert(target).on_conflict_do_nothing(index_elements=["dedupe_key"])
                .returning(target.c.dedupe_key, target.c.id))
        written: dict[str, int] = {}
        for start in range(0, len(rows), chunk):
            result = await self.session.execute(stmt, list(rows[start:start + chunk]))
            written.update(result.all())
        WRITES[0] += len(written)
        return written

    def _json_as_text(self, rows: Sequence[dict[str, Any]]) -> Sequence[dict[str, Any]]:
        """``rows`` with every JSON value as its text: a row given so is used as it is; any other is
        copied, each distinct JSON object dumped once by the JSON column's own bind processor."""
        names = [name for name in _JSON_COLUMNS if name in rows[0]]
        if all(isinstance(row[name], str) for row in rows for name in names):
            return rows
        assert self.session.bind is not None
        dialect = self.session.bind.dialect
        table_ = OutboxMessage.__table__
        dump = {name: table_.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names}
        # By identity, for this call only (the rows keep every value alive meanwhile).
        seen: dict[int, str] = {}

        def text_of(name: str, value: Any) -> Any:
            if isinstance(value, str):
                return value
            text = seen.get(id(value))
            if text is None:
                process = dump[name]
                text = seen[id(value)] = process(value) if process is not None else value
            return text

        # Built item by item (not copied, which would keep the original's tracking): plain values, untracked.
        return [{key: text_of(key, value) if key in names else value for key, value in row.items()} for row in rows]

    async def by_message(self, chat_id: int, message_id: int) -> OutboxMessage | None:
        """The outbox row that became this Telegram message."""
        return await self.session.scalar(
            select(OutboxMessage).where(OutboxMessage.chat_id == chat_id,
                                        OutboxMessage.telegram_message_id == message_id)
            .order_by(OutboxMessage.id.desc()).limit(1)
        )

    async def by_key(self, dedupe_key: str) -> OutboxMessage | None:
        return await self.session.scalar(select(OutboxMessage).where(OutboxMessage.dedupe_key == dedupe_key))

    async def skip_pending_care(self, customer_id: int, reason: str) -> int:
        """Skip every pending care message of a customer (e.g. after /stop)."""
        result = await self.session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.customer_id == customer_id,
                OutboxMessage.category == "care",
                OutboxMessage.status == "pending",
            )
            .values(status="skipped", skip_reason=reason)
        )
        return result.rowcount or 0

    async def skip_expired_care(self, now: datetime) -> int:
        """Skip the pending care messages whose use ended by ``now`` (``expires_at``); how many."""
        result = await self.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.status == "pending", OutboxMessage.category == CATEGORY_CARE,
                   OutboxMessage.expires_at.is_not(None), OutboxMessage.expires_at <= now)
            .values(status="skipped", skip_reason="expired")
            .execution_options(synchronize_session=False)
        )
        return result.rowcount or 0

    # ----- delivery (jobs.delivery) ------------------------------------------------------
    # Each of these is one short statement; the worker commits after each, so
    # a crash between "sending" and "sent" leaves the row "sending".
    # Claims: a worker (``claimed_by``: its replica's id) reserves the rows of its
    # next batch while they are still pending, then takes one at a time to
    # "sending". A claim holds until ``claim_expires_at``; after that the row is
    # anybody's again (pending) or may be recovered (sending).

    def _due_ids(self, now: datetime, limit: int, exclude_chats: Collection[int], *extra: Any) -> Select[Any]:
        """Ids of the next due rows, each chat's next row only: service before care, then the chat
        with the most rows waiting first (it needs the longest: one a second), then oldest first.

        So a chat with many rows neither holds up the others nor is left for the end, when
        it alone would set the pace. The ranking looks at the oldest :data:`DUE_WINDOW` due
        rows only, so its cost stays bounded.
        """
        window = (
            select(OutboxMessage.id, OutboxMessage.chat_id, OutboxMessage.priority, OutboxMessage.not_before)
            .where(OutboxMessage.status == "pending", OutboxMessage.not_before <= now, *extra)
            .order_by(OutboxMessage.priority, OutboxMessage.not_before, OutboxMessage.id)
            .limit(DUE_WINDOW)
        )
        if exclude_chats:
            window = window.where(OutboxMessage.chat_id.notin_(list(exclude_chats)))
        w = window.subquery()
        rank = func.row_number().over(partition_by=w.c.chat_id, order_by=(w.c.priority, w.c.not_before, w.c.id))
        waiting = func.count().over(partition_by=w.c.chat_id)
        ranked = select(w.c.id, w.c.priority, w.c.not_before, rank.label("rank"), waiting.label("waiting")).subquery()
        return (select(ranked.c.id, ranked.c.priority, ranked.c.waiting, ranked.c.not_before).where(ranked.c.rank == 1)
                .order_by(ranked.c.priority, ranked.c.waiting.desc(), ranked.c.not_before, ranked.c.id).limit(limit))

    async def due(self, now: datetime, limit: int, exclude_chats: Collection[int] = ()) -> list[OutboxMessage]:
        """Pending rows whose time has come, in turn (see :meth:`_due_ids`)."""
        turn = self._due_ids(now, limit, exclude_chats).subquery()
        return list(await self.session.scalars(
            select(OutboxMessage).join(turn, OutboxMessage.id == turn.c.id)
            .order_by(turn.c.priority, turn.c.waiting.desc(), turn.c.not_before, turn.c.id)
        ))

    async def reserve(self, now: datetime, limit: int, exclude_chats: Collection[int], worker: str,
                      until: datetime) -> list[OutboxMessage]:
        """:meth:`due` for one of several workers: the rows come back reserved for ``worker``.

        Rows another worker reserved (and whose claim holds) are passed over, as
        are chats of which another worker holds rows (so one chat's messages go
        through one worker, in order and paced). ``FOR UPDATE SKIP LOCKED`` on
        PostgreSQL: two workers reserving at the same moment get different rows.
        """
        other = aliased(OutboxMessage)
        taken_by_other = (
            select(other.id).where(
                other.chat_id == OutboxMessage.chat_id, other.status.in_(("pending", "sending")),
                other.claimed_by.is_not(None), other.claimed_by != worker, other.claim_expires_at > now,
            ).exists()
        )
        free = or_(OutboxMessage.claimed_by.is_(None), OutboxMessage.claimed_by == worker,
                   OutboxMessage.claim_expires_at <= now)
        turn = self._due_ids(now, limit, exclude_chats, free, ~taken_by_other).subquery()
        order = list(await self.session.scalars(select(turn.c.id)))
        if not order:
            return []
        locked = (select(OutboxMessage.id).where(OutboxMessage.id.in_(order), OutboxMessage.status == "pending", free)
                  .with_for_update(skip_locked=True))
        result = await self.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(locked.scalar_subquery()))
            .values(claimed_by=worker, claim_expires_at=until)
            .returning(OutboxMessage)
            .execution_options(synchronize_session=False)
        )
        position = {row_id: n for n, row_id in enumerate(order)}
        return sorted(result.scalars(), key=lambda row: position[row.id])

    async def release_reserved(self, worker: str) -> int:
        """Pending rows this worker reserved but did not take: anybody's again."""
        result = await self.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.claimed_by == worker, OutboxMessage.status == "pending")
            .values(claimed_by=None, claim_expires_at=None)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount or 0

    async def next_due_at(self) -> datetime | None:
        return await self.session.scalar(
            select(func.min(OutboxMessage.not_before)).where(OutboxMessage.status == "pending")
        )

    async def claim(self, row_id: int, now: datetime, worker: str | None = None,
                    until: datetime | None = None) -> bool:
        """pending → sending (compare-and-set: False when someone else took it or holds its claim)."""
        stmt = update(OutboxMessage).where(OutboxMessage.id == row_id, OutboxMessage.status == "pending")
        if worker is not None:
            stmt = stmt.where(or_(OutboxMessage.claimed_by.is_(None), OutboxMessage.claimed_by == worker,
                                  OutboxMessage.claim_expires_at <= now))
        result = await self.session.execute(
            stmt.values(status="sending", attempts=OutboxMessage.attempts + 1, sent_at=now,
                        claimed_by=worker, claim_expires_at=until)
            .execution_options(synchronize_session=False)
        )
        return (result.rowcount or 0) == 1

    async def unclaim(self, row_id: int, worker: str | None) -> bool:
        """sending → pending, as if never taken (the chat turned out busy with another replica)."""
        return await self._set(row_id, "sending", worker, status="pending", sent_at=None,
                               attempts=OutboxMessage.attempts - 1, claimed_by=None, claim_expires_at=None)

    async def _set(self, row_id: int, expected: str | Sequence[str], worker: str | None = None,
                   **values: Any) -> bool:
        """Move a row on from ``expected``; a row recovery marked "uncertain" while ``worker``
        was still sending it is that worker's to finish too."""
        expected = (expected,) if isinstance(expected, str) else tuple(expected)
        condition = OutboxMessage.status.in_(expected)
        if worker is not None and "sending" in expected:
            condition = or_(condition, and_(OutboxMessage.status == "uncertain",
                                            OutboxMessage.claimed_by == worker))
        result = await self.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row_id, condition)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return (result.rowcount or 0) == 1

    async def mark_sent(self, row_id: int, now: datetime, message_id: int | None,
                        attribute_until: datetime | None = None, worker: str | None = None) -> bool:
        return await self._set(row_id, "sending", worker, status="sent", sent_at=now,
                               telegram_message_id=message_id, attribute_until=attribute_until)

    async def mark_failed(self, row_id: int, error: str, worker: str | None = None) -> bool:
        return await self._set(row_id, ("sending", "pending"), worker, status="failed", last_error=error[:1000],
                               sent_at=None)

    async def mark_uncertain(self, row_id: int, error: str, attribute_until: datetime | None = None,
                             worker: str | None = None) -> bool:
        return await self._set(row_id, "sending", worker, status="uncertain", last_error=error[:1000],
                               attribute_until=attribute_until)

    async def retry_later(self, row_id: int, not_before: datetime, error: str | None, *,
                          count_attempt: bool = True, worker: str | None = None) -> bool:
        """Back to pending, to be tried again at ``not_before``."""
        values: dict[str, Any] = dict(status="pending", not_before=not_before, sent_at=None,
                                      claimed_by=None, claim_expires_at=None)
        if error is not None:
            values["last_error"] = error[:1000]
        if not count_attempt:
            values["attempts"] = OutboxMessage.attempts - 1
        return await self._set(row_id, "sending", worker, **values)

    async def hold(self, row_id: int, until: datetime, reason: str) -> bool:
        """A pending row waits (quiet hours, caps) until ``until``."""
        return await self._set(row_id, "pending", not_before=until, skip_reason=reason,
                               claimed_by=None, claim_expires_at=None)

    async def skip(self, row_id: int, reason: str) -> bool:
        return await self._set(row_id, "pending", status="skipped", skip_reason=reason)

    async def recover_interrupted(self, now: datetime | None = None, worker: str | None = None) -> int:
        """Rows left in "sending" by a crash: they may or may not have gone out.

        Only rows whose claim has expired (their worker is gone or hopelessly
        stuck), and rows claimed by ``worker`` itself (an earlier life of this
        worker, on start). Without ``now``: every "sending" row.
        """
        stmt = update(OutboxMessage).where(OutboxMessage.status == "sending")
        if now is not None:
            stale = or_(OutboxMessage.claim_expires_at.is_(None), OutboxMessage.claim_expires_at <= now)
            stmt = stmt.where(or_(stale, OutboxMessage.claimed_by == worker) if worker is not None else stale)
        result = await self.session.execute(
            stmt.values(status="uncertain", last_error="interrupted while sending")
            .execution_options(synchronize_session=False)
        )
        return result.rowcount or 0

    async def count_by_status(self) -> list[tuple[str, str, int]]:
        """(status, category, rows) for the metrics' backlog gauge."""
        result = await self.session.execute(
            select(OutboxMessage.status, OutboxMessage.category, func.count())
            .group_by(OutboxMessage.status, OutboxMessage.category)
        )
        return [(status, category, count) for status, category, count in result.all()]

    async def care_sent_times(self, customer_id: int, since: datetime,
                              exclude_id: int | None = None) -> list[datetime]:
        """When this customer's care messages went out (or may have, or are going out now), since ``since``.

        Rows a worker is sending count too (their ``sent_at`` is the claim's
        moment): two replicas never both fill the last place under a cap.
        """
        stmt = select(OutboxMessage.sent_at).where(
            OutboxMessage.customer_id == customer_id,
            OutboxMessage.category == CATEGORY_CARE,
            OutboxMessage.status.in_((*SENT_LIKE, "sending")),
            OutboxMessage.sent_at >= since,
        )
        if exclude_id is not None:
            stmt = stmt.where(OutboxMessage.id != exclude_id)
        rows = await self.session.scalars(stmt)
        return [r for r in rows if r is not None]

    async def skip_pending_care_of_chat(self, chat_id: int, reason: str) -> int:
        result = await self.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.chat_id == chat_id, OutboxMessage.category == CATEGORY_CARE,
                   OutboxMessage.status == "pending")
            .values(status="skipped", skip_reason=reason)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount or 0

    async def get(self, row_id: int) -> OutboxMessage | None:
        return await self.session.get(OutboxMessage, row_id)
