"""The path of an update: accepted → one unit of work → committed → then Telegram.

* :class:`CareDispatcher` — aiogram's ``Dispatcher`` whose ``feed_update``
  wraps each update in a :class:`~storage.unit_of_work.UnitOfWork`: the
  person's customer file and dialog state are loaded once, the handler
  decides, the unit commits once. A handler that raises: the unit is rolled
  back, one log record (update id, one traceback, no personal data) is
  written, the person is told in their language and a pressed button stops
  spinning (https://core.telegram.org/bots/api#answercallbackquery).
* :class:`SendPath` — a request middleware on the bot's session, so every
  Telegram call passes it. Inside an update, a call whose result the handler
  does not need (answers, edits, taking buttons away, callback answers,
  reactions) is kept and made after the unit of work commits, in order; a
  call whose result or failure the handler needs goes through
  :func:`at_once`, which commits what was decided so far, sends what was
  kept, then makes the call — its result is stored by the handler in a short
  follow-up transaction. No database lock is ever held across a network call.
  Every call waits its turn in the app's one pacer, and the delivery rules apply:
  a 429 pauses all sending for ``retry_after`` and the call is tried again; a
  network error before the request went out, or a 5xx, is tried again with
  backoff; a cosmetic call (a reaction, taking buttons away, answering a
  button press too late) that fails is logged and forgotten rather than
  failing the update. (429 and ``retry_after``:
  https://core.telegram.org/bots/api#responseparameters; the limits:
  https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this)
* :class:`Lanes` — updates of one chat are handled one at a time, in order;
  different chats run concurrently.
* :class:`UpdateIntake` — what the webhook and polling share: parse, store in
  the inbox (``storage.inbox``) *before* Telegram is told ``200`` or the
  polling offset moves on, hand to a lane; on start, whatever the inbox holds
  unhandled (a crash) is handled first.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from aiogram import Bot, Dispatcher
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.dispatcher.middlewares.user_context import UserContextMiddleware
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import Update
from pydantic import ValidationError

from bot.metrics import count_send
from bot.rules.customer_file import language_for
from storage import inbox
from storage.dialog_state import SQLStorage
from storage.unit_of_work import UnitOfWork, current_uow

if TYPE_CHECKING:
    from bot.clock import Clock
    from bot.config import Settings
    from bot.texts import TextRenderer
    from storage.db import Database

log = logging.getLogger(__name__)

T = TypeVar("T")

# Methods that put a message in a chat: these count against Telegram's rate limits
# (https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this).
SENDING_METHODS = frozenset({
    "sendMessage", "sendPhoto", "sendDocument", "sendMediaGroup", "sendSticker", "sendVoice", "sendVideo",
    "sendAudio", "sendAnimation", "sendContact", "sendLocation", "copyMessage", "forwardMessage",
})
# Calls kept until the unit of work has committed (their result is never needed by a handler).
KEPT_METHODS = frozenset({
    "sendMessage", "sendPhoto", "sendDocument", "sendMediaGroup", "sendSticker", "sendVoice", "sendVideo",
    "sendAudio", "sendAnimation", "copyMessage", "forwardMessage", "editMessageText", "editMessageCaption",
    "editMessageReplyMarkup", "answerCallbackQuery", "setMessageReaction", "deleteMessage", "sendChatAction",
})
_AT_ONCE: ContextVar[bool] = ContextVar("caredesk_send_at_once", default=False)


async def at_once(call: Awaitable[T]) -> T:
    """Make this Telegram call now and return its result (or raise its error).

    For the calls whose result a handler stores (a card's message id) or whose
    failure it handles (a customer who blocked the bot): what the update
    decided so far is committed first, and the calls kept before it are sent
    first, so the order of messages stays as written.
    """
    token = _AT_ONCE.set(True)
    try:
        return await call
    finally:
        _AT_ONCE.reset(token)


class Pending:
    """What a kept call returns: it is made after the commit, so there is no result yet."""

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"this Telegram call is made after the update commits, so it has no {name!r} yet: "
                             "wrap it in bot.pipeline.at_once(...) to use its result")

    def __bool__(self) -> bool:
        return True


PENDING = Pending()

# Calls whose failure must not fail an update: the state they would show is already committed.
COSMETIC_METHODS = frozenset({
    "setMessageReaction", "editMessageReplyMarkup", "answerCallbackQuery", "deleteMessage", "sendChatAction",
})
# Bad requests that say "nothing to do" (https://core.telegram.org/bots/api#making-requests); a message
# older than 48 hours can't be deleted (https://core.telegram.org/bots/api#deletemessage).
HARMLESS = ("message is not modified", "query is too old", "query id is invalid",
            "message to delete not found", "message to edit not found", "message can't be deleted")
# Tries of one call inside an update for network errors and 5xx, and the first backoff (doubling).
CALL_ATTEMPTS = 3
CALL_BACKOFF = 0.5


def lane_of(update: Update) -> int:
    """The chat whose updates must be handled in order (the user's id when there is no chat)."""
    context = UserContextMiddleware.resolve_event_context(update)
    if context.chat_id is not None:
        return context.chat_id
    return context.user_id or 0


class CareDispatcher(Dispatcher):
    """The dispatcher, with each update in one unit of work (see the module's docstring)."""

    def __init__(self, *, db: Database, clock: Clock, renderer: TextRenderer, settings: Settings,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.db = db
        self.clock = clock
        self.renderer = renderer
        self.settings = settings
        # Called with (update, handler name or None, seconds, ok) after each update (metrics).
        self.update_observers: list[Callable[[Update, str | None, float, bool], None]] = []

    def _state_key(self, bot: Bot, update: Update) -> str | None:
        if not isinstance(self.storage, SQLStorage):
            return None
        context = UserContextMiddleware.resolve_event_context(update)
        fsm = self.fsm.resolve_context(bot=bot, chat_id=context.chat_id, user_id=context.user_id,
                                       thread_id=context.thread_id,
                                       business_connection_id=context.business_connection_id)
        return self.storage.key_builder.build(fsm.key) if fsm is not None else None

    async def feed_update(self, bot: Bot, update: Update, **kwargs: Any) -> Any:
        inbox_id: int | None = kwargs.pop("inbox_id", None)
        uow = UnitOfWork(self.db, self.clock.now())
        uow.inbox_update_id = inbox_id
        token = current_uow.set(uow)
        started = time.perf_counter()
        ok = False
        try:
            user = UserContextMiddleware.resolve_event_context(update).user
            await uow.load(user.id if user else None, self._state_key(bot, update))
            result = await super().feed_update(bot, update, uow=uow, **kwargs)
            await uow.commit()
            await send_kept(uow)
            ok = True
            return result
        except Exception:
            await self._failed(bot, update, uow, inbox_id)
            raise
        finally:
            current_uow.reset(token)
            await uow.close()
            elapsed = time.perf_counter() - started
            for observe in self.update_observers:
                observe(update, uow.handler_name, elapsed, ok)

    async def _failed(self, bot: Bot, update: Update, uow: UnitOfWork, inbox_id: int | None) -> None:
        uow.outgoing.clear()  # what the handler meant to say described a decision that is rolled back
        uow.sending = True  # the failure notice below goes straight out
        try:
            await uow.rollback()
        except Exception:  # the connection itself may be the problem
            log.debug("rollback failed", exc_info=True)
        context = UserContextMiddleware.resolve_event_context(update)
        # One record per failed update; exception texts of SQLAlchemy carry no parameters (hide_parameters).
        log.exception("update %s failed (handler %s, chat %s, kind %s)", update.update_id,
                      uow.handler_name or "-", context.chat_id, update.event_type)
        if inbox_id is not None:
            try:
                await inbox.give_up(self.db, inbox_id, self.clock.now())
            except Exception:  # noqa: BLE001 - the update already failed; the failure notice must still go out
                log.warning("update %s could not be marked handled after its failure", update.update_id)
        await self._tell(bot, update, uow)

    async def _tell(self, bot: Bot, update: Update, uow: UnitOfWork) -> None:
        """The person learns that it failed (and whether part of it was saved); the button stops spinning."""
        texts = uow.texts
        if texts is None:
            context = UserContextMiddleware.resolve_event_context(update)
            user = context.user
            lang = language_for(user.language_code if user else None, self.settings.default_language)
            texts = self.renderer.for_language(lang)
        saved = uow.committed_something
        if update.callback_query is not None:
            try:
                await bot.answer_callback_query(update.callback_query.id, text=texts.button("error_toast"))
            except TelegramAPIError:
                log.debug("could not answer the callback of update %s", update.update_id)
        chat_id = UserContextMiddleware.resolve_event_context(update).chat_id
        if chat_id is None:
            return
        try:
            await bot.send_message(chat_id, texts("errors/internal_after_save" if saved else "errors/internal"))
        except TelegramAPIError:
            log.warning("could not tell chat %s about the failure of update %s", chat_id, update.update_id)


class SendPath(BaseRequestMiddleware):
    """Every Telegram call of the bot passes here (see the module's docstring)."""

    def __init__(self, pacer: Callable[[], Any] | None = None, timer: Callable[[], Any] | None = None, *,
                 wait_for_turn: bool = True) -> None:
        self._pacer = pacer
        self._timer = timer
        # Under a manual clock (tests, the sandbox) a reply is counted but never waits: waiting
        # would move that clock, and nothing real is paced there.
        self._wait_for_turn = wait_for_turn

    async def __call__(self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot,
                       method: TelegramMethod[TelegramType]) -> Response[TelegramType]:
        uow = current_uow.get()
        if uow is None:
            # Outside an update: the outbox worker paces and retries by its own rules.
            return await make_request(bot, method)
        name = method.__api_method__
        if not uow.sending:
            if name in KEPT_METHODS and not _AT_ONCE.get():
                uow.outgoing.append((bot, method))
                return PENDING  # type: ignore[return-value]
            await uow.commit()  # decide, write, commit — then talk
            await send_kept(uow)
        return await self._make(make_request, bot, method, name)

    async def _make(self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot,
                    method: TelegramMethod[TelegramType], name: str) -> Response[TelegramType]:
        try:
            result = await self._try(make_request, bot, method, name)
        except TelegramAPIError as exc:
            if name in SENDING_METHODS:
                count_send("reply", _outcome(exc))
            raise
        if name in SENDING_METHODS:
            count_send("reply", "sent")
        return result

    async def _try(self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot,
                   method: TelegramMethod[TelegramType], name: str) -> Response[TelegramType]:
        attempt = 0
        while True:
            attempt += 1
            if name in SENDING_METHODS:
                await self._turn(getattr(method, "chat_id", None))
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                count_send("reply", "rate_limited")
                self._note_retry_after(exc.retry_after)
                log.warning("429 from Telegram on %s: waiting %s s", name, exc.retry_after)
                if attempt >= CALL_ATTEMPTS:
                    raise
                await self._sleep(float(exc.retry_after))
            except TelegramBadRequest as exc:
                if any(marker in exc.message.lower() for marker in HARMLESS):
                    log.debug("%s: %s", name, exc.message)
                    return _harmless_result(method)
                if name in COSMETIC_METHODS:
                    log.info("%s failed and was left: %s", name, exc.message)
                    return _harmless_result(method)
                raise
            except (TelegramNetworkError, TelegramServerError) as exc:
                # A request that may have arrived is sent again: to a person, a duplicate reply is
                # better than a lost one (the outbox's rule for service messages).
                if name in COSMETIC_METHODS:
                    log.info("%s failed and was left: %s", name, exc.message)
                    return _harmless_result(method)
                if attempt >= CALL_ATTEMPTS:
                    raise
                await self._sleep(CALL_BACKOFF * 2 ** (attempt - 1))
            except TelegramAPIError as exc:
                if name in COSMETIC_METHODS:
                    log.info("%s failed and was left: %s", name, exc.message)
                    return _harmless_result(method)
                raise

    async def _turn(self, chat_id: Any) -> None:
        pacer = self._pacer() if self._pacer is not None else None
        if pacer is None or not isinstance(chat_id, int):
            return
        if self._wait_for_turn:
            await pacer.acquire(chat_id, service=True)
        else:
            pacer.take(chat_id, self._timer().monotonic() if self._timer is not None else time.monotonic())

    async def _sleep(self, seconds: float) -> None:
        if self._timer is not None:
            await self._timer().sleep(seconds)
        else:
            await asyncio.sleep(seconds)

    def _note_retry_after(self, seconds: float) -> None:
        pacer = self._pacer() if self._pacer is not None else None
        if pacer is not None:
            pacer.note_retry_after(seconds)


async def send_kept(uow: UnitOfWork) -> None:
    """Make the calls the handler made so far, in order (the unit of work has committed).

    A call that still fails after the send path's retries is logged (method and
    Telegram's words, nothing the person wrote); a private chat that blocked
    the bot marks its customer unreachable, as the outbox does.
    """
    if not uow.outgoing:
        return
    kept, uow.outgoing = uow.outgoing, []
    uow.sending = True
    try:
        for bot, method in kept:
            try:
                await bot(method)
            except TelegramForbiddenError as exc:
                chat_id = getattr(method, "chat_id", None)
                log.info("%s to chat %s refused: %s", method.__api_method__, chat_id, exc.message)
                if isinstance(chat_id, int) and chat_id > 0:
                    await uow.note_unreachable(chat_id)
            except TelegramAPIError as exc:
                log.warning("%s to chat %s failed after the update committed: %s", method.__api_method__,
                            getattr(method, "chat_id", None), exc.message)
    finally:
        uow.sending = False


def _outcome(exc: TelegramAPIError) -> str:
    """The /metrics outcome of a failed send (bot.metrics.count_send)."""
    if isinstance(exc, TelegramRetryAfter):
        return "rate_limited"
    if isinstance(exc, TelegramForbiddenError):
        return "forbidden"
    if isinstance(exc, TelegramBadRequest):
        return "bad_request"
    if isinstance(exc, TelegramNetworkError):
        return "network_error"
    if isinstance(exc, TelegramServerError):
        return "server_error"
    return "error"


def _harmless_result(method: TelegramMethod[Any]) -> Any:
    # Every cosmetic method answers True on success; an edit that changed nothing is fine as True too.
    return True


class Lanes:
    """One queue per chat: a chat's updates one at a time, in order; chats concurrently."""

    def __init__(self, run: Callable[[Any], Awaitable[None]]) -> None:
        self._run = run
        self._queues: dict[int, deque[Any]] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def in_hand(self) -> int:
        return sum(len(q) for q in self._queues.values()) + len(self._tasks)

    def submit(self, lane: int, item: Any) -> None:
        queue = self._queues.setdefault(lane, deque())
        queue.append(item)
        self._idle.clear()
        if lane not in self._tasks:
            self._tasks[lane] = asyncio.get_running_loop().create_task(self._work(lane), name=f"lane-{lane}")

    async def _work(self, lane: int) -> None:
        queue = self._queues[lane]
        try:
            while queue:
                item = queue.popleft()
                try:
                    await self._run(item)
                except Exception:  # noqa: BLE001 - one update's failure must not stop its lane
                    # Logged (once) where it was handled; the lane goes on with the next update.
                    pass
        finally:
            del self._queues[lane]
            del self._tasks[lane]
            if not self._tasks:
                self._idle.set()

    async def wait_idle(self) -> None:
        """Until every update in hand is handled."""
        await self._idle.wait()


class UpdateIntake:
    """Accept updates (webhook or polling): inbox first, then a lane."""

    def __init__(self, dispatcher: CareDispatcher, bot: Bot, db: Database, clock: Clock) -> None:
        self.dispatcher = dispatcher
        self.bot = bot
        self.db = db
        self.clock = clock
        self.lanes = Lanes(self._handle)
        self.accepting = True

    def parse(self, payload: dict[str, Any]) -> Update:
        return Update.model_validate(payload, context={"bot": self.bot})

    async def accept(self, updates: list[tuple[Update, str]]) -> int:
        """Store these (update, raw JSON) pairs in the inbox and hand the new ones to their lanes."""
        items = [inbox.Accepted(update_id=u.update_id, lane=lane_of(u), payload=raw) for u, raw in updates]
        fresh = await inbox.accept(self.db, items, self.clock.now())
        by_id = {u.update_id: u for u, _raw in updates}
        for item in fresh:
            self.lanes.submit(item.lane, by_id[item.update_id])
        return len(fresh)

    async def resume(self) -> int:
        """Hand over what was acknowledged but never handled (the process died); returns how many."""
        pending = await inbox.unhandled(self.db)
        count = 0
        for item in pending:
            try:
                update = self.parse(json.loads(item.payload))
            except (ValueError, ValidationError):
                log.warning("inbox update %s is not a valid update; dropped", item.update_id)
                await inbox.give_up(self.db, item.update_id, self.clock.now())
                continue
            self.lanes.submit(item.lane, update)
            count += 1
        if count:
            log.warning("handling %d update(s) acknowledged before a restart but never handled", count)
        return count

    async def _handle(self, update: Update) -> None:
        await self.dispatcher.feed_update(self.bot, update, inbox_id=update.update_id)

    async def prune(self) -> None:
        removed = await inbox.prune(self.db, self.clock.now())
        if removed:
            log.debug("pruned %d handled inbox row(s)", removed)

    async def finish(self, timeout: timedelta = timedelta(seconds=30)) -> None:
        """Stop accepting; wait for the updates in hand (and their sends) to be handled."""
        self.accepting = False
        try:
            await asyncio.wait_for(self.lanes.wait_idle(), timeout.total_seconds())
        except TimeoutError:
            log.warning("%d update(s) still in hand at shutdown; they stay in the inbox for the next start",
                        self.lanes.in_hand)
