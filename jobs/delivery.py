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
"sleep" moves the clock, nothing waits for real). Telegram's limits:
https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this

Each send is three short transactions: pending → sending (compare-and-set,
so two workers never take the same row), the request, then sending → sent.
A crash in the middle leaves "sending"; on start those rows become
"uncertain" and are not sent again. What each failure does:

* 429 ``retry_after``: all sending pauses that long plus a little jitter;
  the row is tried again (the attempt does not count).
  https://core.telegram.org/bots/api#responseparameters
* 403 (blocked, deactivated) or 400 chat not found: the customer is marked
  unreachable, the row failed, never retried; their other pending care rows
  are skipped. A row with a ``fallback`` option (a staff reminder whose
  assignee never opened a private chat with the bot) is written again for
  the fallback chat. A bot cannot start a private chat:
  https://core.telegram.org/bots#how-are-bots-different-from-users
* other 400s (bad HTML, too long...): failed, with the error kept.
* network error before the request went out, or 5xx: tried again with
  backoff, up to ``OUTBOX_MAX_ATTEMPTS``; then failed with the error kept.
* timeout after the request went out (it may have arrived): a care row is
  marked uncertain and not sent again; a service row is sent again (a
  duplicate notice is better than a lost one), within the same attempt limit.

Care rows pass the care policy again just before sending (consent,
reachability, quiet hours, caps; ``bot.rules.care.decide``) and the
kind's last check, if it has one (``JobDeps.care_checks``, listed in bot.app:
for example "the customer already reordered").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

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

from bot import metrics
from bot.logs import redact
from bot.rules import care as rules
from jobs import leases
from jobs.context import JobContext, JobDeps, job
from jobs.pacing import (  # noqa: F401  (re-exported: the pacer's home used to be here)
    JITTER,
    MAX_BUCKETS,
    ClockTimer,
    Pacer,
    RealTimer,
    RedisLimits,
    Timer,
    TokenBucket,
    timer_for,
    watch_returns,
)
from storage.dialect import is_postgres
from storage.models.outbox import CATEGORY_CARE, OutboxMessage
from storage.repositories import Repos
from storage.repositories.outbox import WRITES

log = logging.getLogger(__name__)

# On stop, how long (seconds) the worker may take to finish the row it is sending.
STOP_GRACE = 30.0
# How many due rows one look-up takes, and how long (seconds) the worker sends
# care rows before looking again for service rows that arrived meanwhile.
BATCH = 20
REFETCH_AFTER = 0.2
# With replicas a look-up also reserves the batch (and frees what was left): look a little less often.
REFETCH_AFTER_REPLICAS = 0.5
# Idle live loop: how long it waits for a wake-up before looking again.
IDLE_POLL = 1.0
# How long a claim holds: a reserved pending row, or a "sending" row whose request
# may still be under way (aiogram's own request timeout is 60 s). Recovery
# touches a "sending" row only after this.
CLAIM_SECONDS = 120.0
# PostgreSQL: reserved rows of a batch are held this long (released right after the batch).
RESERVE_SECONDS = 30.0
# SQLite: the delivery lease (one delivering process), renewed every third of it.
DELIVERY_LEASE_SECONDS = 60.0


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
    def __init__(self, deps: JobDeps, timer: Timer | None = None, rng: random.Random | None = None) -> None:
        self.deps = deps
        self.timer = timer or timer_for(deps.clock)
        self.pacer = Pacer.from_settings(deps.settings, self.timer.monotonic(), rng, timer=self.timer,
                                         shared=shared_limits(deps))
        watch_returns(deps.bot.session)  # the pacer learns when each call came back
        self.stats = DeliveryStats()
        # This replica's name on the rows it claims.
        self.id = leases.instance_id(deps)
        # PostgreSQL: several workers may deliver; each reserves its batch (FOR UPDATE SKIP LOCKED).
        # SQLite: one delivering process, made sure of with the delivery lease.
        self.replicas = is_postgres(deps.db)
        # Why this worker does not deliver (SQLite: another process does), or None.
        self.refused: str | None = None
        self._lease_until: datetime | None = None
        self._recovered = False
        self._seen_writes = -1
        self._next_due: datetime | None = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Set by stop(): finish the row being sent, take no other.
        self._stopping = False
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

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Stop the live loop: the row being sent is finished (never left "sending"), no other is taken."""
        task, self._task = self._task, None
        if task is not None:
            self._stopping = True
            self._wake.set()
            with contextlib.suppress(asyncio.TimeoutError, Exception):
                await asyncio.wait_for(asyncio.shield(task), grace)
            if not task.done():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._stopping = False
        with contextlib.suppress(Exception):  # the claims expire on their own
            if self.replicas:
                await self._release_reserved()
            elif self._lease_until is not None:
                await leases.release(self.deps, leases.DELIVERY)
                self._lease_until = None

    def wake(self) -> None:
        self._wake.set()

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                await self.drain()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox delivery failed; trying again shortly")
            self._wake.clear()
            self.idle.set()
            if self._stopping:
                return
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), IDLE_POLL)

    async def _may_deliver(self) -> bool:
        """SQLite: hold the delivery lease (one delivering process). PostgreSQL: always."""
        if self.replicas:
            return True
        now = self.deps.clock.now()
        term = timedelta(seconds=DELIVERY_LEASE_SECONDS)
        if self._lease_until is not None and now < self._lease_until - term * 2 / 3:
            return True
        if await leases.hold(self.deps, leases.DELIVERY, term):
            if self.refused:
                log.info("outbox delivery: the other process stopped; this one delivers now")
            self.refused = None
            self._lease_until = now + term
            return True
        self._lease_until = None
        if self.refused is None:
            self.refused = ("another process delivers from this SQLite database; SQLite supports one "
                            "delivering process (use PostgreSQL for replicas)")
            log.warning("outbox delivery refused: %s. This process leaves the outbox alone.", self.refused)
        return False

    async def recover(self) -> int:
        """Rows this worker left "sending" (an earlier life of it), or anybody's whose claim expired,
        become "uncertain" (never sent again)."""
        async with self.deps.db.session() as session:
            count = await Repos(session).outbox.recover_interrupted(self.deps.clock.now(), self.id)
            await session.commit()
        self._recovered = True
        if count:
            log.warning("%s outbox row(s) were interrupted while sending; marked uncertain", count)
        return count

    async def drain(self) -> int:
        """Send everything due now (pacing may make "now" last a while); returns how many went."""
        async with self._lock:
            if not await self._may_deliver():
                return 0
            if not self._recovered:
                await self.recover()
            return await self._drain()

    async def drain_if_due(self) -> int:
        """:meth:`drain`, skipped when no row was written since the last one and none fell due.

        (Time travel runs this job at every step; most steps have nothing to send.)
        """
        writes = WRITES[0]
        if (self._recovered and writes == self._seen_writes and self._next_due is not None
                and self.deps.clock.now() < self._next_due):
            return 0
        sent = await self.drain()
        async with self.deps.db.session() as session:
            self._next_due = await Repos(session).outbox.next_due_at() or datetime.max.replace(tzinfo=UTC)
        self._seen_writes = writes
        return sent

    async def _drain(self) -> int:
        sent = 0
        while True:
            if self._stopping or not await self._may_deliver():
                return sent
            busy = self.pacer.busy_chats(self.timer.monotonic())
            self._wake.clear()  # what a wake-up announced is looked up now
            rows = await self._due(BATCH, busy)
            if not rows:
                waiting = await self._due(1, (), reserve=False)
                if not waiting:
                    return sent
                now = self.timer.monotonic()
                # Everything due is for chats that must wait a moment (or, with replicas, rows another
                # worker holds): look again when the first busy chat is free.
                soonest = min((w for c in busy if (w := self.pacer.chat_wait(c, now)) > 0), default=None)
                if soonest is None and not self.replicas:
                    return sent
                await self.timer.sleep(min(soonest or REFETCH_AFTER, REFETCH_AFTER) if self.replicas
                                       else soonest or 0.0)
                continue
            started = self.timer.monotonic()
            tried = 0
            try:
                for row in rows:
                    if self._stopping:
                        break
                    # A chat that must wait does not hold up the others' rows behind it.
                    if self.pacer.chat_wait(row.chat_id, self.timer.monotonic()) > 0:
                        continue
                    tried += 1
                    outcome = await self._deliver(row)
                    sent += outcome == "sent"
                    if outcome == "rate_limited":
                        break
                    if self._wake.is_set() or self.timer.monotonic() - started >= (
                            REFETCH_AFTER_REPLICAS if self.replicas else REFETCH_AFTER):
                        break  # look again: a service row may have arrived (woken: one did)
            finally:
                if self.replicas and tried < len(rows):  # rows of the batch left untried: anybody's again
                    await self._release_reserved()

    async def _due(self, limit: int, busy: Collection[int], *, reserve: bool = True) -> list[OutboxMessage]:
        now = self.deps.clock.now()
        async with self.deps.db.session() as session:
            outbox = Repos(session).outbox
            if not (reserve and self.replicas):
                return await outbox.due(now, limit, busy)
            rows = await outbox.reserve(now, limit, busy, self.id, now + timedelta(seconds=RESERVE_SECONDS))
            await session.commit()
            return rows

    async def _release_reserved(self) -> None:
        async with self.deps.db.session() as session:
            await Repos(session).outbox.release_reserved(self.id)
            await session.commit()

    # ----- one row -----------------------------------------------------------------------
    async def _deliver(self, row: OutboxMessage) -> str:
        now = self.deps.clock.now()
        # Take the row first (a care row passes the care policy in the same transaction, so
        # held or skipped rows take no turn), then our turn overall (a 429 pause included);
        # this chat is free (see _drain).
        if row.category == CATEGORY_CARE:
            claimed = await self._care_policy(row, now, claim=True)
        else:
            async with self.deps.db.session() as session:
                ok = await Repos(session).outbox.claim(row.id, now, self.id, now + timedelta(seconds=CLAIM_SECONDS))
                await session.commit()
            claimed = "send" if ok else "taken"
        if claimed != "send":
            return claimed
        if await self.pacer.take_chat(row.chat_id) > 0:  # another replica just wrote to this chat
            await self._unclaim(row)
            return "busy"
        try:
            await self.pacer.reserve_global()  # nothing waits between our turn and the request
        except BaseException:  # stopped while waiting for our turn: the row was not sent
            await asyncio.shield(self._unclaim(row))
            raise
        try:
            message = await self._send(row)
        except TelegramRetryAfter as exc:
            await self.pacer.note_retry_after_shared(exc.retry_after)
            log.warning("429 from Telegram: pausing all sending for %.1f s",
                        self.pacer.paused_until - self.timer.monotonic())
            self.stats.rate_limited += 1
            metrics.count_send(row.category, "rate_limited")
            await self._finish(row, "retry", error=f"429: retry after {exc.retry_after}", not_before=row.not_before,
                               count_attempt=False)
            return "rate_limited"
        except (TelegramForbiddenError, TelegramBadRequest) as exc:
            text = exc.message.lower()
            if isinstance(exc, TelegramForbiddenError) or any(m in text for m in _GONE_MARKERS):
                metrics.count_send(row.category, "forbidden" if isinstance(exc, TelegramForbiddenError)
                                   else "chat_gone")
                await self._unreachable(row, exc.message)
            else:
                metrics.count_send(row.category, "bad_request")
                await self._finish(row, "failed", error=exc.message)
            return "failed"
        except TelegramNetworkError as exc:
            metrics.count_send(row.category, "network_error")
            if not request_not_sent(exc) and row.category == CATEGORY_CARE:
                await self._finish(row, "uncertain", error=f"may have been sent: {exc.message}")
                return "uncertain"
            return await self._retry_or_fail(row, exc.message)
        except TelegramServerError as exc:
            metrics.count_send(row.category, "server_error")
            return await self._retry_or_fail(row, exc.message)
        except TelegramAPIError as exc:
            metrics.count_send(row.category, "error")
            await self._finish(row, "failed", error=exc.message)
            return "failed"
        except Exception as exc:  # a bug (e.g. a malformed stored keyboard): keep the error, go on
            log.exception("outbox row %s could not be sent", row.id)
            metrics.count_send(row.category, "error")
            await self._finish(row, "failed", error=f"{type(exc).__name__}: {exc}")
            return "failed"
        metrics.count_send(row.category, "sent")
        await self._finish(row, "sent", message_id=message.message_id if isinstance(message, Message) else None)
        return "sent"

    async def _unclaim(self, row: OutboxMessage) -> None:
        async with self.deps.db.session() as session:
            await Repos(session).outbox.unclaim(row.id, self.id)
            await session.commit()

    async def _care_policy(self, row: OutboxMessage, now: datetime, *, claim: bool = False) -> str:
        """The care policy for a due row: send, hold or skip (the latter two written at once).

        ``claim=True``: the last check, and the row becomes "sending" in the same
        transaction, with the customer locked on PostgreSQL — so of two workers
        checking one customer's caps the second sees the first one's claim.
        Returns "taken" when another worker claimed the row first.
        """
        settings = self.deps.settings
        async with self.deps.db.session() as session:
            repos = Repos(session)
            customer = None
            if row.customer_id is not None:
                if claim:  # the customer locked until the claim commits (PostgreSQL)
                    customer = await repos.customers.get_locked(row.customer_id)
                else:
                    customer = await repos.customers.get(row.customer_id)
            recipient = None
            if customer is not None:
                recipient = rules.Recipient(
                    consent=customer.care_consent, reachable=customer.reachable,
                    forgotten=customer.is_forgotten, has_chat=customer.telegram_id == row.chat_id,
                )
            tz = rules.zone(customer.timezone if customer else None, settings.default_timezone)
            sent = await repos.outbox.care_sent_times(row.customer_id, now - timedelta(days=8), exclude_id=row.id) \
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
                check = self.deps.care_checks.get(row.kind)
                reason = await check(repos, row, now) if check is not None else None
                if reason is not None:
                    decision = rules.Decision("skip", reason=reason)
            if decision.action == "send" and claim:
                if not await repos.outbox.claim(row.id, now, self.id, now + timedelta(seconds=CLAIM_SECONDS)):
                    await session.rollback()
                    return "taken"
            elif decision.action == "hold":
                assert decision.until is not None
                await repos.outbox.hold(row.id, decision.until, decision.reason or "held")
                self.stats.held += 1
            elif decision.action == "skip":
                await repos.outbox.skip(row.id, decision.reason or "skipped")
                self.stats.skipped += 1
            await session.commit()
        if not (claim and decision.action == "send"):
            self.stats.note(self.timer.monotonic(), decision.action, row.id)
        return decision.action

    async def _send(self, row: OutboxMessage) -> Any:
        bot = self.deps.bot
        options = row.options or {}
        if options.get("edit_message_id"):  # a message sent before is rewritten (e.g. a card after /forget)
            return await self._edit(row, options)
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

    async def _edit(self, row: OutboxMessage, options: dict[str, Any]) -> Any:
        """Replace the text (or a photo's caption) of ``options['edit_message_id']``; its buttons go,
        unless the row carries new ones: an edit without ``reply_markup`` drops the inline keyboard
        (https://core.telegram.org/bots/api#editmessagetext, https://core.telegram.org/bots/api#editmessagecaption).
        """
        bot = self.deps.bot
        markup = _markup(row.reply_markup) if row.reply_markup else None
        try:
            if options.get("caption"):
                return await bot.edit_message_caption(chat_id=row.chat_id, message_id=options["edit_message_id"],
                                                      caption=row.text, reply_markup=markup)
            return await bot.edit_message_text(row.text, chat_id=row.chat_id,
                                               message_id=options["edit_message_id"], reply_markup=markup)
        except TelegramBadRequest as exc:
            if "not modified" in exc.message:  # it already says so
                return None
            raise

    async def _retry_or_fail(self, row: OutboxMessage, error: str) -> str:
        settings = self.deps.settings
        attempts = row.attempts + 1  # the claim counted this one
        if attempts >= settings.outbox_max_attempts:
            await self._finish(row, "failed", error=error)
            return "failed"
        when = self.deps.clock.now() + backoff(attempts, settings.outbox_retry_seconds)
        await self._finish(row, "retry", error=error, not_before=when)
        return "retry"

    async def _unreachable(self, row: OutboxMessage, error: str) -> None:
        now = self.deps.clock.now()
        error = redact(error)
        async with self.deps.db.session() as session:
            repos = Repos(session)
            await repos.outbox.mark_failed(row.id, error, worker=self.id)
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
        now = self.deps.clock.now()
        # An order placed within the window after a reminder or win-back is credited to it.
        attribute_until = (now + timedelta(days=self.deps.settings.attribution_days)
                           if row.category == CATEGORY_CARE and row.kind in rules.ATTRIBUTED_KINDS else None)
        me = self.id
        error = redact(error) if error else error  # aiogram's texts may quote the token (a URL)
        async with self.deps.db.session() as session:
            outbox = Repos(session).outbox
            if outcome == "sent":
                await outbox.mark_sent(row.id, now, message_id, attribute_until, worker=me)
                self.stats.sent += 1
            elif outcome == "failed":
                await outbox.mark_failed(row.id, error or "failed", worker=me)
                self.stats.failed += 1
            elif outcome == "uncertain":
                await outbox.mark_uncertain(row.id, error or "uncertain", attribute_until, worker=me)
                self.stats.uncertain += 1
            else:
                await outbox.retry_later(row.id, not_before or now, error, count_attempt=count_attempt, worker=me)
                self.stats.retried += 1
            await session.commit()
        self.stats.note(self.timer.monotonic(), outcome, row.id)


def shared_limits(deps: JobDeps) -> RedisLimits | None:
    """With REDIS_URL: the rate limits every replica shares (the dialog-state Redis connection)."""
    if not deps.settings.redis_url:
        return None
    client = deps.redis
    if client is None:  # dialog state elsewhere: a connection of our own
        from redis.asyncio import Redis

        client = Redis.from_url(deps.settings.redis_url)
    prefix = deps.rate_prefix or f"caredesk:rate:{deps.bot.id}"
    return RedisLimits(client, prefix)


def _markup(data: dict[str, Any]) -> InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove:
    if "inline_keyboard" in data:
        return InlineKeyboardMarkup.model_validate(data)
    if "keyboard" in data:
        return ReplyKeyboardMarkup.model_validate(data)
    return ReplyKeyboardRemove.model_validate(data)


def worker_for(deps: JobDeps) -> OutboxWorker:
    """The app's one delivery worker (built on first use)."""
    if deps.outbox is None:
        deps.outbox = OutboxWorker(deps)
    return deps.outbox


@job("deliver_outbox", every=timedelta(seconds=5), misfire_grace_time=30)
async def deliver_outbox(ctx: JobContext) -> None:
    """Live: keep the delivery loop running and nudge it. Under ``advance``: send what is due now."""
    worker = worker_for(ctx.deps)
    if ctx.deps.outbox_live:
        worker.start()  # restarts the loop if it died
        worker.wake()
        return
    await worker.drain_if_due()


@job("outbox_recover", every=timedelta(minutes=1), misfire_grace_time=60)
async def recover_outbox(ctx: JobContext) -> None:
    """Singleton: rows left "sending" whose claim expired (their worker died) become uncertain."""
    async with ctx.db.session() as session:
        count = await Repos(session).outbox.recover_interrupted(ctx.now)
        await session.commit()
    if count:
        log.warning("%s outbox row(s) were left sending by a worker that stopped; marked uncertain", count)
