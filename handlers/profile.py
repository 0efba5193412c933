"""The customer's own file: /profile (view and edit), /stop, /resume,
/mydata, /forget and /language."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import BufferedInputFile, CallbackQuery, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot import privacy
from bot.clock import Clock
from bot.config import LANGUAGES, Settings
from bot.dialogs import Turn, set_buttons
from bot.filters import private_router
from bot.menu import MenuCallback
from bot.middlewares import LANG_KEY
from bot.roles import Role
from bot.staff_language import chat_language, choose_for_member, choose_for_staff_chat, is_staff_chat
from bot.texts import TextRenderer, Texts
from handlers.order_desk import card_view
from handlers.registration import STEPS, ProfileCallback, show_profile, start_editing
from storage.models import Customer
from storage.repositories import Repos
from storage.repositories.privacy import ShownMessage


class ProfileRouters(NamedTuple):
    profile: Router  # private chats: /profile, /stop, /resume, /mydata, /forget
    # /language works in every chat. In the staff chat a staff member chooses the whole group's language (the
    # cards, notices and alerts posted there); in their private chat, their own (what the bot sends them there).
    # Both are kept in the database (bot.staff_language). Elsewhere it is kept per person and chat.
    language: Router


def build_routers() -> ProfileRouters:
    """New routers with this module's handlers, each tried in this order (bot.app.build_routers places them)."""
    profile = private_router("profile")
    profile.message.register(profile_command, Command("profile"))
    profile.callback_query.register(profile_from_menu, MenuCallback.filter(F.action == "profile"))
    profile.callback_query.register(edit_field, ProfileCallback.filter(F.action == "edit"))
    profile.message.register(stop_care, Command("stop"))
    profile.message.register(resume_care, Command("resume"))
    profile.message.register(my_data, Command("mydata"))
    profile.message.register(forget_ask, Command("forget"))
    profile.callback_query.register(forget_answer, ProfileCallback.filter(F.action.in_({"forget_yes", "forget_no"})))

    language = Router(name="language")
    language.message.register(language_ask, Command("language"))
    language.callback_query.register(language_from_menu, MenuCallback.filter(F.action == "language"))
    language.callback_query.register(language_set, ProfileCallback.filter(F.action == "lang"))
    return ProfileRouters(profile=profile, language=language)


async def profile_command(message: Message, texts: Texts, customer: Customer | None) -> None:
    await show_profile(message, texts, customer)


async def profile_from_menu(callback: CallbackQuery, texts: Texts, customer: Customer | None) -> None:
    await callback.answer()
    if isinstance(callback.message, Message):
        await show_profile(callback.message, texts, customer)


async def edit_field(callback: CallbackQuery, callback_data: ProfileCallback, texts: Texts, turn: Turn,
                     customer: Customer | None) -> None:
    if (customer is None or customer.id != callback_data.cid or callback_data.value not in STEPS
            or not isinstance(callback.message, Message)):
        await turn.expired(callback)
        return
    if await turn.busy(callback):
        return
    await callback.answer()
    await start_editing(callback.message, turn, callback_data.value, "profile")


# ----- care messages on and off --------------------------------------------

async def stop_care(message: Message, customer: Customer | None, repos: Repos, clock: Clock, texts: Texts,
                    turn: Turn) -> None:
    """Works in the middle of a dialog too; the dialog's question is asked again."""
    if customer is None:
        await message.answer(texts("common/register_first"))
        return
    await repos.customers.update_field(customer, "care_consent", False, clock.now())
    skipped = await repos.outbox.skip_pending_care(customer.id, "stopped by customer")
    await message.answer(texts("profile/stopped", skipped=skipped))
    await turn.ask_again(message)


async def resume_care(message: Message, customer: Customer | None, repos: Repos, clock: Clock, texts: Texts,
                      turn: Turn) -> None:
    if customer is None:
        await message.answer(texts("common/register_first"))
        return
    await repos.customers.update_field(customer, "care_consent", True, clock.now())
    await repos.customers.mark_reachable(customer)
    await message.answer(texts("profile/resumed"))
    await turn.ask_again(message)


# ----- privacy ----------------------------------------------------------------

async def my_data(message: Message, customer: Customer | None, repos: Repos, clock: Clock, texts: Texts) -> None:
    if customer is None:
        await message.answer(texts("common/register_first"))
        return
    document = await privacy.collect(repos, customer)
    document["exported_at"] = clock.now().isoformat()
    body = json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8")
    await message.answer_document(
        BufferedInputFile(body, filename="caredesk-my-data.json"), caption=texts("profile/mydata_caption")
    )


async def forget_ask(message: Message, customer: Customer | None, texts: Texts) -> None:
    if customer is None:
        await message.answer(texts("common/register_first"))
        return
    builder = InlineKeyboardBuilder()
    builder.button(text=texts.button("forget_yes"), callback_data=ProfileCallback(action="forget_yes", cid=customer.id))
    builder.button(text=texts.button("forget_no"), callback_data=ProfileCallback(action="forget_no", cid=customer.id))
    await message.answer(texts("profile/forget_confirm"), reply_markup=builder.as_markup())


async def forget_answer(callback: CallbackQuery, callback_data: ProfileCallback, customer: Customer | None,
                        repos: Repos, clock: Clock, texts: Texts, state: FSMContext, renderer: TextRenderer,
                        settings: Settings) -> None:
    message = callback.message
    if customer is None or customer.id != callback_data.cid or not isinstance(message, Message):
        await callback.answer(texts("common/button_expired.txt"))
        return
    await callback.answer()
    await set_buttons(message)
    if callback_data.action == "forget_no":
        await message.answer(texts("profile/forget_kept"))
        return
    async def staff_edit(shown: ShownMessage) -> privacy.StaffEdit:
        """Staff-chat messages that showed the customer say only "(forgotten customer)"; an order's card
        keeps the order (items, total, status) without the customer. In the language of their chat."""
        lang = await chat_language(repos, settings, shown.chat_id)
        order = await repos.orders.get(shown.order_id) if shown.order_id is not None and not shown.caption else None
        if order is not None:
            text, markup = card_view(renderer, settings, order, customer, lang)
            return privacy.StaffEdit(text, markup.model_dump(exclude_none=True) if markup else None)
        return privacy.StaffEdit(renderer.render(lang, "common/forgotten_customer"))

    await privacy.forget(repos, customer, clock.now(), staff_text=staff_edit)
    await state.clear()
    await message.answer(texts("profile/forgotten"))


# ----- language ----------------------------------------------------------------

def _language_keyboard(renderer: TextRenderer) -> Any:
    builder = InlineKeyboardBuilder()
    for lang in LANGUAGES:
        # Each language's name is shown in that language.
        builder.button(text=renderer.render(lang, "buttons/language_name"),
                       callback_data=ProfileCallback(action="lang", value=lang))
    return builder.as_markup()


async def language_ask(message: Message, texts: Texts, settings: Settings) -> None:
    await message.answer(texts("profile/language_ask", group=is_staff_chat(message.chat.id, settings)),
                         reply_markup=_language_keyboard(texts.renderer))


async def language_from_menu(callback: CallbackQuery, texts: Texts) -> None:
    await callback.answer()
    if isinstance(callback.message, Message):
        await callback.message.answer(texts("profile/language_ask"), reply_markup=_language_keyboard(texts.renderer))


async def language_set(callback: CallbackQuery, callback_data: ProfileCallback, customer: Customer | None,
                       repos: Repos, clock: Clock, texts: Texts, state: FSMContext, settings: Settings, role: Role,
                       turn: Turn) -> None:
    """Set the language; in the middle of a dialog, ask its question again in it."""
    lang = callback_data.value
    if lang not in LANGUAGES or not isinstance(callback.message, Message):
        await callback.answer(texts("common/button_expired.txt"))
        return
    chat = callback.message.chat
    group = is_staff_chat(chat.id, settings)
    if group:
        if role < Role.STAFF:
            await callback.answer(texts("tickets/staff_only.txt"), show_alert=True)
            return
        await callback.answer()
        await choose_for_staff_chat(repos, lang, clock.now())
    else:
        await callback.answer()
        if customer is not None:
            await repos.customers.update_field(customer, "language", lang, clock.now())
        else:
            await state.update_data({LANG_KEY: lang})
        if role >= Role.STAFF and chat.type == "private":
            await choose_for_member(repos, callback.from_user.id, lang, clock.now())
    new_texts = texts.renderer.for_language(lang)
    try:
        await callback.message.edit_text(new_texts("profile/language_set", group=group))
    except TelegramBadRequest:
        await callback.message.answer(new_texts("profile/language_set", group=group))  # e.g. pressed twice
    await turn.ask_again(callback.message, texts=new_texts, lang=lang)
