"""Delivering the outbox: due rows go out, paced to Telegram's limits.

One :class:`OutboxWorker` per app does the sending, whichever way it runs:

* live, a loop task (started with the scheduler) drains what is due, then
  waits for the next row or a wake-up; the ``deliver_outbox`` job only makes
  sure the loop is alive and wakes it;
* under ``jobs.runner.advance`` (tests, the sandbox's ``:advance``) the
  ``deliver_outbox`` job drains what is due right now, inline.

Order: service rows (priority 0) before care rows, then oldest first; the
due rows are looked up again every fraction of a second, so a reply to a
person never waits behind a bulk of care messages.

Pacing: token buckets (``RATE_GLOBAL_PER_SECOND`` overall,
``RATE_CHAT_PER_SECOND`` per private chat, ``RATE_GROUP_PER_MINUTE`` per
group), on a :class:`Timer` — real time live, the ManualClock in tests (a
"sleep" moves the clock, nothing waits for real).

Each send is three short transactions: pending → sending (compare-and-set,
so two workers never take the same row), the request, then sending → sent.
A crash in the middle leaves "sending"; on start those rows become
"uncertain" and are not sent again. What each failure does:

* 429 ``retry_after``: all sending pauses that long plus a little jitter;
  the row is tried again (the attempt does not count).
* 403 (blocked, deactivated) or 400 chat not found: the customer is marked
  unreachable, the row failed, never retried; their other pending care rows
  are skipped. A row with a ``fallback`` option (a staff reminder whose
  assignee never opened a private chat with the bot) is written again for
  the fallback chat.
* other 400s (bad HTML, too long...): failed, with the error kept.
* network error before the request went out, or 5xx: tried again with
  backoff, up to ``OUTBOX_MAX_ATTEMPTS``; then failed with the error kept.
* timeout after the request went out (it may have arrived): a care row is
  marked uncertain and not sent again; a service row is sent again (a
  duplicate notice is better than a lost one), within the same attempt limit.

Care rows pass the care policy again just before sending (consent,
reachability, quiet hours, caps; ``bot.rules.care.decide``) and any
kind-specific check registered in :data:`CARE_CHECKS` (for example "the
customer already reordered").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Protocol

from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import (
    InlineKeyboardMarkup,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    ReplyParameters,
)

from bot.clock import ManualClock
from bot.logs import redact
from bot.rules import care as rules
from jobs.registry import JobContext, job
from storage.models import Customer
from storage.models.outbox import CATEGORY_CARE, OutboxMessage
from storage.repositories import Repos
from storage.repositories.outbox import WRITES

if TYPE_CHECKING:
    from bot.app import App
    from bot.clock import Clock

log = logging.getLogger(__name__)

# How many due rows one look-up takes, and how long (seconds) the worker sends
# care rows before looking again for service rows that arrived meanwhile.
BATCH = 20
REFETCH_AFTER = 0.2
# Pause added to a 429's retry_after, in seconds (uniform in this range).
JITTER = (0.1, 1.0)
# Idle live loop: how long it waits for a wake-up before looking again.
IDLE_POLL = 1.0
# Per-chat buckets kept at most (idle full ones are dropped first).
MAX_BUCKETS = 5000

# A kind-specific last check for a due care row: a reason to skip it, or None.
CareCheck = Callable[[Repos, OutboxMessage, datetime], Awaitable[str | None]]
CARE_CHECKS: dict[str, CareCheck] = {}


# ----- time --------------------------------------------------------------------------------

class Timer(Protocol):
    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class RealTimer:
    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ClockTimer:
    """Pacing on a ManualClock: sleeping moves the clock instead of waiting."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.origin = clock.now()

    def monotonic(self) -> float:
        return (self.clock.now() - self.origin).total_seconds()

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:  # whole microseconds, rounded up: the clock must move
            self.clock.advance(timedelta(microseconds=math.ceil(seconds * 1_000_000)))
        await asyncio.sleep(0)


def timer_for(clock: "Clock") -> Timer:
    return ClockTimer(clock) if isinstance(clock, ManualClock) else RealTimer()


# ----- pacing ------------------------------------------------------------------------------

_EPS = 1e-6


class TokenBucket:
    """``rate`` tokens per second, at most ``capacity`` saved up; one send takes one."""

    __slots__ = ("rate", "capacity", "tokens", "stamp")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.stamp = now

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def wait(self, now: float) -> float:
        """Seconds until a token is there (0: now)."""
        self._refill(now)
        missing = 1.0 - self.tokens
        return 0.0 if missing <= _EPS else missing / self.rate

    def take(self, now: float) -> None:
        self._refill(now)
        self.tokens -= 1.0

    def full(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= self.capacity - _EPS


class Pacer:
    """The three limits, and the global pause after a 429."""

    def __init__(self, global_per_second: float, chat_per_second: float, group_per_minute: float,
                 now: float, rng: random.Random | None = None) -> None:
        # A little saved-up allowance overall lets the worker catch up after a
        # slow database write without ever exceeding the cap over a second.
        self.global_bucket = TokenBucket(global_per_second, max(1.0, global_per_second * 0.2), now)
        self.chat_rate = chat_per_second
        self.group_rate = group_per_minute / 60.0
        self.chats: dict[int, TokenBucket] = {}
        self.paused_until = float("-inf")
        self.rng = rng or random.Random()

    @classmethod
    def from_settings(cls, settings: Any, now: float, rng: random.Random | None = None) -> "Pacer":
        return cls(settings.rate_global_per_second, settings.rate_chat_per_second,
                   settings.rate_group_per_minute, now, rng)

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

    def chat_wait(self, chat_id: int, now: float) -> float:
        bucket = self.chats.get(chat_id)
        return 0.0 if bucket is None else bucket.wait(now)

    def take(self, chat_id: int, now: float) -> None:
        self.global_bucket.take(now)
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


# ----- the worker --------------------------------------------------------------------------

_GONE_MARKERS = ("chat not found", "user not found", "peer_id_invalid", "bot was kicked", "chat was deleted",
                 "have no rights to send")
# aiogram words a connection failure "<aiohttp error class>: ..."; these never sent the request.
_NOT_SENT_MARKERS = ("ClientConnectorError", "ClientConnectorCertificateError", "ClientConnectorSSLError",
                     "ClientProxyConnectionError", "ClientConnectorDNSError", "Cannot connect to host")


def request_not_sent(exc: TelegramNetworkError) -> bool:
    """True when the network error happened before the request reached Telegram."""
    return any(marker in exc.message for marker in _NOT_SENT_MARKERS)


def backoff(attempt: int, base: float) -> timedelta:
    """5 s, 10 s, 20 s... (with the default base), at most an hour."""
    return timedelta(seconds=min(3600.0, base * 2 ** max(0, attempt - 1)))


@dataclass
class DeliveryStats:
    sent: int = 0
    failed: int = 0
    uncertain: int = 0
    skipped: int = 0
    held: int = 0
    retried: int = 0
    rate_limited: int = 0
    events: list[tuple[float, str, int]] = field(default_factory=list)  # (timer time, outcome, row id)
    keep_events: bool = False

    def note(self, when: float, outcome: str, row_id: int) -> None:
        if self.keep_events:
            self.events.append((when, outcome, row_id))


class OutboxWorker:
    def __init__(self, app: "App", timer: Timer | None = None, rng: random.Random | None = None) -> None:
        self.app = app
        self.timer = timer or timer_for(app.clock)
        self.pacer = Pacer.from_settings(app.settings, self.timer.monotonic(), rng)
        self.stats = DeliveryStats()
        self._recovered = False
        self._seen_writes = -1
        self._next_due: datetime | None = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Set each time the live loop has sent everything due (tests wait on it).
        self.idle = asyncio.Event()

    # ----- running ----------------------------------------------------------------------
    @property
    def live(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the live loop (idempotent)."""
        if not self.live:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="outbox-delivery")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def wake(self) -> None:
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            try:
                await self.drain()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox delivery failed; trying again shortly")
            self._wake.clear()
            self.idle.set()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), IDLE_POLL)

    async def recover(self) -> int:
        """Rows left "sending" by a crash become "uncertain" (never sent again)."""
        async with self.app.db.session() as session:
            count = await Repos(session).outbox.recover_interrupted()
            await session.commit()
        self._recovered = True
        if count:
            log.warning("%s outbox row(s) were interrupted while sending; marked uncertain", count)
        return count

    async def drain(self) -> int:
        """Send everything due now (pacing may make "now" last a while); returns how many went."""
        async with self._lock:
            if not self._recovered:
                await self.recover()
            return await self._drain()

    async def drain_if_due(self) -> int:
        """:meth:`drain`, skipped when no row was written since the last one and none fell due.

        (Time travel runs this job at every step; most steps have nothing to send.)
        """
        writes = WRITES[0]
        if (self._recovered and writes == self._seen_writes and self._next_due is not None
                and self.app.clock.now() < self._next_due):
            return 0
        sent = await self.drain()
        async with self.app.db.session() as session:
            self._next_due = await Repos(session).outbox.next_due_at() or datetime.max.replace(tzinfo=timezone.utc)
        self._seen_writes = writes
        return sent

    async def _drain(self) -> int:
        sent = 0
        while True:
            busy = self.pacer.busy_chats(self.timer.monotonic())
            rows = await self._due(BATCH, busy)
            if not rows:
                if not busy:
                    return sent
                waiting = await self._due(1, ())
                if not waiting:
                    return sent
                # Everything due is for chats that must wait a moment.
                await self.timer.sleep(self.pacer.chat_wait(waiting[0].chat_id, self.timer.monotonic()))
                continue
            started = self.timer.monotonic()
            for row in rows:
                outcome = await self._deliver(row)
                sent += outcome == "sent"
                if outcome == "rate_limited":
                    break
                if self.timer.monotonic() - started >= REFETCH_AFTER:
                    break  # look again: a service row may have arrived

    async def _due(self, limit: int, busy: set[int]) -> list[OutboxMessage]:
        async with self.app.db.session() as session:
            return await Repos(session).outbox.due(self.app.clock.now(), limit, busy)

    # ----- one row -----------------------------------------------------------------------
    async def _deliver(self, row: OutboxMessage) -> str:
        now = self.app.clock.now()
        if row.category == CATEGORY_CARE:
            verdict = await self._care_policy(row, now)
            if verdict != "send":
                return verdict
        # Wait for our turn: overall first (a 429 pause included), then this chat.
        while True:
            wait = max(self.pacer.global_wait(self.timer.monotonic()),
                       self.pacer.chat_wait(row.chat_id, self.timer.monotonic()))
            if wait <= 0:
                break
            await self.timer.sleep(wait)
        now = self.app.clock.now()
        async with self.app.db.session() as session:
            claimed = await Repos(session).outbox.claim(row.id, now)
            await session.commit()
        if not claimed:
            return "taken"
        self.pacer.take(row.chat_id, self.timer.monotonic())
        try:
            message = await self._send(row)
        except TelegramRetryAfter as exc:
            until = self.pacer.pause(exc.retry_after, self.timer.monotonic())
            log.warning("429 from Telegram: pausing all sending for %.1f s", until - self.timer.monotonic())
            self.stats.rate_limited += 1
            await self._finish(row, "retry", error=f"429: retry after {exc.retry_after}", not_before=row.not_before,
                               count_attempt=False)
            return "rate_limited"
        except (TelegramForbiddenError, TelegramBadRequest) as exc:
            text = exc.message.lower()
            if isinstance(exc, TelegramForbiddenError) or any(m in text for m in _GONE_MARKERS):
                await self._unreachable(row, exc.message)
            else:
                await self._finish(row, "failed", error=exc.message)
            return "failed"
        except TelegramNetworkError as exc:
            if not request_not_sent(exc) and row.category == CATEGORY_CARE:
                await self._finish(row, "uncertain", error=f"may have been sent: {exc.message}")
                return "uncertain"
            return await self._retry_or_fail(row, exc.message)
        except TelegramServerError as exc:
            return await self._retry_or_fail(row, exc.message)
        except TelegramAPIError as exc:
            await self._finish(row, "failed", error=exc.message)
            return "failed"
        except Exception as exc:  # a bug (e.g. a malformed stored keyboard): keep the error, go on
            log.exception("outbox row %s could not be sent", row.id)
            await self._finish(row, "failed", error=f"{type(exc).__name__}: {exc}")
            return "failed"
        await self._finish(row, "sent", message_id=message.message_id if isinstance(message, Message) else None)
        return "sent"

    async def _care_policy(self, row: OutboxMessage, now: datetime) -> str:
        settings = self.app.settings
        async with self.app.db.session() as session:
            repos = Repos(session)
            customer = await repos.customers.get(row.customer_id) if row.customer_id is not None else None
            recipient = None
            if customer is not None:
                recipient = rules.Recipient(
                    consent=customer.care_consent, reachable=customer.reachable,
                    forgotten=customer.is_forgotten, has_chat=customer.telegram_id == row.chat_id,
                )
            tz = rules.zone(customer.timezone if customer else None, settings.default_timezone)
            sent = await repos.outbox.care_sent_times(row.customer_id, now - timedelta(days=8)) \
                if row.customer_id is not None else []
            # A message that can move gives way to one that cannot (a birthday greeting) under the caps.
            reserved = await repos.care.pending_due_times(row.customer_id, rules.IMMOVABLE_KINDS,
                                                          now + timedelta(days=8), exclude_id=row.id) \
                if row.customer_id is not None and row.kind not in rules.IMMOVABLE_KINDS else []
            decision = rules.decide(
                recipient, now, tz, sent, quiet_start=settings.quiet_hours_start,
                quiet_end=settings.quiet_hours_end, per_day=settings.care_cap_per_day,
                per_week=settings.care_cap_per_week, expires_at=row.expires_at, reserved=reserved,
            )
            if decision.action == "send":
                check = CARE_CHECKS.get(row.kind)
                reason = await check(repos, row, now) if check is not None else None
                if reason is not None:
                    decision = rules.Decision("skip", reason=reason)
            if decision.action == "hold":
                assert decision.until is not None
                await repos.outbox.hold(row.id, decision.until, decision.reason or "held")
                self.stats.held += 1
            elif decision.action == "skip":
                await repos.outbox.skip(row.id, decision.reason or "skipped")
                self.stats.skipped += 1
            await session.commit()
        self.stats.note(self.timer.monotonic(), decision.action, row.id)
        return decision.action

    async def _send(self, row: OutboxMessage) -> Any:
        bot = self.app.bot
        options = row.options or {}
        kwargs: dict[str, Any] = {}
        if row.reply_markup:
            kwargs["reply_markup"] = _markup(row.reply_markup)
        if options.get("message_thread_id"):
            kwargs["message_thread_id"] = options["message_thread_id"]
        if options.get("reply_to_message_id"):
            kwargs["reply_parameters"] = ReplyParameters(message_id=options["reply_to_message_id"],
                                                         allow_sending_without_reply=True)
        if options.get("disable_notification"):
            kwargs["disable_notification"] = True
        if options.get("photo"):
            return await bot.send_photo(row.chat_id, options["photo"], caption=row.text or None, **kwargs)
        return await bot.send_message(row.chat_id, row.text, **kwargs)

    async def _retry_or_fail(self, row: OutboxMessage, error: str) -> str:
        settings = self.app.settings
        attempts = row.attempts + 1  # the claim counted this one
        if attempts >= settings.outbox_max_attempts:
            await self._finish(row, "failed", error=error)
            return "failed"
        when = self.app.clock.now() + backoff(attempts, settings.outbox_retry_seconds)
        await self._finish(row, "retry", error=error, not_before=when)
        return "retry"

    async def _unreachable(self, row: OutboxMessage, error: str) -> None:
        error = redact(error, self.app.settings.bot_token)
        now = self.app.clock.now()
        async with self.app.db.session() as session:
            repos = Repos(session)
            await repos.outbox.mark_failed(row.id, error)
            customer_id = row.customer_id
            if customer_id is None and row.chat_id > 0:
                customer = await repos.customers.by_telegram_id(row.chat_id)
                customer_id = customer.id if customer else None
            if customer_id is not None:
                await repos.customers.mark_unreachable(customer_id, now)
                await repos.outbox.skip_pending_care(customer_id, "unreachable")
            fallback = (row.options or {}).get("fallback")
            if fallback:  # e.g. a staff reminder: the staff chat instead of an unopened private chat
                await repos.outbox.enqueue(
                    dedupe_key=f"{row.dedupe_key}:fallback", kind=row.kind, chat_id=fallback["chat_id"],
                    text=fallback["text"], options=fallback.get("options") or None, now=now,
                    category=row.category, priority=row.priority, ref_ticket_id=row.ref_ticket_id,
                )
            await session.commit()
        self.stats.failed += 1
        self.stats.note(self.timer.monotonic(), "unreachable", row.id)
        log.info("outbox row %s: chat %s is unreachable (%s)", row.id, row.chat_id, error)

    async def _finish(self, row: OutboxMessage, outcome: str, *, error: str | None = None,
                      message_id: int | None = None, not_before: datetime | None = None,
                      count_attempt: bool = True) -> None:
        if error is not None:  # kept in outbox.last_error: never the bot token (it is in aiohttp's URLs)
            error = redact(error, self.app.settings.bot_token)
        now = self.app.clock.now()
        # An order placed within the window after a reminder or win-back is credited to it.
        attribute_until = (now + timedelta(days=self.app.settings.attribution_days)
                           if row.category == CATEGORY_CARE and row.kind in rules.ATTRIBUTED_KINDS else None)
        async with self.app.db.session() as session:
            outbox = Repos(session).outbox
            if outcome == "sent":
                await outbox.mark_sent(row.id, now, message_id, attribute_until)
                self.stats.sent += 1
            elif outcome == "failed":
                await outbox.mark_failed(row.id, error or "failed")
                self.stats.failed += 1
            elif outcome == "uncertain":
                await outbox.mark_uncertain(row.id, error or "uncertain", attribute_until)
                self.stats.uncertain += 1
            else:
                await outbox.retry_later(row.id, not_before or now, error, count_attempt=count_attempt)
                self.stats.retried += 1
            await session.commit()
        self.stats.note(self.timer.monotonic(), outcome, row.id)


def _markup(data: dict[str, Any]) -> InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove:
    if "inline_keyboard" in data:
        return InlineKeyboardMarkup.model_validate(data)
    if "keyboard" in data:
        return ReplyKeyboardMarkup.model_validate(data)
    return ReplyKeyboardRemove.model_validate(data)


def worker_for(app: "App") -> OutboxWorker:
    """The app's one delivery worker."""
    worker = app.extras.get("outbox_worker")
    if worker is None:
        worker = OutboxWorker(app)
        app.extras["outbox_worker"] = worker
    return worker


@job("deliver_outbox", every=timedelta(seconds=5), misfire_grace_time=30)
async def deliver_outbox(ctx: JobContext) -> None:
    """Live: keep the delivery loop running and nudge it. Under ``advance``: send what is due now."""
    worker = worker_for(ctx.app)
    if ctx.app.extras.get("outbox_live"):
        worker.start()  # restarts the loop if it died
        worker.wake()
        return
    await worker.drain_if_due()
