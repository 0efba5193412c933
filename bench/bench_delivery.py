"""Benchmark: paced delivery of a bulk of care messages while service replies keep arriving.

5,000 care messages (one each to 5,000 consenting customers, all due) are
delivered by the real :class:`jobs.delivery.OutboxWorker` against a local
endpoint that enforces Telegram's limits the way Telegram does — it answers
429 ``retry_after`` when more than 30 messages went out in the last second,
a chat got two within a second, or a group more than 20 in a minute.
Meanwhile service replies (priority 0) arrive at random, about two a second,
written to the outbox by another connection as the bot's handlers would.

Time: by default a *hybrid* clock — real elapsed time (so database work
counts) plus the worker's pauses, which are skipped instead of slept — so
the run takes seconds, not the 200 s the bulk really needs. ``--real``
sleeps for real.

Prints the achieved bulk rate against the configured cap, the number of
429s, and how long service replies waited (p50 / p99 / max) while the bulk
drained.

    python -m bench.bench_delivery
    python -m bench.bench_delivery --care 5000 --service-rate 2 --real

``--adjacent`` drains 200 outbox rows for 50 chats, each chat's four rows next
to each other (the head-of-line case of issue 10): achieved rate against the
cap. ``--replicas 2`` runs two complete app instances (two workers) on one
PostgreSQL database (a throwaway schema, via tests/servers.py) sharing the
rate limits through Redis, in real time: the bulk plus service replies, the
combined rate against the cap, the most messages in any one second (sliding
window), and the service replies' delay.

    python -m bench.bench_delivery --adjacent
    python -m bench.bench_delivery --replicas 2 --care 5000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.fake_telegram import FakeTelegram, ScriptedError  # noqa: E402

START = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai: not quiet hours
CUSTOMER_BASE = 1_000_000_000
SERVICE_BASE = 2_000_000_000

# Telegram's limits as the endpoint enforces them (the bot is configured below these).
TG_GLOBAL_PER_SECOND = 30
TG_CHAT_MIN_GAP = 1.0
TG_GROUP_PER_MINUTE = 20


class HybridTimer:
    """Real elapsed time plus skipped pauses (``--real``: pauses are slept)."""

    def __init__(self, real: bool) -> None:
        self.real = real
        self.origin = time.perf_counter()
        self.skipped = 0.0

    def monotonic(self) -> float:
        return time.perf_counter() - self.origin + self.skipped

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
        elif self.real:
            await asyncio.sleep(seconds)
        else:
            self.skipped += seconds
            await asyncio.sleep(0)


class TimerClock:
    """The app's clock, following the timer."""

    def __init__(self, timer: HybridTimer) -> None:
        self.timer = timer

    def now(self) -> datetime:
        return START + timedelta(seconds=self.timer.monotonic())


class LimitedTelegram(FakeTelegram):
    """The fake Telegram with Telegram's rate limits, and the service-reply source."""

    def __init__(self, timer: Any, db_path: Path | None, service_rate: float, rng: random.Random,
                 clock: Any = None) -> None:
        super().__init__(clock or TimerClock(timer))
        self.timer = timer
        self.recent: deque[float] = deque()
        self.last_to_chat: dict[int, float] = {}
        self.group_recent: dict[int, deque[float]] = {}
        self.rejected = 0
        self.sent_at: dict[int, list[float]] = {}
        self.db = sqlite3.connect(db_path, timeout=30, isolation_level=None) if db_path is not None else None
        self.service_rate = service_rate
        self.rng = rng
        self.next_arrival = rng.expovariate(service_rate) if service_rate > 0 else float("inf")
        self.arrivals: dict[int, float] = {}  # service chat → when the reply was written
        self.arriving = True
        self.service_seq = 0

    def handle(self, method: str, params: dict[str, Any]) -> Any:
        now = self.timer.monotonic()
        self._arrive(now)
        if method in ("sendMessage", "sendPhoto"):
            chat_id = params.get("chat_id")
            while self.recent and self.recent[0] <= now - 1.0:
                self.recent.popleft()
            if len(self.recent) >= TG_GLOBAL_PER_SECOND:
                self.rejected += 1
                raise ScriptedError(429, "Too Many Requests: retry after 1", 1)
            if isinstance(chat_id, int) and chat_id < 0:
                window = self.group_recent.setdefault(chat_id, deque())
                while window and window[0] <= now - 60.0:
                    window.popleft()
                if len(window) >= TG_GROUP_PER_MINUTE:
                    self.rejected += 1
                    raise ScriptedError(429, "Too Many Requests: retry after 3", 3)
                window.append(now)
            elif isinstance(chat_id, int):
                last = self.last_to_chat.get(chat_id)
                if last is not None and now - last < TG_CHAT_MIN_GAP:
                    self.rejected += 1
                    raise ScriptedError(429, "Too Many Requests: retry after 1", 1)
                self.last_to_chat[chat_id] = now
            self.recent.append(now)
            self.sent_at.setdefault(chat_id, []).append(now)  # type: ignore[arg-type]
        return super().handle(method, params)

    def _arrive(self, now: float) -> None:
        """Service replies that arrived by now are written to the outbox (as a handler would)."""
        while self.db is not None and self.arriving and self.next_arrival <= now:
            self.service_seq += 1
            chat_id = SERVICE_BASE + self.service_seq
            at = START + timedelta(seconds=self.next_arrival)
            stamp = at.strftime("%Y-%m-%d %H:%M:%S.%f")
            self.db.execute(
                "INSERT INTO outbox (dedupe_key, kind, category, priority, chat_id, text, not_before, status, "
                "attempts, created_at) VALUES (?, 'notice', 'service', 0, ?, ?, ?, 'pending', 0, ?)",
                (f"svc:{self.service_seq}", chat_id, f"Your order #{self.service_seq} is on its way.", stamp, stamp),
            )
            self.arrivals[chat_id] = self.next_arrival
            self.next_arrival += self.rng.expovariate(self.service_rate)


def _prepare(db_path: Path, care: int) -> None:
    from storage.migrate import upgrade

    upgrade(f"sqlite+aiosqlite:///{db_path}")
    db = sqlite3.connect(db_path)
    stamp = (START - timedelta(days=400)).strftime("%Y-%m-%d %H:%M:%S.%f")
    due = START.strftime("%Y-%m-%d %H:%M:%S.%f")
    db.executemany(
        "INSERT INTO customers (id, telegram_id, name, language, care_consent, reachable, registered_at, updated_at) "
        "VALUES (?, ?, ?, 'en', 1, 1, ?, ?)",
        [(n, CUSTOMER_BASE + n, f"Customer {n}", stamp, stamp) for n in range(1, care + 1)],
    )
    db.executemany(
        "INSERT INTO outbox (dedupe_key, kind, category, priority, chat_id, customer_id, text, not_before, status, "
        "attempts, created_at) VALUES (?, 'reorder', 'care', 11, ?, ?, ?, ?, 'pending', 0, ?)",
        [(f"reorder:{n}:1:2026-03-04", CUSTOMER_BASE + n, n,
          f"🌾 Hi Customer {n}! By our count your rice runs out around Wednesday.", due, due)
         for n in range(1, care + 1)],
    )
    db.commit()
    db.close()


async def _run(care: int, service_rate: float, real: bool, seed: int) -> dict[str, Any]:
    from bot.app import create_app
    from bot.config import Settings
    from jobs.delivery import OutboxWorker

    with tempfile.TemporaryDirectory(prefix="caredesk-delivery-") as tmp:
        db_path = Path(tmp) / "delivery.sqlite3"
        _prepare(db_path, care)
        timer = HybridTimer(real)
        world = LimitedTelegram(timer, db_path, service_rate, random.Random(seed))
        settings = Settings(_env_file=None, database_url=f"sqlite+aiosqlite:///{db_path}",
                            default_timezone="Asia/Shanghai", care_cap_per_day=1, care_cap_per_week=3)
        app = create_app(settings, clock=world.clock, session=world.session())  # type: ignore[arg-type]
        worker = OutboxWorker(app.jobs, timer=timer, rng=random.Random(seed))
        app.jobs.outbox = worker
        care_chats = {CUSTOMER_BASE + n for n in range(1, care + 1)}
        wall = time.perf_counter()
        started = timer.monotonic()
        try:
            while True:
                await worker.drain()
                done = sum(1 for chat in care_chats if chat in world.sent_at)
                if done >= care:
                    break
                await timer.sleep(0.05)  # nothing due this instant (e.g. a 429 pause ended): look again
            bulk_end = max(world.sent_at[chat][0] for chat in care_chats)
            world.arriving = False
            await worker.drain()  # the last service replies
        finally:
            await app.close()
            world.db.close()
        elapsed = bulk_end - started
        total = sum(1 for times in world.sent_at.values() for at in times if at <= bulk_end)
        every = sorted(at for times in world.sent_at.values() for at in times)
        delays = sorted(world.sent_at[chat][0] - at for chat, at in world.arrivals.items() if chat in world.sent_at)
        lost = sum(1 for chat in world.arrivals if chat not in world.sent_at)
        duplicates = sum(1 for times in world.sent_at.values() if len(times) > 1)

        def pct(q: float) -> float:
            return delays[min(len(delays) - 1, int(q * len(delays)))] if delays else float("nan")

        return {
            "care": care, "cap_per_second": settings.rate_global_per_second, "bulk_seconds": round(elapsed, 2),
            "sent_while_bulk": total, "achieved_rate": round(total / elapsed, 2),
            "share_of_cap": round(total / elapsed / settings.rate_global_per_second, 3),
            "bulk_rate": round(care / elapsed, 2), "max_in_any_second": _max_window(every),
            "rate_limited_429": world.rejected, "worker_429": worker.stats.rate_limited,
            "service_replies": len(delays), "service_lost": lost, "duplicates": duplicates,
            "service_delay_p50": round(pct(0.50), 3), "service_delay_p99": round(pct(0.99), 3),
            "service_delay_max": round(delays[-1], 3) if delays else None,
            "service_delay_mean": round(statistics.fmean(delays), 3) if delays else None,
            "wall_seconds": round(time.perf_counter() - wall, 1), "real_time": real,
        }


async def _adjacent(chats: int, per_chat: int, seed: int) -> dict[str, Any]:
    """``chats`` × ``per_chat`` service rows, each chat's rows adjacent; one worker on SQLite."""
    from bot.app import create_app
    from bot.config import Settings
    from jobs.delivery import OutboxWorker
    from storage.migrate import upgrade

    with tempfile.TemporaryDirectory(prefix="caredesk-adjacent-") as tmp:
        db_path = Path(tmp) / "adjacent.sqlite3"
        upgrade(f"sqlite+aiosqlite:///{db_path}")
        db = sqlite3.connect(db_path)
        due = START.strftime("%Y-%m-%d %H:%M:%S.%f")
        db.executemany(
            "INSERT INTO outbox (dedupe_key, kind, category, priority, chat_id, text, not_before, status, attempts, "
            "created_at) VALUES (?, 'notice', 'service', 0, ?, ?, ?, 'pending', 0, ?)",
            [(f"svc:{c}:{n}", SERVICE_BASE + c, f"Notice {n} for chat {c}", due, due)
             for c in range(chats) for n in range(per_chat)])
        db.commit()
        db.close()
        timer = HybridTimer(real=False)
        world = LimitedTelegram(timer, None, 0.0, random.Random(seed))
        settings = Settings(_env_file=None, database_url=f"sqlite+aiosqlite:///{db_path}")
        app = create_app(settings, clock=world.clock, session=world.session())  # type: ignore[arg-type]
        worker = OutboxWorker(app.jobs, timer=timer, rng=random.Random(seed))
        app.jobs.outbox = worker
        try:
            started = timer.monotonic()
            await worker.drain()
        finally:
            await app.close()
        times = sorted(t for sent in world.sent_at.values() for t in sent)
        elapsed = times[-1] - started if times else float("nan")
        rate = len(times) / elapsed if times else 0.0
        return {"rows": chats * per_chat, "sent": len(times), "seconds": round(elapsed, 2),
                "rate": round(rate, 2), "share_of_cap": round(rate / settings.rate_global_per_second, 3),
                "cap": settings.rate_global_per_second, "rate_limited_429": world.rejected,
                "max_in_any_second": _max_window(times)}


def _max_window(times: list[float], window: float = 1.0) -> int:
    """The most sends in any ``window`` seconds (sliding), by the times the endpoint received them.

    A window is [t, t + window): a send exactly ``window`` after another is not in its window
    (as the endpoint's own counter sees it). This is what "never above the cap in any second" means.
    """
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


class _WallClock:
    def __init__(self, timer: Any) -> None:
        self.timer = timer

    def now(self) -> datetime:
        return START + timedelta(seconds=self.timer.monotonic())


async def _replicas(replicas: int, care: int, service_rate: float, seed: int) -> dict[str, Any]:
    """``replicas`` app instances on one PostgreSQL schema, limits shared in Redis, in real time."""
    from sqlalchemy import text as sql

    from bot.app import create_app
    from bot.config import Settings
    from jobs.delivery import OutboxWorker
    from jobs.pacing import RealTimer
    from storage.repositories import Repos
    from tests import servers

    if servers.postgres_unreachable() or servers.redis_unreachable():
        raise SystemExit(f"needs PostgreSQL and Redis: {servers.postgres_unreachable() or servers.redis_unreachable()}")
    url = servers.postgres_url(migrated=True)
    redis = os.environ.get("TEST_REDIS_URL") or servers.DEFAULT_REDIS_URL
    prefix = servers.redis_prefix()
    timer = RealTimer()
    origin = timer.monotonic()

    class Elapsed:
        def monotonic(self) -> float:
            return timer.monotonic() - origin

    elapsed_timer = Elapsed()
    rng = random.Random(seed)
    world = LimitedTelegram(elapsed_timer, None, 0.0, rng, clock=_WallClock(elapsed_timer))
    apps = []
    try:
        for n in range(replicas):
            settings = Settings(_env_file=None, database_url=url, redis_url=redis, instance_id=f"bench-{n}",
                                default_timezone="Asia/Shanghai", care_cap_per_day=1, care_cap_per_week=3)
            app = create_app(settings, clock=world.clock, session=world.session())  # type: ignore[arg-type]
            app.jobs.rate_prefix = prefix
            app.jobs.outbox = OutboxWorker(app.jobs, rng=random.Random(seed + n))
            apps.append(app)
        stamp = START - timedelta(days=400)
        async with apps[0].db.session() as session:
            await session.execute(sql(
                "INSERT INTO customers (id, telegram_id, name, language, care_consent, reachable, registered_at, "
                "updated_at) SELECT n, :base + n, 'Customer ' || n, 'en', true, true, :stamp, :stamp "
                "FROM generate_series(1, :care) AS n"), {"base": CUSTOMER_BASE, "stamp": stamp, "care": care})
            await Repos(session).outbox.add_many([
                dict(dedupe_key=f"reorder:{n}", kind="reorder", category="care", priority=11,
                     chat_id=CUSTOMER_BASE + n, customer_id=n, text=f"🌾 Hi Customer {n}! Your rice runs out soon.",
                     not_before=START, status="pending", attempts=0, created_at=START)
                for n in range(1, care + 1)])
            await session.commit()
        care_chats = {CUSTOMER_BASE + n for n in range(1, care + 1)}
        arrivals: dict[int, float] = {}
        done = asyncio.Event()

        async def service_replies() -> None:
            seq = 0
            while not done.is_set():
                await asyncio.sleep(rng.expovariate(service_rate))
                seq += 1
                chat = SERVICE_BASE + seq
                async with apps[seq % replicas].db.session() as session:
                    await Repos(session).outbox.enqueue(
                        dedupe_key=f"svc:{seq}", kind="notice", chat_id=chat, now=world.clock.now(),
                        text=f"Your order #{seq} is on its way.")
                    await session.commit()
                arrivals[chat] = elapsed_timer.monotonic()
                for app in apps:
                    app.jobs.outbox.wake()

        async def deliver(app: Any) -> None:
            worker = app.jobs.outbox
            while not done.is_set():
                await worker.drain()
                worker._wake.clear()
                try:
                    await asyncio.wait_for(worker._wake.wait(), 0.05)
                except TimeoutError:
                    pass

        async def watch() -> None:
            while sum(1 for chat in care_chats if chat in world.sent_at) < care:
                await asyncio.sleep(0.2)
            done.set()

        wall = time.perf_counter()
        started = elapsed_timer.monotonic()
        await asyncio.gather(service_replies(), watch(), *(deliver(app) for app in apps))
        for app in apps:  # the last replies
            await app.jobs.outbox.drain()
        bulk_end = max(world.sent_at[chat][0] for chat in care_chats)
        times = sorted(t for sent in world.sent_at.values() for t in sent if t <= bulk_end)
        per_worker = [app.jobs.outbox.stats.sent for app in apps]
    finally:
        for app in apps:
            await app.jobs.outbox.stop()
            await app.close()
        servers.redis_delete_prefix(prefix)
        servers.drop_postgres(url)
    elapsed = bulk_end - started
    delays = sorted(world.sent_at[chat][0] - at for chat, at in arrivals.items() if chat in world.sent_at)
    cap = apps[0].settings.rate_global_per_second

    def pct(q: float) -> float:
        return delays[min(len(delays) - 1, int(q * len(delays)))] if delays else float("nan")

    return {"replicas": replicas, "care": care, "seconds": round(elapsed, 1), "sent": len(times),
            "rate": round(len(times) / elapsed, 2), "share_of_cap": round(len(times) / elapsed / cap, 3), "cap": cap,
            "max_in_any_second": _max_window(times), "rate_limited_429": world.rejected, "per_worker": per_worker,
            "duplicates": sum(1 for sent in world.sent_at.values() if len(sent) > 1),
            "service_replies": len(delays), "service_p50": round(pct(0.5), 3), "service_p99": round(pct(0.99), 3),
            "service_max": round(delays[-1], 3) if delays else None,
            "wall_seconds": round(time.perf_counter() - wall, 1)}


def _verdict(r: dict[str, Any]) -> str:
    cap = r.get("cap") or r.get("cap_per_second")
    return "within the cap" if r["max_in_any_second"] <= cap else f"ABOVE the {cap:g}/s cap"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="outbox delivery pacing benchmark")
    parser.add_argument("--care", type=int, default=5000, help="care messages in the bulk (default %(default)s)")
    parser.add_argument("--service-rate", type=float, default=2.0,
                        help="service replies arriving per second while the bulk drains (default %(default)s)")
    parser.add_argument("--real", action="store_true", help="sleep for real instead of skipping pauses")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--adjacent", action="store_true",
                        help="200 rows for 50 chats, each chat's 4 rows adjacent (head-of-line blocking)")
    parser.add_argument("--replicas", type=int, default=0,
                        help="N app instances on PostgreSQL with the limits shared in Redis, in real time")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    if args.adjacent:
        r = asyncio.run(_adjacent(50, 4, args.seed))
        print(f"adjacent rows on {os.cpu_count()} CPU(s), load average {load:.1f} (pauses skipped, database time real)")
        print(f"{r['rows']} rows for 50 chats (4 adjacent each): {r['sent']} sent in {r['seconds']} s "
              f"= {r['rate']} msg/s ({r['share_of_cap'] * 100:.1f} % of the {r['cap']:g}/s cap); "
              f"most in any 1 s window {r['max_in_any_second']} ({_verdict(r)}); "
              f"429s {r['rate_limited_429']}")
        print(r)
        return
    if args.replicas:
        r = asyncio.run(_replicas(args.replicas, args.care, args.service_rate, args.seed))
        print(f"{r['replicas']} replicas on PostgreSQL + Redis, real time, {os.cpu_count()} CPU(s), "
              f"load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
        print(f"bulk: {r['care']} care messages in {r['seconds']} s; with the service replies {r['sent']} messages = "
              f"{r['rate']} msg/s ({r['share_of_cap'] * 100:.1f} % of the {r['cap']:g}/s cap); "
              f"most in any 1 s window {r['max_in_any_second']} ({_verdict(r)}); per worker {r['per_worker']}")
        print(f"429s {r['rate_limited_429']}; duplicates {r['duplicates']}; service replies {r['service_replies']}: "
              f"delay p50 {r['service_p50']} s, p99 {r['service_p99']} s, max {r['service_max']} s")
        print(r)
        return
    print(f"delivery benchmark on {os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f}"
          f"{' (real time)' if args.real else ' (pauses skipped, database time real)'}")
    r = asyncio.run(_run(args.care, args.service_rate, args.real, args.seed))
    print(f"bulk: {r['care']} care messages in {r['bulk_seconds']} s; with the service replies "
          f"{r['sent_while_bulk']} messages = {r['achieved_rate']} msg/s "
          f"({r['share_of_cap'] * 100:.1f} % of the {r['cap_per_second']:g}/s cap; the bulk alone {r['bulk_rate']}/s); "
          f"most in any 1 s window {r['max_in_any_second']} ({_verdict(r)})")
    print(f"429 answers from the endpoint: {r['rate_limited_429']}; duplicates: {r['duplicates']}")
    print(f"service replies while the bulk drained: {r['service_replies']} (lost {r['service_lost']}); "
          f"delay p50 {r['service_delay_p50']} s, p99 {r['service_delay_p99']} s, max {r['service_delay_max']} s")
    print(f"(wall time of the run: {r['wall_seconds']} s)")
    print(r)


if __name__ == "__main__":
    main()
