"""What a customer writes reaches a person, and what staff answer reaches the customer.

The handlers (``ticket_relay``, ``conversations``, ``ticket_desk``, and the surveys of ``csat`` and
``care``) take the update and answer on Telegram; the use cases are here:

- :func:`to_ticket`: the words of a customer with an open ticket go to the staff chat as a reply to its
  card (in its topic); a ticket that waited for the customer is in progress again.
- :func:`to_conversation`: a customer's words while no ticket is open go to the staff chat as (part of)
  a *conversation*: the one of the last :data:`CONTINUE_FOR`, or a new one about what the customer most
  likely answered, whose first message carries "Make it a complaint".
- :func:`pass_on_comment`: a survey's comment goes to the ticket it is about, the customer's open one,
  or a conversation about the survey.
- :func:`staff_reply_on_ticket`, :func:`staff_reply_in_conversation`: a staff member's reply reaches the
  customer, and is recorded, delivered or not.
- :func:`make_complaint`: a conversation becomes a ticket with the customer's words.

Every post into the staff chat goes one way (:func:`_post`): a photo carries the words as its caption
unless that would pass Telegram's caption limit (then the words follow on their own), long text goes in
pieces, and what Telegram refuses waits in the outbox to be sent again.
(Limits: https://core.telegram.org/bots/api#sendphoto, https://core.telegram.org/bots/api#sendmessage)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypedDict

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup, Message, ReplyParameters
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.callback_ids import RowId
from bot.config import Settings
from bot.pipeline import at_once
from bot.rules import tickets as rules
from bot.rules.text_units import utf16_cut, utf16_len, utf16_split
from bot.services.tickets import (
    customer_actor,
    customer_texts,
    refresh_card,
    send_staff_reply,
    send_to_customer,
    staff_chat_route,
    staff_chat_texts,
)
from bot.texts import TextRenderer, Texts
from bot.ticket_priority import complaint_priority
from storage.models import Conversation, Customer, Ticket
from storage.repositories import Repos

log = logging.getLogger(__name__)

# A message within this long of the conversation's last one joins it; later, a new one starts.
CONTINUE_FOR = timedelta(days=3)
# What the customer most likely answered: the latest care or service message this recent.
CONTEXT_WITHIN = timedelta(days=14)
PIECE = 3500  # a long text goes to the staff chat in pieces of this many UTF-16 units
CAPTION_MAX = 1000  # a photo's caption as posted, in UTF-16 units (Telegram allows 1024)


@dataclass(frozen=True)
class Words:
    """What someone wrote: the text (or a photo's caption), the photo (Telegram's file id), and the
    message they came in (its id keys the outbox row when the staff chat refuses them)."""

    text: str | None
    photo: str | None
    message_id: int

    @classmethod
    def of(cls, message: Message) -> Words:
        return cls(text=message.text if message.text is not None else message.caption,
                   photo=message.photo[-1].file_id if message.photo else None, message_id=message.message_id)


class Survey(TypedDict):
    """What a survey comment answered: ``kind`` "order" (the delivery survey) or "ticket" (a complaint's
    resolution), its number, and the rating given (1–5)."""

    kind: str
    id: int
    rating: int


class ConversationCallback(CallbackData, prefix="cv"):
    """Staff buttons on a conversation's first message: complaint | cat | back."""

    action: str
    conversation: RowId  # bounded: a forged oversized id is an expired button
    value: str = ""


def conversation_markup(texts: Texts, conversation: Conversation, mode: str = "main") -> InlineKeyboardMarkup | None:
    """The buttons of a conversation's first message: "Make it a complaint", or the categories."""
    if conversation.status != "open":
        return None
    builder = InlineKeyboardBuilder()
    if mode == "categories":
        for category in rules.CATEGORIES:
            builder.button(text=texts.button(f"complaint_category_{category}"),
                           callback_data=ConversationCallback(action="cat", conversation=conversation.id,
                                                              value=category))
        builder.button(text=texts.button("ticket_back"),
                       callback_data=ConversationCallback(action="back", conversation=conversation.id))
        builder.adjust(2, 2, 1, 1)
        return builder.as_markup()
    builder.button(text=texts.button("conversation_make_complaint"),
                   callback_data=ConversationCallback(action="complaint", conversation=conversation.id))
    return builder.as_markup()


async def _post(bot: Bot, repos: Repos, chat_id: int, now: datetime, render: Callable[[str], str], words: Words, *,
                route: dict[str, Any], markup: InlineKeyboardMarkup | None = None, **outbox: Any) -> int | None:
    """Post ``words`` into the staff chat, ``render`` wrapping each piece in its template and ``markup`` on
    the first message; ``route``: its topic and the message it replies to (``staff_chat_route``).

    Returns the id of the first message posted. When Telegram refuses, the words wait in the outbox
    (``outbox``: the row's key, kind and references).
    """
    reply = route.get("reply_to_message_id")
    params: dict[str, Any] = {
        "message_thread_id": route.get("message_thread_id"),
        "reply_parameters": ReplyParameters(message_id=reply, allow_sending_without_reply=True) if reply else None,
    }
    first: int | None = None
    try:
        if words.photo is not None:
            caption, extra = render(words.text or ""), None
            if utf16_len(caption) > CAPTION_MAX:
                caption, extra = render(""), words.text
            sent = await at_once(bot.send_photo(chat_id, words.photo, caption=caption, reply_markup=markup, **params))
            first, markup = sent.message_id, None
            pieces = utf16_split(extra, PIECE) if extra else []
        else:
            pieces = utf16_split(words.text or "", PIECE)
        for piece in pieces:
            sent = await at_once(bot.send_message(chat_id, render(piece), reply_markup=markup, **params))
            first, markup = first or sent.message_id, None
    except TelegramAPIError as exc:
        log.warning("could not post %s to the staff chat: %s", outbox["dedupe_key"], exc)
        await repos.outbox.enqueue(
            chat_id=chat_id, text=render(utf16_cut(words.text or "", PIECE)), now=now,
            reply_markup=markup.model_dump(exclude_none=True) if markup else None, **outbox,
        )
    return first


# ----- the customer writes -----------------------------------------------------------------------

async def to_ticket(bot: Bot, repos: Repos, renderer: TextRenderer, settings: Settings, now: datetime,
                    ticket: Ticket, customer: Customer, words: Words, survey: Survey | None = None) -> None:
    """Post the customer's words about ``ticket`` to the staff chat (``survey``: what a survey comment
    rated) and record them; a ticket waiting for the customer is in progress again. The customer is not
    told: the caller words that."""
    staff_message_id = None
    chat_id = settings.staff_chat_id
    if chat_id is not None:
        stexts = await staff_chat_texts(repos, renderer, settings)
        route = staff_chat_route(ticket, settings)
        staff_message_id = await _post(
            bot, repos, chat_id, now,
            lambda piece: stexts("tickets/relayed_in", ticket=ticket, customer=customer, survey=survey, text=piece),
            words, route=route,
            dedupe_key=f"relay:{ticket.id}:{customer.id}:{words.message_id}", kind="ticket_relay",
            options=route or None, ref_ticket_id=ticket.id,
        )
    await repos.tickets.add_message(
        ticket, direction="in", actor=customer_actor(customer), now=now, text=words.text, photo_file_id=words.photo,
        staff_chat_id=chat_id if staff_message_id else None, staff_message_id=staff_message_id,
    )
    if ticket.status == "waiting_customer":
        await repos.tickets.transition(ticket, "in_progress", customer_actor(customer), now, settings.sla)
        await refresh_card(bot, repos, renderer, settings, ticket, now)


async def to_conversation(bot: Bot, repos: Repos, renderer: TextRenderer, settings: Settings, now: datetime,
                          customer: Customer, words: Words, *,
                          context: tuple[str, int | None, int | None] | None = None,
                          survey: Survey | None = None) -> None:
    """Post the customer's words to the staff chat as (part of) a conversation staff answer by replying,
    and record them. A new conversation is about ``context`` (outbox kind, order, ticket) when given, else
    about the latest care or service message the customer got. The customer is not told: the caller words
    that."""
    conversations = repos.conversations
    await repos.customers.mark_reachable(customer)  # they write, so they have not blocked us
    conversation = await conversations.current(customer.id, now, CONTINUE_FOR)
    first = conversation is None
    if conversation is None:
        if context is None:
            context = await conversations.last_context(customer.id, now - CONTEXT_WITHIN)
        conversation = await conversations.start(customer.id, now, context)
    staff_message_id: int | None = None
    chat_id = settings.staff_chat_id
    if chat_id is not None:
        stexts = await staff_chat_texts(repos, renderer, settings)
        # The first message starts the conversation in the staff chat; the rest reply to it.
        staff_message_id = await _post(
            bot, repos, chat_id, now,
            lambda piece: stexts("conversations/relayed_in", conversation=conversation, customer=customer,
                                 text=piece, first=first, survey=survey),
            words, route={} if first else {"reply_to_message_id": conversation.staff_message_id},
            markup=conversation_markup(stexts, conversation) if first else None,
            dedupe_key=f"conversation:{conversation.id}:{words.message_id}", kind="conversation_relay",
            customer_id=customer.id,
        )
    if first and staff_message_id is not None and chat_id is not None:
        await conversations.set_card(conversation, chat_id, staff_message_id)
    await conversations.add_message(
        conversation, direction="in", author_telegram_id=customer.telegram_id, author_name=customer.name, now=now,
        text=words.text, photo_file_id=words.photo, staff_chat_id=chat_id if staff_message_id else None,
        staff_message_id=staff_message_id,
    )


async def pass_on_comment(bot: Bot, repos: Repos, renderer: TextRenderer, settings: Settings, now: datetime,
                          customer: Customer, words: Words, survey: Survey, *, ticket: Ticket | None = None,
                          order_id: int | None = None) -> None:
    """A survey's comment reaches staff so that they can answer it: attached to ``ticket`` (the complaint
    whose resolution was rated) unless it is closed, else to the customer's open ticket (the one about
    ``order_id`` first, else the newest), else as a conversation about the survey."""
    target = ticket if ticket is not None and ticket.status != "closed" else None
    if target is None:
        open_tickets = await repos.tickets.open_for_customer(customer.id)
        same_order = [t for t in open_tickets if order_id is not None and t.order_id == order_id]
        target = (same_order or open_tickets or [None])[-1]
    if target is not None:
        await to_ticket(bot, repos, renderer, settings, now, target, customer, words, survey)
        return
    context = ("csat", None, ticket.id) if ticket is not None else ("survey", order_id, None)
    await to_conversation(bot, repos, renderer, settings, now, customer, words, context=context, survey=survey)


# ----- staff answer ------------------------------------------------------------------------------

async def _to_customer(bot: Bot, repos: Repos, renderer: TextRenderer, now: datetime, customer: Customer | None,
                       words: Words, template: str, **values: Any) -> str | None:
    """A staff reply, wrapped in ``template``, to the customer: None when delivered, else why not."""
    if customer is None or customer.telegram_id is None or customer.is_forgotten:
        return "gone"
    ctexts = customer_texts(renderer, customer)
    return await send_staff_reply(bot, repos, customer, now, lambda text: ctexts(template, text=text, **values),
                                  words.text, words.photo)


async def staff_reply_on_ticket(bot: Bot, repos: Repos, renderer: TextRenderer, settings: Settings, now: datetime,
                                ticket: Ticket, staff: rules.Actor, words: Words, chat_id: int) -> str | None:
    """A staff member's reply (``words``, in the staff chat ``chat_id``) to the ticket's customer, recorded.
    Delivered, it takes an unassigned ticket for them, may be its first response, and leaves the ticket
    waiting for the customer (its card says so). None when delivered, else why not (``send_to_customer``)."""
    customer = await repos.customers.get(ticket.customer_id)
    failure = await _to_customer(bot, repos, renderer, now, customer, words, "tickets/staff_reply",
                                 ticket=ticket, name=staff.name)
    await repos.tickets.add_message(
        ticket, direction="out", actor=staff, now=now, text=words.text, photo_file_id=words.photo,
        staff_chat_id=chat_id, staff_message_id=words.message_id, delivered=failure is None,
    )
    if failure is not None:
        return failure
    if ticket.assignee_telegram_id is None:
        await repos.tickets.assign(ticket, staff, now, settings.sla)
    if rules.record_first_response(ticket, now, settings.sla):
        await repos.tickets.add_event(ticket, "first_response", staff, now,
                                      detail=f"{ticket.first_response_minutes:g} min")
    if ticket.status in ("taken", "in_progress"):
        await repos.tickets.transition(ticket, "waiting_customer", staff, now, settings.sla)
    await refresh_card(bot, repos, renderer, settings, ticket, now)
    return None


async def staff_reply_in_conversation(bot: Bot, repos: Repos, renderer: TextRenderer, now: datetime,
                                      conversation: Conversation, staff: rules.Actor, words: Words,
                                      chat_id: int) -> str | None:
    """A staff member's reply (``words``, in the staff chat ``chat_id``) to the conversation's customer,
    recorded. None when delivered, else why not."""
    customer = await repos.customers.get(conversation.customer_id)
    failure = await _to_customer(bot, repos, renderer, now, customer, words, "conversations/staff_reply",
                                 name=staff.name)
    await repos.conversations.add_message(
        conversation, direction="out", author_telegram_id=staff.telegram_id, author_name=staff.name, now=now,
        text=words.text, photo_file_id=words.photo, staff_chat_id=chat_id, staff_message_id=words.message_id,
        delivered=failure is None,
    )
    return failure


# ----- a conversation becomes a complaint ----------------------------------------------------------

@dataclass(frozen=True)
class Complaint:
    ticket: Ticket
    customer: Customer
    created: bool  # False: the same conversation was made a ticket before (a retried update)


async def make_complaint(repos: Repos, settings: Settings, now: datetime, conversation: Conversation, category: str,
                         staff: rules.Actor) -> Complaint | str:
    """Open a ticket with the customer's words and photos of ``conversation``; from then on its messages
    in the staff chat answer through the ticket. Returns the complaint, or why not: ``gone`` (the customer
    was forgotten) | ``already`` (the conversation is a complaint already)."""
    conversations = repos.conversations
    customer = await repos.customers.get(conversation.customer_id)
    if customer is None or customer.is_forgotten:
        return "gone"
    messages = await conversations.messages(conversation.id)
    said = [m.text for m in messages if m.direction == "in" and m.text]
    description = "\n\n".join(said)[:rules.DESCRIPTION_MAX] or "—"
    photos = [m.photo_file_id for m in messages if m.direction == "in" and m.photo_file_id][:rules.PHOTOS_MAX]
    order_id = conversation.context_order_id
    if order_id is not None and await repos.tickets.customer_order(customer.id, order_id) is None:
        order_id = None
    priority, reasons = await complaint_priority(repos, customer, category, now, settings)
    ticket, created = await repos.tickets.create(
        customer=customer, category=category, order_id=order_id, description=description, photos=photos,
        priority=priority, idempotency_key=f"conversation:{conversation.id}", now=now, sla=settings.sla,
        reasons=reasons,
    )
    if not await conversations.make_complaint(conversation.id, ticket.id):
        return "already"
    await repos.tickets.add_event(ticket, "from_conversation", staff, now, detail=str(conversation.id))
    for m in messages:
        if m.staff_message_id is not None:
            await repos.tickets.add_message(
                ticket, direction=m.direction,
                actor=customer_actor(customer) if m.direction == "in" else rules.Actor(
                    "staff", m.author_telegram_id, m.author_name or ""),
                now=m.created_at, text=m.text, photo_file_id=m.photo_file_id, staff_chat_id=m.staff_chat_id,
                staff_message_id=m.staff_message_id, delivered=m.delivered,
            )
    return Complaint(ticket=ticket, customer=customer, created=created)


async def tell_customer_of_complaint(bot: Bot, repos: Repos, renderer: TextRenderer, settings: Settings,
                                     now: datetime, complaint: Complaint) -> None:
    """The customer hears that what they wrote is now a complaint, and when to expect an answer."""
    ticket, customer = complaint.ticket, complaint.customer
    await send_to_customer(bot, repos, customer, now, text=customer_texts(renderer, customer)(
        "conversations/became_complaint", ticket=ticket, targets=rules.targets(ticket.priority, settings.sla),
        business_hours=settings.sla.schedule is not None))
