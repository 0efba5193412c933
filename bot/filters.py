"""Magic filters evaluated on the event loop.

aiogram calls a filter whose callable is not a coroutine function through
``asyncio.to_thread`` — and a bare magic filter (``F.text``) is such a
callable — so every ``F`` filter on a router costs a hand-off to a worker
thread and back, for every update that reaches it (see ``CallableObject.call``
in aiogram/dispatcher/event/handler.py). :class:`When` evaluates the same
magic filter inline. Use ``When(F.text & ~F.text.startswith("/"))`` wherever
a bare ``F`` expression would be passed as a filter.
"""

from __future__ import annotations

from typing import Any

from aiogram import F, Router
from aiogram.filters import Filter
from magic_filter import MagicFilter


class When(Filter):
    def __init__(self, magic: MagicFilter) -> None:
        self.magic = magic

    async def __call__(self, event: Any) -> bool:
        return bool(self.magic.resolve(event))

    def __str__(self) -> str:
        return f"When({self.magic!r})"


def private_router(name: str) -> Router:
    """A new router that takes only private chats: messages there, and presses of buttons on messages there."""
    router = Router(name=name)
    router.message.filter(When(F.chat.type == "private"))
    router.callback_query.filter(When(F.message.chat.type == "private"))
    return router
