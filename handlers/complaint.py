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
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.callback_ids import parse_row_id
from bot.clock import Clock
from bot.config import Settings
from bot.dialogs import TYPED, Dialog, StepButton, Turn
from bot.filters import When, private_router
from bot.menu import MenuCallback
from bot.rules import tickets as rules
from bot.rules.customer_file import Invalid
from bot.services.tickets import StaffForum, customer_tz, post_card
from bot.texts import TextRenderer, Texts
from bot.ticket_priority import complaint_priority
from storage.models import Customer
from storage.repositories import Repos


def build_router() -> Router:
    """A new router with this module's handlers, tried in this order (bot.app.build_routers places it)."""
    router = private_router("complaint")
    router.message.register(complaint_command, Command("complaint"))
    router.callback_query.register(complaint_from_menu, MenuCallback.filter(F.action == "complaint"))
    router.message.register(process_description, StateFilter(ComplaintForm.description), TYPED)
    router.message.register(process_photo, StateFilter(ComplaintForm.confirm), When(F.photo))
    router.message.register(process_photo, StateFilter(ComplaintForm.description), When(F.photo))
    router.message.register(description_not_text, StateFilter(ComplaintForm.description), When((~F.text) & (~F.photo)))
    router.callback_query.register(process_button, dialog.Button.filter())
    return router


class ComplaintForm(StatesGroup):
    category = State()
    order = State()
    description = State()
    confirm = State()


RECENT_ORDERS = 5


# ----- asking ----------------------------------------------------------------------

async def ask_category(message: Message, texts: Texts) -> None:
    builder = InlineKeyboardBuilder()
    for category in rules.CATEGORIES:
        builder.button(text=texts.button(f"complaint_category_{category}"),
                       callback_data=dialog.button("cat", "category", category))
    builder.adjust(2)
    await message.answer(texts("complaints/ask_category"), reply_markup=builder.as_markup())


async def ask_order(message: Message, texts: Texts, repos: Repos, settings: Settings,
                    customer: Customer | None) -> None:
    orders = await repos.tickets.recent_orders(customer.id, RECENT_ORDERS) if customer else []
    builder = InlineKeyboardBuilder()
    for order in orders:
        builder.button(text=texts.button("complaint_order", order=order, tz=customer_tz(customer, settings)),
                       callback_data=dialog.button("order", "order", order.id))
    builder.button(text=texts.button("complaint_no_order"), callback_data=dialog.button("order", "order", "none"))
    builder.adjust(1)
    await message.answer(texts("complaints/ask_order"), reply_markup=builder.as_markup())


async def ask_description(message: Message, texts: Texts, turn: Turn) -> None:
    values = await dialog.values(turn.state)
    await message.answer(texts("complaints/ask_description", limit=rules.DESCRIPTION_MAX,
                               photos=len(values.get("photos") or []), max_photos=rules.PHOTOS_MAX))


async def show_summary(message: Message, texts: Texts, turn: Turn, repos: Repos, settings: Settings,
                       customer: Customer | None) -> None:
    values = await dialog.values(turn.state)
    order = None
    if customer is not None and values.get("order_id"):
        order = await repos.tickets.customer_order(customer.id, values["order_id"])
    builder = InlineKeyboardBuilder()
    builder.button(text=texts.button("complaint_submit"), callback_data=dialog.button("submit", "confirm"))
    builder.button(text=texts.button("complaint_edit"), callback_data=dialog.button("edit", "confirm"))
    builder.button(text=texts.button("complaint_cancel"), callback_data=dialog.button("cancel", "confirm"))
    builder.adjust(1, 2)
    await message.answer(
        texts("complaints/summary", category=values.get("category"), order=order,
              description=values.get("description") or "", photos=len(values.get("photos") or []),
              tz=customer_tz(customer, settings)),
        reply_markup=builder.as_markup(),
    )


dialog = Dialog(
    ComplaintForm,
    prefix="cmp",
    ask={ComplaintForm.category: ask_category, ComplaintForm.order: ask_order,
         ComplaintForm.description: ask_description, ComplaintForm.confirm: show_summary},
    buttons={
        ("cat", "category"): lambda value, _data: value in rules.CATEGORIES,
        # An order id within bounds (callback data can be forged); whose order it is is checked on the press.
        ("order", "order"): lambda value, _data: value == "none" or parse_row_id(value) is not None,
        ("submit", "confirm"): None,
        ("edit", "confirm"): None,
        ("cancel", "confirm"): None,
    },
    buttons_only={ComplaintForm.category, ComplaintForm.order, ComplaintForm.confirm},
    errors="complaints/errors",
)


# ----- starting ----------------------------------------------------------------------------

async def start_complaint(message: Message, turn: Turn, texts: Texts, customer: Customer | None) -> None:
    if customer is None:
        await message.answer(texts("common/register_first"))
        return
    await turn.begin(message, **{dialog.key: {"key": secrets.token_hex(8), "photos": []}})
    await message.answer(texts("complaints/intro"))
    await turn.ask(message, ComplaintForm.category)


async def complaint_command(message: Message, turn: Turn, texts: Texts, customer: Customer | None) -> None:
    await start_complaint(message, turn, texts, customer)


async def complaint_from_menu(callback: CallbackQuery, turn: Turn, texts: Texts, customer: Customer | None) -> None:
    message = await turn.start_by_button(callback)
    if message is not None:
        await start_complaint(message, turn, texts, customer)


# ----- the description ------------------------------------------------------------------------

async def process_description(message: Message, turn: Turn) -> None:
    try:
        description = rules.parse_description(message.text or "")
    except Invalid as error:
        await turn.reject(message, error)
        return
    values = await dialog.values(turn.state)
    values["description"] = description
    await dialog.save(turn.state, values)
    await turn.ask(message, ComplaintForm.confirm)


async def process_photo(message: Message, turn: Turn, texts: Texts) -> None:
    """Photos are kept by file_id; a caption in the description step is the description."""
    state = turn.state
    step = await turn.step(dialog)
    values = await dialog.values(state)
    photos = list(values.get("photos") or [])
    if len(photos) >= rules.PHOTOS_MAX:
        await turn.say_and_ask_again(message, texts("complaints/errors/too_many_photos", limit=rules.PHOTOS_MAX))
        return
    assert message.photo
    photos.append(message.photo[-1].file_id)  # the largest size
    values["photos"] = photos
    if step == "description" and message.caption:
        try:
            values["description"] = rules.parse_description(message.caption)
        except Invalid as error:
            await dialog.save(state, values)
            await turn.reject(message, error)
            return
        await dialog.save(state, values)
        await turn.ask(message, ComplaintForm.confirm)
        return
    await dialog.save(state, values)
    if step == "confirm":
        await message.answer(texts("complaints/photo_added", count=len(photos), limit=rules.PHOTOS_MAX))
    else:
        await message.answer(texts("complaints/photo_kept", count=len(photos), limit=rules.PHOTOS_MAX))


async def description_not_text(message: Message, turn: Turn, texts: Texts) -> None:
    """A sticker, a voice note, a file...: the description must be written."""
    await turn.say_and_ask_again(message, texts("complaints/errors/description_not_text"))


# ----- buttons ------------------------------------------------------------------------------------

async def process_button(callback: CallbackQuery, callback_data: StepButton, turn: Turn, texts: Texts,
                         repos: Repos, clock: Clock, settings: Settings, renderer: TextRenderer, bot: Bot,
                         customer: Customer | None, staff_forum: StaffForum | None = None) -> None:
    press = await turn.press(callback, callback_data, accept=False)
    if press is None:
        return
    message, action = press.message, press.action
    values = await dialog.values(turn.state)
    if action == "order":
        order_id = None
        if press.value != "none":
            wanted = parse_row_id(press.value)
            order = (await repos.tickets.customer_order(customer.id, wanted)
                     if customer and wanted is not None else None)
            if order is None:  # not this customer's
                await turn.expired(callback)
                return
            order_id = order.id
        await press.accept()
        values["order_id"] = order_id
        await dialog.save(turn.state, values)
        await turn.ask(message, ComplaintForm.description)
        return
    await press.accept()
    if action == "cat":
        values["category"] = press.value
        await dialog.save(turn.state, values)
        has_orders = bool(customer and await repos.tickets.recent_orders(customer.id, 1))
        await turn.ask(message, ComplaintForm.order if has_orders else ComplaintForm.description)
    elif action == "edit":
        await turn.ask(message, ComplaintForm.description)
    elif action == "cancel":
        await turn.end()
        await message.answer(texts("common/cancelled"))
    elif action == "submit":
        await _submit(message, turn, values, texts=texts, repos=repos, clock=clock, settings=settings,
                      renderer=renderer, bot=bot, customer=customer, staff_forum=staff_forum)


async def _submit(message: Message, turn: Turn, values: dict[str, Any], *, texts: Texts, repos: Repos, clock: Clock,
                  settings: Settings, renderer: TextRenderer, bot: Bot, customer: Customer | None,
                  staff_forum: StaffForum | None) -> None:
    if customer is None:
        await turn.end()
        await message.answer(texts("common/register_first"))
        return
    if values.get("category") not in rules.CATEGORIES:
        await turn.ask(message, ComplaintForm.category)  # dialog data lost or forged
        return
    if not values.get("description"):
        await turn.ask(message, ComplaintForm.description)
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
    await turn.end()
    if created:
        await post_card(bot, staff_forum, repos, renderer, settings, ticket, customer, now)
    await message.answer(texts(
        "complaints/submitted", ticket=ticket, targets=rules.targets(ticket.priority, settings.sla),
        business_hours=settings.sla.schedule is not None,
    ))
