"""Pacing every message the bot sends to Telegram's limits (shared/TELEGRAM.md).

One :class:`Pacer` per app (``jobs.delivery.worker_for(app.jobs).pacer``): the outbox
worker and the Telegram calls handlers make while handling an update both go
through it, so together they never exceed

* ``RATE_GLOBAL_PER_SECOND`` overall — in any sliding second of the times the
  calls *reach* Telegram (:class:`SendWindow`: a send counts from its go-ahead
  until a second after its call came back), evenly spaced (a reservation per
  send, one every ``1/rate`` s; no saved-up burst);
* ``RATE_CHAT_PER_SECOND`` per private chat and ``RATE_GROUP_PER_MINUTE`` per
  group — token buckets; a *service* call (a reply right after a person wrote)
  may run a short burst ahead of the bucket (:data:`SERVICE_BURST`), the worker
  never does;
* a 429's ``retry_after`` (plus jitter): all sending pauses.

Telegram's limits: https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this;
``retry_after``: https://core.telegram.org/bots/api#responseparameters.

Time comes from a :class:`Timer`: real time live, the ManualClock in tests (a
"sleep" moves the clock, nothing waits for real).

With ``REDIS_URL`` set the global slots and sends, the per-chat buckets and the
429 pause live in Redis (:class:`RedisLimits`, small Lua scripts), so the limits
hold across replicas. The call's return is reported by the request middleware
:func:`count_returns` (the delivery worker puts it on the bot's session, inside
the send path). The scripts are GCRA ("generic cell rate algorithm": one
"theoretical arrival time" per key). Not the ``limits`` package: it reads the
time itself, and the tests need the injected clock.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import random
import time
import uuid
import weakref
from collections import deque
from contextvars import ContextVar
from datetime import timedelta
from typing import Any, Protocol

from bot.clock import ManualClock

# Pause added to a 429's retry_after, in seconds (uniform in this range).
JITTER = (0.1, 1.0)
# Per-chat buckets kept at most (idle full ones are dropped first).
MAX_BUCKETS = 5000
# A service call may send this many messages to one private chat back to back
# (then the chat's rate applies); groups keep their own small burst.
SERVICE_BURST = 3

_EPS = 1e-6
# The global rate holds in any window of this many seconds (Telegram's "per second").
WINDOW = 1.0
# A send whose call never reports back counts this long (aiogram's request timeout), then the window.
CALL_TIMEOUT = 60.0
# Times in Redis count from here (2020-01-01 UTC): smaller numbers keep microseconds exact in a double.
SHARED_EPOCH = 1_577_836_800

log = logging.getLogger(__name__)


# ----- time --------------------------------------------------------------------------------

class Timer(Protocol):
    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class RealTimer:
    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def shared_now(self) -> float | None:
        """Time that other processes agree on (None: Redis uses its own clock)."""
        return None


class ClockTimer:
    """Pacing on a ManualClock: sleeping moves the clock instead of waiting."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.origin = clock.now()

    def monotonic(self) -> float:
        return (self.clock.now() - self.origin).total_seconds()

    async def sleep(self, seconds: float) -> None:
        """Move the clock to the wake-up moment and go on. With several sleepers on one clock
        (two workers in one test) they wake in the order of their moments, each at its own."""
        wake = self.clock.now() + timedelta(microseconds=math.ceil(max(0.0, seconds) * 1_000_000))
        sleepers = _SLEEPERS.setdefault(self.clock, [])
        token = (wake, next(_TOKENS))
        heapq.heappush(sleepers, token)
        try:
            await asyncio.sleep(0)  # others run first
            while sleepers[0] != token:  # an earlier wake-up goes first
                await asyncio.sleep(0)
            if wake > self.clock.now():
                self.clock.set(wake)
        finally:
            sleepers.remove(token)
            heapq.heapify(sleepers)

    def shared_now(self) -> float | None:
        return self.clock.now().timestamp() - SHARED_EPOCH


# Sleepers on each ManualClock: (wake-up moment, order) — see ClockTimer.sleep.
_SLEEPERS: weakref.WeakKeyDictionary[ManualClock, list[tuple[Any, int]]] = weakref.WeakKeyDictionary()
_TOKENS = itertools.count()


def timer_for(clock: Any) -> Timer:
    return ClockTimer(clock) if isinstance(clock, ManualClock) else RealTimer()


# ----- local buckets -----------------------------------------------------------------------

class TokenBucket:
    """``rate`` tokens per second, at most ``capacity`` saved up; one send takes one.

    Tokens may go below zero (a service burst, a reservation): the debt is paid
    back at the same rate before the next ordinary send.
    """

    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.stamp = now

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def wait(self, now: float, allowance: float = 0.0) -> float:
        """Seconds until a token is there (0: now); ``allowance`` tokens of debt are accepted."""
        self._refill(now)
        missing = 1.0 - allowance - self.tokens
        return 0.0 if missing <= _EPS else missing / self.rate

    def take(self, now: float) -> None:
        self._refill(now)
        self.tokens -= 1.0

    def give_back(self, now: float) -> None:
        self._refill(now)
        self.tokens = min(self.capacity, self.tokens + 1.0)

    def full(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= self.capacity - _EPS


class SendWindow:
    """At most ``limit`` sends in any ``window`` seconds of the times the calls *reached* Telegram.

    That moment is not known here, only that it lies between the go-ahead and the
    call's return. So a send counts from its go-ahead (:meth:`open`) until
    ``window`` seconds after its call came back (:meth:`close`), and a go-ahead
    needs fewer than ``limit`` counted. Then no window of arrivals holds
    ``limit + 1``: of such a set, the last to get its go-ahead got it before its
    arrival, so before the window's end; every other one had its go-ahead
    earlier and came back after its arrival, so after the window's start — it
    still counted, and the last one would have been refused.

    The price: each send takes the window plus its call's round trip, so the
    rate is at most ``limit / (window + round trip)`` (0.1 % less per ms).
    """

    __slots__ = ("_ids", "ends", "flying", "limit", "window")

    def __init__(self, limit: int, window: float = WINDOW) -> None:
        self.limit = limit
        self.window = window
        self.flying: dict[int, float] = {}  # a go-ahead whose call has not come back → its moment
        self.ends: deque[float] = deque()  # when the sends that came back stop counting, in order
        self._ids = itertools.count(1)

    def _expire(self, now: float) -> None:
        while self.ends and self.ends[0] <= now + 1e-9:
            self.ends.popleft()
        if self.flying:
            for permit in [p for p, at in self.flying.items() if at + CALL_TIMEOUT + self.window <= now]:
                del self.flying[permit]

    def wait(self, now: float) -> float:
        """Seconds until a go-ahead can be given (0: now)."""
        self._expire(now)
        if len(self.flying) + len(self.ends) < self.limit:
            return 0.0
        # The first to stop counting: a send that came back, or (no sooner than a window from
        # now) one still on its way.
        soonest = min(([self.ends[0]] if self.ends else [])
                      + [at + CALL_TIMEOUT + self.window for at in self.flying.values()], default=now + self.window)
        return max(1e-6, min(soonest - now, self.window))

    def open(self, now: float) -> int:
        permit = next(self._ids)
        self.flying[permit] = now
        return permit

    def close(self, permit: int, now: float) -> None:
        if self.flying.pop(permit, None) is not None:
            self.note(now)

    def cancel(self, permit: int) -> None:
        self.flying.pop(permit, None)

    def note(self, now: float) -> None:
        """A send that came back at ``now`` (or was made without waiting)."""
        self.ends.append(max(now + self.window, self.ends[-1] if self.ends else now))


# ----- shared limits (Redis) ------------------------------------------------------------------

# KEYS: slot key, pause key. ARGV: now ('' = Redis's clock), interval.
# Reserves the next global slot: returns (seconds until it, now used).
_RESERVE = """
local now = tonumber(ARGV[1])
if not now then local t = redis.call('TIME'); now = (tonumber(t[1]) - 1577836800) + tonumber(t[2]) / 1000000 end
local interval = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local pause = tonumber(redis.call('GET', KEYS[2]) or '0')
local start = math.max(tat, now, pause)
redis.call('SET', KEYS[1], string.format('%.6f', start + interval), 'PX', 600000)
return {string.format('%.6f', start - now), string.format('%.6f', now)}
"""
# KEYS: chat key. ARGV: now, interval, tolerance (seconds of burst).
# Takes a chat's turn when it is free (returns 0), else returns the seconds to wait.
_CHAT = """
local now = tonumber(ARGV[1])
if not now then local t = redis.call('TIME'); now = (tonumber(t[1]) - 1577836800) + tonumber(t[2]) / 1000000 end
local interval = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
local wait = tat - tolerance - now
if wait > 0.000001 then return string.format('%.6f', wait) end
redis.call('SET', KEYS[1], string.format('%.6f', tat + interval), 'PX', math.ceil((tat + interval - now) * 1000) + 1000)
return '0'
"""
# KEYS: sends key (a sorted set: permit → when it stops counting). ARGV: now, permit, limit,
# window, call timeout. A go-ahead when fewer than ``limit`` sends count (returns '0'), else the
# seconds to wait. An open send counts until the timeout, a closed one a window after it came back.
_OPEN = """
local now = tonumber(ARGV[1])
if not now then local t = redis.call('TIME'); now = (tonumber(t[1]) - 1577836800) + tonumber(t[2]) / 1000000 end
local window = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.6f', now))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return string.format('%.6f', math.max(0.000001, math.min(tonumber(first[2]) - now, window)))
end
redis.call('ZADD', KEYS[1], string.format('%.6f', now + tonumber(ARGV[5]) + window), ARGV[2])
redis.call('PEXPIRE', KEYS[1], math.ceil((tonumber(ARGV[5]) + window) * 1000) + 1000)
return '0'
"""
# KEYS: sends key. ARGV: now, permit, window. The permit's call came back: it counts a window more.
_CLOSE = """
local now = tonumber(ARGV[1])
if not now then local t = redis.call('TIME'); now = (tonumber(t[1]) - 1577836800) + tonumber(t[2]) / 1000000 end
redis.call('ZADD', KEYS[1], 'XX', string.format('%.6f', now + tonumber(ARGV[3])), ARGV[2])
return '1'
"""
# KEYS: pause key. ARGV: now, seconds. A 429 pauses every replica.
_PAUSE = """
local now = tonumber(ARGV[1])
if not now then local t = redis.call('TIME'); now = (tonumber(t[1]) - 1577836800) + tonumber(t[2]) / 1000000 end
local until_ = now + tonumber(ARGV[2])
local old = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ > old then
  redis.call('SET', KEYS[1], string.format('%.6f', until_), 'PX', math.ceil(tonumber(ARGV[2]) * 1000) + 1000)
end
return '1'
"""


class RedisLimits:
    """The global slots and sends, per-chat turns and the 429 pause, shared by every replica through Redis."""

    def __init__(self, redis: Any, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._reserve = redis.register_script(_RESERVE)
        self._open = redis.register_script(_OPEN)
        self._close = redis.register_script(_CLOSE)
        self._chat = redis.register_script(_CHAT)
        self._pause = redis.register_script(_PAUSE)

    @staticmethod
    def _now(now: float | None) -> str:
        return "" if now is None else f"{now:.6f}"

    async def reserve(self, now: float | None, interval: float) -> float:
        wait, _ = await self._reserve(keys=[f"{self.prefix}:slot", f"{self.prefix}:pause"],
                                      args=[self._now(now), f"{interval:.6f}"])
        return float(wait)

    async def open(self, now: float | None, permit: str, limit: int, window: float) -> float:
        """A go-ahead under the sliding window (0), or the seconds to wait for one."""
        wait = await self._open(keys=[f"{self.prefix}:sends"],
                                args=[self._now(now), permit, str(limit), f"{window:.6f}", f"{CALL_TIMEOUT:.6f}"])
        return float(wait)

    async def close(self, now: float | None, permit: str, window: float) -> None:
        await self._close(keys=[f"{self.prefix}:sends"], args=[self._now(now), permit, f"{window:.6f}"])

    async def cancel(self, permit: str) -> None:
        await self.redis.zrem(f"{self.prefix}:sends", permit)

    async def chat(self, chat_id: int, now: float | None, interval: float, tolerance: float) -> float:
        wait = await self._chat(keys=[f"{self.prefix}:chat:{chat_id}"],
                                args=[self._now(now), f"{interval:.6f}", f"{tolerance:.6f}"])
        return float(wait)

    async def pause(self, now: float | None, seconds: float) -> None:
        await self._pause(keys=[f"{self.prefix}:pause"], args=[self._now(now), f"{seconds:.6f}"])


# ----- the pacer ---------------------------------------------------------------------------

class Pacer:
    """The three limits, and the global pause after a 429."""

    def __init__(self, global_per_second: float, chat_per_second: float, group_per_minute: float,
                 now: float, rng: random.Random | None = None, *, timer: Timer | None = None,
                 shared: RedisLimits | None = None) -> None:
        # Capacity one: strict spacing (reservations); the window makes "in any second" exact.
        self.global_bucket = TokenBucket(global_per_second, 1.0, now)
        self.window = SendWindow(max(1, int(global_per_second * WINDOW + 1e-9)))
        self.chat_rate = chat_per_second
        self.group_rate = group_per_minute / 60.0
        self.chats: dict[int, TokenBucket] = {}
        self.paused_until = float("-inf")
        self.rng = rng or random.Random()
        self.timer = timer
        self.shared = shared
        self._name = uuid.uuid4().hex[:12]  # this pacer's go-aheads in Redis
        self._permits = itertools.count(1)

    @classmethod
    def from_settings(cls, settings: Any, now: float, rng: random.Random | None = None, *,
                      timer: Timer | None = None, shared: RedisLimits | None = None) -> Pacer:
        return cls(settings.rate_global_per_second, settings.rate_chat_per_second,
                   settings.rate_group_per_minute, now, rng, timer=timer, shared=shared)

    # ----- local, synchronous ------------------------------------------------------------
    def _bucket(self, chat_id: int, now: float) -> TokenBucket:
        bucket = self.chats.get(chat_id)
        if bucket is None:
            if len(self.chats) >= MAX_BUCKETS:
                self.prune(now)
            # Groups (negative ids): a burst of two, then the per-minute rate.
            bucket = (TokenBucket(self.group_rate, 2.0, now) if chat_id < 0
                      else TokenBucket(self.chat_rate, 1.0, now))
            self.chats[chat_id] = bucket
        return bucket

    def global_wait(self, now: float) -> float:
        return max(0.0, self.paused_until - now, self.global_bucket.wait(now))

    def chat_wait(self, chat_id: int, now: float, allowance: float = 0.0) -> float:
        bucket = self.chats.get(chat_id)
        return 0.0 if bucket is None else bucket.wait(now, allowance)

    def take(self, chat_id: int, now: float) -> None:
        """Count a send made without waiting (a reply under a manual clock)."""
        self.global_bucket.take(now)
        self.window.note(now)
        self._bucket(chat_id, now).take(now)

    def pause(self, seconds: float, now: float) -> float:
        """Stop all sending for ``seconds`` plus jitter; returns the pause's end."""
        self.paused_until = max(self.paused_until, now + seconds + self.rng.uniform(*JITTER))
        return self.paused_until

    def busy_chats(self, now: float) -> set[int]:
        """Chats that must wait before their next message."""
        return {chat_id for chat_id, bucket in self.chats.items() if bucket.wait(now) > 0}

    def prune(self, now: float) -> None:
        for chat_id in [c for c, b in self.chats.items() if b.full(now)]:
            del self.chats[chat_id]

    # ----- waiting (async) -----------------------------------------------------------------
    def _timer(self) -> Timer:
        if self.timer is None:
            self.timer = RealTimer()
        return self.timer

    def _shared_now(self) -> float | None:
        shared_now = getattr(self._timer(), "shared_now", None)
        return shared_now() if shared_now is not None else None

    def _allowance(self, chat_id: int, service: bool) -> float:
        return float(SERVICE_BURST - 1) if service and chat_id > 0 else 0.0

    def _chat_interval(self, chat_id: int) -> tuple[float, float]:
        """(seconds between turns, burst tolerance in seconds) of a chat, without the service allowance."""
        if chat_id < 0:
            interval = 1.0 / self.group_rate
            return interval, interval  # a burst of two
        return 1.0 / self.chat_rate, 0.0

    async def _sleep_until(self, deadline: float) -> None:
        timer = self._timer()
        wait = deadline - timer.monotonic()
        if wait > 0:
            await timer.sleep(wait)

    async def reserve_global(self) -> None:
        """Wait for the next global slot (and any 429 pause) and take it, then for room in the window.

        The go-ahead is the current task's until its call comes back (:func:`count_returns`)
        or it asks for the next one.
        """
        call_returned()  # a go-ahead this task did not report back: its call is over by now
        timer = self._timer()
        while True:
            start = timer.monotonic()
            pause = self.paused_until - start
            if pause > 0:
                await timer.sleep(pause)
                continue
            if self.shared is not None:
                wait = await self.shared.reserve(self._shared_now(), 1.0 / self.global_bucket.rate)
            else:
                wait = self.global_bucket.wait(start)  # a reservation: queue behind the ones taken
                self.global_bucket.take(start)
            await self._sleep_until(start + wait)
            if self.paused_until <= timer.monotonic() and await self._open():
                return
            # A 429 came meanwhile: the slot is lost, wait for the pause and take another.

    async def _open(self) -> bool:
        """Wait for room in the sliding window and take a go-ahead (False: a 429 came meanwhile)."""
        timer = self._timer()
        while True:
            if self.shared is not None:
                permit: Any = f"{self._name}:{next(self._permits)}"
                wait = await self.shared.open(self._shared_now(), permit, self.window.limit, self.window.window)
            else:
                now = timer.monotonic()
                wait = self.window.wait(now)
                permit = self.window.open(now) if wait <= 0 else None
            if wait <= 0:
                _OPEN_SEND.set((self, permit))
                return True
            await timer.sleep(wait)
            if self.paused_until > timer.monotonic():
                return False

    def _close(self, permit: Any) -> None:
        """The call of ``permit`` came back (or failed): it counts one window more from now."""
        if self.shared is None:
            self.window.close(permit, self._timer().monotonic())
            return
        _in_background(self.shared.close(self._shared_now(), permit, self.window.window))

    def give_back_global(self) -> None:
        """A reserved slot that was not used (the row was taken by another worker)."""
        held = _OPEN_SEND.get()
        if held is not None and held[0] is self:
            _OPEN_SEND.set(None)
            if self.shared is not None:
                _in_background(self.shared.cancel(held[1]))
            else:
                self.window.cancel(held[1])
        if self.shared is None:
            self.global_bucket.give_back(self._timer().monotonic())

    async def take_chat(self, chat_id: int, *, service: bool = False) -> float:
        """Take the chat's turn if it is free (returns 0), else the seconds until it is (nothing taken)."""
        now = self._timer().monotonic()
        allowance = self._allowance(chat_id, service)
        wait = self.chat_wait(chat_id, now, allowance)
        if wait > 0:
            return wait
        if self.shared is not None:
            interval, tolerance = self._chat_interval(chat_id)
            wait = await self.shared.chat(chat_id, self._shared_now(), interval, tolerance + allowance * interval)
            if wait > 0:
                return wait
        self._bucket(chat_id, self._timer().monotonic()).take(self._timer().monotonic())
        return 0.0

    async def acquire(self, chat_id: int, *, service: bool) -> None:
        """Wait until a message to ``chat_id`` may go, and count it.

        Waits for the chat's turn (a service call lets a short burst through:
        a reply right after a person wrote does not wait a second), then for the
        next global slot and any 429 pause.
        """
        timer = self._timer()
        while True:
            wait = await self.take_chat(chat_id, service=service)
            if wait <= 0:
                break
            await timer.sleep(wait)
        await self.reserve_global()

    def note_retry_after(self, seconds: float) -> None:
        """A 429 said ``retry_after``: every send (of every replica, with Redis) pauses that long plus jitter."""
        timer = self._timer()
        until = self.pause(seconds, timer.monotonic())
        if self.shared is not None:
            _in_background(self.shared.pause(self._shared_now(), until - timer.monotonic()))

    async def note_retry_after_shared(self, seconds: float) -> None:
        """:meth:`note_retry_after`, waiting until the other replicas can see the pause."""
        timer = self._timer()
        until = self.pause(seconds, timer.monotonic())
        if self.shared is not None:
            await self.shared.pause(self._shared_now(), until - timer.monotonic())


_background: set[asyncio.Task[Any]] = set()


def _in_background(call: Any) -> None:
    """A Redis write nobody waits for (a failure is logged; the keys expire on their own)."""
    task = asyncio.get_running_loop().create_task(call)
    _background.add(task)
    task.add_done_callback(_done)


def _done(task: asyncio.Task[Any]) -> None:
    _background.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.warning("shared rate limit not updated: %s", task.exception())


# The go-ahead the current task took and has not reported back: (pacer, permit).
_OPEN_SEND: ContextVar[tuple[Pacer, Any] | None] = ContextVar("caredesk_open_send", default=None)


def call_returned() -> None:
    """The call the current task's go-ahead was for came back (or failed, or was never made)."""
    held = _OPEN_SEND.get()
    if held is not None:
        _OPEN_SEND.set(None)
        held[0]._close(held[1])  # noqa: SLF001


async def count_returns(make_request: Any, bot: Any, method: Any) -> Any:
    """Request middleware, innermost on the bot's session: the pacer learns when each call came back
    (Telegram received it at some moment before that; see :class:`SendWindow`)."""
    try:
        return await make_request(bot, method)
    finally:
        call_returned()


def watch_returns(session: Any) -> None:
    """Put :func:`count_returns` on a bot session once, inside the middlewares it has so far."""
    if count_returns not in session.middleware:
        session.middleware(count_returns)
