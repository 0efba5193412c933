"""Whatever a customer writes reaches a person.

A registered customer's text or photo outside any dialog, while no ticket of
theirs is open (``handlers.ticket_relay`` takes it then), goes to the staff
chat as a *conversation*: an answer to a survey, a birthday greeting, a
reminder, a win-back, a resolved complaint ("Rice was still smelly")... The
staff chat sees who wrote and what they most likely answered; more messages
within :data:`CONTINUE_FOR` join the same conversation (as replies to its
first message). The customer is told it was passed on.

A survey's comment (typed in the survey's own comment step after a rating:
the post-delivery survey, or a low rating of a resolved complaint) goes the
same way (:func:`pass_on_comment`): to the ticket it is about or the
customer's open ticket when there is one, else into a conversation about the
survey, marked with the rating.

Staff answer with a Telegram reply to any message of the conversation (the
sandbox's ``:reply``); the answer reaches the customer. A conversation is not
a complaint: its first message carries "Make it a complaint" (then a
category), which opens a ticket with the customer's words, posts its card,
and from then on the conversation's messages answer through the ticket.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, TypedDict

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import BaseFilter, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message, ReactionTypeEmoji, ReplyParameters
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.callback_ids import RowId
from bot.clock import Clock
from bot.config import Settings
from bot.dialogs import set_buttons
from bot.filters import When
from bot.pipeline import at_once
from bot.roles import InStaffPlace, Role
from bot.rules import tickets as ticket_rules
from bot.rules.text_units import utf16_cut, utf16_len
from bot.services.tickets import (
    StaffForum,
    actor_of,
    customer_actor,
    customer_texts,
    post_card,
    send_staff_reply,
    send_to_customer,
    split_text,
    staff_chat_texts,
)
from bot.texts import TextRenderer, Texts
from bot.ticket_priority import complaint_priority
from handlers.ticket_relay import relay_to_staff
from storage.models import Conversation, Customer, Ticket
from storage.repositories import Repos
from storage.repositories.conversations import ConversationRepo

log = logging.getLogger(__name__)


def build_router() -> Router:
    """A new router with this module's handlers, tried in this order (bot.app.build_routers places it)."""
    router = Router(name="conversations")
    router.message.register(customer_writes, When((F.chat.type == "private") & F.photo), StateFilter(None),
                            IsCustomer())
    router.message.register(customer_writes, When((F.chat.type == "private") & F.text & ~F.text.startswith("/")),
                            StateFilter(None), IsCustomer())
    router.message.register(staff_replies, ConversationReply())
    # Its buttons pressed outside the staff place are expired buttons (the fallback answers them).
    router.callback_query.register(conversation_button, ConversationCallback.filter(), InStaffPlace())
    return router


# A message within this long of the conversation's last one joins it; later, a new one starts.
CONTINUE_FOR = timedelta(days=3)
# What the customer most likely answered: the latest care or service message this recent.
CONTEXT_WITHIN = timedelta(days=14)
PIECE = 3500  # a long text goes to the staff chat in pieces of this many characters
CAPTION_PIECE = 800


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


def _repo(repos: Repos) -> ConversationRepo:
    return ConversationRepo(repos.session)


def _markup(texts: Texts, conversation: Conversation, mode: str = "main") -> InlineKeyboardMarkup | None:
    if conversation.status != "open":
        return None
    builder = InlineKeyboardBuilder()
    if mode == "categories":
        for category in ticket_rules.CATEGORIES:
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


# ----- the customer writes ---------------------------------------------------------------------

class IsCustomer(BaseFilter):
    """A registered customer (not staff or a manager writing to the bot)."""

    async def __call__(self, message: Message, customer: Customer | None = None, role: Role = Role.CUSTOMER,
                       **_: Any) -> bool:
        return customer is not None and customer.telegram_id is not None and role == Role.CUSTOMER


async def customer_writes(message: Message, customer: Customer, texts: Texts, repos: Repos, clock: Clock,
                          settings: Settings, renderer: TextRenderer, bot: Bot) -> None:
    text = message.text if message.text is not None else message.caption
    photo = message.photo[-1].file_id if message.photo else None
    await pass_on(message, text=text, photo=photo, customer=customer, repos=repos, clock=clock, settings=settings,
                  renderer=renderer, bot=bot)
    await message.answer(texts("conversations/passed_on"))


async def pass_on(message: Message, *, text: str | None, photo: str | None = None,
                  context: tuple[str, int | None, int | None] | None = None, survey: Survey | None = None,
                  customer: Customer, repos: Repos, clock: Clock, settings: Settings, renderer: TextRenderer,
                  bot: Bot) -> None:
    """Post what the customer wrote to the staff chat as (part of) a conversation staff answer by
    replying, and record it. A new conversation is about ``context`` (outbox kind, order, ticket) when
    given, else about the latest care or service message the customer got. The customer is not told:
    the caller words that."""
    conversations = _repo(repos)
    now = clock.now()
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

        def render(piece: str) -> str:
            return stexts("conversations/relayed_in", conversation=conversation, customer=customer, text=piece,
                          first=first, survey=survey)

        markup = _markup(stexts, conversation) if first else None
        reply_to = conversation.staff_message_id if not first else None
        params: dict[str, Any] = {
            "reply_parameters": (ReplyParameters(message_id=reply_to, allow_sending_without_reply=True)
                                 if reply_to else None),
        }
        try:
            if photo is not None:
                pieces = split_text(text, PIECE) if text and utf16_len(text) > CAPTION_PIECE else []
                sent = await at_once(bot.send_photo(chat_id, photo, caption=render("" if pieces else (text or "")),
                                            reply_markup=markup, **params))
                staff_message_id = sent.message_id
                markup = None
            else:
                pieces = split_text(text or "", PIECE)
            for piece in pieces:
                sent = await at_once(bot.send_message(chat_id, render(piece), reply_markup=markup, **params))
                markup = None
                staff_message_id = staff_message_id or sent.message_id
        except TelegramAPIError as exc:
            log.warning("could not pass on a message of conversation %s: %s", conversation.id, exc)
            await repos.outbox.enqueue(
                dedupe_key=f"conversation:{conversation.id}:{message.message_id}", kind="conversation_relay",
                chat_id=chat_id, customer_id=customer.id, text=render(utf16_cut(text or "", PIECE)), now=now,
                reply_markup=markup.model_dump(exclude_none=True) if markup else None,
            )
    if first and staff_message_id is not None and chat_id is not None:
        await conversations.set_card(conversation, chat_id, staff_message_id)
    await conversations.add_message(
        conversation, direction="in", author_telegram_id=customer.telegram_id, author_name=customer.name, now=now,
        text=text, photo_file_id=photo, staff_chat_id=chat_id if staff_message_id else None,
        staff_message_id=staff_message_id,
    )


async def pass_on_comment(message: Message, comment: str, survey: Survey, *, ticket: Ticket | None = None,
                          order_id: int | None = None, customer: Customer, texts: Texts, repos: Repos, clock: Clock,
                          settings: Settings, renderer: TextRenderer, bot: Bot) -> None:
    """A survey's comment reaches staff so that they can answer it: attached to ``ticket`` (the complaint
    whose resolution was rated) unless it is closed, else to the customer's open ticket (the one about
    ``order_id`` first, else the newest), else as a conversation about the survey."""
    target = ticket if ticket is not None and ticket.status != "closed" else None
    if target is None:
        open_tickets = await repos.tickets.open_for_customer(customer.id)
        same_order = [t for t in open_tickets if order_id is not None and t.order_id == order_id]
        target = (same_order or open_tickets or [None])[-1]
    if target is not None:
        await relay_to_staff(message, target, {"text": comment, "photo": None, "survey": survey}, acknowledge=False,
                             customer=customer, texts=texts, repos=repos, clock=clock, settings=settings,
                             renderer=renderer, bot=bot)
        return
    context = ("csat", None, ticket.id) if ticket is not None else ("survey", order_id, None)
    await pass_on(message, text=comment, context=context, survey=survey, customer=customer, repos=repos, clock=clock,
                  settings=settings, renderer=renderer, bot=bot)


# ----- staff answer ----------------------------------------------------------------------------

class ConversationReply(BaseFilter):
    """A staff message in the staff chat replying to a conversation's message: passes ``conversation``."""

    async def __call__(self, message: Message, settings: Settings, repos: Repos, role: Role = Role.CUSTOMER,
                       **_: Any) -> bool | dict[str, Any]:
        if settings.staff_chat_id is None or message.chat.id != settings.staff_chat_id:
            return False
        if role < Role.STAFF or (message.text or "").startswith("/") or message.reply_to_message is None:
            return False
        conversation = await _repo(repos).by_staff_message(message.chat.id, message.reply_to_message.message_id)
        return {"conversation": conversation} if conversation is not None else False


async def staff_replies(message: Message, conversation: Conversation, repos: Repos, clock: Clock,
                        renderer: TextRenderer, bot: Bot, texts: Texts) -> None:
    stexts = texts  # in the staff chat: its language
    if not message.text and not message.photo:
        await message.reply(stexts("conversations/reply_unsupported"))
        return
    assert message.from_user is not None
    me = actor_of(message.from_user)
    now = clock.now()
    customer = await repos.customers.get(conversation.customer_id)
    photo = message.photo[-1].file_id if message.photo else None
    body = message.text if message.text is not None else message.caption
    failure: str | None = "gone"
    if customer is not None and customer.telegram_id is not None and not customer.is_forgotten:
        ctexts = customer_texts(renderer, customer)
        failure = await send_staff_reply(
            bot, repos, customer, now, lambda text: ctexts("conversations/staff_reply", name=me.name, text=text),
            body, photo)
    await _repo(repos).add_message(
        conversation, direction="out", author_telegram_id=me.telegram_id, author_name=me.name, now=now,
        text=body, photo_file_id=photo, staff_chat_id=message.chat.id, staff_message_id=message.message_id,
        delivered=failure is None,
    )
    if failure is not None:
        await message.reply(stexts("conversations/not_delivered", reason=failure))
        return
    # A reaction that fails never fails the update (bot.pipeline: cosmetic calls).
    await bot.set_message_reaction(message.chat.id, message.message_id, [ReactionTypeEmoji(emoji="👍")])


# ----- make it a complaint ---------------------------------------------------------------------

async def conversation_button(callback: CallbackQuery, callback_data: ConversationCallback, texts: Texts, role: Role,
                              repos: Repos, clock: Clock, settings: Settings, renderer: TextRenderer, bot: Bot,
                              staff_forum: StaffForum | None = None) -> None:
    if role < Role.STAFF:
        await callback.answer(texts("tickets/staff_only.txt"), show_alert=True)
        return
    conversation = await _repo(repos).get(callback_data.conversation)
    if conversation is None or not isinstance(callback.message, Message):
        await callback.answer(texts("common/button_expired.txt"))
        return
    stexts = texts  # the buttons of a message in the staff chat: its language
    if conversation.status != "open":
        await callback.answer(texts("conversations/already_complaint.txt", ticket_id=conversation.ticket_id),
                              show_alert=True)
        await set_buttons(callback.message, None)
        return
    if callback_data.action in ("complaint", "back"):
        await callback.answer()
        mode = "categories" if callback_data.action == "complaint" else "main"
        await set_buttons(callback.message, _markup(stexts, conversation, mode))
        return
    if callback_data.action != "cat" or callback_data.value not in ticket_rules.CATEGORIES:
        await callback.answer(texts("common/button_expired.txt"))
        return
    await _make_complaint(callback, conversation, callback_data.value, texts=texts, repos=repos, clock=clock,
                          settings=settings, renderer=renderer, bot=bot, staff_forum=staff_forum)


async def _make_complaint(callback: CallbackQuery, conversation: Conversation, category: str, *, texts: Texts,
                          repos: Repos, clock: Clock, settings: Settings, renderer: TextRenderer, bot: Bot,
                          staff_forum: StaffForum | None) -> None:
    assert isinstance(callback.message, Message)
    conversations = _repo(repos)
    customer = await repos.customers.get(conversation.customer_id)
    if customer is None or customer.is_forgotten:
        await callback.answer(texts("common/button_expired.txt"))
        return
    now = clock.now()
    messages = await conversations.messages(conversation.id)
    said = [m.text for m in messages if m.direction == "in" and m.text]
    description = "\n\n".join(said)[:ticket_rules.DESCRIPTION_MAX] or "—"
    photos = [m.photo_file_id for m in messages if m.direction == "in" and m.photo_file_id][:ticket_rules.PHOTOS_MAX]
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
        await callback.answer(texts("conversations/already_complaint.txt", ticket_id=conversation.ticket_id),
                              show_alert=True)
        return
    me = actor_of(callback.from_user)
    await repos.tickets.add_event(ticket, "from_conversation", me, now, detail=str(conversation.id))
    # The conversation's messages in the staff chat now answer through the ticket.
    for m in messages:
        if m.staff_message_id is not None:
            await repos.tickets.add_message(
                ticket, direction=m.direction,
                actor=customer_actor(customer) if m.direction == "in" else ticket_rules.Actor(
                    "staff", m.author_telegram_id, m.author_name or ""),
                now=m.created_at, text=m.text, photo_file_id=m.photo_file_id, staff_chat_id=m.staff_chat_id,
                staff_message_id=m.staff_message_id, delivered=m.delivered,
            )
    await callback.answer()
    await set_buttons(callback.message, None)
    if created:
        await post_card(bot, staff_forum, repos, renderer, settings, ticket, customer, now)
    await callback.message.reply(texts("conversations/made_complaint", ticket=ticket, name=me.name))
    await send_to_customer(bot, repos, customer, now, text=customer_texts(renderer, customer)(
        "conversations/became_complaint", ticket=ticket, targets=ticket_rules.targets(ticket.priority, settings.sla),
        business_hours=settings.sla.schedule is not None))


__all__ = ["CONTINUE_FOR", "ConversationCallback", "build_router"]
