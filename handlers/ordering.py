"""The /order dialog: category → product → quantity → more or checkout →
address → note → summary → Confirm; and :func:`begin_reorder`, which fills
the cart from an earlier order (or a care reminder) and goes straight to the
summary.

Everything the dialog collects lives in dialog data under ``order`` (so it
survives a restart). Prices are never kept there: the summary reads today's
prices, remembers what it showed (``quote``), and Confirm creates the order
only if that is still true. The Confirm button carries the order's
idempotency key: a double press or a replayed update finds the order made by
the first one — in dialog data, where the ended dialog keeps the placed
order's key and number (``placed``); an older order's button, in the
database.
"""

from __future__ import annotations

import math
import secrets
from typing import Any

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, StateFilter
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.callback_ids import parse_row_id
from bot.clock import Clock
from bot.config import Settings
from bot.dialogs import TYPED, Dialog, StepButton, Turn, set_buttons
from bot.filters import private_router
from bot.menu import MenuCallback
from bot.pipeline import at_once
from bot.rules import customer_file
from bot.rules import orders as rules
from bot.rules.customer_file import Invalid
from bot.texts import TextRenderer, Texts
from handlers.order_desk import post_card
from storage.models import Customer, Product
from storage.repositories import Repos


def build_router() -> Router:
    """A new router with this module's handlers, tried in this order (bot.app.build_routers places it)."""
    router = private_router("ordering")
    router.message.register(order_command, Command("order"))
    router.callback_query.register(order_from_menu, MenuCallback.filter(F.action == "order"))
    router.message.register(process_quantity, StateFilter(OrderForm.quantity), TYPED)
    router.message.register(process_address, StateFilter(OrderForm.address), TYPED)
    router.message.register(process_note, StateFilter(OrderForm.note), TYPED)
    router.callback_query.register(process_button, dialog.Button.filter())
    return router


class OrderForm(StatesGroup):
    category = State()
    product = State()
    quantity = State()
    more = State()
    address = State()
    save_address = State()
    note = State()
    confirm = State()


# Dialog data kept when the order is placed: its Confirm key and number (a second press is answered from it).
PLACED = "placed"


def _cart(od: dict[str, Any]) -> list[list[int]]:
    return [[int(pid), int(qty)] for pid, qty in od.get("cart") or []]


def _line(product: Product, quantity: int, lang: str) -> dict[str, Any]:
    return {"name": product.name(lang), "unit": product.unit_for(lang), "quantity": quantity, "price": product.price,
            "total": rules.line_total(quantity, product.price)}


async def _priced(repos: Repos, cart: list[list[int]]) -> tuple[list[tuple[Product, int]], list[Product]]:
    """The cart at today's prices, and the products that cannot be ordered any more."""
    products = await repos.products.by_ids(pid for pid, _ in cart)
    lines, gone = [], []
    for pid, quantity in cart:
        product = products.get(pid)
        if product is None:
            continue
        if product.active:
            lines.append((product, quantity))
        else:
            gone.append(product)
    return lines, gone


# ----- asking each question ---------------------------------------------------

async def ask_category(message: Message, texts: Texts, turn: Turn, repos: Repos) -> None:
    od = await dialog.values(turn.state)
    categories = await repos.products.categories()
    if not categories:
        await turn.end()
        await message.answer(texts("orders/catalog_empty"))
        return
    od["cats"] = categories
    cart = _cart(od)
    if len(categories) == 1:
        od["cat"], od["page"] = 0, 0
        await dialog.save(turn.state, od)
        await turn.ask(message, OrderForm.product)
        return
    await dialog.save(turn.state, od)
    builder = InlineKeyboardBuilder()
    for index, category in enumerate(categories):
        builder.button(text=texts.button("order_category", category=category),
                       callback_data=dialog.button("cat", "category", index))
    builder.adjust(2)
    if cart:
        builder.row(InlineKeyboardButton(text=texts.button("order_checkout", count=len(cart)),
                                         callback_data=dialog.button("checkout", "category")))
    await message.answer(texts("orders/ask_category", cart_count=len(cart)), reply_markup=builder.as_markup())


async def _product_view(texts: Texts, turn: Turn, repos: Repos) -> tuple[str, InlineKeyboardMarkup] | None:
    """The product list of the chosen category at the remembered page; None when it is empty."""
    od = await dialog.values(turn.state)
    categories: list[str] = od.get("cats") or []
    index = int(od.get("cat", -1))
    if not 0 <= index < len(categories):
        return None
    category = categories[index]
    products = await repos.products.in_category(category)
    if not products:
        return None
    pages = math.ceil(len(products) / rules.PAGE_SIZE)
    page = min(max(int(od.get("page", 0)), 0), pages - 1)
    if page != od.get("page"):
        od["page"] = page
        await dialog.save(turn.state, od)
    builder = InlineKeyboardBuilder()
    for product in products[page * rules.PAGE_SIZE:(page + 1) * rules.PAGE_SIZE]:
        builder.row(InlineKeyboardButton(
            text=texts.button("order_product", name=product.name(texts.lang), unit=product.unit_for(texts.lang),
                              price=product.price),
            callback_data=dialog.button("prod", "product", product.id)))
    nav = []
    if page > 0:
        nav.append(InlineKeyboardButton(text=texts.button("order_prev"),
                                        callback_data=dialog.button("page", "product", page - 1)))
    if page < pages - 1:
        nav.append(InlineKeyboardButton(text=texts.button("order_next"),
                                        callback_data=dialog.button("page", "product", page + 1)))
    if nav:
        builder.row(*nav)
    last = []
    if len(categories) > 1:
        last.append(InlineKeyboardButton(text=texts.button("order_categories"),
                                         callback_data=dialog.button("back", "product")))
    cart = _cart(od)
    if cart:
        last.append(InlineKeyboardButton(text=texts.button("order_checkout", count=len(cart)),
                                         callback_data=dialog.button("checkout", "product")))
    if last:
        builder.row(*last)
    text = texts("orders/ask_product", category=texts.button("order_category", category=category),
                 page=page + 1, pages=pages)
    return text, builder.as_markup()


async def ask_product(message: Message, texts: Texts, turn: Turn, repos: Repos) -> None:
    view = await _product_view(texts, turn, repos)
    if view is None:  # the category emptied meanwhile: choose again
        await turn.ask(message, OrderForm.category)
        return
    text, markup = view
    await message.answer(text, reply_markup=markup)


async def _unavailable(message: Message, turn: Turn, texts: Texts, product: Product | None) -> None:
    await message.answer(texts("orders/unavailable", name=product.name(texts.lang) if product else None))
    await turn.ask(message, OrderForm.product)


async def ask_quantity(message: Message, texts: Texts, turn: Turn, repos: Repos) -> None:
    od = await dialog.values(turn.state)
    product = await repos.products.get(int(od.get("pid", 0)))
    if product is None or not product.active:
        await _unavailable(message, turn, texts, product)
        return
    in_cart = next((qty for pid, qty in _cart(od) if pid == product.id), 0)
    builder = InlineKeyboardBuilder()
    for amount in rules.QTY_QUICK:
        builder.button(text=str(amount), callback_data=dialog.button("qty", "quantity", amount))
    builder.button(text=texts.button("order_back"), callback_data=dialog.button("back", "quantity"))
    builder.adjust(len(rules.QTY_QUICK), 1)
    sent = await at_once(message.answer(
        texts("orders/ask_quantity", name=product.name(texts.lang), unit=product.unit_for(texts.lang),
              price=product.price, in_cart=in_cart, low=rules.QTY_MIN, high=rules.QTY_MAX),
        reply_markup=builder.as_markup(),
    ))
    await turn.remember_question(sent)


async def ask_more(message: Message, texts: Texts, turn: Turn, repos: Repos) -> None:
    od = await dialog.values(turn.state)
    lines, _ = await _priced(repos, _cart(od))
    builder = InlineKeyboardBuilder()
    builder.button(text=texts.button("order_add_more"), callback_data=dialog.button("more", "more"))
    builder.button(text=texts.button("order_checkout", count=len(lines)),
                   callback_data=dialog.button("checkout", "more"))
    await message.answer(
        texts("orders/cart", lines=[_line(p, q, texts.lang) for p, q in lines],
              total=rules.order_total((q, p.price) for p, q in lines)),
        reply_markup=builder.as_markup(),
    )


async def ask_address(message: Message, texts: Texts, turn: Turn, customer: Customer | None) -> None:
    saved = customer.address if customer else None
    markup = None
    if saved:
        builder = InlineKeyboardBuilder()
        builder.button(text=texts.button("order_saved_address", address=saved),
                       callback_data=dialog.button("saved", "address"))
        markup = builder.as_markup()
    sent = await at_once(message.answer(texts("orders/ask_address", saved=saved), reply_markup=markup))
    if markup is not None:
        await turn.remember_question(sent)


async def ask_save_address(message: Message, texts: Texts, turn: Turn, customer: Customer | None) -> None:
    od = await dialog.values(turn.state)
    builder = InlineKeyboardBuilder()
    builder.button(text=texts.button("yes"), callback_data=dialog.button("save", "save_address", "yes"))
    builder.button(text=texts.button("no"), callback_data=dialog.button("save", "save_address", "no"))
    await message.answer(
        texts("orders/ask_save_address", address=od.get("address"), saved=customer.address if customer else None),
        reply_markup=builder.as_markup(),
    )


async def ask_note(message: Message, texts: Texts, turn: Turn) -> None:
    builder = InlineKeyboardBuilder()
    builder.button(text=texts.button("skip"), callback_data=dialog.button("skip", "note"))
    sent = await at_once(message.answer(texts("orders/ask_note", limit=rules.NOTE_MAX),
                                        reply_markup=builder.as_markup()))
    await turn.remember_question(sent)


async def show_summary(message: Message, texts: Texts, turn: Turn, repos: Repos) -> None:
    """The order as it would be placed now, at today's prices, with Confirm."""
    od = await dialog.values(turn.state)
    lines, gone = await _priced(repos, _cart(od))
    if gone:
        await message.answer(texts("orders/removed", names=[p.name(texts.lang) for p in gone], unknown=0))
        od["cart"] = [[p.id, q] for p, q in lines]
    if not lines:
        od["cart"] = []
        await dialog.save(turn.state, od)
        await turn.ask(message, OrderForm.category)
        return
    if not od.get("address"):
        await dialog.save(turn.state, od)
        await turn.ask(message, OrderForm.address)
        return
    od.setdefault("key", secrets.token_hex(8))
    od["quote"] = [[p.id, q, p.price] for p, q in lines]
    await dialog.save(turn.state, od)
    builder = InlineKeyboardBuilder()
    builder.button(text=texts.button("order_confirm"), callback_data=dialog.button("confirm", "confirm", od["key"]))
    builder.button(text=texts.button("order_change_address"), callback_data=dialog.button("readdress", "confirm"))
    builder.button(text=texts.button("order_abort"), callback_data=dialog.button("abort", "confirm"))
    builder.adjust(1, 2)
    await message.answer(
        texts("orders/summary", lines=[_line(p, q, texts.lang) for p, q in lines],
              total=rules.order_total((q, p.price) for p, q in lines), address=od["address"], note=od.get("note")),
        reply_markup=builder.as_markup(),
    )


def _od(data: dict[str, Any]) -> dict[str, Any]:
    return data.get(dialog.key) or {}


def _has_cart(_value: str, data: dict[str, Any]) -> bool:
    return bool(_od(data).get("cart"))


def _row_id(value: str, _data: dict[str, Any]) -> bool:
    return parse_row_id(value) is not None


dialog = Dialog(
    OrderForm,
    prefix="ordr",
    key="order",
    ask={
        OrderForm.category: ask_category, OrderForm.product: ask_product, OrderForm.quantity: ask_quantity,
        OrderForm.more: ask_more, OrderForm.address: ask_address, OrderForm.save_address: ask_save_address,
        OrderForm.note: ask_note, OrderForm.confirm: show_summary,
    },
    # Which buttons belong to which step, and what their value must look like.
    buttons={
        # Ids within bounds (callback data can be forged): an oversized one is an expired button.
        ("cat", "category"): lambda value, data: value.isdigit() and int(value) < len(_od(data).get("cats") or []),
        ("page", "product"): _row_id,
        ("prod", "product"): _row_id,
        ("back", "product"): None,
        ("back", "quantity"): None,
        ("qty", "quantity"): lambda value, _data: value.isdigit(),
        ("more", "more"): None,
        ("checkout", "category"): _has_cart,
        ("checkout", "product"): _has_cart,
        ("checkout", "more"): _has_cart,
        ("saved", "address"): None,
        ("save", "save_address"): lambda value, _data: value in ("yes", "no"),
        ("skip", "note"): None,
        ("readdress", "confirm"): None,
        ("abort", "confirm"): None,
        ("confirm", "confirm"): lambda value, data: bool(value) and value == _od(data).get("key"),
    },
    errors="orders/errors",
)


# ----- starting -------------------------------------------------------------------

async def start_order(message: Message, turn: Turn, texts: Texts, customer: Customer | None) -> None:
    if customer is None:
        await message.answer(texts("common/register_first"))
        return
    await turn.begin(message, **{dialog.key: {"cart": [], "source": "dialog"}})
    await turn.ask(message, OrderForm.category)


async def order_command(message: Message, turn: Turn, texts: Texts, customer: Customer | None) -> None:
    await start_order(message, turn, texts, customer)


async def order_from_menu(callback: CallbackQuery, turn: Turn, texts: Texts, customer: Customer | None) -> None:
    message = await turn.start_by_button(callback)
    if message is not None:
        await start_order(message, turn, texts, customer)


async def begin_reorder(message: Message, turn: Turn, *, texts: Texts, repos: Repos, customer: Customer | None,
                        order_id: int | None = None, items: list[tuple[int, int]] | None = None,
                        source: str = "reorder", outbox_id: int | None = None) -> None:
    """Fill the cart with an earlier order's items (or ``items``) at today's prices.

    Products no longer sold are left out (and the customer is told). With a
    saved address the customer lands on the summary, one tap from Confirm;
    without one, the address is asked first. ``source`` is recorded on the
    order (``reorder``, or ``reminder``/``winback`` from the care engine) with
    the care message's ``outbox_id``. An order dialog under way starts again;
    another dialog must be finished first.
    """
    if customer is None:
        await message.answer(texts("common/register_first"))
        return
    if await turn.state.get_state() is not None and await turn.step(dialog) is None:
        await turn.interrupted(message)
        return
    wanted: dict[int, int] = {}
    if order_id is not None:
        order = await repos.orders.of_customer(order_id, customer.id)
        if order is None:
            await message.answer(texts("orders/not_found"))
            return
        pairs = [(item.product_id, item.quantity) for item in order.items]
    else:
        pairs = list(items or [])
    for pid, quantity in pairs:
        wanted[int(pid)] = min(wanted.get(int(pid), 0) + int(quantity), rules.QTY_MAX)
    cart = [[pid, qty] for pid, qty in wanted.items() if qty >= rules.QTY_MIN][:rules.MAX_CART_LINES]
    lines, gone = await _priced(repos, cart)
    known = {p.id for p, _ in lines} | {p.id for p in gone}
    missing = [pid for pid, _ in cart if pid not in known]
    if gone or missing:
        await message.answer(texts("orders/removed", names=[p.name(texts.lang) for p in gone],
                                   unknown=len(missing)))
    od: dict[str, Any] = {
        "cart": [[p.id, q] for p, q in lines], "source": source if source in rules.SOURCES else "reorder",
        "reorder_of": order_id, "outbox_id": outbox_id, "address": customer.address, "note": None,
    }
    await turn.begin(message, **{dialog.key: od})
    if not lines:
        await message.answer(texts("orders/reorder_nothing"))
        await turn.ask(message, OrderForm.category)
        return
    await turn.ask(message, OrderForm.confirm if customer.address else OrderForm.address)


# ----- typed answers ------------------------------------------------------------

async def _add(message: Message, turn: Turn, texts: Texts, repos: Repos, quantity: int) -> None:
    od = await dialog.values(turn.state)
    product = await repos.products.get(int(od.get("pid", 0)))
    if product is None or not product.active:
        await _unavailable(message, turn, texts, product)
        return
    try:
        od["cart"] = rules.add_to_cart(_cart(od), product.id, quantity)
    except Invalid as error:
        await turn.reject(message, error)
        return
    await dialog.save(turn.state, od)
    await turn.ask(message, OrderForm.more)


async def process_quantity(message: Message, turn: Turn, texts: Texts, repos: Repos) -> None:
    try:
        quantity = rules.parse_quantity(message.text or "")
    except Invalid as error:
        await turn.reject(message, error)
        return
    await turn.answered(message)
    await _add(message, turn, texts, repos, quantity)


async def _address_chosen(message: Message, turn: Turn, address: str, offer_save: bool) -> None:
    od = await dialog.values(turn.state)
    od["address"] = address
    await dialog.save(turn.state, od)
    if offer_save:
        await turn.ask(message, OrderForm.save_address)
        return
    await _after_address(message, turn)


async def _after_address(message: Message, turn: Turn) -> None:
    od = await dialog.values(turn.state)
    # From the summary's "Change address", or a reorder that had none: back to the summary.
    review = od.get("review") or od.get("source") != "dialog"
    await turn.ask(message, OrderForm.confirm if review else OrderForm.note)


async def process_address(message: Message, turn: Turn, customer: Customer | None) -> None:
    try:
        address = customer_file.parse_address(message.text or "")
    except Invalid as error:
        await turn.reject(message, error, area="errors")
        return
    await turn.answered(message)
    await _address_chosen(message, turn, address, offer_save=customer is not None and address != customer.address)


async def process_note(message: Message, turn: Turn) -> None:
    try:
        note = rules.parse_note(message.text or "")
    except Invalid as error:
        await turn.reject(message, error)
        return
    await turn.answered(message)
    od = await dialog.values(turn.state)
    od["note"] = note
    await dialog.save(turn.state, od)
    await turn.ask(message, OrderForm.confirm)


# ----- buttons ------------------------------------------------------------------

async def process_button(callback: CallbackQuery, callback_data: StepButton, turn: Turn, texts: Texts, repos: Repos,
                         clock: Clock, settings: Settings, renderer: TextRenderer, bot: Bot,
                         customer: Customer | None) -> None:
    action, value = callback_data.action, callback_data.value
    state = turn.state
    if action == "confirm" and value:
        od = await dialog.values(state)
        if not (await turn.step(dialog) == "confirm" and value == od.get("key")):
            # Not the Confirm of the order being placed: a double press, the same update again, or an older order's.
            number = await _placed_number(turn, repos, customer, value)
            await callback.answer(texts("orders/already_placed.txt", number=number) if number is not None
                                  else texts("common/button_expired.txt"))
            return
    if customer is None:
        await turn.expired(callback)
        return
    press = await turn.press(callback, callback_data, accept=False)
    if press is None:
        return
    message, step = press.message, press.step
    od = await dialog.values(state)
    if action == "page":
        # Turning a page redraws the same message.
        od["page"] = int(value) if value.isdigit() else 0
        await dialog.save(state, od)
        await press.accept(take_buttons=False)
        view = await _product_view(texts, turn, repos)
        if view is None:
            await set_buttons(message)
            await turn.ask(message, OrderForm.category)
            return
        try:
            await message.edit_text(view[0], reply_markup=view[1])
        except TelegramBadRequest:
            pass
        return
    await press.accept()
    if action == "cat":
        od["cat"], od["page"] = int(value), 0
        await dialog.save(state, od)
        await turn.ask(message, OrderForm.product)
    elif action == "prod":
        product = await repos.products.get(int(value))
        if product is None or not product.active:
            await _unavailable(message, turn, texts, product)
            return
        od["pid"] = product.id
        await dialog.save(state, od)
        await turn.ask(message, OrderForm.quantity)
    elif action == "back":
        await turn.ask(message, OrderForm.category if step == "product" else OrderForm.product)
    elif action == "qty":
        try:
            quantity = rules.parse_quantity(value)
        except Invalid as error:
            await turn.reject(message, error)
            return
        await _add(message, turn, texts, repos, quantity)
    elif action == "more":
        await turn.ask(message, OrderForm.category)
    elif action == "checkout":
        await turn.ask(message, OrderForm.address)
    elif action == "saved":
        if not customer.address:  # forgotten meanwhile
            await turn.ask_again(message)
            return
        await _address_chosen(message, turn, customer.address, offer_save=False)
    elif action == "save":
        if value == "yes" and od.get("address"):
            await repos.customers.update_field(customer, "address", od["address"], clock.now())
            await message.answer(texts("orders/address_saved"))
        await _after_address(message, turn)
    elif action == "skip":
        od["note"] = None
        await dialog.save(state, od)
        await turn.ask(message, OrderForm.confirm)
    elif action == "readdress":
        od["review"] = True
        await dialog.save(state, od)
        await turn.ask(message, OrderForm.address)
    elif action == "abort":
        await turn.end()
        await message.answer(texts("orders/aborted"))
    elif action == "confirm":
        await _confirm(message, turn, od, texts=texts, repos=repos, clock=clock, settings=settings,
                       renderer=renderer, bot=bot, customer=customer)


async def _placed_number(turn: Turn, repos: Repos, customer: Customer | None, key: str) -> int | None:
    """The number of this customer's order placed with this Confirm key; None when there is none."""
    placed = (await turn.state.get_data()).get(PLACED)
    if isinstance(placed, dict) and placed.get("key") == key:  # the order just placed: no query
        return int(placed["number"])
    existing = await repos.orders.by_key(key) if customer is not None else None
    return existing.id if existing is not None and existing.customer_id == customer.id else None


async def _confirm(message: Message, turn: Turn, od: dict[str, Any], *, texts: Texts, repos: Repos, clock: Clock,
                   settings: Settings, renderer: TextRenderer, bot: Bot, customer: Customer) -> None:
    lines, _ = await _priced(repos, _cart(od))
    if [[p.id, q, p.price] for p, q in lines] != od.get("quote") or not lines:
        # A price changed or a product went away since the summary: show it again.
        await message.answer(texts("orders/changed"))
        await turn.ask(message, OrderForm.confirm)
        return
    order, created = await repos.orders.create(
        customer_id=customer.id, lines=lines, currency=settings.currency, now=clock.now(),
        idempotency_key=od["key"], source=od.get("source") or "dialog", address=od.get("address"),
        note=od.get("note"), reorder_of_id=od.get("reorder_of"), attributed_outbox_id=od.get("outbox_id"),
    )
    await turn.end()
    await turn.state.update_data({PLACED: {"key": od["key"], "number": order.id}})  # for a second press
    await message.answer(texts("orders/placed", number=order.id, total=order.total))
    if created:
        await post_card(bot, settings, renderer, repos, order, customer)
