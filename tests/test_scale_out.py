"""Proof of scale-out (#13 item 6): two complete app instances on one PostgreSQL
database and one Redis, both delivering and both running their schedulers.

In process, on one ManualClock (pacing sleeps move it): a care backlog for 600
customers (two messages each, both due: the daily cap lets one through) and
three complaints that breach their first-response target. Then the first
instance stops dead and the second must take the scheduler lease over within
one lease period.

The SIGKILL variant runs one instance as a real process (``tests/replica_worker.py``)
against a local Bot API stand-in, kills it mid-delivery, and lets an in-process
instance finish: every row ends sent once, or "uncertain" (a row the killed
process had taken and may have sent — never sent again).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from sqlalchemy import select

from bot.app import App, create_app
from bot.clock import ManualClock
from bot.config import Settings
from bot.fake_telegram import FakeTelegram, FakeUser
from jobs import leases
from jobs.delivery import worker_for
from jobs.leases import lease_every
from jobs.runner import run_job
from storage.models import Customer, OutboxMessage
from storage.repositories import Repos
from tests.conftest import MANAGER_ID, STAFF2_ID, STAFF_CHAT_ID, STAFF_ID, START, register
from tests.helpers import file_complaint
from tests.servers import drop_postgres, postgres_url, redis_delete_prefix, redis_prefix, redis_url
from tests.test_pacing import most_in_any_second

CUSTOMERS = int(os.environ.get("SCALE_OUT_CUSTOMERS", "600"))
BASE = 800_000_000
ROOT = Path(__file__).resolve().parent.parent


def _settings(url: str, redis: str, name: str, **extra: Any) -> Settings:
    values: dict[str, Any] = dict(
        database_url=url, redis_url=redis, instance_id=name, staff_chat_id=STAFF_CHAT_ID,
        staff_ids={STAFF_ID, STAFF2_ID}, manager_ids={MANAGER_ID}, default_language="en",
        default_timezone="Asia/Shanghai", lease_seconds=30)
    return Settings(_env_file=None, **{**values, **extra})


@pytest.fixture
def servers() -> Any:
    url = postgres_url(migrated=True)
    redis = redis_url()
    prefix = redis_prefix()
    yield url, redis, prefix
    redis_delete_prefix(prefix)
    drop_postgres(url)


class SendLog:
    """Every sendMessage the fake Telegram accepted, with the (shared) clock's time."""

    def __init__(self, world: FakeTelegram, clock: ManualClock) -> None:
        self.sends: list[tuple[float, int, str]] = []
        handle = world.handle

        def logged(method: str, params: dict[str, Any]) -> Any:
            result = handle(method, params)
            if method == "sendMessage":
                self.sends.append(((clock.now() - START).total_seconds(), params["chat_id"], params.get("text", "")))
            return result

        world.handle = logged  # type: ignore[method-assign]

    def worst_second(self, since: float = 0.0) -> int:
        """The most sends in any sliding second (not only whole seconds of the clock)."""
        return most_in_any_second([t for t, _, _ in self.sends if t >= since])


async def _backlog(app: App, customers: int, *, rows_each: int = 2) -> None:
    """``customers`` consenting customers, each with ``rows_each`` care messages due now."""
    now = app.clock.now()
    async with app.db.session() as session:
        session.add_all([Customer(telegram_id=BASE + n, name=f"Customer {n}", language="en", care_consent=True,
                                  care_consent_changed_at=now, reachable=True, registered_at=now - timedelta(days=400),
                                  updated_at=now) for n in range(customers)])
        await session.flush()
        ids = dict((await session.execute(select(Customer.telegram_id, Customer.id)
                                          .where(Customer.telegram_id >= BASE))).all())
        outbox = Repos(session).outbox
        await outbox.add_many([
            dict(dedupe_key=f"care:{n}:{k}", kind=("birthday", "survey", "winback")[k], category="care", priority=11,
                 chat_id=BASE + n, customer_id=ids[BASE + n], text=f"care {n}.{k}", not_before=now, status="pending",
                 attempts=0, created_at=now)
            for n in range(customers) for k in range(rows_each)
        ])
        await session.commit()


async def _tick(app: App, last: dict[str, datetime]) -> None:
    """What the live scheduler would run now (every job but the delivery loop, which runs on its own)."""
    now = app.clock.now()
    for spec in app.jobs.specs:
        if spec.at is not None or spec.id == "deliver_outbox":
            continue
        every = lease_every(app.jobs) if spec.id == "lease" else spec.every
        if spec.id not in last or now - last[spec.id] >= every:
            last[spec.id] = now
            await run_job(app.jobs, spec.id)


def _care_per_customer_day(sends: list[tuple[float, int, str]]) -> Counter[tuple[int, Any]]:
    tz = ZoneInfo("Asia/Shanghai")
    return Counter((chat, (START + timedelta(seconds=t)).astimezone(tz).date())
                   for t, chat, text in sends if text.startswith("care "))


async def test_two_instances_deliver_once_within_caps_and_rate_and_hand_the_lease_over(servers: Any) -> None:
    url, redis, prefix = servers
    clock = ManualClock(START)
    world = FakeTelegram(clock)
    world.group(STAFF_CHAT_ID, "Staff")
    log = SendLog(world, clock)
    apps = []
    for name in ("replica-a", "replica-b"):
        app = create_app(_settings(url, redis, name), clock=clock, session=world.session())
        app.jobs.rate_prefix = prefix
        apps.append(app)
    a, b = apps
    # Updates go to one instance (b); both instances run the jobs.
    world.attach(b.dispatcher, b.bot)
    try:
        # Three complaints (normal priority: first response due within 2 h), then the care backlog.
        first = random.randrange(10**8, 2 * 10**8)  # dialog state lives in the shared test Redis: new people
        for n in range(3):
            person = FakeUser(world, first + n, f"Mei{n}", language_code="en")
            await register(person, f"Mei {n}")
            await file_complaint(person, f"musty rice {n}", category="Product quality")
        clock.advance(timedelta(minutes=1))  # the drain starts on a second of its own
        await _backlog(a, CUSTOMERS)
        started = (clock.now() - START).total_seconds()
        for app in apps:
            worker_for(app.jobs).stats.keep_events = True

        # Both workers drain while both schedulers run.
        last: dict[str, dict[str, datetime]] = {"a": {}, "b": {}}
        done = asyncio.Event()

        async def schedulers() -> None:
            while not done.is_set():
                await _tick(a, last["a"])
                await _tick(b, last["b"])
                await asyncio.sleep(0.01)

        ticking = asyncio.create_task(schedulers())
        try:
            await asyncio.gather(worker_for(a.jobs).drain(), worker_for(b.jobs).drain())
        finally:
            done.set()
            await ticking
        care_sends = [s for s in log.sends if s[2].startswith("care ")]
        assert len(care_sends) == CUSTOMERS  # one each today (cap 1 a day); the second waits for tomorrow
        by_worker = [worker_for(app.jobs).stats.sent for app in apps]
        assert min(by_worker) >= CUSTOMERS // 5, by_worker  # both delivered
        assert log.worst_second(started) <= a.settings.rate_global_per_second
        elapsed = care_sends[-1][0] - care_sends[0][0]
        assert elapsed <= CUSTOMERS / a.settings.rate_global_per_second / 0.9  # together at the cap

        # Two hours on, in 10-minute steps, both replicas running everything: the three escalations, once each.
        for _ in range(13):
            clock.advance(timedelta(minutes=10))
            await asyncio.gather(_tick(a, last["a"]), _tick(b, last["b"]))
            await asyncio.gather(worker_for(a.jobs).drain(), worker_for(b.jobs).drain())
        escalations = [text for _, chat, text in log.sends if chat == MANAGER_ID and "Escalation" in text]
        assert len(escalations) == 3, escalations
        # The second message of each waits for the next morning (cap: one a local day), nothing went twice.
        per_day = _care_per_customer_day(log.sends)
        assert max(per_day.values()) == 1
        texts = [text for _, _, text in log.sends if text.startswith("care ")]
        assert len(texts) == len(set(texts)) == CUSTOMERS
        tomorrow = datetime(2026, 3, 3, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai, when quiet hours end
        async with a.db.session() as session:
            rows = (await session.scalars(select(OutboxMessage).where(OutboxMessage.category == "care"))).all()
        assert Counter(r.status for r in rows) == {"sent": CUSTOMERS, "pending": CUSTOMERS}
        assert all(r.not_before >= tomorrow and r.skip_reason == "cap" for r in rows if r.status == "pending")
        assert all(r.claimed_by is None for r in rows if r.status == "pending")  # nothing left reserved

        # The lease: a holds it; a dies (stops dead, gives nothing up); b has it within one lease period.
        for _ in range(3):
            clock.advance(timedelta(seconds=1))
            await _tick(a, last["a"])
            await _tick(b, last["b"])
        assert leases.status(a.jobs)["held"] or leases.status(b.jobs)["held"]
        holder, other, other_key = (a, b, "b") if leases.status(a.jobs)["held"] else (b, a, "a")
        await run_job(holder.jobs, "lease")  # renewed just before it dies: the worst case
        died = clock.now()
        while not leases.status(other.jobs)["held"]:
            clock.advance(timedelta(seconds=1))
            await _tick(other, last[other_key])
            assert clock.now() - died <= timedelta(seconds=a.settings.lease_seconds), "no takeover in one period"
    finally:
        for app in apps:
            await worker_for(app.jobs).stop()
            await app.close()


class BotApiStandIn:
    """A local Bot API that accepts sendMessage (and getMe) and records each message it got."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, str]] = []
        self.next_id = 1

    async def handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        data = dict(await request.post()) if request.content_type != "application/json" else await request.json()
        if method == "getMe":
            return web.json_response({"ok": True, "result": {"id": 7000000001, "is_bot": True, "first_name": "CareDesk",
                                                             "username": "caredesk_bot"}})
        if method != "sendMessage":
            return web.json_response({"ok": True, "result": True})
        chat_id, text = int(data["chat_id"]), str(data["text"])
        self.sent.append((chat_id, text))
        self.next_id += 1
        return web.json_response({"ok": True, "result": {
            "message_id": self.next_id, "date": 0, "chat": {"id": chat_id, "type": "private"}, "text": text}})

    async def start(self) -> tuple[web.AppRunner, int]:
        web_app = web.Application()
        web_app.router.add_post("/bot{token}/{method}", self.handle)
        runner = web.AppRunner(web_app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # aiohttp names no public accessor
        return runner, port


def _daytime_zone(now: datetime) -> str:
    """A fixed-offset zone where it is about noon now (no quiet hours, whenever the test runs)."""
    offset = (12 - now.hour) % 24
    offset = offset - 24 if offset > 12 else offset
    return "UTC" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


async def test_a_replica_killed_mid_delivery_loses_nothing_and_doubles_nothing(servers: Any) -> None:
    url, redis, prefix = servers
    now = datetime.now(UTC)
    clock = ManualClock(now)
    world = FakeTelegram(clock)
    settings = _settings(url, redis, "finisher", default_timezone=_daytime_zone(now))
    finisher = create_app(settings, clock=clock, session=world.session())
    finisher.jobs.rate_prefix = prefix
    await _backlog(finisher, CUSTOMERS, rows_each=1)
    stand_in = BotApiStandIn()
    runner, port = await stand_in.start()
    env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": redis, "INSTANCE_ID": "doomed",
           "TELEGRAM_API_URL": f"http://127.0.0.1:{port}", "BOT_TOKEN": "7000000001:" + "A" * 35,
           "DEFAULT_TIMEZONE": settings.default_timezone, "RATE_GLOBAL_PER_SECOND": "200",
           "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "tests.replica_worker"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for _ in range(600):  # up to 60 s to start and send three quarters of the backlog
            if len(stand_in.sent) >= CUSTOMERS * 3 // 4 or process.poll() is not None:
                break
            await asyncio.sleep(0.1)
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        killed_after = len(stand_in.sent)
        assert 0 < killed_after < CUSTOMERS

        # Another replica carries on once the dead one's claims expire.
        clock.advance(timedelta(minutes=5))
        await run_job(finisher.jobs, "outbox_recover")
        await worker_for(finisher.jobs).drain()
    finally:
        if process.poll() is None:
            process.kill()
        await runner.cleanup()
    async with finisher.db.session() as session:
        rows = (await session.scalars(select(OutboxMessage).where(OutboxMessage.category == "care"))).all()
    await finisher.close()
    first = Counter(text for _, text in stand_in.sent)
    second = Counter(m.text for m in world.sent())
    both = first + second
    assert max(both.values()) == 1  # nothing twice
    statuses = Counter(r.status for r in rows)
    assert set(statuses) <= {"sent", "uncertain"} and statuses["sent"] >= CUSTOMERS - 2, statuses
    for row in rows:
        if row.status == "sent":
            assert both[row.text] == 1 and row.telegram_message_id  # sent, once, and we know its message
        else:  # uncertain: the killed replica had taken it; maybe it arrived, never a second time
            assert row.claimed_by == "doomed" and both[row.text] <= 1
    assert sum(both.values()) >= CUSTOMERS - statuses["uncertain"]  # nothing lost
