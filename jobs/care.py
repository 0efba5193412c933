"""The care engine's jobs: planning care messages, and the daily tidy-up.

``plan_care`` (hourly) reads every eligible customer's history — streamed
from SQL as plain tuples, one customer at a time — asks the planners in
``bot.rules.care`` what is due within the next day, and writes what is new
to the outbox (dedupe keys make a repeated or concurrent run a no-op).
``deliver_outbox`` (``jobs.delivery``) sends it, checking the policy again.

``care_daily`` (03:00 local) skips held care rows that are no longer worth
sending and forgets snoozes long past.

This module also holds the care engine's last checks before a reminder or
win-back goes (the customer may have ordered since it was planned), which
bot.app hands to the delivery worker. Which care message a new order answered
is chosen when the order is written (``storage.repositories.orders``).
"""

from __future__ import annotations

import asyncio
import logging
import time as timer
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any

from bot.care_messages import CustomerFacts, ProductFacts, markup, render_text
from bot.clock import ManualClock
from bot.rules import care as rules
from bot.rules.care_batch import BatchContext, BatchTerms, Memo, plan_batch
from jobs.context import JobContext, JobDeps, job
from storage import changes
from storage.models import OutboxMessage
from storage.models.outbox import CATEGORY_CARE
from storage.repositories import Repos
from storage.repositories.outbox import json_text

log = logging.getLogger(__name__)


@dataclass
class PlanResult:
    customers: int = 0
    purchases: int = 0
    candidates: int = 0
    written: Counter[str] = field(default_factory=Counter)
    # When the earliest message not yet due for writing enters the horizon (None: nothing known).
    next_due: datetime | None = None
    # Seconds per phase (small feeds, the customers' purchases, writing), for the benchmark.
    timings: dict[str, float] = field(default_factory=dict)


# A message planned and not yet written: the fields of its Planned, the fields of its customer's
# CustomerFacts, when the order was delivered (surveys), and the batch memo entry it came from (memo key and
# inputs of a batch-planned message, else None and None). Plain tuples of plain values, nested one level
# only, on purpose: Python's collector stops tracking such a tuple (see ``gc.is_tracked``) at the first
# collection that finds its members untracked, so the tens of thousands a first pass holds until it writes
# are not promoted to the oldest generation, whose full collections walk every object of the bot. (A
# tuple two levels down is untracked a collection later, by when its item has been promoted.)
_Item = tuple[tuple[Any, ...], tuple[Any, ...], datetime | None, tuple[Any, ...] | None, tuple[Any, ...] | None]
_KIND, _KEY = rules.Planned._fields.index("kind"), rules.Planned._fields.index("key")


@dataclass(frozen=True)
class PlanContext:
    """What every customer's planning shares in one pass."""

    now: datetime
    settings: Any
    horizon: timedelta = rules.PLAN_HORIZON
    now_days: float = 0.0

    def birthday_days(self) -> frozenset[tuple[int, int]]:
        """(month, day) pairs a greeting within the horizon can fall on, a day's slack for time zones."""
        start = self.now.date() - timedelta(days=1)
        days = (self.horizon.days or 0) + 3
        pairs = {((start + timedelta(days=n)).month, (start + timedelta(days=n)).day) for n in range(days)}
        if (2, 28) in pairs or (3, 1) in pairs:
            pairs.add((2, 29))  # 29 February is greeted on the 28th in common years
        return frozenset(pairs)


async def plan(deps: JobDeps, now: datetime) -> PlanResult:
    """One planning pass over all eligible customers; writes new care messages to the outbox.

    Three feeds: birthdays in the next days (a small query), deliveries due a survey (small),
    and every eligible customer's purchases of the last year — one aggregated row per
    customer, streamed in partitions and planned partition by partition.
    """
    settings = deps.settings
    result = PlanResult()
    started = timer.perf_counter()
    items: list[_Item] = []
    ctx = PlanContext(now, settings, rules.LOOKAHEAD, rules.to_days(now))
    write_until = now + rules.PLAN_HORIZON

    def add(customer: tuple[Any, ...], planned_list: list[rules.Planned], delivered_at: datetime | None = None,
            key: tuple[Any, ...] | None = None, inputs: tuple[Any, ...] | None = None) -> None:
        for planned in planned_list:
            if planned.send_at > write_until:  # later: only remember when it comes into the horizon
                enters = planned.send_at - rules.PLAN_HORIZON
                result.next_due = enters if result.next_due is None else min(result.next_due, enters)
                continue
            items.append((tuple(planned), tuple(customer), delivered_at, key, inputs))

    async with deps.db.session() as session:
        repos = Repos(session)
        stops = await repos.care.stops()
        winbacks = await repos.care.last_winbacks()
        products = {p.id: ProductFacts(p.id, p.name_en, p.name_zh, p.unit, p.days_per_unit_per_person, p.active,
                                           unit_zh=p.unit_zh)
                    for p in await repos.products.all()}
        for row in await repos.care.birthdays_on(ctx.birthday_days()):
            customer = CustomerFacts._make(row)
            tz = rules.zone(customer.timezone, settings.default_timezone)
            greeting = rules.plan_birthday(customer.id, customer.birthday, now, tz, hour=settings.birthday_hour,
                                           horizon=ctx.horizon)
            if greeting is not None:
                add(customer, [greeting])
        start = now - timedelta(days=settings.survey_days_after_delivery + rules.SURVEY_VALID_DAYS)
        end = now + rules.LOOKAHEAD - timedelta(days=settings.survey_days_after_delivery)
        for order_id, delivered_at, *facts in await repos.care.delivered_between(start, end):
            customer = CustomerFacts._make(facts)
            survey = rules.plan_survey(customer.id, order_id, delivered_at, now,
                                       days_after=settings.survey_days_after_delivery, horizon=ctx.horizon)
            if survey is not None:
                add(customer, [survey], delivered_at)

    at_risk = await _winback_targets(deps, now)
    result.timings["feeds"] = timer.perf_counter() - started
    terms = BatchTerms(settings.reorder_days_before, settings.winback_min_days, settings.winback_repeat_days,
                       settings.default_timezone)
    batch = BatchContext.build(now, ctx.horizon, terms,
                               {p.id: (p.days_per_unit_per_person, p.active) for p in products.values()}, at_risk)
    empty: dict[int, Any] = {}
    # Pairs whose message an earlier pass of this process wrote, with the inputs then: not planned
    # again while the inputs stay the same (the same dedupe key would come out).
    memo: Memo = deps.care.batch
    still: Memo = {}
    async with deps.db.session() as session:
        async for partition in Repos(session).care.purchase_lists(now - timedelta(days=rules.HISTORY_DAYS)):
            result.customers += len(partition)
            result.purchases += sum(row[8].count(",") + 1 for row in partition)

            def planned_for(index: int, planned: rules.Planned, key: tuple[Any, ...], inputs: tuple[Any, ...],
                            partition: Sequence[tuple[Any, ...]] = partition) -> None:
                add(partition[index][:7], [planned], key=key, inputs=inputs)

            # Each message is kept as a plain tuple as soon as it is planned (see plan_batch's emit).
            batch_result = plan_batch(partition, batch, lambda c: stops.get(c, empty), winbacks.get, memo, planned_for)
            still.update(batch_result.seen)
    result.candidates = len(items)
    result.timings["customers"] = timer.perf_counter() - started - result.timings["feeds"]
    done = await _write(deps, items, products, now, result)
    for planned_fields, _customer, _delivered_at, key, inputs in items:
        if key is not None and planned_fields[_KEY] in done:
            still[key] = inputs
    deps.care.batch = still
    result.timings["write"] = timer.perf_counter() - started - result.timings["feeds"] - result.timings["customers"]
    return result


async def _winback_targets(deps: JobDeps, now: datetime) -> Any:
    """The ids of the customers ``/churn`` ranks at risk, for win-backs; None under the fallback rule.

    Computed (and the purchase model fitted) at most once per business day: cached with the
    date in ``JobDeps.care``. A customer who ordered since is still in the list until tomorrow,
    but the lapse rule (no order for a while) and the last check before sending keep them out.
    """
    from bot.reports import churn

    today = now.astimezone(deps.settings.tz).date()
    cached = deps.care.winback_targets
    if cached is not None and cached[0] == today:
        return cached[1]
    async with deps.db.session() as session:
        ranking = await churn.ranking(session, deps.settings, now)
    targets = None if ranking.scores.method != "bgnbd" else ranking.scores.customer_id[ranking.ranked]
    deps.care.winback_targets = (today, targets)
    return targets


WRITE_CHUNK = 1000
# While a chunk is being written, the next is rendered, handing control back this often (rows):
# the write's steps in the database thread go on as soon as the one before is done.
_YIELD_EVERY = 50


async def _write(deps: JobDeps, items: list[_Item], products: dict[int, ProductFacts], now: datetime,
                 result: PlanResult) -> set[str]:
    """Render what is new and write it, a thousand rows per short transaction.

    Short transactions, because on SQLite a writer locks the whole database:
    the bot's own updates never wait behind a backlog of thousands of care
    messages. A crash half-way loses nothing — the next run writes the rest
    (dedupe keys make every row idempotent).

    One chunk is written while the next is rendered: the INSERT runs in the
    database's thread (aiosqlite; asyncpg's server) as Python renders texts.
    At most one write is in flight, so the transactions still come one by one.
    """
    settings = deps.settings
    renderer = deps.renderer
    async with deps.db.session() as session:
        existing = await Repos(session).care.existing_keys(item[0][_KEY] for item in items)
    fresh: dict[str, _Item] = {}
    for item in items:
        if item[0][_KEY] not in existing:
            fresh.setdefault(item[0][_KEY], item)
    pending = list(fresh.values())
    zones: dict[str | None, Any] = {}
    # The buttons as the outbox stores them (JSON text): the same few for every row, and a row of plain
    # values is not tracked by Python's collector while it waits to be written (OutboxRepo.add_many).
    buttons: dict[tuple[str, str, bool], str] = {}

    def buttons_of(kind: str, lang: str, can_reorder: bool) -> str:
        text = buttons.get((kind, lang, can_reorder))
        if text is None:
            text = buttons[kind, lang, can_reorder] = json_text(markup(renderer, kind, lang, can_reorder=can_reorder))
        return text

    def row(item: _Item) -> dict[str, Any]:
        planned, customer, delivered_at = rules.Planned._make(item[0]), CustomerFacts._make(item[1]), item[2]
        tz = zones.get(customer.timezone)
        if tz is None:
            tz = zones[customer.timezone] = rules.zone(customer.timezone, settings.default_timezone)
        not_before = rules.not_before(planned, now, tz, settings.quiet_hours_start, settings.quiet_hours_end)
        return dict(
            dedupe_key=planned.key, kind=planned.kind, category=CATEGORY_CARE, priority=planned.priority,
            chat_id=customer.telegram_id, customer_id=customer.id,
            text=render_text(renderer, planned, customer, products.get(planned.product_id or -1), delivered_at, tz,
                             on=not_before.astimezone(tz).date() if planned.kind == rules.KIND_REORDER else None),
            reply_markup=buttons_of(planned.kind, customer.language, planned.order_id is not None),
            ref_order_id=planned.order_id, ref_product_id=planned.product_id, expires_at=planned.expires_at,
            not_before=not_before, status="pending", attempts=0, created_at=now,
        )

    async def insert(rows: list[dict[str, Any]]) -> None:
        async with deps.db.session() as session:
            written = await Repos(session).outbox.add_many(rows)  # leaves out keys another planner wrote first
            await session.commit()
        for key in written:
            result.written[fresh[key][0][_KIND]] += 1

    writing: asyncio.Task[None] | None = None
    try:
        for start in range(0, len(pending), WRITE_CHUNK):
            rows: list[dict[str, Any]] = []
            for item in pending[start:start + WRITE_CHUNK]:
                rows.append(row(item))
                if writing is not None and len(rows) % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)
            if writing is not None:
                await writing
            writing = asyncio.create_task(insert(rows))
        if writing is not None:
            await writing
    finally:
        if writing is not None and not writing.done():  # failed while a chunk was in flight: let it end
            await asyncio.wait([writing])
            if not writing.cancelled():
                writing.exception()  # retrieved: the error that matters is the one already raised
    return existing | set(fresh)  # in the outbox now (a key another planner wrote first included)


async def fingerprint(deps: JobDeps) -> tuple[Any, ...]:
    """A cheap summary of everything planning reads (one round trip): unchanged data, unchanged plan."""
    async with deps.db.session() as session:
        return await Repos(session).care.fingerprint()


@job("plan_care", every=timedelta(hours=1), misfire_grace_time=30 * 60)
async def plan_care(ctx: JobContext) -> None:
    """Plan in full when the data changed, when a known message comes into the horizon, or every 12 h."""
    memo = ctx.deps.care.plan
    fresh = ctx.now < memo.get("until", ctx.now)
    seen = changes.commits()
    # Under time travel every write happens in this process: nothing committed, nothing to re-read.
    if fresh and memo.get("commits") == seen and isinstance(ctx.clock, ManualClock):
        return
    mark = await fingerprint(ctx.deps)
    if fresh and memo.get("mark") == mark:
        memo["commits"] = seen
        return
    result = await plan(ctx.deps, ctx.now)
    until = ctx.now + rules.REPLAN_EVERY
    if result.next_due is not None:
        until = min(until, result.next_due)
    memo.update(mark=mark, until=until, commits=changes.commits())
    if result.written:
        log.info("care planning: %s new message(s) %s", sum(result.written.values()), dict(result.written))


@job("care_daily", at=time(3, 0), misfire_grace_time=6 * 3600)
async def care_daily(ctx: JobContext) -> None:
    """Held care rows past their use are skipped; old snoozes are forgotten."""
    now = ctx.now
    async with ctx.db.session() as session:
        repos = Repos(session)
        expired = await repos.outbox.skip_expired_care(now)
        purged = await repos.care.purge_snoozes(now - timedelta(days=30))
        await session.commit()
    if expired or purged:
        log.info("care daily: %s expired care message(s) skipped, %s old snooze(s) removed", expired, purged)


# ----- last checks before sending ------------------------------------------------------------------

async def reordered_since(repos: Repos, row: OutboxMessage, now: datetime) -> str | None:
    """A reminder is moot once the customer ordered that product after it was planned."""
    if row.customer_id is None or row.ref_product_id is None:
        return None
    if await repos.care.is_stopped(row.customer_id, row.ref_product_id):
        return "stopped"
    ordered = await repos.care.ordered_product_since(row.customer_id, row.ref_product_id, row.created_at)
    return "already ordered" if ordered else None


async def ordered_since(repos: Repos, row: OutboxMessage, now: datetime) -> str | None:
    """A win-back is moot once the customer ordered anything after it was planned."""
    if row.customer_id is None:
        return None
    ordered = await repos.care.ordered_since(row.customer_id, row.created_at)
    return "already ordered" if ordered else None


__all__ = ["plan"]
