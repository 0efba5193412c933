"""One pacer for every send: the outbox never waits on one busy chat, and the
handlers' send path (``worker_for(app.jobs).pacer.acquire``) shares its limits."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from typing import Any

import pytest

from bot.app import App
from bot.clock import ManualClock
from bot.fake_telegram import FakeTelegram
from jobs.delivery import worker_for
from jobs.pacing import ClockTimer, Pacer
from jobs.runner import run_job
from tests.conftest import START
from tests.helpers import enqueue, outbox_by_key

BASE = 700_000


def per_second(times: list[float]) -> Counter[int]:
    """Sends per simulated second (whole seconds of the ManualClock since the start)."""
    return Counter(math.floor(t + 1e-9) for t in times)


async def test_adjacent_rows_of_busy_chats_do_not_hold_up_the_others(app: App, world: FakeTelegram) -> None:
    """200 rows for 50 chats, each chat's 4 rows next to each other: the cap, not one chat's pace, sets the rate."""
    worker = worker_for(app.jobs)
    worker.stats.keep_events = True
    for chat in range(50):
        for n in range(4):
            await enqueue(app, f"svc:{chat}:{n}", BASE + chat, text=f"notice {chat}.{n}", category="service")
    await run_job(app.jobs, "deliver_outbox")
    sent = sorted(t for t, outcome, _ in worker.stats.events if outcome == "sent")
    assert len(sent) == 200
    cap = app.settings.rate_global_per_second
    counts = per_second(sent)
    assert max(counts.values()) <= cap  # never above the cap in any second
    # 200 at 25/s is 8 s; each chat's four need 3 s between first and last. Allow 5 % slack.
    assert sent[-1] - sent[0] <= 200 / cap / 0.95
    full = [counts[s] for s in range(math.floor(sent[0]), math.floor(sent[-1]))]
    assert min(full) >= 0.95 * cap - 1
    for chat in range(50):  # each chat: in order, a second apart
        assert [m.text for m in world.sent(BASE + chat)] == [f"notice {chat}.{n}" for n in range(4)]
    rows = await outbox_by_key(app)
    assert {r.status for r in rows.values()} == {"sent"}


async def test_service_acquire_lets_a_short_burst_through_then_paces_the_chat() -> None:
    clock = ManualClock(START)
    timer = ClockTimer(clock)
    pacer = Pacer(25, 1, 18, timer.monotonic(), timer=timer)
    moments = []
    for _ in range(5):
        await pacer.acquire(42, service=True)
        moments.append(timer.monotonic())
    # Three back to back (only the global spacing), then one a second.
    assert moments[2] - moments[0] == pytest.approx(2 / 25, abs=1e-5)
    assert moments[3] - moments[0] >= 1.0 - 1e-5
    assert moments[4] - moments[3] == pytest.approx(1.0, abs=1e-5)


async def test_acquire_spaces_everyone_and_honours_retry_after() -> None:
    clock = ManualClock(START)
    timer = ClockTimer(clock)
    pacer = Pacer(25, 1, 18, timer.monotonic(), timer=timer)
    moments = []
    for chat in range(60):
        await pacer.acquire(1000 + chat, service=False)
        moments.append(timer.monotonic())
    assert max(per_second(moments).values()) <= 25
    pacer.note_retry_after(5)
    before = timer.monotonic()
    await pacer.acquire(2000, service=True)
    assert timer.monotonic() - before >= 5.0


async def test_worker_waits_for_a_chat_a_service_call_just_used(app: App, world: FakeTelegram) -> None:
    worker = worker_for(app.jobs)
    worker.stats.keep_events = True
    for _ in range(3):  # a handler's replies to a person who just wrote
        await worker.pacer.acquire(BASE, service=True)
    started = worker.timer.monotonic()
    await enqueue(app, "svc:after", BASE, category="service")
    await run_job(app.jobs, "deliver_outbox")
    (at,) = [t for t, outcome, _ in worker.stats.events if outcome == "sent"]
    assert at - started >= 2.0  # the burst is paid back before the outbox writes to that chat again


async def test_two_pacers_share_the_limits_through_redis() -> None:
    from redis.asyncio import Redis

    from jobs.pacing import RedisLimits
    from tests.servers import redis_delete_prefix, redis_prefix, redis_url

    url, prefix = redis_url(), redis_prefix()
    client = Redis.from_url(url)
    clock = ManualClock(START)
    try:
        pacers = []
        for _ in range(2):
            timer = ClockTimer(clock)
            pacers.append(Pacer(25, 1, 18, timer.monotonic(), timer=timer, shared=RedisLimits(client, prefix)))
        first, second = pacers
        moments: list[float] = []

        async def send(pacer: Pacer, chats: range) -> None:
            for chat in chats:
                await pacer.acquire(chat, service=False)
                moments.append((clock.now() - START).total_seconds())

        await asyncio.gather(send(first, range(1000, 1050)), send(second, range(2000, 2050)))
        moments.sort()
        assert len(moments) == 100
        assert max(per_second(moments).values()) <= 25  # together, not 25 each
        assert moments[-1] - moments[0] >= 99 / 25 - 1e-3
        # A chat's turn is shared too, and so is a 429's pause.
        assert await first.take_chat(3000) == 0
        assert await second.take_chat(3000) > 0
        await first.note_retry_after_shared(5)
        before = clock.now()
        await second.acquire(4000, service=True)
        assert (clock.now() - before).total_seconds() >= 5.0
    finally:
        await client.aclose()
        redis_delete_prefix(prefix)


def most_in_any_second(times: list[float]) -> int:
    """The most sends in any sliding 1-second window: [t, t + 1) for every t (a send exactly a second
    after another is not in its window, as Telegram's counter sees it)."""
    times = sorted(times)
    best = start = 0
    for end, t in enumerate(times):
        while times[start] <= t - 1.0 + 1e-9:
            start += 1
        best = max(best, end - start + 1)
    return best


@pytest.mark.parametrize("limits", ["local", "redis"])
async def test_no_second_holds_more_than_the_cap_when_calls_arrive_late(
        app: App, world: FakeTelegram, clock: ManualClock, limits: str) -> None:
    """A call reaches Telegram some moment after its turn (the event loop is busy, the network is slow):
    the sliding window of the times Telegram *received* the messages never holds more than the cap.
    Each call here arrives 0–30 ms after the pacer let it go, at random."""
    import random

    from jobs.pacing import RedisLimits

    worker = worker_for(app.jobs)
    client = prefix = None
    if limits == "redis":
        from redis.asyncio import Redis

        from tests.servers import redis_prefix, redis_url

        client, prefix = Redis.from_url(redis_url()), redis_prefix()
        worker.pacer.shared = RedisLimits(client, prefix)
    rng = random.Random(13)

    async def late(make_request: Any, bot: Any, method: Any) -> Any:
        await worker.timer.sleep(rng.uniform(0.0, 0.03))  # on its way (moves the ManualClock)
        return await make_request(bot, method)

    app.bot.session.middleware(late)  # innermost: between the pacer's go-ahead and Telegram
    received: list[float] = []
    handle = world.handle

    def logged(method: str, params: dict[str, Any]) -> Any:
        if method == "sendMessage":
            received.append((clock.now() - START).total_seconds())
        return handle(method, params)

    world.handle = logged  # type: ignore[method-assign]
    try:
        for chat in range(150):
            await enqueue(app, f"svc:{chat}", BASE + chat, text=f"notice {chat}", category="service")
        await run_job(app.jobs, "deliver_outbox")
    finally:
        if client is not None:
            from tests.servers import redis_delete_prefix

            await client.aclose()
            redis_delete_prefix(prefix)
    assert len(received) == 150
    assert most_in_any_second(received) <= app.settings.rate_global_per_second
