"""What every chat shares: /help, /cancel, the mid-dialog guard, and fallbacks.

The ``commands`` and ``guard`` routers come first in the chain,
``fallback`` last: whatever no feature handled gets an answer here,
never silence.
"""

from __future__ import annotations

from typing import NamedTuple

from aiogram import F, Router
from aiogram.filters import Command, CommandStart, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message, ReplyKeyboardRemove

from bot.commands import commands_for
from bot.dialogs import Turn, allowed_in_dialog
from bot.filters import When
from bot.menu import MenuCallback
from bot.roles import HasRole, InStaffChat, Role
from bot.texts import Texts
from storage.models import Customer


class CommonRouters(NamedTuple):
    commands: Router  # first in the chain: /help, /cancel
    guard: Router  # next: another command in the middle of a dialog
    fallback: Router  # last: whatever no feature handled


def build_routers() -> CommonRouters:
    """New routers with this module's handlers, each tried in this order (bot.app.build_routers places them)."""
    commands = Router(name="common-commands")
    commands.message.register(show_help, Command("help"))
    commands.message.register(staff_start_in_staff_chat, CommandStart(), When(F.chat.type != "private"),
                              HasRole(Role.STAFF), InStaffChat())
    commands.callback_query.register(show_help_from_menu, MenuCallback.filter(F.action == "help"))
    commands.message.register(cancel_handler, Command("cancel"))

    guard = Router(name="dialog-guard")
    guard.message.register(command_in_dialog, ~StateFilter(None), When(F.text.startswith("/")), _blocked_in_dialog)

    fallback = Router(name="fallback")
    fallback.message.register(wrong_input_in_dialog, ~StateFilter(None))
    fallback.message.register(outside_dialog, When(F.chat.type == "private"))
    fallback.message.register(unknown_command_in_group, When(F.text.startswith("/")))
    fallback.callback_query.register(stale_button)
    return CommonRouters(commands=commands, guard=guard, fallback=fallback)


async def _blocked_in_dialog(message: Message, customer: Customer | None = None) -> bool:
    return not allowed_in_dialog(message, registered=customer is not None)


def help_text(texts: Texts, role: Role) -> str:
    commands = [(c.name, texts(f"commands/{c.name}.txt")) for c in commands_for(role)]
    return texts("common/help", commands=commands, role=role.name.lower())


async def show_help(message: Message, texts: Texts, role: Role, turn: Turn) -> None:
    await message.answer(help_text(texts, role))
    # In the middle of a dialog: remind the person where they were.
    await turn.ask_again(message)


async def staff_start_in_staff_chat(message: Message, texts: Texts, role: Role, turn: Turn) -> None:
    """/start in the staff group: a staff member gets their command list (customers register in private)."""
    await message.answer(help_text(texts, role))
    await turn.ask_again(message)


async def show_help_from_menu(callback: CallbackQuery, texts: Texts, role: Role) -> None:
    await callback.answer()
    if callback.message:
        await callback.message.answer(help_text(texts, role))


async def cancel_handler(message: Message, state: FSMContext, texts: Texts, turn: Turn) -> None:
    if await state.get_state() is None:
        await message.answer(texts("common/nothing_to_cancel"), reply_markup=ReplyKeyboardRemove())
        return
    await turn.end()
    await message.answer(texts("common/cancelled"), reply_markup=ReplyKeyboardRemove())


async def command_in_dialog(message: Message, turn: Turn) -> None:
    """Another command in the middle of a dialog: finish it or /cancel first."""
    await turn.interrupted(message)


async def wrong_input_in_dialog(message: Message, turn: Turn) -> None:
    """Nothing in the dialog accepted this message (a sticker where text is needed...)."""
    await turn.wrong_input(message)


async def outside_dialog(message: Message, texts: Texts, customer: Customer | None, role: Role) -> None:
    if message.text and message.text.startswith("/"):
        if customer is None and role == Role.CUSTOMER:
            await message.answer(texts("common/register_first"))
        else:
            await message.answer(texts("common/unknown_command"))
        return
    if customer is None and role == Role.CUSTOMER:
        await message.answer(texts("common/register_first"))
    else:
        await message.answer(texts("common/hint"))


async def unknown_command_in_group(message: Message, texts: Texts, role: Role) -> None:
    """In the staff group, only commands get an answer; staff chatter does not."""
    if role >= Role.STAFF:
        await message.answer(texts("common/unknown_command"))


async def stale_button(callback: CallbackQuery, texts: Texts) -> None:
    """A button of an old or finished dialog, or data that does not parse."""
    await callback.answer(texts("common/button_expired.txt"), show_alert=False)
