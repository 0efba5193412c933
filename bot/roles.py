"""Who is speaking: customer, staff or manager (managers are staff too)."""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from aiogram.filters import BaseFilter
from aiogram.types import TelegramObject

from bot.config import Settings


class Role(IntEnum):
    CUSTOMER = 0
    STAFF = 1
    MANAGER = 2


def role_of(user_id: int | None, settings: Settings) -> Role:
    if user_id is None:
        return Role.CUSTOMER
    if user_id in settings.manager_ids:
        return Role.MANAGER
    if user_id in settings.staff_ids:
        return Role.STAFF
    return Role.CUSTOMER


class HasRole(BaseFilter):
    """Passes when the sender has at least this role (``HasRole(Role.STAFF)``)."""

    def __init__(self, minimum: Role) -> None:
        self.minimum = minimum

    async def __call__(self, event: TelegramObject, role: Role = Role.CUSTOMER, **_: Any) -> bool:
        return role >= self.minimum


class InStaffPlace(BaseFilter):
    """Passes in the staff group and in private chats: where staff tools may show customers' details.

    (A private chat with the bot is the sender's own; any other group is not.)
    """

    async def __call__(self, event: TelegramObject, settings: Settings, event_chat: Any = None, **_: Any) -> bool:
        if event_chat is None:
            return False
        return event_chat.type == "private" or (settings.staff_chat_id is not None
                                                 and event_chat.id == settings.staff_chat_id)


class InStaffChat(BaseFilter):
    """Passes for messages and button presses in the configured staff group."""

    async def __call__(self, event: TelegramObject, settings: Settings, event_chat: Any = None, **_: Any) -> bool:
        return event_chat is not None and settings.staff_chat_id is not None and event_chat.id == settings.staff_chat_id
