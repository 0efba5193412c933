"""Update middlewares: the unit of work's repositories, and who is speaking.

The unit of work itself (one per update: load once, commit once, then talk
to Telegram) is opened by ``bot.pipeline.CareDispatcher.feed_update``, around
aiogram's own middlewares. Order (outer middlewares on ``dp.update``, after
aiogram's user-context and FSM ones): :class:`DatabaseMiddleware` →
:class:`PersonMiddleware`; :class:`HandlerNameMiddleware` is an inner one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.dispatcher.event.handler import HandlerObject
from aiogram.fsm.context import FSMContext
from aiogram.types import TelegramObject, User

from bot.config import Settings
from bot.roles import role_of
from bot.rules.customer_file import language_for
from bot.texts import TextRenderer
from storage.db import current_session
from storage.repositories import Repos
from storage.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]

# Dialog-data key that keeps an unregistered person's chosen language.
LANG_KEY = "lang"


class DatabaseMiddleware(BaseMiddleware):
    """Hand the update's unit of work to the handler as ``repos`` (its session)."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        uow: UnitOfWork = data["uow"]
        data["repos"] = Repos(uow.session)
        token = current_session.set(uow.session)
        try:
            return await handler(event, data)
        finally:
            current_session.reset(token)


class PersonMiddleware(BaseMiddleware):
    """Resolve role, customer record and language for every update (the customer was loaded with the state)."""

    def __init__(self, settings: Settings, renderer: TextRenderer) -> None:
        self.settings = settings
        self.renderer = renderer

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        uow: UnitOfWork = data["uow"]
        customer = uow.customer
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
        data["texts"] = uow.texts = self.renderer.for_language(lang)
        return await handler(event, data)


class HandlerNameMiddleware(BaseMiddleware):
    """Note which handler took the update (for logs and metrics); never anything the person sent."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        uow: UnitOfWork | None = data.get("uow")
        found: HandlerObject | None = data.get("handler")
        if uow is not None and found is not None:
            uow.handler_name = getattr(found.callback, "__qualname__", None)
        return await handler(event, data)
