"""Update middlewares: one database transaction per update, and who is speaking.

Order (outer middlewares on ``dp.update``, after aiogram's own user-context and
FSM ones): :class:`DatabaseMiddleware` → :class:`PersonMiddleware`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.fsm.context import FSMContext
from aiogram.types import TelegramObject, Update, User

from bot.config import Settings
from bot.roles import role_of
from bot.rules.customer_file import language_for
from bot.texts import TextRenderer
from storage.db import Database, current_session
from storage.repositories import Repos

log = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]

# Dialog-data key that keeps an unregistered person's chosen language.
LANG_KEY = "lang"


class DatabaseMiddleware(BaseMiddleware):
    """Open one session per update and commit it once, after the handler.

    On failure the transaction is rolled back, the failure is logged with the
    update's context, and the person is told; then the error propagates so the
    dispatcher (and the sandbox) see it.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        async with self.db.session() as session:
            repos = Repos(session)
            data["repos"] = repos
            token = current_session.set(session)
            try:
                result = await handler(event, data)
                await repos.commit()
                return result
            except Exception:
                await repos.rollback()
                user: User | None = data.get("event_from_user")
                chat = data.get("event_chat")
                update_id = event.update_id if isinstance(event, Update) else None
                log.exception(
                    "update %s failed (user %s, chat %s, kind %s)",
                    update_id,
                    user.id if user else None,
                    chat.id if chat else None,
                    event.event_type if isinstance(event, Update) else type(event).__name__,
                )
                await _tell_failure(data)
                raise
            finally:
                current_session.reset(token)


async def _tell_failure(data: dict[str, Any]) -> None:
    bot: Bot | None = data.get("bot")
    chat = data.get("event_chat")
    texts = data.get("texts")
    if bot is None or chat is None or texts is None:
        return
    try:
        await bot.send_message(chat.id, texts("errors/internal"))
    except TelegramAPIError:
        log.warning("could not tell chat %s about the failure", chat.id)


class PersonMiddleware(BaseMiddleware):
    """Resolve role, customer record and language for every update."""

    def __init__(self, settings: Settings, renderer: TextRenderer) -> None:
        self.settings = settings
        self.renderer = renderer

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        repos: Repos = data["repos"]
        customer = await repos.customers.by_telegram_id(user.id) if user else None
        if customer is not None:
            lang = customer.language
        else:
            lang = language_for(user.language_code if user else None, self.settings.default_language)
            state: FSMContext | None = data.get("state")
            if state is not None:
                chosen = (await state.get_data()).get(LANG_KEY)
                lang = chosen or lang
        data["role"] = role_of(user.id if user else None, self.settings)
        data["customer"] = customer
        data["lang"] = lang
        data["texts"] = self.renderer.for_language(lang)
        return await handler(event, data)
