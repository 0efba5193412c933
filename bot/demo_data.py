"""``caredesk demo-data``: a realistic, reproducible shop history.

Households of one to six people buy staples (rice, oil, water, eggs...) at
their own rhythm: each keeps a cycle of days that fits its size and the
staples' ``days_per_unit_per_person``, with noise on every interval and on
every quantity. Some households join late, some lapse for good (and get a
"we miss you" message a while later). Months have a season: more and bigger
orders around the Spring Festival, Golden Week and the year's end, fewer in
high summer. A few orders are cancelled. Complaints come after some
deliveries, with first-response and resolution times around the targets,
and most resolved complaints get a rating that follows how fast they were
handled; some deliveries get a survey, and some surveys an answer. Care
messages (reorder reminders, birthday greetings, surveys, win-backs) are in
the outbox as sent, some skipped, and orders that answered a reminder or a
win-back point at it: about a quarter of the lapsed
households who get a "we miss you" order again within ``ATTRIBUTION_DAYS``
and keep buying.

The same ``--seed`` and ``--end`` give the same history. Rows are written
with explicit ids in bulk (``storage.queries.demo``), one transaction per
batch of households.

Demo customers get Telegram ids from 7,000,000,000 up: they never collide
with the sandbox's personas, and the fake Telegram accepts them. Do not run
this against a production database.
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.reports.periods import add_months
from bot.rules.care import ATTRIBUTED_KINDS
from bot.texts import minor_digits
from storage.db import Database
from storage.models.outbox import CATEGORY_CARE, PRIORITY_CARE
from storage.queries import demo as queries

TELEGRAM_ID_BASE = 7_000_000_000
BATCH_HOUSEHOLDS = 250

# How busy each month is (1.0 = ordinary): Spring Festival, Golden Week, year end up; summer down.
SEASON = {1: 1.22, 2: 1.38, 3: 0.95, 4: 0.92, 5: 0.97, 6: 0.93, 7: 0.82, 8: 0.84, 9: 1.04, 10: 1.12,
          11: 0.98, 12: 1.16}
HOUSEHOLD_SIZES = (1, 2, 3, 4, 5, 6)
HOUSEHOLD_WEIGHTS = (15, 26, 25, 19, 10, 5)
STAFF = ("Sam", "Kim", "Lee", "Wang Fang")
TICKET_CATEGORIES = ("quality", "delivery", "staff", "billing", "other")
TICKET_CATEGORY_WEIGHTS = (35, 35, 10, 10, 10)
PRIORITIES = ("high", "normal", "low")
PRIORITY_WEIGHTS = (15, 70, 15)
# Of the lapsed households that get a "we miss you", this share orders again (and stays).
WINBACK_RETURN_SHARE = 0.25

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ("伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超",
         "秀兰", "霞", "平", "刚", "桂英")
ENGLISH = ("Mei", "Lin", "Grace", "Tom", "Anna", "David", "Lucy", "Peter", "Helen", "Jack", "Emma", "Leo",
           "Sophie", "Mark", "Nina", "Ken")
STREETS = ("Rice Street", "Harbour Road", "Garden Lane", "Lotus Avenue", "Bamboo Road", "Pearl Street")

# Used only when the catalog is empty and the sample catalog file is missing.
BUILT_IN_PRODUCTS: tuple[tuple[str, str, str, str, str, int, float | None], ...] = (
    ("DEMO-RICE-5", "Jasmine rice", "泰国香米", "rice", "5 kg bag", 6800, 10.0),
    ("DEMO-RICE-10", "Northeast rice", "东北大米", "rice", "10 kg bag", 11800, 20.0),
    ("DEMO-OIL-5", "Peanut oil", "花生油", "oil", "5 L bottle", 13900, 150.0),
    ("DEMO-WATER-19", "Spring water", "桶装矿泉水", "drinks", "18.9 L bucket", 2200, 9.0),
    ("DEMO-EGG-10", "Free-range eggs", "土鸡蛋", "eggs", "box of 10", 1990, 10.0),
    ("DEMO-NOOD-1", "Wheat noodles", "挂面", "noodles", "1 kg pack", 1250, 7.0),
    ("DEMO-SOY-05", "Light soy sauce", "生抽", "condiments", "500 ml bottle", 990, 60.0),
    ("DEMO-TEA", "Green tea", "绿茶", "drinks", "250 g tin", 4500, None),
    ("DEMO-TOFU", "Firm tofu", "老豆腐", "eggs", "500 g block", 550, None),
)


@dataclass(frozen=True)
class DemoProduct:
    id: int
    price: int
    category: str
    days: float | None  # days one unit lasts one person


@dataclass
class DemoSummary:
    customers: int = 0
    orders: int = 0
    items: int = 0
    tickets: int = 0
    outbox: int = 0
    start: date | None = None
    end: date | None = None
    products_loaded: int = 0


@dataclass
class _Ids:
    customer: int
    order: int
    item: int
    ticket: int
    outbox: int
    answer: int


@dataclass
class _Batch:
    customers: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)
    tickets: list[dict[str, Any]] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)


# ----- products ------------------------------------------------------------------------

SAMPLE_CATALOG = Path(__file__).resolve().parent / "data" / "sample_catalog.csv"


def _sample_rows(currency: str) -> list[dict[str, Any]]:
    """The sample shop's products (bot/data/sample_catalog.csv, the orders feature's sample), or a built-in list.

    Read here rather than through ``bot.catalog``, which pulls in the whole bot.
    """
    rows: list[dict[str, Any]] = []
    if SAMPLE_CATALOG.exists():
        digits = minor_digits(currency)
        with SAMPLE_CATALOG.open(encoding="utf-8-sig", newline="") as fh:
            for raw in csv.DictReader(fh):
                days = (raw.get("days_per_unit_per_person") or "").strip()
                rows.append(dict(
                    sku=raw["sku"].strip(), name_en=raw["name_en"].strip(), name_zh=raw["name_zh"].strip(),
                    category=raw["category"].strip(), unit=raw["unit"].strip(),
                    unit_zh=(raw.get("unit_zh") or "").strip() or None,
                    price=int(Decimal(raw["price"].strip()).scaleb(digits)),
                    days_per_unit_per_person=float(days) if days else None,
                    active=(raw.get("active") or "true").strip().lower() not in ("false", "no", "0"),
                ))
    if rows:
        return rows
    return [dict(sku=sku, name_en=name_en, name_zh=name_zh, category=category, unit=unit, unit_zh=None, price=price,
                 days_per_unit_per_person=days, active=True)
            for sku, name_en, name_zh, category, unit, price, days in BUILT_IN_PRODUCTS]


async def ensure_products(db: Database, settings: Settings) -> int:
    """Load the sample catalog when there are no products; return how many were added."""
    async with db.session() as session:
        if await queries.product_count(session):
            return 0
        rows = _sample_rows(settings.currency)
        await queries.add_products(session, rows)
        await session.commit()
    return len(rows)


async def _products(session: AsyncSession) -> list[DemoProduct]:
    return [DemoProduct(r.id, int(r.price), r.category, r.days_per_unit_per_person)
            for r in await queries.active_products(session)]


# ----- generation ------------------------------------------------------------------------------

class _Generator:
    def __init__(self, settings: Settings, products: list[DemoProduct], ids: _Ids, seed: int,
                 start: datetime, end: datetime) -> None:
        self.settings = settings
        self.tz = settings.tz
        self.seed = seed
        self.rng = random.Random(seed)
        self.ids = ids
        self.start = start
        self.end = end
        self.staples = [p for p in products if p.days]
        self.extras = [p for p in products if not p.days] or products
        by_category: dict[str, list[DemoProduct]] = {}
        for product in self.staples:
            by_category.setdefault(product.category, []).append(product)
        self.staple_groups = list(by_category.values())
        self.main_group = by_category.get("rice") or self.staple_groups[0]
        self.targets = {
            "high": (settings.sla_first_response_high, settings.sla_resolution_high),
            "normal": (settings.sla_first_response_normal, settings.sla_resolution_normal),
            "low": (settings.sla_first_response_low, settings.sla_resolution_low),
        }

    def _local(self, day: date, rng: random.Random) -> datetime:
        """A moment during opening hours (08:00–21:00) of a business day, in UTC."""
        minutes = rng.randint(8 * 60, 21 * 60 - 1)
        local = datetime.combine(day, time(0), tzinfo=self.tz) + timedelta(minutes=minutes)
        return local.astimezone(UTC)

    def household(self, batch: _Batch) -> None:
        rng = self.rng
        cid = self.ids.customer
        self.ids.customer += 1
        # A few small businesses (a canteen, a tea house) buy for many mouths.
        business = rng.random() < 0.04
        size = rng.randint(10, 30) if business else rng.choices(HOUSEHOLD_SIZES, HOUSEHOLD_WEIGHTS)[0]
        # How much of its staples a household buys here: most buy some of it elsewhere.
        wallet = 1.0 if business else min(1.0, rng.lognormvariate(-0.6, 0.6))
        span_days = max((self.end - self.start).days, 1)
        if rng.random() < 0.35:
            joined_day = rng.randint(0, min(20, span_days - 1))
        else:
            joined_day = int(rng.random() ** 0.8 * max(span_days - 10, 1))
        joined = self._local((self.start + timedelta(days=joined_day)).astimezone(self.tz).date(), rng)
        lapse_at = None
        if rng.random() < 0.28:
            lapse_at = joined + timedelta(days=rng.uniform(30, max(span_days - joined_day, 31)))
        chinese = rng.random() < 0.7
        if chinese:
            name = rng.choice(SURNAMES) + rng.choice(GIVEN)
        else:
            name = f"{rng.choice(ENGLISH)} {rng.choice('ABCDEFGHJKLMNPRSTW')}."
        consent = rng.random() < 0.78
        birthday = date(rng.randint(1950, 2002), rng.randint(1, 12), rng.randint(1, 28)) if rng.random() < 0.7 else None
        batch.customers.append(dict(
            id=cid, telegram_id=TELEGRAM_ID_BASE + cid, name=name,
            phone=f"+86139{rng.randint(0, 99_999_999):08d}", birthday=birthday,
            address=f"{rng.randint(1, 300)} {rng.choice(STREETS)}", household_size=min(size, 20), preferences=None,
            language="zh" if chinese or rng.random() < 0.2 else "en", timezone=None, care_consent=consent,
            care_consent_changed_at=joined, reachable=rng.random() > 0.02, unreachable_since=None,
            registered_at=joined, updated_at=joined, forgotten_at=None,
        ))
        # The basket: the main staple and up to two more, each in a quantity that lasts one cycle.
        basket = [rng.choice(self.main_group)]
        others = [g for g in self.staple_groups if g is not self.main_group]
        for group in rng.sample(others, k=min(len(others), rng.choice((0, 1, 1, 2)))):
            basket.append(rng.choice(group))
        cycle = rng.uniform(7, 21) * (1.25 if size <= 2 else 1.0)  # days one basket lasts
        regularity = rng.uniform(0.08, 0.3)  # noise on the intervals
        moment = joined + timedelta(days=rng.uniform(0, 3))
        last_order: datetime | None = None
        while moment < self.end and (lapse_at is None or moment < lapse_at):
            local = moment.astimezone(self.tz)
            season = SEASON[local.month]
            self._order(batch, cid, size, basket, cycle * season, moment, consent)
            last_order = moment
            interval = cycle / wallet / season * max(0.3, rng.gauss(1.0, regularity))
            moment = self._local((moment + timedelta(days=interval)).astimezone(self.tz).date(), rng)
        if consent and birthday is not None:
            self._birthdays(batch, cid, birthday, joined, lapse_at)
        if consent and lapse_at is not None and last_order is not None:
            winback = last_order + timedelta(days=self.settings.winback_min_days + rng.uniform(0, 10))
            if winback < self.end:
                sent = self._local(winback.astimezone(self.tz).date(), rng)
                message = self._outbox(batch, "winback", cid, sent)
                self._come_back(batch, cid, message, sent, size, basket, cycle, wallet, regularity, consent)

    def _come_back(self, batch: _Batch, cid: int, message: int, sent: datetime, size: int,
                   basket: list[DemoProduct], cycle: float, wallet: float, regularity: float, consent: bool) -> None:
        """Some lapsed households answer the "we miss you": an order within the attribution window
        (credited to the message), then their old rhythm. Drawn from a generator of their own, so the
        rest of the history stays what the same seed always gave."""
        rng = random.Random(f"{self.seed}:winback:{cid}")
        if rng.random() >= WINBACK_RETURN_SHARE:
            return
        moment = sent + timedelta(days=rng.uniform(0.1, max(self.settings.attribution_days - 0.5, 0.2)))
        main, self.rng = self.rng, rng
        try:
            answered: int | None = message
            while moment < self.end:
                season = SEASON[moment.astimezone(self.tz).month]
                self._order(batch, cid, size, basket, cycle * season, moment, consent, winback=answered)
                answered = None
                interval = cycle / wallet / season * max(0.3, rng.gauss(1.0, regularity))
                moment = self._local((moment + timedelta(days=interval)).astimezone(self.tz).date(), rng)
        finally:
            self.rng = main

    def _order(self, batch: _Batch, cid: int, size: int, basket: list[DemoProduct], days: float,
               moment: datetime, consent: bool, winback: int | None = None) -> None:
        rng = self.rng
        oid = self.ids.order
        self.ids.order += 1
        total = 0
        for product in basket:
            assert product.days
            quantity = max(1, round(days * size / product.days * rng.uniform(0.8, 1.25)))
            quantity = min(quantity, 60)
            batch.items.append(dict(id=self.ids.item, order_id=oid, product_id=product.id, quantity=quantity,
                                    unit_price=product.price))
            self.ids.item += 1
            total += quantity * product.price
        if rng.random() < 0.15:
            extra = rng.choice(self.extras)
            batch.items.append(dict(id=self.ids.item, order_id=oid, product_id=extra.id, quantity=1,
                                    unit_price=extra.price))
            self.ids.item += 1
            total += extra.price
        age = self.end - moment
        if rng.random() < 0.04:
            status = "cancelled"
        elif age < timedelta(hours=6):
            status = rng.choice(("new", "accepted"))
        elif age < timedelta(days=1):
            status = rng.choice(("accepted", "out_for_delivery", "delivered"))
        else:
            status = "delivered"
        delivered = moment + timedelta(hours=rng.uniform(1.5, 8)) if status == "delivered" else None
        if delivered is not None and delivered > self.end:
            status, delivered = "out_for_delivery", None
        source = "dialog"
        attributed = None
        roll = rng.random()
        if winback is not None:  # the order that answered a win-back
            source, attributed = "winback", winback
        elif consent and roll < 0.35:
            # A reorder reminder a day or two before; half the time this order answered it.
            sent = moment - timedelta(hours=rng.uniform(6, 60))
            if sent > self.start:
                reminder = self._outbox(batch, "reorder", cid, sent, ref_product_id=self.main_group[0].id)
                if rng.random() < 0.55:
                    source, attributed = "reminder", reminder
        elif roll < 0.6:
            source = "reorder"
        cancelled = moment + timedelta(minutes=rng.uniform(5, 300)) if status == "cancelled" else None
        batch.orders.append(dict(
            id=oid, customer_id=cid, status=status, source=source, idempotency_key=None, address=None, note=None,
            total=total, currency=self.settings.currency, created_at=moment,
            updated_at=delivered or cancelled or moment,
            delivered_at=delivered, cancelled_at=cancelled, cancel_reason="changed my mind" if cancelled else None,
            reorder_of_id=None, attributed_outbox_id=attributed, staff_chat_id=None, staff_message_id=None,
        ))
        if delivered is not None:
            if consent and rng.random() < 0.2:
                survey_at = delivered + timedelta(days=self.settings.survey_days_after_delivery)
                if survey_at < self.end:
                    if rng.random() < 0.85:
                        survey = self._outbox(batch, "survey", cid, survey_at, ref_order_id=oid)
                        answered = survey_at + timedelta(hours=rng.uniform(0.2, 20))
                        if rng.random() < 0.4 and answered < self.end:
                            rating = rng.choices((1, 2, 3, 4, 5), (3, 4, 10, 38, 45))[0]
                            batch.answers.append(dict(
                                id=self.ids.answer, order_id=oid, customer_id=cid, outbox_id=survey, rating=rating,
                                comment=None, created_at=answered, updated_at=answered))
                            self.ids.answer += 1
                    else:
                        self._outbox(batch, "survey", cid, survey_at, status="skipped",
                                     skip_reason=rng.choice(("weekly cap", "daily cap", "expired")), ref_order_id=oid)
            if rng.random() < 0.03:
                self._ticket(batch, cid, oid, delivered)

    def _ticket(self, batch: _Batch, cid: int, oid: int, delivered: datetime) -> None:
        rng = self.rng
        created = delivered + timedelta(hours=rng.uniform(1, 60))
        if created >= self.end:
            return
        tid = self.ids.ticket
        self.ids.ticket += 1
        priority = rng.choices(PRIORITIES, PRIORITY_WEIGHTS)[0]
        first_target, resolution_target = self.targets[priority]
        staff = rng.choice(STAFF)
        first = rng.lognormvariate(math.log(first_target * 0.35), 0.7)
        resolution = max(first + 5, rng.lognormvariate(math.log(resolution_target * 0.3), 0.75))
        responded = created + timedelta(minutes=first)
        resolved = created + timedelta(minutes=resolution)
        row: dict[str, Any] = dict(
            id=tid, customer_id=cid, order_id=oid, category=rng.choices(TICKET_CATEGORIES, TICKET_CATEGORY_WEIGHTS)[0],
            priority=priority, status="new", idempotency_key=None, description="(demo) something was not right",
            photo_file_ids=None, assignee_telegram_id=None, assignee_name=None, created_at=created, updated_at=created,
            taken_at=None, first_response_at=None, resolved_at=None, closed_at=None, resolution_note=None,
            first_response_due_at=created + timedelta(minutes=first_target),
            resolution_due_at=created + timedelta(minutes=resolution_target),
            first_response_minutes=None, resolution_minutes=None, first_response_breached=None,
            resolution_breached=None, waiting_since=None, waiting_minutes=0.0, reopen_count=0, rating=None,
            rating_comment=None, rated_at=None, staff_chat_id=None, staff_message_id=None, staff_thread_id=None,
        )
        if responded < self.end:
            row.update(status="in_progress", assignee_name=staff, assignee_telegram_id=200_000 + STAFF.index(staff),
                       taken_at=responded, first_response_at=responded, first_response_minutes=round(first, 1),
                       first_response_breached=first > first_target, updated_at=responded)
        if responded < self.end and resolved < self.end:
            closed = resolved + timedelta(days=self.settings.ticket_autoclose_days)
            row.update(status="closed" if closed < self.end else "resolved", resolved_at=resolved,
                       resolution_minutes=round(resolution, 1), resolution_breached=resolution > resolution_target,
                       closed_at=closed if closed < self.end else None, updated_at=resolved,
                       resolution_note="(demo) replaced and apologised")
            if rng.random() < 0.62:
                mood = 4.6 - (1.4 if row["first_response_breached"] else 0) - (1.2 if row["resolution_breached"] else 0)
                row.update(rating=int(min(5, max(1, round(rng.gauss(mood, 0.8))))),
                           rated_at=resolved + timedelta(hours=rng.uniform(0.2, 30)))
                if row["rated_at"] >= self.end:
                    row.update(rating=None, rated_at=None)
        batch.tickets.append(row)

    def _birthdays(self, batch: _Batch, cid: int, birthday: date, joined: datetime, lapse_at: datetime | None) -> None:
        rng = self.rng
        for year in range(self.start.year, self.end.year + 1):
            try:
                day = birthday.replace(year=year)
            except ValueError:
                continue
            moment = datetime.combine(day, time(self.settings.birthday_hour), tzinfo=self.tz).astimezone(UTC)
            if joined < moment < self.end and (lapse_at is None or moment < lapse_at + timedelta(days=120)):
                if rng.random() < 0.9:
                    self._outbox(batch, "birthday", cid, moment)
                else:
                    self._outbox(batch, "birthday", cid, moment, status="skipped", skip_reason="daily cap")

    def _outbox(self, batch: _Batch, kind: str, cid: int, moment: datetime, *, status: str = "sent",
                skip_reason: str | None = None, ref_order_id: int | None = None,
                ref_product_id: int | None = None) -> int:
        oid = self.ids.outbox
        self.ids.outbox += 1
        batch.outbox.append(dict(
            id=oid, dedupe_key=f"demo:{kind}:{oid}", kind=kind, category=CATEGORY_CARE, priority=PRIORITY_CARE,
            chat_id=TELEGRAM_ID_BASE + cid, customer_id=cid, text=f"(demo {kind} message)", reply_markup=None,
            options=None, ref_order_id=ref_order_id, ref_ticket_id=None, ref_product_id=ref_product_id,
            not_before=moment, status=status, skip_reason=skip_reason, attempts=1 if status == "sent" else 0,
            last_error=None, created_at=moment - timedelta(minutes=5), sent_at=moment if status == "sent" else None,
            telegram_message_id=None,
            attribute_until=(moment + timedelta(days=self.settings.attribution_days)
                             if status == "sent" and kind in ATTRIBUTED_KINDS else None),
        ))
        return oid


async def _next_ids(session: AsyncSession) -> _Ids:
    ids = await queries.next_ids(session)
    return _Ids(customer=ids["customers"], order=ids["orders"], item=ids["items"], ticket=ids["tickets"],
                outbox=ids["outbox"], answer=ids["answers"])


async def _write(session: AsyncSession, batch: _Batch, summary: DemoSummary) -> None:
    await queries.insert_batch(session, {"customers": batch.customers, "outbox": batch.outbox,
                                         "orders": batch.orders, "items": batch.items, "tickets": batch.tickets,
                                         "answers": batch.answers})
    summary.customers += len(batch.customers)
    summary.orders += len(batch.orders)
    summary.items += len(batch.items)
    summary.tickets += len(batch.tickets)
    summary.outbox += len(batch.outbox)


async def generate(db: Database, settings: Settings, *, customers: int, months: int, seed: int, end: datetime,
                   progress: Callable[[int], Awaitable[None] | None] | None = None) -> DemoSummary:
    """Add ``customers`` households with ``months`` months of history ending at ``end``."""
    if customers < 0 or months < 1:
        raise ValueError("customers must be 0 or more and months 1 or more")
    summary = DemoSummary()
    summary.products_loaded = await ensure_products(db, settings)
    local_end = end.astimezone(settings.tz)
    start_day = add_months(local_end.date(), -months)
    start = datetime.combine(start_day, time(0), tzinfo=settings.tz).astimezone(UTC)
    summary.start, summary.end = start_day, local_end.date()
    async with db.session() as session:
        products = await _products(session)
        if not [p for p in products if p.days]:
            raise ValueError("no active product has days_per_unit_per_person: demo households have nothing to buy")
        generator = _Generator(settings, products, await _next_ids(session), seed, start, end)
    done = 0
    while done < customers:
        batch = _Batch()
        count = min(BATCH_HOUSEHOLDS, customers - done)
        for _ in range(count):
            generator.household(batch)
        async with db.session() as session:
            await _write(session, batch, summary)
            await session.commit()
        done += count
        if progress is not None:
            result = progress(done)
            if result is not None:
                await result
    async with db.session() as session:
        await queries.fix_sequences(session)
        await session.commit()
    return summary
