"""The staff order desk: a card per order in the staff chat, with status buttons.

The card shows the order's current status and who changed it when; its
buttons move the order (Accept, Out for delivery, Delivered, Cancel). Every
move is a compare-and-set on the status the card showed, so when two staff
press at once one wins and the other is told what happened. Cancel asks the
staff member for a reason first (a small dialog of that person in the group).
"""

from __future__ import annotations

import logging
from typing import Any

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramForbiddenError
from aiogram.filters import StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message, ReplyParameters, User
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.callback_ids import RowId
from bot.clock import Clock
from bot.config import Settings
from bot.dialogs import TYPED, Dialog, Turn
from bot.pipeline import at_once
from bot.roles import InStaffPlace, Role
from bot.rules import orders as rules
from bot.rules.customer_file import Invalid
from bot.rules.tickets import Actor
from bot.staff_language import chat_language, staff_chat_language
from bot.texts import TextRenderer, Texts
from storage.models import Customer, Order
from storage.repositories import Repos

log = logging.getLogger(__name__)


def build_router() -> Router:
    """A new router with this module's handlers, tried in this order (bot.app.build_routers places it)."""
    router = Router(name="order-desk")
    # Its buttons pressed outside the staff place are expired buttons (the fallback answers them).
    router.callback_query.register(press_status, DeskCallback.filter(F.action.in_(STAFF_ACTIONS)), InStaffPlace())
    router.message.register(process_reason, StateFilter(DeskForm.reason), TYPED)
    router.callback_query.register(press_reason, DeskCallback.filter(F.action.in_({"reason", "keep"})), InStaffPlace())
    return router


QUICK_REASONS = ("out_of_stock", "customer_asked", "cannot_deliver")
STAFF_ACTIONS = (rules.ACCEPTED, rules.OUT_FOR_DELIVERY, rules.DELIVERED, rules.CANCELLED)


class DeskCallback(CallbackData, prefix="desk"):
    action: str  # accepted | out_for_delivery | delivered | cancelled | reason | keep
    order_id: RowId
    expected: str = ""  # the status the card showed when it was drawn
    value: str = ""  # a quick reason's code


class DeskForm(StatesGroup):
    reason = State()


# ----- showing an order ---------------------------------------------------------

def status_label(renderer: TextRenderer, lang: str, status: str) -> str:
    return renderer.render(lang, "orders/status_name.txt", status=status)


def line_views(order: Order, lang: str) -> list[dict[str, Any]]:
    return [
        {"name": item.product.name(lang), "unit": item.product.unit_for(lang), "quantity": item.quantity,
         "price": item.unit_price, "total": rules.line_total(item.quantity, item.unit_price)}
        for item in order.items
    ]


def history_views(renderer: TextRenderer, lang: str, order: Order,
                  customer: Customer | None = None) -> list[dict[str, Any]]:
    """The order's placing (the order row itself) and then each status change."""
    placed = {"status": status_label(renderer, lang, "new"), "role": "customer",
              "by": customer.name if customer is not None else None, "at": order.created_at, "reason": None}
    return [placed, *(
        {"status": status_label(renderer, lang, change.to_status), "role": change.actor_role,
         "by": change.actor_name, "at": change.created_at, "reason": change.reason}
        for change in order.history
    )]


def card_view(renderer: TextRenderer, settings: Settings, order: Order, customer: Customer | None,
              lang: str) -> tuple[str, InlineKeyboardMarkup | None]:
    """The card and its buttons in ``lang`` (the language of the chat it is in). For a customer who
    asked to be forgotten it keeps the order (items, quantities, total, status, history) and leaves out
    who they are, where it went and what they typed."""
    text = renderer.render(
        lang, "orders/desk/card", order=order, customer=customer, lines=line_views(order, lang),
        status=status_label(renderer, lang, order.status), history=history_views(renderer, lang, order, customer),
        tz=settings.default_timezone,
    )
    steps = rules.next_steps(order.status)
    if not steps:
        return text, None
    builder = InlineKeyboardBuilder()
    for step in steps:
        builder.button(text=renderer.render(lang, f"buttons/desk_{step}"),
                       callback_data=DeskCallback(action=step, order_id=order.id, expected=order.status))
    builder.adjust(2)
    return text, builder.as_markup()


async def post_card(bot: Bot, settings: Settings, renderer: TextRenderer, repos: Repos, order: Order,
                    customer: Customer | None) -> None:
    """Post a new order to the staff chat (skipped when none is configured)."""
    if settings.staff_chat_id is None:
        return
    text, markup = card_view(renderer, settings, order, customer, await staff_chat_language(repos, settings))
    try:
        sent = await at_once(bot.send_message(settings.staff_chat_id, text, reply_markup=markup))
    except TelegramAPIError as exc:
        log.warning("could not post order %s to the staff chat: %s", order.id, exc)
        return
    await repos.orders.set_card(order, sent.chat.id, sent.message_id)


async def refresh_card(bot: Bot, settings: Settings, renderer: TextRenderer, repos: Repos, order: Order,
                       customer: Customer | None, fallback: Message | None = None) -> None:
    """Redraw the card so it shows the order as it is now (in its chat's language)."""
    chat_id, message_id = order.staff_chat_id, order.staff_message_id
    if (chat_id is None or message_id is None) and fallback is not None:
        chat_id, message_id = fallback.chat.id, fallback.message_id
    if chat_id is None or message_id is None:
        return
    text, markup = card_view(renderer, settings, order, customer, await chat_language(repos, settings, chat_id))
    try:
        await bot.edit_message_text(text=text, chat_id=chat_id, message_id=message_id, reply_markup=markup)
    except TelegramBadRequest as exc:
        if "not modified" not in str(exc):
            log.warning("could not redraw the card of order %s: %s", order.id, exc)
    except TelegramAPIError as exc:
        log.warning("could not redraw the card of order %s: %s", order.id, exc)


async def tell_staff(bot: Bot, settings: Settings, text: str, order: Order) -> None:
    """A line in the staff chat, as a reply to the order's card when there is one."""
    if settings.staff_chat_id is None:
        return
    reply = None
    if order.staff_message_id is not None and order.staff_chat_id == settings.staff_chat_id:
        reply = ReplyParameters(message_id=order.staff_message_id, allow_sending_without_reply=True)
    try:
        await bot.send_message(settings.staff_chat_id, text, reply_parameters=reply)
    except TelegramAPIError as exc:
        log.warning("could not tell the staff chat about order %s: %s", order.id, exc)


async def notify_customer(order: Order, customer: Customer | None, *, bot: Bot, settings: Settings,
                          renderer: TextRenderer, repos: Repos, clock: Clock, reason_code: str | None = None) -> bool:
    """Tell the customer, in their language, what became of their order.

    A customer who blocked the bot is marked unreachable and staff are told.
    """
    if customer is None or customer.telegram_id is None:
        return False
    lang = customer.language
    reason = order.cancel_reason
    if reason_code is not None:
        reason = renderer.render(lang, f"orders/reasons/{reason_code}.txt")
    text = renderer.render(
        lang, "orders/status_changed", number=order.id, status=order.status,
        status_label=status_label(renderer, lang, order.status), reason=reason, total=order.total,
    )
    try:
        await at_once(bot.send_message(customer.telegram_id, text))
    except (TelegramForbiddenError, TelegramBadRequest) as exc:
        log.info("customer %s not told about order %s: %s", customer.id, order.id, exc)
        await repos.customers.mark_unreachable(customer.id, clock.now())
        await tell_staff(bot, settings, renderer.render(await staff_chat_language(repos, settings),
                                                        "orders/desk/customer_unreachable", number=order.id,
                                                        blocked=True), order)
        return False
    except TelegramAPIError as exc:
        log.warning("customer %s not told about order %s: %s", customer.id, order.id, exc)
        await tell_staff(bot, settings, renderer.render(await staff_chat_language(repos, settings),
                                                        "orders/desk/customer_unreachable", number=order.id,
                                                        blocked=False), order)
        return False
    await repos.customers.mark_reachable(customer)
    return True


def _actor(user: User) -> Actor:
    return Actor("staff", user.id, user.full_name[:64])


def _last_change(renderer: TextRenderer, settings: Settings, lang: str, order: Order) -> dict[str, Any]:
    change = order.history[-1] if order.history else None
    return {
        "number": order.id, "status": status_label(renderer, lang, order.status),
        "by": change.actor_name if change else None, "role": change.actor_role if change else None,
        "at": change.created_at if change else None, "tz": settings.default_timezone,
    }


# ----- status buttons ------------------------------------------------------------

async def press_status(callback: CallbackQuery, callback_data: DeskCallback, turn: Turn, state: FSMContext,
                       texts: Texts, role: Role, repos: Repos, clock: Clock, settings: Settings,
                       renderer: TextRenderer, bot: Bot) -> None:
    if role < Role.STAFF:
        await callback.answer(texts("orders/desk/staff_only.txt"), show_alert=True)
        return
    card = callback.message if isinstance(callback.message, Message) else None
    order = await repos.orders.get(callback_data.order_id)
    if order is None:
        await turn.expired(callback)
        return
    customer = await repos.customers.get(order.customer_id)
    target, expected = callback_data.action, callback_data.expected
    if order.status != expected or not rules.can_change(expected, target):
        # Someone else moved it first (or the card is old): show the truth.
        await callback.answer(texts("orders/desk/already.txt", **_last_change(renderer, settings, texts.lang, order)),
                              show_alert=True)
        await refresh_card(bot, settings, renderer, repos, order, customer, card)
        return
    if target == rules.CANCELLED:
        if await turn.busy(callback, unless=reason_dialog):  # another order's reason: this one's now
            return
        await callback.answer()
        await state.set_state(DeskForm.reason)
        await state.update_data(desk={"order": order.id, "expected": expected})
        if card is not None:
            await turn.ask(card, DeskForm.reason)
        return
    won = await repos.orders.change_status(order.id, expected, target, _actor(callback.from_user), clock.now(),
                                           order=order)
    if not won:  # someone else moved it meanwhile: show the truth
        order = await repos.orders.get(order.id)
        assert order is not None
        await callback.answer(texts("orders/desk/already.txt", **_last_change(renderer, settings, texts.lang, order)),
                              show_alert=True)
        await refresh_card(bot, settings, renderer, repos, order, customer, card)
        return
    await callback.answer(texts("orders/desk/done.txt", number=order.id,
                                status=status_label(renderer, texts.lang, order.status)))
    await refresh_card(bot, settings, renderer, repos, order, customer, card)
    await notify_customer(order, customer, bot=bot, settings=settings, renderer=renderer, repos=repos, clock=clock)


# ----- cancelling with a reason --------------------------------------------------

async def ask_reason(message: Message, texts: Texts, state: FSMContext, event_from_user: User | None = None) -> None:
    user = event_from_user
    desk = (await state.get_data()).get("desk") or {}
    order_id = int(desk.get("order", 0))
    builder = InlineKeyboardBuilder()
    for code in QUICK_REASONS:
        builder.button(text=texts.button(f"desk_reason_{code}"),
                       callback_data=DeskCallback(action="reason", order_id=order_id, value=code))
    builder.button(text=texts.button("desk_keep"), callback_data=DeskCallback(action="keep", order_id=order_id))
    builder.adjust(1)
    await message.answer(texts("orders/desk/ask_reason", number=order_id, name=user.first_name if user else ""),
                         reply_markup=builder.as_markup())


# Cancel on a card asks the staff member who pressed it for a reason: one question, answered by typing or by a
# quick reason's button. Those buttons carry the order (DeskCallback, not step buttons), so one left on the
# question of an earlier Cancel is stale; press_reason checks them.
reason_dialog = Dialog(DeskForm, prefix="dskr", ask={DeskForm.reason: ask_reason}, errors="orders/errors")


async def _reason_dialog(state: FSMContext) -> dict[str, Any] | None:
    if await state.get_state() != DeskForm.reason.state:
        return None
    desk = (await state.get_data()).get("desk")
    return desk if isinstance(desk, dict) and desk.get("order") else None


async def _cancel_with_reason(message: Message, user: User, reason: str, code: str | None, *, turn: Turn,
                              texts: Texts, repos: Repos, clock: Clock, settings: Settings, renderer: TextRenderer,
                              bot: Bot) -> None:
    desk = await _reason_dialog(turn.state) or {}
    await turn.end()
    order_id, expected = int(desk.get("order", 0)), str(desk.get("expected", ""))
    won = await repos.orders.change_status(order_id, expected, rules.CANCELLED, _actor(user), clock.now(), reason)
    order = await repos.orders.get(order_id)
    if order is None:
        await message.answer(texts("orders/not_found"))
        return
    customer = await repos.customers.get(order.customer_id)
    await refresh_card(bot, settings, renderer, repos, order, customer)
    if not won:
        await message.answer(texts("orders/desk/changed_meanwhile", **_last_change(renderer, settings, texts.lang,
                                                                                   order)))
        return
    told = await notify_customer(order, customer, bot=bot, settings=settings, renderer=renderer, repos=repos,
                                 clock=clock, reason_code=code)
    await message.answer(texts("orders/desk/cancelled_done", number=order.id, reason=reason, told=told))


async def process_reason(message: Message, event_from_user: User, turn: Turn, texts: Texts, role: Role, repos: Repos,
                         clock: Clock, settings: Settings, renderer: TextRenderer, bot: Bot) -> None:
    if role < Role.STAFF:
        return
    try:
        reason = rules.parse_reason(message.text or "")
    except Invalid as error:
        await turn.reject(message, error)  # orders/errors/<code>, and the question again
        return
    await _cancel_with_reason(message, event_from_user, reason, None, turn=turn, texts=texts, repos=repos, clock=clock,
                              settings=settings, renderer=renderer, bot=bot)


async def press_reason(callback: CallbackQuery, callback_data: DeskCallback, turn: Turn, texts: Texts, role: Role,
                       repos: Repos, clock: Clock, settings: Settings, renderer: TextRenderer, bot: Bot) -> None:
    desk = await _reason_dialog(turn.state)
    # Only the staff member who pressed Cancel, while still asked, for this order (callback data can be forged).
    fits = (role >= Role.STAFF and desk is not None and int(desk["order"]) == callback_data.order_id
            and (callback_data.action != "reason" or callback_data.value in QUICK_REASONS))
    press = await turn.choice(callback, fits)  # answered; the question loses its buttons
    if press is None:
        return
    if callback_data.action == "keep":
        await turn.end()
        await press.message.answer(texts("orders/desk/kept", number=callback_data.order_id))
        return
    # Staff (and the card) read the staff chat's wording; the customer gets orders/reasons/<code> in theirs.
    lang = await staff_chat_language(repos, settings)
    reason = renderer.render(lang, f"buttons/desk_reason_{callback_data.value}")
    await _cancel_with_reason(press.message, callback.from_user, reason, callback_data.value, turn=turn, texts=texts,
                              repos=repos, clock=clock, settings=settings, renderer=renderer, bot=bot)
