"""The customer's main menu: one button per thing a customer can do.

Feature routers handle ``MenuCallback.filter(F.action == "<action>")``; the
entries here decide what the menu shows and in which order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.texts import Texts


class MenuCallback(CallbackData, prefix="menu"):
    action: str


# (action, button template) in display order.
MENU_ENTRIES: list[tuple[str, str]] = [
    ("order", "menu_order"),
    ("orders", "menu_orders"),
    ("profile", "menu_profile"),
    ("language", "menu_language"),
    ("complaint", "menu_complaint"),
    ("help", "menu_help"),
]


def menu_keyboard(texts: Texts) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for action, label in MENU_ENTRIES:
        builder.button(text=texts.button(label), callback_data=MenuCallback(action=action))
    builder.adjust(2)
    return builder.as_markup()


async def start_from_menu(callback: CallbackQuery, data: dict[str, Any],
                          start: Callable[[Message, dict[str, Any]], Awaitable[None]]) -> None:
    """A menu button that starts a dialog: a stale button is told so, and a dialog already
    under way must be finished (or /cancel-led) first."""
    texts: Texts = data["texts"]
    state: FSMContext = data["state"]
    if not isinstance(callback.message, Message):
        await callback.answer(texts("common/button_expired.txt"))
        return
    if await state.get_state() is not None:
        await callback.answer(texts("common/finish_first.txt"), show_alert=True)
        return
    await callback.answer()
    await start(callback.message, data)
