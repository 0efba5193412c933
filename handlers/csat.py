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

from aiogram import Bot, F, Router
from aiogram.filters import StateFilter
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.clock import Clock
from bot.config import Settings
from bot.dialogs import TYPED, Dialog, StepButton, Turn, set_buttons
from bot.filters import private_router
from bot.pipeline import at_once
from bot.rules import tickets as rules
from bot.rules.customer_file import Invalid
from bot.services import relay
from bot.services.relay import Words
from bot.services.tickets import (
    CsatCallback,
    customer_actor,
    notify_managers,
    refresh_card,
    staff_chat_texts,
    tell_staff,
)
from bot.texts import TextRenderer, Texts
from storage.models import Customer, Ticket
from storage.repositories import Repos


def build_router() -> Router:
    """A new router with this module's handlers, tried in this order (bot.app.build_routers places it)."""
    router = private_router("csat")
    router.callback_query.register(rate, CsatCallback.filter(F.action == "rate"))
    router.message.register(process_comment, StateFilter(CsatForm.comment), TYPED)
    router.callback_query.register(skip_comment, comment_dialog.Button.filter())
    router.callback_query.register(not_solved, CsatCallback.filter(F.action.in_({"notsolved", "reopen"})))
    return router


class CsatForm(StatesGroup):
    comment = State()


def _comment_keyboard(texts: Texts, ticket: Ticket, offer_reopen: bool) -> Any:
    builder = InlineKeyboardBuilder()
    if offer_reopen:  # works after the comment too (a CsatCallback, like "not solved")
        builder.button(text=texts.button("csat_reopen"), callback_data=CsatCallback(action="reopen", ticket=ticket.id))
    builder.button(text=texts.button("csat_skip"), callback_data=comment_dialog.button("skip", "comment", ticket.id))
    builder.adjust(1)
    return builder.as_markup()


async def ask_comment(message: Message, texts: Texts, repos: Repos, clock: Clock, settings: Settings,
                      turn: Turn) -> None:
    ticket_id = (await turn.state.get_data()).get("csat_ticket")
    ticket = await repos.tickets.get(int(ticket_id or 0))
    if ticket is None:
        await turn.end()
        return
    low = (ticket.rating or 0) <= rules.LOW_RATING
    offer_reopen = low and rules.can_reopen(ticket, clock.now(), settings.sla)
    text = texts("tickets/csat_ask_comment", ticket=ticket, low=low, offer_reopen=offer_reopen,
                 limit=rules.COMMENT_MAX)
    asked = await at_once(message.answer(text, reply_markup=_comment_keyboard(texts, ticket, offer_reopen)))
    await turn.remember_question(asked)


# The comment after a rating: one question; "Skip" or /cancel leaves it.
comment_dialog = Dialog(
    CsatForm, prefix="csc", ask={CsatForm.comment: ask_comment},
    buttons={("skip", "comment"): lambda value, data: value == str(data.get("csat_ticket"))},
    errors="tickets/errors",
)


async def _own_ticket(ticket_id: int, repos: Repos, customer: Customer | None) -> Ticket | None:
    """The ticket of this button, if it is the pressing customer's own."""
    ticket = await repos.tickets.get(ticket_id)
    if customer is None or ticket is None or ticket.customer_id != customer.id:
        return None
    return ticket


async def rate(callback: CallbackQuery, callback_data: CsatCallback, customer: Customer | None, texts: Texts,
               repos: Repos, clock: Clock, settings: Settings, renderer: TextRenderer, bot: Bot, turn: Turn) -> None:
    ticket = await _own_ticket(callback_data.ticket, repos, customer)
    if (ticket is None or customer is None or not 1 <= callback_data.value <= 5
            or not isinstance(callback.message, Message)):
        await turn.expired(callback)
        return
    if ticket.rating is not None:
        await callback.answer(texts("tickets/csat_already.txt", ticket=ticket))
        return
    if ticket.status not in rules.DONE_STATUSES:
        await callback.answer(texts("tickets/csat_reopened.txt", ticket=ticket), show_alert=True)
        return
    now = clock.now()
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
        await refresh_card(bot, repos, renderer, settings, ticket, now)
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
    if await turn.state.get_state() is None:  # do not break into another dialog
        await turn.begin(callback.message, csat_ticket=ticket.id)
        await turn.ask(callback.message, CsatForm.comment)
    else:
        await callback.message.answer(texts("tickets/csat_thanks_done", ticket=ticket))


async def process_comment(message: Message, turn: Turn, customer: Customer | None, texts: Texts, repos: Repos,
                          clock: Clock, settings: Settings, renderer: TextRenderer, bot: Bot) -> None:
    try:
        comment = rules.parse_comment(message.text or "")
    except Invalid as error:
        await turn.reject(message, error)
        return
    ticket_id = (await turn.state.get_data()).get("csat_ticket")
    ticket = await repos.tickets.get(int(ticket_id or 0))
    if ticket is not None:  # the question's Skip is done with; Reopen stays while it can
        markup = None
        if (ticket.rating or 0) <= rules.LOW_RATING and rules.can_reopen(ticket, clock.now(), settings.sla):
            builder = InlineKeyboardBuilder()
            builder.button(text=texts.button("csat_reopen"),
                           callback_data=CsatCallback(action="reopen", ticket=ticket.id))
            markup = builder.as_markup()
        await turn.answered(message, markup)
    await turn.end()
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
        await relay.pass_on_comment(bot, repos, renderer, settings, now, customer,
                                    Words(text=comment, photo=None, message_id=message.message_id),
                                    {"kind": "ticket", "id": ticket.id, "rating": ticket.rating or 0}, ticket=ticket)
        if settings.manager_ids:  # the managers heard of the low rating; now of what went wrong
            await notify_managers(repos, renderer, settings, ticket, key=f"csat:{ticket.id}:comment",
                                  kind="csat_low", now=now,
                                  render=lambda t: t("tickets/csat_comment_alert", ticket=ticket, customer=customer))
    await message.answer(texts("tickets/csat_thanks_done", ticket=ticket, passed_on=low))


async def skip_comment(callback: CallbackQuery, callback_data: StepButton, turn: Turn, customer: Customer | None,
                       texts: Texts, repos: Repos) -> None:
    press = await turn.press(callback, callback_data)
    if press is None:
        return
    await turn.end()
    ticket = await _own_ticket(int(press.value), repos, customer)
    await press.message.answer(texts("tickets/csat_thanks_done", ticket=ticket))


async def not_solved(callback: CallbackQuery, callback_data: CsatCallback, customer: Customer | None, texts: Texts,
                     repos: Repos, clock: Clock, settings: Settings, renderer: TextRenderer, bot: Bot,
                     turn: Turn) -> None:
    ticket = await _own_ticket(callback_data.ticket, repos, customer)
    if ticket is None or customer is None or not isinstance(callback.message, Message):
        await turn.expired(callback)
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
    await callback.answer()
    await repos.tickets.transition(ticket, "in_progress", customer_actor(customer), now, settings.sla,
                                   detail="not solved")
    await set_buttons(callback.message, None)
    if await turn.step(comment_dialog) is not None:
        await turn.end()
    await callback.message.answer(texts("tickets/reopened_for_customer", ticket=ticket))
    await refresh_card(bot, repos, renderer, settings, ticket, now)
    await tell_staff(bot, settings, ticket, (await staff_chat_texts(repos, renderer, settings))(
        "tickets/reopened_for_staff", ticket=ticket, customer=customer))
