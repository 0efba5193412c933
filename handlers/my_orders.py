"""/orders: the customer's last orders, "Order again" in one tap, and Cancel
while an order is still new."""

from __future__ import annotations

from typing import Any

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardButton, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.callback_ids import RowId
from bot.clock import Clock
from bot.config import Settings
from bot.dialogs import Turn, set_buttons
from bot.filters import private_router
from bot.menu import MenuCallback
from bot.rules import orders as rules
from bot.rules.tickets import Actor
from bot.staff_language import staff_chat_language
from bot.texts import TextRenderer, Texts
from handlers import ordering
from handlers.order_desk import refresh_card, status_label, tell_staff
from handlers.ordering import begin_reorder
from storage.models import Customer, Order
from storage.repositories import Repos


def build_router() -> Router:
    """A new router with this module's handlers, tried in this order (bot.app.build_routers places it)."""
    router = private_router("my-orders")
    router.message.register(orders_command, Command("orders"))
    router.callback_query.register(orders_from_menu, MenuCallback.filter(F.action == "orders"))
    router.callback_query.register(press_order_button, MyOrderCallback.filter())
    return router


ITEMS_SHOWN = 3  # per order in the list; the rest are counted


class MyOrderCallback(CallbackData, prefix="myo"):
    action: str  # again | cancel | cancel_yes | cancel_no
    order_id: RowId


def _view(order: Order, texts: Texts, renderer: TextRenderer) -> dict[str, Any]:
    items = [f"{item.quantity} × {item.product.name(texts.lang)}" for item in order.items]
    return {
        "number": order.id, "created_at": order.created_at, "status": status_label(renderer, texts.lang, order.status),
        "total": order.total, "products": items[:ITEMS_SHOWN], "more": max(len(items) - ITEMS_SHOWN, 0),
    }


async def show_orders(message: Message, *, texts: Texts, repos: Repos, settings: Settings, renderer: TextRenderer,
                      customer: Customer | None) -> None:
    if customer is None:
        await message.answer(texts("common/register_first"))
        return
    orders = await repos.orders.recent(customer.id, rules.HISTORY_LIMIT)
    if not orders:
        builder = InlineKeyboardBuilder()
        builder.button(text=texts.button("menu_order"), callback_data=MenuCallback(action="order"))
        await message.answer(texts("orders/none"), reply_markup=builder.as_markup())
        return
    builder = InlineKeyboardBuilder()
    for order in orders:
        row = [InlineKeyboardButton(text=texts.button("order_again", number=order.id),
                                    callback_data=MyOrderCallback(action="again", order_id=order.id).pack())]
        if rules.can_change(order.status, rules.CANCELLED, by_customer=True):
            row.append(InlineKeyboardButton(text=texts.button("order_cancel", number=order.id),
                                            callback_data=MyOrderCallback(action="cancel", order_id=order.id).pack()))
        builder.row(*row)
    await message.answer(
        texts("orders/list", orders=[_view(o, texts, renderer) for o in orders],
              tz=customer.timezone or settings.default_timezone),
        reply_markup=builder.as_markup(),
    )


async def orders_command(message: Message, texts: Texts, repos: Repos, settings: Settings, renderer: TextRenderer,
                         customer: Customer | None) -> None:
    await show_orders(message, texts=texts, repos=repos, settings=settings, renderer=renderer, customer=customer)


async def orders_from_menu(callback: CallbackQuery, texts: Texts, repos: Repos, settings: Settings,
                           renderer: TextRenderer, customer: Customer | None) -> None:
    await callback.answer()
    if isinstance(callback.message, Message):
        await show_orders(callback.message, texts=texts, repos=repos, settings=settings, renderer=renderer,
                          customer=customer)


async def press_order_button(callback: CallbackQuery, callback_data: MyOrderCallback, turn: Turn, texts: Texts,
                             repos: Repos, clock: Clock, settings: Settings, renderer: TextRenderer, bot: Bot,
                             customer: Customer | None) -> None:
    message = callback.message
    order = await repos.orders.of_customer(callback_data.order_id, customer.id) if customer else None
    if order is None or customer is None or not isinstance(message, Message):
        # Someone else's order and no order at all get the same answer.
        await callback.answer(texts("orders/not_found.txt"), show_alert=True)
        return
    action = callback_data.action
    if action == "again":
        if await turn.busy(callback, unless=ordering.dialog):  # an order under way starts again
            return
        await callback.answer()
        await begin_reorder(message, turn, texts=texts, repos=repos, customer=customer, order_id=order.id)
        return
    if action not in ("cancel", "cancel_yes", "cancel_no"):
        await turn.expired(callback)
        return
    if action == "cancel_no":
        await callback.answer()
        await set_buttons(message)
        await message.answer(texts("orders/kept", number=order.id))
        return
    if not rules.can_change(order.status, rules.CANCELLED, by_customer=True):
        await callback.answer(texts("orders/cannot_cancel.txt", number=order.id,
                                    status=status_label(renderer, texts.lang, order.status)), show_alert=True)
        return
    await callback.answer()
    if action == "cancel":
        builder = InlineKeyboardBuilder()
        builder.button(text=texts.button("order_cancel_yes"),
                       callback_data=MyOrderCallback(action="cancel_yes", order_id=order.id))
        builder.button(text=texts.button("order_cancel_no"),
                       callback_data=MyOrderCallback(action="cancel_no", order_id=order.id))
        await message.answer(texts("orders/cancel_confirm", number=order.id, total=order.total),
                             reply_markup=builder.as_markup())
        return
    await set_buttons(message)
    await _cancel(message, order, customer, texts=texts, repos=repos, clock=clock, settings=settings,
                  renderer=renderer, bot=bot)


async def _cancel(message: Message, order: Order, customer: Customer, *, texts: Texts, repos: Repos, clock: Clock,
                  settings: Settings, renderer: TextRenderer, bot: Bot) -> None:
    actor = Actor("customer", customer.telegram_id, (customer.name or "")[:64] or None)
    won = await repos.orders.change_status(order.id, rules.NEW, rules.CANCELLED, actor, clock.now())
    fresh = await repos.orders.get(order.id)
    assert fresh is not None
    if not won:
        # Staff moved it first: it is on its way and can no longer be cancelled here.
        await message.answer(texts("orders/cannot_cancel", number=fresh.id,
                                   status=status_label(renderer, texts.lang, fresh.status)))
        return
    await message.answer(texts("orders/cancelled_by_you", number=fresh.id))
    await refresh_card(bot, settings, renderer, repos, fresh, customer)
    await tell_staff(bot, settings, renderer.render(
        await staff_chat_language(repos, settings), "orders/desk/customer_cancelled", number=fresh.id,
        name=customer.name), fresh)
