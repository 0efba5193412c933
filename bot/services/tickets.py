"""Tickets' shared use cases: button data, the staff-chat card and notices, the survey, and sending.

The ticket handlers (``complaint``, ``ticket_desk``, ``ticket_relay``, ``csat``,
``staff_tools``, ``conversations``) and the SLA job (``jobs.sla``) post, refresh
and word the same cards and notices with this code.

Messages posted into the staff chat are in the staff chat's language (one for
the group, chosen there with /language; ``bot.staff_language``); what goes to
one staff member's private chat on its own is in the language they chose;
answers to one person use that person's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramForbiddenError
from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup, Message, ReplyParameters, User
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.callback_ids import RowId
from bot.config import Settings
from bot.pipeline import at_once
from bot.rules import tickets as rules
from bot.rules.sla import notice_time
from bot.rules.text_units import utf16_len, utf16_split
from bot.staff_language import chat_language, member_languages, staff_chat_language
from bot.texts import TextRenderer, Texts
from storage.models import Customer, Order, Ticket
from storage.repositories import Repos
from storage.repositories.tickets import photos_of

log = logging.getLogger(__name__)

class TicketCallback(CallbackData, prefix="tk"):
    """Buttons on a ticket card: take | resolve | prio | setprio | back."""

    action: str
    ticket: RowId
    value: str = ""


class CsatCallback(CallbackData, prefix="csat"):
    """Buttons for the customer after a resolution: rate | notsolved | reopen | skip."""

    action: str
    ticket: RowId
    value: RowId = 0


# ----- texts ------------------------------------------------------------------------

async def staff_chat_texts(repos: Repos, renderer: TextRenderer, settings: Settings) -> Texts:
    """Texts for the staff chat: its language (the whole group's)."""
    return renderer.for_language(await staff_chat_language(repos, settings))


async def chat_texts(repos: Repos, renderer: TextRenderer, settings: Settings, chat_id: int) -> Texts:
    """Texts for what the bot posts on its own into this chat: the staff chat's language, or the
    language the staff member whose private chat it is chose."""
    return renderer.for_language(await chat_language(repos, settings, chat_id))


def customer_texts(renderer: TextRenderer, customer: Customer) -> Texts:
    return renderer.for_language(customer.language)


def customer_tz(customer: Customer | None, settings: Settings) -> str:
    return (customer.timezone if customer and customer.timezone else None) or settings.default_timezone


def actor_of(user: User, role: str = "staff") -> rules.Actor:
    return rules.Actor(role, user.id, (user.full_name or str(user.id))[:64])


def customer_actor(customer: Customer) -> rules.Actor:
    return rules.Actor("customer", customer.telegram_id, customer.name)


# ----- the card ---------------------------------------------------------------------------

async def card_context(repos: Repos, ticket: Ticket, settings: Settings, now: datetime,
                       customer: Customer | None = None) -> dict[str, Any]:
    customer = customer or await repos.customers.get(ticket.customer_id)
    order: Order | None = (await repos.tickets.customer_order(ticket.customer_id, ticket.order_id)
                           if ticket.order_id else None)
    return {
        "ticket": ticket,
        "customer": customer,
        "order": order,
        "photos": len(photos_of(ticket)),
        "targets": rules.targets(ticket.priority, settings.sla),
        "sla": rules.sla_state(ticket, now, settings.sla),
        "tz": settings.default_timezone,
        "business_hours": bool(settings.business_hours.strip()),
    }


def card_markup(texts: Texts, ticket: Ticket, mode: str = "main") -> InlineKeyboardMarkup | None:
    if ticket.status not in rules.OPEN_STATUSES:
        return None
    builder = InlineKeyboardBuilder()
    if mode == "priority":
        for priority in rules.PRIORITIES:
            label = texts.button("ticket_priority_choice", priority=priority, current=ticket.priority == priority)
            builder.button(text=label, callback_data=TicketCallback(action="setprio", ticket=ticket.id, value=priority))
        builder.button(text=texts.button("ticket_back"), callback_data=TicketCallback(action="back", ticket=ticket.id))
        builder.adjust(3, 1)
        return builder.as_markup()
    if ticket.assignee_telegram_id is None:
        builder.button(text=texts.button("ticket_take"), callback_data=TicketCallback(action="take", ticket=ticket.id))
    builder.button(text=texts.button("ticket_resolve"),
                   callback_data=TicketCallback(action="resolve", ticket=ticket.id))
    builder.button(text=texts.button("ticket_priority"), callback_data=TicketCallback(action="prio", ticket=ticket.id))
    builder.adjust(3)
    return builder.as_markup()


async def render_card(repos: Repos, renderer: TextRenderer, settings: Settings, ticket: Ticket,
                      now: datetime, customer: Customer | None = None) -> tuple[str, InlineKeyboardMarkup | None]:
    texts = await staff_chat_texts(repos, renderer, settings)
    context = await card_context(repos, ticket, settings, now, customer)
    return texts("tickets/card", **context), card_markup(texts, ticket)


@dataclass
class StaffForum:
    """Whether the staff chat is a forum (a topic per ticket), as learnt from the messages seen there.

    One per app, in the dispatcher's data (bot.app): None until the bot has seen the chat. Telegram
    tells it in ``Chat.is_forum`` (https://core.telegram.org/bots/api#chat); a topic is made with
    https://core.telegram.org/bots/api#createforumtopic and known by its ``message_thread_id``.
    """

    known: bool | None = None


def forum_known(staff_forum: StaffForum | None) -> bool | None:
    return None if staff_forum is None else staff_forum.known


def learn_forum(staff_forum: StaffForum | None, chat: Any, settings: Settings) -> None:
    """Remember whether the staff chat is a forum, from any message seen there."""
    if staff_forum is not None and chat is not None and chat.id == settings.staff_chat_id:
        staff_forum.known = bool(getattr(chat, "is_forum", False))


async def _create_topic(bot: Bot, chat_id: int, texts: Texts, ticket: Ticket, customer: Customer | None) -> int:
    # A topic name is 1-128 characters: https://core.telegram.org/bots/api#createforumtopic
    name = texts("tickets/topic_name.txt", ticket=ticket, customer=customer)[:128]
    topic = await bot.create_forum_topic(chat_id=chat_id, name=name)
    return topic.message_thread_id


async def post_card(bot: Bot, staff_forum: StaffForum | None, repos: Repos, renderer: TextRenderer, settings: Settings,
                    ticket: Ticket, customer: Customer, now: datetime) -> bool:
    """Post a new ticket's card to the staff chat (its own topic in a forum); then its photos.

    When Telegram refuses, the card goes through the outbox instead, so the
    ticket is never unseen; replies to it still find the ticket.
    """
    chat_id = settings.staff_chat_id
    if chat_id is None:
        return False
    texts = await staff_chat_texts(repos, renderer, settings)
    forum = forum_known(staff_forum)
    thread_id: int | None = None
    text, markup = await render_card(repos, renderer, settings, ticket, now, customer)
    try:
        if forum:
            thread_id = ticket.staff_thread_id = await _create_topic(bot, chat_id, texts, ticket, customer)
            text, markup = await render_card(repos, renderer, settings, ticket, now, customer)
        sent = await at_once(bot.send_message(chat_id, text, reply_markup=markup, message_thread_id=thread_id))
        learned = bool(sent.chat.is_forum)
        if staff_forum is not None:
            staff_forum.known = learned
        if forum is None:
            forum = learned
            if forum:  # learned just now: give the ticket its own topic after all
                thread_id = ticket.staff_thread_id = await _create_topic(bot, chat_id, texts, ticket, customer)
                text, markup = await render_card(repos, renderer, settings, ticket, now, customer)
                moved = await at_once(bot.send_message(chat_id, text, reply_markup=markup, message_thread_id=thread_id))
                try:
                    await bot.delete_message(chat_id, sent.message_id)
                except TelegramAPIError:
                    pass
                sent = moved
    except TelegramAPIError as exc:
        log.warning("could not post the card of ticket %s: %s", ticket.id, exc)
        ticket.staff_thread_id = None
        text, markup = await render_card(repos, renderer, settings, ticket, now, customer)
        await repos.outbox.enqueue(
            dedupe_key=f"card:{ticket.id}", kind="ticket_card", chat_id=chat_id, text=text, now=now,
            reply_markup=markup.model_dump(exclude_none=True) if markup else None, ref_ticket_id=ticket.id,
        )
        return False
    await repos.tickets.set_card(ticket, chat_id, sent.message_id, thread_id)
    photos = photos_of(ticket)
    for number, file_id in enumerate(photos, start=1):
        caption = texts("tickets/card_photo", ticket=ticket, number=number, total=len(photos))
        try:
            photo = await at_once(bot.send_photo(chat_id, file_id, caption=caption, message_thread_id=thread_id,
                                         reply_parameters=ReplyParameters(message_id=sent.message_id,
                                                                          allow_sending_without_reply=True)))
        except TelegramAPIError as exc:
            log.warning("could not post photo %s of ticket %s: %s", number, ticket.id, exc)
            continue
        await repos.tickets.add_message(ticket, direction="in", actor=customer_actor(customer), now=now,
                                        photo_file_id=file_id, staff_chat_id=chat_id,
                                        staff_message_id=photo.message_id)
    return True


async def refresh_card(bot: Bot, repos: Repos, renderer: TextRenderer, settings: Settings, ticket: Ticket,
                       now: datetime, mode: str = "main") -> None:
    """Show the ticket's current state on its card (best effort: the card may be gone), in the staff
    chat's language, buttons too."""
    if ticket.staff_chat_id is None or ticket.staff_message_id is None:
        return
    text, markup = await render_card(repos, renderer, settings, ticket, now)
    if mode != "main":
        markup = card_markup(await staff_chat_texts(repos, renderer, settings), ticket, mode)
    try:
        await bot.edit_message_text(text=text, chat_id=ticket.staff_chat_id, message_id=ticket.staff_message_id,
                                    reply_markup=markup)
    except TelegramBadRequest as exc:
        if "not modified" not in str(exc):
            log.info("card of ticket %s not refreshed: %s", ticket.id, exc)
    except TelegramAPIError as exc:
        log.info("card of ticket %s not refreshed: %s", ticket.id, exc)


def staff_chat_route(ticket: Ticket, settings: Settings) -> dict[str, Any]:
    """Where a notice about this ticket goes in the staff chat: its topic, as a reply to its card."""
    route: dict[str, Any] = {}
    if ticket.staff_thread_id is not None:
        route["message_thread_id"] = ticket.staff_thread_id
    if ticket.staff_message_id is not None and ticket.staff_chat_id == settings.staff_chat_id:
        route["reply_to_message_id"] = ticket.staff_message_id
    return route


async def tell_staff(bot: Bot, settings: Settings, ticket: Ticket, text: str,
                     reply_to: int | None = None) -> Message | None:
    """A notice in the staff chat about this ticket (in its topic, replying to the card or ``reply_to``)."""
    chat_id = settings.staff_chat_id
    if chat_id is None:
        return None
    route = staff_chat_route(ticket, settings)
    target = reply_to or route.get("reply_to_message_id")
    try:
        return await bot.send_message(
            chat_id, text, message_thread_id=route.get("message_thread_id"),
            reply_parameters=ReplyParameters(message_id=target, allow_sending_without_reply=True) if target else None,
        )
    except TelegramAPIError as exc:
        log.warning("could not tell the staff chat about ticket %s: %s", ticket.id, exc)
        return None


async def send_to_customer(bot: Bot, repos: Repos, customer: Customer, now: datetime, *, text: str | None = None,
                           photo: str | None = None, caption: str | None = None,
                           reply_markup: InlineKeyboardMarkup | None = None) -> str | None:
    """Send directly; returns None when delivered, else why not: ``blocked`` | ``gone`` | ``failed``.

    A customer who blocked the bot is marked unreachable.
    """
    if customer.telegram_id is None:
        return "gone"
    try:
        if photo is not None:
            await at_once(bot.send_photo(customer.telegram_id, photo, caption=caption, reply_markup=reply_markup))
        else:
            assert text is not None
            await at_once(bot.send_message(customer.telegram_id, text, reply_markup=reply_markup))
    except TelegramForbiddenError:
        await repos.customers.mark_unreachable(customer.id, now)
        return "blocked"
    except TelegramAPIError as exc:
        log.warning("could not send to customer %s: %s", customer.id, exc)
        return "failed"
    return None


async def send_staff_reply(bot: Bot, repos: Repos, customer: Customer, now: datetime, render: Any,
                           body: str | None, photo: str | None) -> str | None:
    """A staff member's reply to a customer (a ticket's or a conversation's): None when delivered, else why not.

    ``render(text)`` wraps a piece of the reply in its template. A photo carries the reply as its caption
    unless that would pass Telegram's 1024-unit caption limit: then the text follows on its own. Long text
    goes in pieces that each fit a message. (Limits: https://core.telegram.org/bots/api#sendphoto,
    https://core.telegram.org/bots/api#sendmessage)
    """
    if photo is not None:
        caption, extra = render(body or ""), None
        if utf16_len(caption) > 1000:
            caption, extra = render(""), body
        failure = await send_to_customer(bot, repos, customer, now, photo=photo, caption=caption)
        if failure is not None or not extra:
            return failure
        body = extra
    for piece in utf16_split(body or "", 4000 - utf16_len(render(""))):
        failure = await send_to_customer(bot, repos, customer, now, text=render(piece))
        if failure:
            return failure
    return None


# ----- the satisfaction survey ---------------------------------------------------------------

def survey(renderer: TextRenderer, settings: Settings, ticket: Ticket,
           customer: Customer) -> tuple[str, dict[str, Any]]:
    """The resolution notice for the customer: the note, a 1–5 rating (until rated), and "not solved"."""
    texts = customer_texts(renderer, customer)
    builder = InlineKeyboardBuilder()
    ask_rating = ticket.rating is None
    if ask_rating:
        for value in range(1, 6):
            builder.button(text=texts.button("csat_rating", value=value),
                           callback_data=CsatCallback(action="rate", ticket=ticket.id, value=value))
    builder.button(text=texts.button("csat_not_solved"),
                   callback_data=CsatCallback(action="notsolved", ticket=ticket.id))
    if ask_rating:
        builder.adjust(5, 1)
    text = texts("tickets/resolved_survey", ticket=ticket, ask_rating=ask_rating,
                 reopen_days=settings.ticket_reopen_days)
    return text, builder.as_markup().model_dump(exclude_none=True)


async def enqueue_survey(repos: Repos, renderer: TextRenderer, settings: Settings, ticket: Ticket,
                         customer: Customer | None, now: datetime) -> bool:
    """Through the outbox: ``csat:<ticket>`` the first time, once per later resolution after that."""
    if customer is None or customer.telegram_id is None:
        return False
    text, markup = survey(renderer, settings, ticket, customer)
    key = f"csat:{ticket.id}" if not ticket.reopen_count else f"csat:{ticket.id}:r{ticket.reopen_count}"
    return await repos.outbox.enqueue(
        dedupe_key=key, kind="csat", chat_id=customer.telegram_id, text=text, now=now, category="service",
        customer_id=customer.id, reply_markup=markup, ref_ticket_id=ticket.id,
    )


def staff_notice_time(settings: Settings, ticket: Ticket | None, now: datetime) -> datetime:
    """When a notice or escalation to staff or managers may go: in BUSINESS_HOURS, unless the
    ticket's priority goes at any hour (AFTER_HOURS_PRIORITIES)."""
    return notice_time(now, settings.sla.schedule, ticket.priority if ticket is not None else None,
                       settings.after_hours_priority_set)


async def notify_managers(repos: Repos, renderer: TextRenderer, settings: Settings, ticket: Ticket, *, key: str,
                          kind: str, render: Callable[[Texts], str], now: datetime) -> int:
    """One outbox row per manager, each in the language that manager chose (or the staff chat, in its
    language, when there are none); returns rows written. ``render(texts)`` words the notice.

    Outside opening hours the rows wait for the opening (see :func:`staff_notice_time`).
    """
    written = 0
    not_before = staff_notice_time(settings, ticket, now)
    if settings.manager_ids:
        languages = await member_languages(repos, settings, settings.manager_ids)
        for manager_id in sorted(settings.manager_ids):
            written += await repos.outbox.enqueue(
                dedupe_key=f"{key}:{manager_id}", kind=kind, chat_id=manager_id, now=now,
                text=render(renderer.for_language(languages[manager_id])),
                category="service", ref_ticket_id=ticket.id, not_before=not_before,
            )
    elif settings.staff_chat_id is not None:
        written += await repos.outbox.enqueue(
            dedupe_key=key, kind=kind, chat_id=settings.staff_chat_id, now=now, category="service",
            text=render(await staff_chat_texts(repos, renderer, settings)),
            options=staff_chat_route(ticket, settings) or None, ref_ticket_id=ticket.id, not_before=not_before,
        )
    return written
