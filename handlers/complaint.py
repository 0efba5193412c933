"""The /complaint dialog: category → (one of the recent orders) → description → summary → Submit.

The description is text (up to 3,500 characters); photos may come with it or
before it and are kept by ``file_id``. Submit makes one ticket per dialog
(an idempotency key in the dialog data), posts its card to the staff chat and
gives the customer the ticket number.
"""

from __future__ import annotations

import secrets
from typing import Any

from aiogram import Bot, F, Router
from aiogram.filters import Command, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.filters import When
from bot.callback_ids import parse_row_id
from bot.clock import Clock
from bot.config import Settings
from bot.dialogs import ask_again, asks, end_dialog
from bot.menu import MenuCallback, start_from_menu
from bot.rules import tickets as rules
from bot.rules.customer_file import Invalid
from bot.texts import TextRenderer, Texts
from bot.ticket_priority import complaint_priority
from handlers.ticket_views import customer_tz, post_card
from storage.models import Customer
from storage.repositories import Repos

router = Router(name="complaint")
router.message.filter(When(F.chat.type == "private"))
router.callback_query.filter(When(F.message.chat.type == "private"))


class ComplaintForm(StatesGroup):
    category = State()
    order = State()
    description = State()
    confirm = State()


class ComplaintCallback(CallbackData, prefix="cmp"):
    step: str  # the state the button belongs to; a press in another state is stale
    action: str  # cat | order | submit | edit | cancel
    value: str = ""


DATA_KEY = "cmp"
RECENT_ORDERS = 5


def _step_of(state_name: str | None) -> str | None:
    if not state_name or not state_name.startswith("ComplaintForm:"):
        return None
    return state_name.split(":", 1)[1]


def _cb(step: str, action: str, value: str = "") -> ComplaintCallback:
    return ComplaintCallback(step=step, action=action, value=value)


async def _dialog(state: FSMContext) -> dict[str, Any]:
    return dict((await state.get_data()).get(DATA_KEY) or {})


async def _save(state: FSMContext, values: dict[str, Any]) -> None:
    await state.update_data({DATA_KEY: values})


# ----- asking ----------------------------------------------------------------------

@asks(ComplaintForm.category, buttons_only=True)
async def ask_category(message: Message, data: dict[str, Any]) -> None:
    texts: Texts = data["texts"]
    builder = InlineKeyboardBuilder()
    for category in rules.CATEGORIES:
        builder.button(text=texts.button(f"complaint_category_{category}"), callback_data=_cb("category", "cat", category))
    builder.adjust(2)
    await message.answer(texts("complaints/ask_category"), reply_markup=builder.as_markup())


@asks(ComplaintForm.order, buttons_only=True)
async def ask_order(message: Message, data: dict[str, Any]) -> None:
    texts: Texts = data["texts"]
    repos: Repos = data["repos"]
    settings: Settings = data["settings"]
    customer: Customer | None = data.get("customer")
    orders = await repos.tickets.recent_orders(customer.id, RECENT_ORDERS) if customer else []
    builder = InlineKeyboardBuilder()
    for order in orders:
        builder.button(text=texts.button("complaint_order", order=order, tz=customer_tz(customer, settings)),
                       callback_data=_cb("order", "order", str(order.id)))
    builder.button(text=texts.button("complaint_no_order"), callback_data=_cb("order", "order", "none"))
    builder.adjust(1)
    await message.answer(texts("complaints/ask_order"), reply_markup=builder.as_markup())


@asks(ComplaintForm.description)
async def ask_description(message: Message, data: dict[str, Any]) -> None:
    texts: Texts = data["texts"]
    values = await _dialog(data["state"])
    await message.answer(texts("complaints/ask_description", limit=rules.DESCRIPTION_MAX,
                               photos=len(values.get("photos") or []), max_photos=rules.PHOTOS_MAX))


@asks(ComplaintForm.confirm, buttons_only=True)
async def show_summary(message: Message, data: dict[str, Any]) -> None:
    texts: Texts = data["texts"]
    repos: Repos = data["repos"]
    settings: Settings = data["settings"]
    customer: Customer | None = data.get("customer")
    values = await _dialog(data["state"])
    order = None
    if customer is not None and values.get("order_id"):
        order = await repos.tickets.customer_order(customer.id, values["order_id"])
    builder = InlineKeyboardBuilder()
    builder.button(text=texts.button("complaint_submit"), callback_data=_cb("confirm", "submit"))
    builder.button(text=texts.button("complaint_edit"), callback_data=_cb("confirm", "edit"))
    builder.button(text=texts.button("complaint_cancel"), callback_data=_cb("confirm", "cancel"))
    builder.adjust(1, 2)
    await message.answer(
        texts("complaints/summary", category=values.get("category"), order=order,
              description=values.get("description") or "", photos=len(values.get("photos") or []),
              tz=customer_tz(customer, settings)),
        reply_markup=builder.as_markup(),
    )


_ASK = {"category": ask_category, "order": ask_order, "description": ask_description, "confirm": show_summary}


async def ask_step(message: Message, data: dict[str, Any], step: str) -> None:
    state: FSMContext = data["state"]
    await state.set_state(getattr(ComplaintForm, step))
    await _ASK[step](message, data)


# ----- starting ----------------------------------------------------------------------------

async def start_complaint(message: Message, data: dict[str, Any]) -> None:
    texts: Texts = data["texts"]
    state: FSMContext = data["state"]
    if data.get("customer") is None:
        await message.answer(texts("common/register_first"))
        return
    await _save(state, {"key": secrets.token_hex(8), "photos": []})
    await message.answer(texts("complaints/intro"))
    await ask_step(message, data, "category")


@router.message(Command("complaint"))
async def complaint_command(message: Message, **data: Any) -> None:
    await start_complaint(message, data)


@router.callback_query(MenuCallback.filter(F.action == "complaint"))
async def complaint_from_menu(callback: CallbackQuery, **data: Any) -> None:
    await start_from_menu(callback, data, start_complaint)


# ----- the description ------------------------------------------------------------------------

async def _reject(message: Message, data: dict[str, Any], error: Invalid) -> None:
    texts: Texts = data["texts"]
    await message.answer(texts(f"complaints/errors/{error.code}", **error.params))
    await ask_again(message, data)


@router.message(StateFilter(ComplaintForm.description), When((F.text) & (~F.text.startswith("/"))))
async def process_description(message: Message, **data: Any) -> None:
    try:
        description = rules.parse_description(message.text or "")
    except Invalid as error:
        await _reject(message, data, error)
        return
    values = await _dialog(data["state"])
    values["description"] = description
    await _save(data["state"], values)
    await ask_step(message, data, "confirm")


@router.message(StateFilter(ComplaintForm.description), When(F.photo))
@router.message(StateFilter(ComplaintForm.confirm), When(F.photo))
async def process_photo(message: Message, **data: Any) -> None:
    """Photos are kept by file_id; a caption in the description step is the description."""
    texts: Texts = data["texts"]
    state: FSMContext = data["state"]
    step = _step_of(await state.get_state())
    values = await _dialog(state)
    photos = list(values.get("photos") or [])
    if len(photos) >= rules.PHOTOS_MAX:
        await message.answer(texts("complaints/errors/too_many_photos", limit=rules.PHOTOS_MAX))
        await ask_again(message, data)
        return
    assert message.photo
    photos.append(message.photo[-1].file_id)  # the largest size
    values["photos"] = photos
    if step == "description" and message.caption:
        try:
            values["description"] = rules.parse_description(message.caption)
        except Invalid as error:
            await _save(state, values)
            await _reject(message, data, error)
            return
        await _save(state, values)
        await ask_step(message, data, "confirm")
        return
    await _save(state, values)
    if step == "confirm":
        await message.answer(texts("complaints/photo_added", count=len(photos), limit=rules.PHOTOS_MAX))
    else:
        await message.answer(texts("complaints/photo_kept", count=len(photos), limit=rules.PHOTOS_MAX))


@router.message(StateFilter(ComplaintForm.description), When((~F.text) & (~F.photo)))
async def description_not_text(message: Message, **data: Any) -> None:
    """A sticker, a voice note, a file...: the description must be written."""
    texts: Texts = data["texts"]
    await message.answer(texts("complaints/errors/description_not_text"))
    await ask_again(message, data)


# ----- buttons ------------------------------------------------------------------------------------

@router.callback_query(ComplaintCallback.filter())
async def process_button(callback: CallbackQuery, callback_data: ComplaintCallback, **data: Any) -> None:
    state: FSMContext = data["state"]
    texts: Texts = data["texts"]
    message = callback.message
    step = _step_of(await state.get_state())
    if step is None or step != callback_data.step or not isinstance(message, Message):
        await callback.answer(texts("common/button_expired.txt"))
        return
    values = await _dialog(state)
    action = callback_data.action
    if action == "cat" and step == "category" and callback_data.value in rules.CATEGORIES:
        await callback.answer()
        await message.edit_reply_markup(reply_markup=None)
        values["category"] = callback_data.value
        await _save(state, values)
        await _after_category(message, data)
    elif action == "order" and step == "order":
        customer: Customer | None = data.get("customer")
        repos: Repos = data["repos"]
        order_id = None
        if callback_data.value != "none":
            wanted = parse_row_id(callback_data.value)  # None when forged beyond any id
            order = (await repos.tickets.customer_order(customer.id, wanted)
                     if customer and wanted is not None else None)
            if order is None:  # forged, or not this customer's
                await callback.answer(texts("common/button_expired.txt"))
                return
            order_id = order.id
        await callback.answer()
        await message.edit_reply_markup(reply_markup=None)
        values["order_id"] = order_id
        await _save(state, values)
        await ask_step(message, data, "description")
    elif action == "edit" and step == "confirm":
        await callback.answer()
        await message.edit_reply_markup(reply_markup=None)
        await ask_step(message, data, "description")
    elif action == "cancel" and step == "confirm":
        await callback.answer()
        await message.edit_reply_markup(reply_markup=None)
        await end_dialog(state)
        await message.answer(texts("common/cancelled"))
    elif action == "submit" and step == "confirm":
        await callback.answer()
        await message.edit_reply_markup(reply_markup=None)
        await _submit(message, data, values)
    else:
        await callback.answer(texts("common/button_expired.txt"))


async def _after_category(message: Message, data: dict[str, Any]) -> None:
    customer: Customer | None = data.get("customer")
    repos: Repos = data["repos"]
    has_orders = bool(customer and await repos.tickets.recent_orders(customer.id, 1))
    await ask_step(message, data, "order" if has_orders else "description")


async def _submit(message: Message, data: dict[str, Any], values: dict[str, Any]) -> None:
    state: FSMContext = data["state"]
    texts: Texts = data["texts"]
    repos: Repos = data["repos"]
    clock: Clock = data["clock"]
    settings: Settings = data["settings"]
    renderer: TextRenderer = data["renderer"]
    bot: Bot = data["bot"]
    customer: Customer | None = data.get("customer")
    if customer is None:
        await end_dialog(state)
        await message.answer(texts("common/register_first"))
        return
    if values.get("category") not in rules.CATEGORIES:
        await ask_step(message, data, "category")  # dialog data lost or forged
        return
    if not values.get("description"):
        await ask_step(message, data, "description")
        return
    now = clock.now()
    order_id = values.get("order_id")
    if order_id and await repos.tickets.customer_order(customer.id, order_id) is None:
        order_id = None
    priority, reasons = await complaint_priority(repos, customer, values["category"], now, settings)
    ticket, created = await repos.tickets.create(
        customer=customer, category=values["category"], order_id=order_id, description=values["description"],
        photos=list(values.get("photos") or []), priority=priority,
        idempotency_key=values.get("key") or secrets.token_hex(8), now=now, sla=settings.sla,
        reasons=reasons,
    )
    await end_dialog(state)
    if created:
        await post_card(bot, data.get("app"), repos, renderer, settings, ticket, customer, now)
    await message.answer(texts(
        "complaints/submitted", ticket=ticket, targets=rules.targets(ticket.priority, settings.sla),
        business_hours=settings.sla.schedule is not None,
    ))
