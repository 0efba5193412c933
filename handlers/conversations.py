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
same way (``bot.services.relay.pass_on_comment``): to the ticket it is about
or the customer's open ticket when there is one, else into a conversation
about the survey, marked with the rating.

Staff answer with a Telegram reply to any message of the conversation (the
sandbox's ``:reply``); the answer reaches the customer. A conversation is not
a complaint: its first message carries "Make it a complaint" (then a
category), which opens a ticket with the customer's words, posts its card,
and from then on the conversation's messages answer through the ticket.

The use cases are in ``bot.services.relay``; this module takes the updates.
"""

from __future__ import annotations

from typing import Any

from aiogram import Bot, F, Router
from aiogram.filters import BaseFilter, StateFilter
from aiogram.types import CallbackQuery, Message, ReactionTypeEmoji

from bot.clock import Clock
from bot.config import Settings
from bot.dialogs import set_buttons
from bot.filters import When
from bot.roles import InStaffPlace, Role
from bot.rules import tickets as ticket_rules
from bot.services import relay
from bot.services.relay import ConversationCallback, Words, conversation_markup
from bot.services.tickets import StaffForum, actor_of, post_card
from bot.texts import TextRenderer, Texts
from storage.models import Conversation, Customer
from storage.repositories import Repos


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


# ----- the customer writes ---------------------------------------------------------------------

class IsCustomer(BaseFilter):
    """A registered customer (not staff or a manager writing to the bot)."""

    async def __call__(self, message: Message, customer: Customer | None = None, role: Role = Role.CUSTOMER,
                       **_: Any) -> bool:
        return customer is not None and customer.telegram_id is not None and role == Role.CUSTOMER


async def customer_writes(message: Message, customer: Customer, texts: Texts, repos: Repos, clock: Clock,
                          settings: Settings, renderer: TextRenderer, bot: Bot) -> None:
    await relay.to_conversation(bot, repos, renderer, settings, clock.now(), customer, Words.of(message))
    await message.answer(texts("conversations/passed_on"))


# ----- staff answer ----------------------------------------------------------------------------

class ConversationReply(BaseFilter):
    """A staff message in the staff chat replying to a conversation's message: passes ``conversation``."""

    async def __call__(self, message: Message, settings: Settings, repos: Repos, role: Role = Role.CUSTOMER,
                       **_: Any) -> bool | dict[str, Any]:
        if settings.staff_chat_id is None or message.chat.id != settings.staff_chat_id:
            return False
        if role < Role.STAFF or (message.text or "").startswith("/") or message.reply_to_message is None:
            return False
        conversation = await repos.conversations.by_staff_message(message.chat.id, message.reply_to_message.message_id)
        return {"conversation": conversation} if conversation is not None else False


async def staff_replies(message: Message, conversation: Conversation, repos: Repos, clock: Clock,
                        renderer: TextRenderer, bot: Bot, texts: Texts) -> None:
    stexts = texts  # in the staff chat: its language
    if not message.text and not message.photo:
        await message.reply(stexts("conversations/reply_unsupported"))
        return
    assert message.from_user is not None
    failure = await relay.staff_reply_in_conversation(bot, repos, renderer, clock.now(), conversation,
                                                      actor_of(message.from_user), Words.of(message), message.chat.id)
    if failure is not None:
        await message.reply(stexts("conversations/not_delivered", reason=failure))
        return
    # A reaction that fails never fails the update (bot.pipeline: cosmetic calls).
    # https://core.telegram.org/bots/api#setmessagereaction
    await bot.set_message_reaction(message.chat.id, message.message_id, [ReactionTypeEmoji(emoji="👍")])


# ----- make it a complaint ---------------------------------------------------------------------

async def conversation_button(callback: CallbackQuery, callback_data: ConversationCallback, texts: Texts, role: Role,
                              repos: Repos, clock: Clock, settings: Settings, renderer: TextRenderer, bot: Bot,
                              staff_forum: StaffForum | None = None) -> None:
    if role < Role.STAFF:
        await callback.answer(texts("tickets/staff_only.txt"), show_alert=True)
        return
    conversation = await repos.conversations.get(callback_data.conversation)
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
        await set_buttons(callback.message, conversation_markup(stexts, conversation, mode))
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
    now = clock.now()
    me = actor_of(callback.from_user)
    complaint = await relay.make_complaint(repos, settings, now, conversation, category, me)
    if complaint == "gone":
        await callback.answer(texts("common/button_expired.txt"))
        return
    if isinstance(complaint, str):  # already a complaint
        await callback.answer(texts("conversations/already_complaint.txt", ticket_id=conversation.ticket_id),
                              show_alert=True)
        return
    await callback.answer()
    await set_buttons(callback.message, None)
    if complaint.created:
        await post_card(bot, staff_forum, repos, renderer, settings, complaint.ticket, complaint.customer, now)
    await callback.message.reply(texts("conversations/made_complaint", ticket=complaint.ticket, name=me.name))
    await relay.tell_customer_of_complaint(bot, repos, renderer, settings, now, complaint)
