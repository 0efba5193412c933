"""The care engine's queries: the planners' feed, stops and snoozes, survey answers.

The feed is built to stay fast on large data: one streamed, index-ordered
query of purchases as plain tuples (dates as float day numbers computed in
SQL), small aggregates for the rest — never orders as ORM objects.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import String, and_, any_, bindparam, case, delete, exists, extract, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from bot.rules.care import KIND_WINBACK
from storage.dialect import epoch_minutes, insert_for, int_list, is_postgres
from storage.models import CareStop, Customer, Order, OrderItem, OutboxMessage, Product, SurveyAnswer
from storage.models.care import SNOOZE, STOP
from storage.repositories.outbox import SENT_LIKE

# Customers the planner takes at a time; read FEED_FETCH rows at a time (see purchase_lists).
FEED_PARTITION = 5_000
FEED_FETCH = 500


def _eligible() -> Any:
    """Customers who may get care messages at all."""
    return and_(Customer.care_consent.is_(True), Customer.reachable.is_(True), Customer.forgotten_at.is_(None),
                Customer.telegram_id.is_not(None))


class CareRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # ----- the planners' feed ------------------------------------------------------------------
    # Customer columns the planner reads, in CustomerFacts order.
    @staticmethod
    def _facts() -> tuple[Any, ...]:
        c = Customer.__table__.c
        return (c.id, c.telegram_id, c.language, c.timezone, c.household_size, c.birthday, c.name)

    async def birthdays_on(self, month_days: Iterable[tuple[int, int]]) -> list[tuple[Any, ...]]:
        """Eligible customers whose birthday falls on one of these (month, day) pairs (customer facts)."""
        c = Customer.__table__.c
        pairs = [and_(extract("month", c.birthday) == m, extract("day", c.birthday) == d) for m, d in month_days]
        if not pairs:
            return []
        stmt = select(*self._facts()).where(_eligible(), c.birthday.is_not(None), or_(*pairs))
        return [tuple(row) for row in await self.session.execute(stmt)]

    async def purchase_lists(self, since: datetime) -> AsyncIterator[Sequence[tuple[Any, ...]]]:
        """Each eligible customer's purchases since ``since``: one row per customer, in partitions.

        A row is the customer facts (see :meth:`_facts`) then four "1,2,3" lists — product ids,
        minutes, order ids, quantities — item by item in time order. Aggregated in SQL, driven by
        the customers (each one's recent orders are an index range of ix_orders_customer_created,
        already in time order: no sort, no full scan of orders), so a million orders cross into
        Python as one short row per customer (see :mod:`bot.rules.care_batch`).

        Each row is copied into a plain tuple as soon as it is read, a few hundred rows at a time:
        Python's collector stops tracking a tuple of plain values (``gc.is_tracked``), while a
        result row stays tracked; rows held for a whole partition made it walk every object of
        the bot once or twice per hourly pass.
        """
        c, o, i = Customer.__table__.c, Order.__table__.c, OrderItem.__table__.c
        order = (o.created_at, o.id, i.id)
        facts = self._facts()
        stmt = (
            select(*facts, int_list(i.product_id, *order), int_list(epoch_minutes(o.created_at), *order),
                   int_list(o.id, *order), int_list(i.quantity, *order))
            .select_from(Customer.__table__.join(Order.__table__, o.customer_id == c.id)
                         .join(OrderItem.__table__, i.order_id == o.id))
            .where(_eligible(), o.status != "cancelled", o.created_at >= since)
            .group_by(*facts)
        )
        result = await self.session.stream(stmt)
        partition: list[tuple[Any, ...]] = []
        async for rows in result.partitions(FEED_FETCH):
            partition.extend([tuple(row) for row in rows])
            if len(partition) >= FEED_PARTITION:
                yield partition
                partition = []
        if partition:
            yield partition

    async def delivered_between(self, start: datetime, end: datetime) -> list[tuple[Any, ...]]:
        """(order_id, delivered_at, *customer facts) of eligible customers' orders delivered in [start, end]."""
        o = Order.__table__.c
        stmt = (
            select(o.id, o.delivered_at, *self._facts())
            .select_from(Order.__table__.join(Customer.__table__, Customer.__table__.c.id == o.customer_id))
            .where(_eligible(), o.status == "delivered", o.delivered_at >= start, o.delivered_at <= end)
            .order_by(o.id)
        )
        return [tuple(row) for row in await self.session.execute(stmt)]

    async def last_winbacks(self) -> dict[int, datetime]:
        """When each customer last got a win-back message."""
        stmt = (
            select(OutboxMessage.customer_id, func.max(OutboxMessage.sent_at))
            .where(OutboxMessage.kind == "winback", OutboxMessage.status.in_(SENT_LIKE),
                   OutboxMessage.customer_id.is_not(None))
            .group_by(OutboxMessage.customer_id)
        )
        return {r[0]: r[1] for r in await self.session.execute(stmt) if r[1] is not None}

    async def stops(self) -> dict[int, dict[int, tuple[str, datetime | None, datetime]]]:
        """customer → product → (kind, until, created_at); a stop wins over a snooze."""
        out: dict[int, dict[int, tuple[str, datetime | None, datetime]]] = {}
        stmt = select(CareStop.customer_id, CareStop.product_id, CareStop.kind, CareStop.until, CareStop.created_at)
        for customer_id, product_id, kind, until, created in await self.session.execute(stmt):
            mine = out.setdefault(customer_id, {})
            if kind == STOP or product_id not in mine:
                mine[product_id] = (kind, until, created)
        return out

    async def existing_keys(self, keys: Iterable[str]) -> set[str]:
        """Which of these outbox keys are written.

        SQLite: 2,000 keys to a query (well within its limit on parameters). PostgreSQL: all in
        one array, planned for these keys each time: a generic plan of asyncpg's prepared
        statement, made while the outbox was small, scans the table once per key (the hourly
        planning pass over 100,000 customers spent 28 s here instead of 0.1 s).
        """
        keys = list(keys)
        if is_postgres(self.session):
            if not keys:
                return set()
            await self.session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
            return set(await self.session.scalars(select(OutboxMessage.dedupe_key).where(
                OutboxMessage.dedupe_key == any_(bindparam("keys", keys, type_=ARRAY(String))))))
        found: set[str] = set()
        for start in range(0, len(keys), 2000):
            chunk = keys[start:start + 2000]
            found.update(await self.session.scalars(
                select(OutboxMessage.dedupe_key).where(OutboxMessage.dedupe_key.in_(chunk))))
        return found

    async def fingerprint(self) -> tuple[Any, ...]:
        """A cheap summary of everything planning reads (one round trip): unchanged data, unchanged plan."""
        def one(*columns: Any) -> Any:
            return select(*columns).scalar_subquery()

        stmt = select(
            one(func.count(Customer.id)),
            one(func.max(Customer.updated_at)),
            one(func.sum(case((Customer.reachable.is_(True), 1), else_=0))),
            one(func.count(Order.id)),
            one(func.max(Order.id)),
            one(func.max(Order.updated_at)),
            one(func.count(Product.id)),
            one(func.sum(case((Product.active.is_(True), 1), else_=0))),
            one(func.sum(func.coalesce(Product.days_per_unit_per_person, 0))),
            one(func.count(CareStop.id)),
            one(func.max(CareStop.created_at)),
            select(func.count(OutboxMessage.id)).where(
                OutboxMessage.kind == KIND_WINBACK, OutboxMessage.status.in_(SENT_LIKE)).scalar_subquery(),
        )
        return tuple((await self.session.execute(stmt)).one())

    # ----- last checks before sending -----------------------------------------------------------
    async def ordered_product_since(self, customer_id: int, product_id: int, since: datetime) -> bool:
        """Whether the customer ordered this product at or after ``since`` (cancelled orders aside)."""
        return bool(await self.session.scalar(select(exists().where(
            Order.customer_id == customer_id, Order.created_at >= since, Order.status != "cancelled",
            Order.id == OrderItem.order_id, OrderItem.product_id == product_id,
        ))))

    async def ordered_since(self, customer_id: int, since: datetime) -> bool:
        """Whether the customer ordered anything at or after ``since`` (cancelled orders aside)."""
        return bool(await self.session.scalar(select(exists().where(
            Order.customer_id == customer_id, Order.created_at >= since, Order.status != "cancelled",
        ))))

    # ----- stops and snoozes ------------------------------------------------------------------------
    async def pending_due_times(self, customer_id: int, kinds: Sequence[str], until: datetime,
                                exclude_id: int | None = None) -> list[datetime]:
        """When this customer's pending care messages of these kinds are due (up to ``until``)."""
        stmt = select(OutboxMessage.not_before).where(
            OutboxMessage.customer_id == customer_id, OutboxMessage.kind.in_(list(kinds)),
            OutboxMessage.category == "care", OutboxMessage.status == "pending", OutboxMessage.not_before <= until,
        )
        if exclude_id is not None:
            stmt = stmt.where(OutboxMessage.id != exclude_id)
        return [t for t in await self.session.scalars(stmt) if t is not None]

    async def _upsert_stop(self, customer_id: int, product_id: int, kind: str, until: datetime | None,
                           outbox_id: int | None, now: datetime) -> None:
        insert = insert_for(self.session)
        stmt = insert(CareStop).values(customer_id=customer_id, product_id=product_id, kind=kind, until=until,
                                       outbox_id=outbox_id, created_at=now)
        stmt = stmt.on_conflict_do_update(
            index_elements=["customer_id", "product_id", "kind"],
            set_=dict(until=until, outbox_id=outbox_id, created_at=now),
        )
        await self.session.execute(stmt)

    async def stop_product(self, customer_id: int, product_id: int, outbox_id: int | None, now: datetime) -> None:
        await self._upsert_stop(customer_id, product_id, STOP, None, outbox_id, now)

    async def skip_pending_about(self, customer_id: int, kind: str, product_id: int, reason: str) -> None:
        """The customer's pending messages of ``kind`` about a product: skipped with ``reason``."""
        await self.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.customer_id == customer_id, OutboxMessage.kind == kind,
                   OutboxMessage.ref_product_id == product_id, OutboxMessage.status == "pending")
            .values(status="skipped", skip_reason=reason)
            .execution_options(synchronize_session=False)
        )

    async def snooze_product(self, customer_id: int, product_id: int, until: datetime, outbox_id: int | None,
                             now: datetime) -> None:
        await self._upsert_stop(customer_id, product_id, SNOOZE, until, outbox_id, now)

    async def is_stopped(self, customer_id: int, product_id: int) -> bool:
        return await self.session.scalar(
            select(func.count()).select_from(CareStop).where(
                CareStop.customer_id == customer_id, CareStop.product_id == product_id, CareStop.kind == STOP)
        ) > 0

    async def purge_snoozes(self, before: datetime) -> int:
        result = await self.session.execute(
            delete(CareStop).where(CareStop.kind == SNOOZE, CareStop.until < before)
        )
        return result.rowcount or 0

    async def stops_of(self, customer_id: int) -> list[CareStop]:
        return list(await self.session.scalars(
            select(CareStop).where(CareStop.customer_id == customer_id).order_by(CareStop.id)))

    # ----- survey answers ---------------------------------------------------------------------------
    async def answer(self, order_id: int) -> SurveyAnswer | None:
        return await self.session.scalar(select(SurveyAnswer).where(SurveyAnswer.order_id == order_id))

    async def rate(self, order_id: int, customer_id: int, outbox_id: int | None, rating: int,
                   now: datetime) -> tuple[SurveyAnswer, bool]:
        """Record a rating; (answer, False) when the order was rated before (that rating stays)."""
        existing = await self.answer(order_id)
        if existing is not None:
            return existing, False
        insert = insert_for(self.session)
        stmt = insert(SurveyAnswer).values(
            order_id=order_id, customer_id=customer_id, outbox_id=outbox_id, rating=rating, created_at=now,
            updated_at=now,
        ).on_conflict_do_nothing(index_elements=["order_id"])
        await self.session.execute(stmt)
        answer = await self.answer(order_id)
        assert answer is not None
        return answer, True

    async def add_comment(self, order_id: int, customer_id: int, comment: str, now: datetime) -> bool:
        result = await self.session.execute(
            update(SurveyAnswer)
            .where(SurveyAnswer.order_id == order_id, SurveyAnswer.customer_id == customer_id)
            .values(comment=comment, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        return (result.rowcount or 0) == 1

    async def answers_of(self, customer_id: int) -> list[SurveyAnswer]:
        return list(await self.session.scalars(
            select(SurveyAnswer).where(SurveyAnswer.customer_id == customer_id).order_by(SurveyAnswer.id)))

    # ----- privacy ----------------------------------------------------------------------------------
    async def forget(self, customer_id: int) -> None:
        """Stops go; ratings stay for the reports, their comments (free text) are erased."""
        await self.session.execute(delete(CareStop).where(CareStop.customer_id == customer_id))
        await self.session.execute(
            update(SurveyAnswer).where(SurveyAnswer.customer_id == customer_id).values(comment=None)
            .execution_options(synchronize_session=False)
        )


