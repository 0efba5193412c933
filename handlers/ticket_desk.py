"""The service desk in the staff chat: Take, Resolve and Priority on a ticket's
card, the resolution note, and staff replies relayed to the customer.

A staff member answers a customer with a Telegram *reply* to the ticket's
card or to any relayed message of that ticket (in a forum, any message in
the ticket's topic). Only staff may press the buttons or be relayed; anyone
else in the group is ignored.
"""

from __future__ import annotations

import logging
from typing import Any

from aiogram import Bot, Router
from aiogram.filters import BaseFilter, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Chat, ForceReply, InlineKeyboardMarkup, Message, ReactionTypeEmoji, User

from bot.clock import Clock
from bot.config import Settings
from bot.dialogs import TYPED, Dialog, Turn, asked_question, set_buttons
from bot.pipeline import at_once
from bot.roles import InStaffPlace, Role
from bot.rules import tickets as rules
from bot.rules.customer_file import Invalid
from bot.services import relay
from bot.services.relay import Words
from bot.services.tickets import (
    StaffForum,
    TicketCallback,
    actor_of,
    card_markup,
    customer_texts,
    enqueue_survey,
    learn_forum,
    refresh_card,
    send_to_customer,
    staff_chat_texts,
    tell_staff,
)
from bot.texts import TextRenderer, Texts
from storage.models import Ticket
from storage.repositories import Repos

log = logging.getLogger(__name__)


def build_router() -> Router:
    """A new router with this module's handlers, tried in this order (bot.app.build_routers places it)."""
    router = Router(name="ticket-desk")
    # Its buttons pressed outside the staff place are expired buttons (the fallback answers them).
    router.callback_query.register(ticket_button, TicketCallback.filter(), InStaffPlace())
    router.message.register(process_resolution_note, StateFilter(ResolveForm.note), TYPED, IsResolutionNote())
    router.message.register(relay_staff_reply, TicketReply())
    return router


class ResolveForm(StatesGroup):
    note = State()


# ----- buttons on the card ----------------------------------------------------------------

async def ticket_button(callback: CallbackQuery, callback_data: TicketCallback, texts: Texts, role: Role,
                        repos: Repos, clock: Clock, settings: Settings, renderer: TextRenderer, bot: Bot, turn: Turn,
                        staff_forum: StaffForum | None = None, event_chat: Chat | None = None) -> None:
    learn_forum(staff_forum, event_chat, settings)
    if role < Role.STAFF:
        await callback.answer(texts("tickets/staff_only.txt"), show_alert=True)
        return
    if not isinstance(callback.message, Message):
        await turn.expired(callback)
        return
    ticket = await repos.tickets.get(callback_data.ticket)
    if ticket is None:
        await turn.expired(callback)
        return
    action = callback_data.action
    if action == "take":
        await _take(callback, ticket, texts=texts, repos=repos, clock=clock, settings=settings, renderer=renderer,
                    bot=bot)
    elif action == "resolve":
        await _ask_resolution(callback, ticket, texts, turn)
    elif action == "prio" and ticket.status not in rules.OPEN_STATUSES:
        await callback.answer(_closed_alert(texts, ticket), show_alert=True)
    elif action in ("prio", "back"):
        await callback.answer()
        await _edit_markup(callback, card_markup(texts, ticket, "priority" if action == "prio" else "main"))
    elif action == "setprio":
        await _set_priority(callback, callback_data, ticket, texts=texts, repos=repos, clock=clock, settings=settings,
                            renderer=renderer, bot=bot)
    else:
        await turn.expired(callback)


def _closed_alert(texts: Texts, ticket: Ticket) -> str:
    return texts("tickets/already_done.txt", ticket=ticket)


async def _take(callback: CallbackQuery, ticket: Ticket, *, texts: Texts, repos: Repos, clock: Clock,
                settings: Settings, renderer: TextRenderer, bot: Bot) -> None:
    me = actor_of(callback.from_user)
    # Claim the row first: of two presses at once, the second waits here and then sees the owner.
    claimed = await repos.tickets.claim(ticket.id, rules.OPEN_STATUSES)
    if claimed is None:
        await callback.answer(_closed_alert(texts, ticket), show_alert=True)
        return
    ticket = claimed
    if ticket.assignee_telegram_id == me.telegram_id:
        await callback.answer(texts("tickets/take_yours.txt", ticket=ticket))
        return
    if ticket.assignee_telegram_id is not None:
        await callback.answer(texts("tickets/take_taken.txt", ticket=ticket, name=ticket.assignee_name),
                              show_alert=True)
        return
    now = clock.now()
    await repos.tickets.assign(ticket, me, now, settings.sla)
    await callback.answer(texts("tickets/take_done.txt", ticket=ticket))
    await refresh_card(bot, repos, renderer, settings, ticket, now)
    customer = await repos.customers.get(ticket.customer_id)
    if customer is not None:
        failure = await send_to_customer(bot, repos, customer, now, text=customer_texts(renderer, customer)(
            "tickets/taken_for_customer", ticket=ticket, name=me.name))
        if failure:
            stexts = await staff_chat_texts(repos, renderer, settings)
            await tell_staff(bot, settings, ticket, stexts("tickets/not_delivered", ticket=ticket, reason=failure))


async def _ask_resolution(callback: CallbackQuery, ticket: Ticket, texts: Texts, turn: Turn) -> None:
    if ticket.status not in rules.OPEN_STATUSES:
        await callback.answer(_closed_alert(texts, ticket), show_alert=True)
        return
    if await turn.busy(callback, unless=resolve_dialog):  # Resolve of another ticket: this one's note now
        return
    await callback.answer()
    assert isinstance(callback.message, Message)
    await turn.begin(callback.message, resolve_ticket=ticket.id)
    await turn.ask(callback.message, ResolveForm.note)


async def ask_resolution_note(message: Message, texts: Texts, turn: Turn, event_from_user: User | None = None) -> None:
    ticket_id = (await turn.state.get_data()).get("resolve_ticket")
    user = event_from_user
    # ForceReply (selective: for the one mentioned) opens a reply: in a group with
    # privacy mode on, the bot only sees messages that reply to it (and commands).
    # https://core.telegram.org/bots/api#forcereply, https://core.telegram.org/bots/features#privacy-mode
    asked = await at_once(message.answer(
        texts("tickets/ask_resolution", ticket_id=ticket_id, user_id=user.id if user else 0,
              name=user.full_name if user else "", limit=rules.NOTE_MAX),
        reply_markup=ForceReply(selective=True, input_field_placeholder=texts.button("ticket_note_placeholder")),
    ))
    await turn.remember_question(asked)


# The resolution note a staff member writes after pressing Resolve: one question.
resolve_dialog = Dialog(ResolveForm, prefix="rsv", ask={ResolveForm.note: ask_resolution_note},
                        errors="tickets/errors")


class IsResolutionNote(BaseFilter):
    """The next message, or a reply to the bot's question; a reply to another message is not the note
    (it may be an answer to a customer, and goes on to be relayed)."""

    async def __call__(self, message: Message, state: FSMContext, **_: Any) -> bool:
        reply = message.reply_to_message
        if reply is None:
            return True
        if message.is_topic_message and reply.message_id == message.message_thread_id:
            # In a forum topic every message "replies" to the topic's first message
            # (https://core.telegram.org/bots/api#message: message_thread_id, reply_to_message).
            return True
        return reply.message_id == await asked_question(state)


async def process_resolution_note(message: Message, turn: Turn, texts: Texts, repos: Repos, clock: Clock,
                                  settings: Settings, renderer: TextRenderer, bot: Bot) -> None:
    try:
        note = rules.parse_note(message.text or "")
    except Invalid as error:
        await turn.reject(message, error)
        return
    ticket_id = (await turn.state.get_data()).get("resolve_ticket")
    await turn.end()
    ticket = await repos.tickets.claim(int(ticket_id or 0), rules.OPEN_STATUSES)
    if ticket is None:
        done = await repos.tickets.get(int(ticket_id or 0))
        await message.reply(texts("tickets/already_done.txt", ticket=done) if done
                            else texts("common/button_expired.txt"))
        return
    assert message.from_user is not None
    me = actor_of(message.from_user)
    now = clock.now()
    if ticket.assignee_telegram_id is None:
        await repos.tickets.assign(ticket, me, now, settings.sla)
    ticket.resolution_note = note
    await repos.tickets.transition(ticket, "resolved", me, now, settings.sla)
    customer = await repos.customers.get(ticket.customer_id)
    await enqueue_survey(repos, renderer, settings, ticket, customer, now)
    await refresh_card(bot, repos, renderer, settings, ticket, now)
    await message.reply(texts("tickets/resolved_done", ticket=ticket,
                              reachable=bool(customer and customer.telegram_id)))


# ----- priority ------------------------------------------------------------------------------
# The buttons of the message pressed: a card in the staff chat (the chat's language, as ``texts`` is
# there) or a /ticket view in a private chat (its reader's).

async def _edit_markup(callback: CallbackQuery, markup: InlineKeyboardMarkup | None) -> None:
    assert isinstance(callback.message, Message)
    await set_buttons(callback.message, markup)


async def _set_priority(callback: CallbackQuery, callback_data: TicketCallback, ticket: Ticket, *, texts: Texts,
                        repos: Repos, clock: Clock, settings: Settings, renderer: TextRenderer, bot: Bot) -> None:
    priority = callback_data.value
    if priority not in rules.PRIORITIES:
        await callback.answer(texts("common/button_expired.txt"))
        return
    claimed = await repos.tickets.claim(ticket.id, rules.OPEN_STATUSES)
    if claimed is None:
        await callback.answer(_closed_alert(texts, ticket), show_alert=True)
        return
    ticket = claimed
    now = clock.now()
    if ticket.priority != priority:
        await repos.tickets.set_priority(ticket, priority, actor_of(callback.from_user), now, settings.sla)
    await callback.answer(texts("tickets/priority_set.txt", ticket=ticket))
    if ticket.staff_message_id == callback.message.message_id and ticket.staff_chat_id == callback.message.chat.id:  # type: ignore[union-attr]
        await refresh_card(bot, repos, renderer, settings, ticket, now)
    else:  # the buttons of a /ticket view
        await _edit_markup(callback, card_markup(texts, ticket, "main"))


# ----- staff replies --------------------------------------------------------------------------

class TicketReply(BaseFilter):
    """A staff message in the staff chat that answers a ticket: passes ``ticket``."""

    async def __call__(self, message: Message, settings: Settings, repos: Repos, role: Role = Role.CUSTOMER,
                       staff_forum: StaffForum | None = None, state: FSMContext | None = None,
                       **_: Any) -> bool | dict[str, Any]:
        if settings.staff_chat_id is None or message.chat.id != settings.staff_chat_id:
            return False
        learn_forum(staff_forum, message.chat, settings)
        if role < Role.STAFF or (message.text or "").startswith("/"):
            return False
        ticket = None
        reply = message.reply_to_message
        if reply is not None:
            ticket = await repos.tickets.by_staff_message(message.chat.id, reply.message_id)
        # Any message in a ticket's topic answers the customer, unless its author is in the
        # middle of something (typing a staff note, say): then only an explicit reply does.
        if (ticket is None and message.is_topic_message and message.message_thread_id
                and (state is None or await state.get_state() is None)):
            ticket = await repos.tickets.by_thread(message.chat.id, message.message_thread_id)
        return {"ticket": ticket} if ticket is not None else False


async def relay_staff_reply(message: Message, ticket: Ticket, repos: Repos, clock: Clock, settings: Settings,
                            renderer: TextRenderer, bot: Bot, texts: Texts) -> None:
    # ``texts``: answers to this staff member, in the language they chose.
    if ticket.status == "closed":
        await message.reply(texts("tickets/reply_closed", ticket=ticket))
        return
    if not message.text and not message.photo:
        await message.reply(texts("tickets/reply_unsupported", ticket=ticket))
        return
    assert message.from_user is not None
    failure = await relay.staff_reply_on_ticket(bot, repos, renderer, settings, clock.now(), ticket,
                                                actor_of(message.from_user), Words.of(message), message.chat.id)
    if failure is not None:
        await message.reply(texts("tickets/not_delivered", ticket=ticket, reason=failure))
        return
    # A reaction that fails never fails the update (bot.pipeline: cosmetic calls).
    # https://core.telegram.org/bots/api#setmessagereaction
    await bot.set_message_reaction(message.chat.id, message.message_id, [ReactionTypeEmoji(emoji="👍")])
