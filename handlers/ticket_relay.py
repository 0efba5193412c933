"""While a customer has an open ticket, what they write in the private chat
(outside any dialog) goes to the staff chat, as a reply to the ticket's card
(or into its topic). With two or more open tickets the customer is asked
which one the message is about. The use cases are in ``bot.services.relay``.
"""

from __future__ import annotations

from typing import Any

from aiogram import Bot, F, Router
from aiogram.filters import BaseFilter, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.callback_ids import MessageId, RowId
from bot.clock import Clock
from bot.config import Settings
from bot.dialogs import set_buttons
from bot.filters import When, private_router
from bot.rules import tickets as rules
from bot.services import relay
from bot.services.relay import Words
from bot.texts import TextRenderer, Texts
from storage.models import Customer, Ticket
from storage.repositories import Repos


def build_router() -> Router:
    """A new router with this module's handlers, tried in this order (bot.app.build_routers places it)."""
    router = private_router("ticket-relay")
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
    words = Words.of(message)
    if len(open_tickets) == 1:
        await relay.to_ticket(bot, repos, renderer, settings, clock.now(), open_tickets[0], customer, words)
        await message.answer(texts("tickets/relayed_ack", ticket=open_tickets[0]))
        return
    pending = dict((await state.get_data()).get(PENDING_KEY) or {})
    pending[str(message.message_id)] = {"text": words.text, "photo": words.photo}
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
    words = Words(text=content.get("text"), photo=content.get("photo"), message_id=callback_data.message)
    await relay.to_ticket(bot, repos, renderer, settings, clock.now(), ticket, customer, words)
    await callback.message.answer(texts("tickets/relayed_ack", ticket=ticket))
