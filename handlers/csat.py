"""Satisfaction after a resolution: a 1–5 rating, an optional comment, and
"not solved", which reopens the ticket within ``TICKET_REOPEN_DAYS``.

The survey itself is sent through the outbox when staff resolve a ticket
(:func:`bot.services.tickets.enqueue_survey`). A rating of 3 or more
confirms the resolution (the ticket closes); 1 or 2 alerts the managers and
offers to reopen, and the comment that follows reaches the staff chat as a
message of the ticket staff answer by replying (``handlers.conversations``).
"""

from __future__ import annotations

from typing import Any

from aiogram.filters import StateFilter
from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.pipeline import at_once
from bot.filters import When
from bot.clock import Clock
from bot.config import Settings
from bot.dialogs import ask_again, asks, end_dialog
from bot.rules import tickets as rules
from bot.rules.customer_file import Invalid
from bot.texts import TextRenderer, Texts
from bot.services.tickets import (
    CsatCallback,
    customer_actor,
    notify_managers,
    refresh_card,
    set_buttons,
    staff_chat_texts,
    tell_staff,
)
from handlers.conversations import pass_on_comment
from storage.models import Customer, Ticket
from storage.repositories import Repos

router = Router(name="csat")
router.message.filter(When(F.chat.type == "private"))
router.callback_query.filter(When(F.message.chat.type == "private"))


class CsatForm(StatesGroup):
    comment = State()


def _comment_keyboard(texts: Texts, ticket: Ticket, offer_reopen: bool) -> Any:
    builder = InlineKeyboardBuilder()
    if offer_reopen:
        builder.button(text=texts.button("csat_reopen"), callback_data=CsatCallback(action="reopen", ticket=ticket.id))
    builder.button(text=texts.button("csat_skip"), callback_data=CsatCallback(action="skip", ticket=ticket.id))
    builder.adjust(1)
    return builder.as_markup()


@asks(CsatForm.comment)
async def ask_comment(message: Message, data: dict[str, Any]) -> None:
    texts: Texts = data["texts"]
    repos: Repos = data["repos"]
    clock: Clock = data["clock"]
    settings: Settings = data["settings"]
    ticket_id = (await data["state"].get_data()).get("csat_ticket")
    ticket = await repos.tickets.get(int(ticket_id or 0))
    if ticket is None:
        await end_dialog(data["state"])
        return
    low = (ticket.rating or 0) <= rules.LOW_RATING
    offer_reopen = low and rules.can_reopen(ticket, clock.now(), settings.sla)
    asked = await at_once(message.answer(texts("tickets/csat_ask_comment", ticket=ticket, low=low, offer_reopen=offer_reopen,
                                       limit=rules.COMMENT_MAX),
                                 reply_markup=_comment_keyboard(texts, ticket, offer_reopen)))
    await data["state"].update_data(csat_ask=asked.message_id)


async def _own_ticket(callback: CallbackQuery, callback_data: CsatCallback, data: dict[str, Any]) -> Ticket | None:
    """The ticket of this button, if it is the pressing customer's own."""
    repos: Repos = data["repos"]
    customer: Customer | None = data.get("customer")
    ticket = await repos.tickets.get(callback_data.ticket)
    if customer is None or ticket is None or ticket.customer_id != customer.id:
        return None
    return ticket


@router.callback_query(CsatCallback.filter(F.action == "rate"))
async def rate(callback: CallbackQuery, callback_data: CsatCallback, **data: Any) -> None:
    texts: Texts = data["texts"]
    repos: Repos = data["repos"]
    clock: Clock = data["clock"]
    settings: Settings = data["settings"]
    renderer: TextRenderer = data["renderer"]
    state: FSMContext = data["state"]
    ticket = await _own_ticket(callback, callback_data, data)
    if ticket is None or not 1 <= callback_data.value <= 5 or not isinstance(callback.message, Message):
        await callback.answer(texts("common/button_expired.txt"))
        return
    if ticket.rating is not None:
        await callback.answer(texts("tickets/csat_already.txt", ticket=ticket))
        return
    if ticket.status not in rules.DONE_STATUSES:
        await callback.answer(texts("tickets/csat_reopened.txt", ticket=ticket), show_alert=True)
        return
    now = clock.now()
    customer: Customer = data["customer"]
    actor = customer_actor(customer)
    # A conditional UPDATE: of two presses, only one stores a rating.
    if not await repos.tickets.rate(ticket.id, customer.id, callback_data.value, now):
        await callback.answer(texts("tickets/csat_already.txt", ticket=ticket))
        return
    ticket = await repos.tickets.reload(ticket.id)
    assert ticket is not None
    await callback.answer(texts("tickets/csat_thanks.txt"))
    await repos.tickets.add_event(ticket, "rating", actor, now, detail=str(ticket.rating))
    if callback_data.value >= rules.CONFIRMING_RATING and ticket.status == "resolved":
        await repos.tickets.transition(ticket, "closed", actor, now, settings.sla,
                                       detail="confirmed by rating")
        await refresh_card(data["bot"], repos, renderer, settings, ticket, now)
    # Keep the "not solved" button; take the rating buttons away.
    markup = None
    if rules.can_reopen(ticket, now, settings.sla):
        builder = InlineKeyboardBuilder()
        builder.button(text=texts.button("csat_not_solved"),
                       callback_data=CsatCallback(action="notsolved", ticket=ticket.id))
        markup = builder.as_markup()
    await set_buttons(callback.message, markup)
    if callback_data.value <= rules.LOW_RATING:
        await notify_managers(repos, renderer, settings, ticket, key=f"csat:{ticket.id}:low", kind="csat_low",
                              render=lambda t: t("tickets/csat_low_alert", ticket=ticket, customer=customer), now=now)
    if await state.get_state() is None:  # do not break into another dialog
        await state.set_state(CsatForm.comment)
        await state.update_data(csat_ticket=ticket.id)
        await ask_comment(callback.message, data)
    else:
        await callback.message.answer(texts("tickets/csat_thanks_done", ticket=ticket))


@router.message(StateFilter(CsatForm.comment), When((F.text) & (~F.text.startswith("/"))))
async def process_comment(message: Message, **data: Any) -> None:
    texts: Texts = data["texts"]
    repos: Repos = data["repos"]
    clock: Clock = data["clock"]
    settings: Settings = data["settings"]
    renderer: TextRenderer = data["renderer"]
    state: FSMContext = data["state"]
    customer: Customer | None = data.get("customer")
    try:
        comment = rules.parse_comment(message.text or "")
    except Invalid as error:
        await message.answer(texts(f"tickets/errors/{error.code}", **error.params))
        await ask_again(message, data)
        return
    dialog = await state.get_data()
    ticket_id, asked = dialog.get("csat_ticket"), dialog.get("csat_ask")
    await end_dialog(state)
    ticket = await repos.tickets.get(int(ticket_id or 0))
    if asked and ticket is not None:  # the question's Skip is done with; Reopen stays while it can
        markup = None
        if (ticket.rating or 0) <= rules.LOW_RATING and rules.can_reopen(ticket, clock.now(), settings.sla):
            builder = InlineKeyboardBuilder()
            builder.button(text=texts.button("csat_reopen"),
                           callback_data=CsatCallback(action="reopen", ticket=ticket.id))
            markup = builder.as_markup()
        try:
            await data["bot"].edit_message_reply_markup(chat_id=message.chat.id, message_id=asked,
                                                        reply_markup=markup)
        except TelegramAPIError:
            pass
    if ticket is None or customer is None or ticket.customer_id != customer.id:
        await message.answer(texts("tickets/csat_thanks_done", ticket=None))
        return
    now = clock.now()
    ticket.rating_comment = comment
    ticket.updated_at = now
    await repos.tickets.add_event(ticket, "rating_comment", customer_actor(customer), now)
    low = (ticket.rating or 0) <= rules.LOW_RATING
    if low:
        # Staff can answer it: a message of this ticket (or of the customer's open one, or a conversation).
        await pass_on_comment(message, data, comment, {"kind": "ticket", "id": ticket.id, "rating": ticket.rating or 0},
                              ticket=ticket)
        if settings.manager_ids:  # the managers heard of the low rating; now of what went wrong
            await notify_managers(repos, renderer, settings, ticket, key=f"csat:{ticket.id}:comment",
                                  kind="csat_low", now=now,
                                  render=lambda t: t("tickets/csat_comment_alert", ticket=ticket, customer=customer))
    await message.answer(texts("tickets/csat_thanks_done", ticket=ticket, passed_on=low))


@router.callback_query(CsatCallback.filter(F.action == "skip"))
async def skip_comment(callback: CallbackQuery, callback_data: CsatCallback, **data: Any) -> None:
    texts: Texts = data["texts"]
    state: FSMContext = data["state"]
    current = await state.get_state()
    ticket_id = (await state.get_data()).get("csat_ticket")
    if current != CsatForm.comment.state or ticket_id != callback_data.ticket or not isinstance(callback.message, Message):
        await callback.answer(texts("common/button_expired.txt"))
        return
    await callback.answer()
    await end_dialog(state)
    await set_buttons(callback.message, None)
    ticket = await _own_ticket(callback, callback_data, data)
    await callback.message.answer(texts("tickets/csat_thanks_done", ticket=ticket))


@router.callback_query(CsatCallback.filter(F.action.in_({"notsolved", "reopen"})))
async def not_solved(callback: CallbackQuery, callback_data: CsatCallback, **data: Any) -> None:
    texts: Texts = data["texts"]
    repos: Repos = data["repos"]
    clock: Clock = data["clock"]
    settings: Settings = data["settings"]
    renderer: TextRenderer = data["renderer"]
    state: FSMContext = data["state"]
    bot: Bot = data["bot"]
    ticket = await _own_ticket(callback, callback_data, data)
    if ticket is None or not isinstance(callback.message, Message):
        await callback.answer(texts("common/button_expired.txt"))
        return
    now = clock.now()
    if ticket.status in rules.OPEN_STATUSES:
        await callback.answer(texts("tickets/reopen_already.txt", ticket=ticket))
        return
    if not rules.can_reopen(ticket, now, settings.sla):
        await callback.answer()
        await set_buttons(callback.message, None)
        await callback.message.answer(texts("tickets/reopen_too_late", ticket=ticket, days=settings.ticket_reopen_days))
        return
    claimed = await repos.tickets.claim(ticket.id, rules.DONE_STATUSES)
    if claimed is None:  # reopened by a press a moment ago
        await callback.answer(texts("tickets/reopen_already.txt", ticket=ticket))
        return
    ticket = claimed
    customer: Customer = data["customer"]
    await callback.answer()
    await repos.tickets.transition(ticket, "in_progress", customer_actor(customer), now, settings.sla,
                                   detail="not solved")
    await set_buttons(callback.message, None)
    if await state.get_state() == CsatForm.comment.state:
        await end_dialog(state)
    await callback.message.answer(texts("tickets/reopened_for_customer", ticket=ticket))
    await refresh_card(bot, repos, renderer, settings, ticket, now)
    await tell_staff(bot, settings, ticket, (await staff_chat_texts(repos, renderer, settings))(
        "tickets/reopened_for_staff", ticket=ticket, customer=customer))
