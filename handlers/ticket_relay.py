"""While a customer has an open ticket, what they write in the private chat
(outside any dialog) goes to the staff chat, as a reply to the ticket's card
(or into its topic). With two or more open tickets the customer is asked
which one the message is about.
"""

from __future__ import annotations

import logging
from typing import Any

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import BaseFilter, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message, ReplyParameters
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.callback_ids import MessageId, RowId
from bot.clock import Clock
from bot.config import Settings
from bot.dialogs import set_buttons
from bot.filters import When
from bot.pipeline import at_once
from bot.rules import tickets as rules
from bot.rules.text_units import utf16_cut, utf16_len
from bot.services.tickets import (
    customer_actor,
    refresh_card,
    split_text,
    staff_chat_route,
    staff_chat_texts,
)
from bot.texts import TextRenderer, Texts
from storage.models import Customer, Ticket
from storage.repositories import Repos

log = logging.getLogger(__name__)


def build_router() -> Router:
    """A new router with this module's handlers, tried in this order (bot.app.build_routers places it)."""
    router = Router(name="ticket-relay")
    router.message.filter(When(F.chat.type == "private"))
    router.callback_query.filter(When(F.message.chat.type == "private"))
    router.message.register(customer_writes, StateFilter(None), When(F.photo), HasOpenTickets())
    router.message.register(customer_writes, StateFilter(None), When((F.text) & (~F.text.startswith("/"))),
                            HasOpenTickets())
    router.message.register(customer_sends_other, StateFilter(None), When((~F.text) & (~F.photo)), HasOpenTickets())
    router.callback_query.register(relay_choice, RelayCallback.filter())
    return router


PENDING_KEY = "relay_pending"  # dialog data: messages waiting for "which ticket?"
PENDING_MAX = 5


class RelayCallback(CallbackData, prefix="rl"):
    ticket: RowId
    message: MessageId  # the customer's message id, the key of the pending content


class HasOpenTickets(BaseFilter):
    """A registered customer with at least one open ticket: passes ``open_tickets``."""

    async def __call__(self, message: Message, repos: Repos, customer: Customer | None = None,
                       **_: Any) -> bool | dict[str, Any]:
        if customer is None:
            return False
        tickets = await repos.tickets.open_for_customer(customer.id)
        return {"open_tickets": tickets} if tickets else False


async def customer_writes(message: Message, open_tickets: list[Ticket], customer: Customer, state: FSMContext,
                          texts: Texts, repos: Repos, clock: Clock, settings: Settings, renderer: TextRenderer,
                          bot: Bot) -> None:
    await repos.customers.mark_reachable(customer)  # they write, so they have not blocked us
    content = {
        "text": message.text if message.text is not None else message.caption,
        "photo": message.photo[-1].file_id if message.photo else None,
    }
    if len(open_tickets) == 1:
        await relay_to_staff(message, open_tickets[0], content, customer=customer, texts=texts, repos=repos,
                             clock=clock, settings=settings, renderer=renderer, bot=bot)
        return
    pending = dict((await state.get_data()).get(PENDING_KEY) or {})
    pending[str(message.message_id)] = content
    while len(pending) > PENDING_MAX:
        pending.pop(next(iter(pending)))
    await state.update_data({PENDING_KEY: pending})
    builder = InlineKeyboardBuilder()
    for ticket in open_tickets:
        builder.button(text=texts.button("relay_which", ticket=ticket),
                       callback_data=RelayCallback(ticket=ticket.id, message=message.message_id))
    builder.adjust(1)
    await message.reply(texts("tickets/relay_which"), reply_markup=builder.as_markup())


async def customer_sends_other(message: Message, texts: Texts) -> None:
    """A sticker, voice note or file while a ticket is open: only text and photos are passed on."""
    await message.answer(texts("tickets/relay_unsupported"))


async def relay_choice(callback: CallbackQuery, callback_data: RelayCallback, customer: Customer | None,
                       state: FSMContext, texts: Texts, repos: Repos, clock: Clock, settings: Settings,
                       renderer: TextRenderer, bot: Bot) -> None:
    ticket = await repos.tickets.get(callback_data.ticket)
    pending = dict((await state.get_data()).get(PENDING_KEY) or {})
    content = pending.get(str(callback_data.message))
    if (customer is None or ticket is None or ticket.customer_id != customer.id or content is None
            or not isinstance(callback.message, Message)):
        await callback.answer(texts("common/button_expired.txt"))
        return
    if ticket.status not in rules.OPEN_STATUSES:
        await callback.answer(texts("tickets/relay_ticket_done.txt", ticket=ticket), show_alert=True)
        return
    await callback.answer()
    pending.pop(str(callback_data.message))
    await state.update_data({PENDING_KEY: pending})
    await set_buttons(callback.message)
    await relay_to_staff(callback.message, ticket, content, customer=customer, texts=texts, repos=repos, clock=clock,
                         settings=settings, renderer=renderer, bot=bot)


async def relay_to_staff(message: Message, ticket: Ticket, content: dict[str, Any], *, customer: Customer,
                         texts: Texts, repos: Repos, clock: Clock, settings: Settings, renderer: TextRenderer,
                         bot: Bot, acknowledge: bool = True) -> None:
    """Post the customer's words (or photo) to the staff chat, record them, and tell the customer
    (unless ``acknowledge`` is off: the caller thanks them in its own words)."""
    now = clock.now()
    stexts = await staff_chat_texts(repos, renderer, settings)
    text: str | None = content.get("text")
    photo: str | None = content.get("photo")
    survey = content.get("survey")  # a survey's comment: what was rated (handlers.conversations.Survey)
    staff_message_id = None
    chat_id = settings.staff_chat_id
    if chat_id is not None:
        route = staff_chat_route(ticket, settings)
        thread = route.get("message_thread_id")
        reply = route.get("reply_to_message_id")
        params = dict(
            message_thread_id=thread,
            reply_parameters=ReplyParameters(message_id=reply, allow_sending_without_reply=True) if reply else None,
        )
        try:
            if photo is not None:
                caption = stexts("tickets/relayed_in", ticket=ticket, customer=customer, survey=survey,
                                 text=text or "")
                extra = None
                if utf16_len(caption) > 1000:  # UTF-16 units, as Telegram counts
                    caption = stexts("tickets/relayed_in", ticket=ticket, customer=customer, survey=survey, text="")
                    extra = text
                sent = await at_once(bot.send_photo(chat_id, photo, caption=caption, **params))
                staff_message_id = sent.message_id
                pieces = split_text(extra, 3500) if extra else []
            else:
                pieces = split_text(text or "", 3500)
            for piece in pieces:
                sent = await at_once(bot.send_message(chat_id, stexts(
                    "tickets/relayed_in", ticket=ticket, customer=customer, survey=survey, text=piece), **params))
                staff_message_id = staff_message_id or sent.message_id
        except TelegramAPIError as exc:
            log.warning("could not relay a message of ticket %s: %s", ticket.id, exc)
            await repos.outbox.enqueue(
                dedupe_key=f"relay:{ticket.id}:{customer.id}:{message.message_id}", kind="ticket_relay",
                chat_id=chat_id, text=stexts("tickets/relayed_in", ticket=ticket, customer=customer, survey=survey,
                                             text=utf16_cut(text or "", 3500)),
                now=now, options=route or None, ref_ticket_id=ticket.id,
            )
    await repos.tickets.add_message(
        ticket, direction="in", actor=customer_actor(customer), now=now, text=text, photo_file_id=photo,
        staff_chat_id=chat_id if staff_message_id else None, staff_message_id=staff_message_id,
    )
    if ticket.status == "waiting_customer":
        await repos.tickets.transition(ticket, "in_progress", customer_actor(customer), now, settings.sla)
        await refresh_card(bot, repos, renderer, settings, ticket, now)
    if acknowledge:
        await message.answer(texts("tickets/relayed_ack", ticket=ticket))
