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
from aiogram.types import Chat, TelegramObject, User

from bot.config import Settings
from bot.roles import Role, role_of
from bot.rules.customer_file import language_for
from bot.staff_language import is_staff_chat, own_choice, staff_chat_language
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
        chat: Chat | None = data.get("event_chat")
        uow: UnitOfWork = data["uow"]
        repos: Repos = data["repos"]
        customer = uow.customer
        role = role_of(user.id if user else None, self.settings)
        if chat is not None and is_staff_chat(chat.id, self.settings):
            # One language for the whole staff chat (chosen there with /language); no SQL: loaded with the state.
            lang = await staff_chat_language(repos, self.settings)
        elif customer is not None:
            lang = customer.language
        else:
            lang = language_for(user.language_code if user else None, self.settings.default_language)
            state: FSMContext | None = data.get("state")
            if state is not None:
                chosen = (await state.get_data()).get(LANG_KEY)
                lang = chosen or lang
            if user is not None and role >= Role.STAFF and chat is not None and chat.type == "private":
                lang = await own_choice(repos, user.id) or lang  # kept in the database: survives a lost state
        data["role"] = role
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
