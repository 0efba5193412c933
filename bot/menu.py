"""The customer's main menu: one button per thing a customer can do.

Feature routers handle ``MenuCallback.filter(F.action == "<action>")``; the
entries here decide what the menu shows and in which order. A button that
opens a dialog goes through ``turn.start_by_button`` (bot.dialogs): a dialog
already under way must be finished (or /cancel-led) first.
"""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup
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
