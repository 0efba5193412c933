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
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.pipeline import at_once
from bot.filters import When
from bot.callback_ids import parse_row_id
from bot.clock import Clock
from bot.config import Settings
from bot.dialogs import ask_again, asks, end_dialog
from bot.menu import MenuCallback, start_from_menu
from bot.rules import customer_file
from bot.rules import orders as rules
from bot.rules.customer_file import Invalid
from bot.texts import TextRenderer, Texts
from handlers.order_desk import post_card
from storage.models import Customer, Product
from storage.repositories import Repos

router = Router(name="ordering")
router.message.filter(When(F.chat.type == "private"))
router.callback_query.filter(When(F.message.chat.type == "private"))


class OrderForm(StatesGroup):
    category = State()
    product = State()
    quantity = State()
    more = State()
    address = State()
    save_address = State()
    note = State()
    confirm = State()


class OrderCallback(CallbackData, prefix="ordr"):
    action: str  # cat | page | prod | back | qty | more | checkout | saved | save | skip | confirm | readdress | abort
    step: str  # the state the button belongs to; a press in another state is stale
    value: str = ""


# Dialog data kept when the order is placed: its Confirm key and number (a second press is answered from it).
PLACED = "placed"

STATE_OF_STEP = {name: getattr(OrderForm, name) for name in (
    "category", "product", "quantity", "more", "address", "save_address", "note", "confirm")}


def _cb(action: str, step: str, value: object = "") -> str:
    return OrderCallback(action=action, step=step, value=str(value)).pack()


def _step_of(state_name: str | None) -> str | None:
    if not state_name or not state_name.startswith("OrderForm:"):
        return None
    return state_name.split(":", 1)[1]


async def _od(state: FSMContext) -> dict[str, Any]:
    return dict((await state.get_data()).get("order") or {})


async def _put(state: FSMContext, od: dict[str, Any]) -> None:
    await state.update_data(order=od)


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


async def _take_buttons(message: Message) -> None:
    """The question is answered: its buttons go, so they cannot be pressed again."""
    try:
        await message.edit_reply_markup(reply_markup=None)
    except TelegramBadRequest:
        pass


async def _remember(state: FSMContext, sent: Message) -> None:
    """Remember the question whose buttons a typed answer should take away."""
    od = await _od(state)
    od["asked"] = sent.message_id
    await _put(state, od)


async def _answered_by_text(message: Message, data: dict[str, Any]) -> None:
    """A typed answer was accepted: the question's buttons (quick amounts, Skip...) go."""
    state: FSMContext = data["state"]
    od = await _od(state)
    asked = od.pop("asked", None)
    if asked is None:
        return
    await _put(state, od)
    bot: Bot = data["bot"]
    try:
        await bot.edit_message_reply_markup(chat_id=message.chat.id, message_id=int(asked), reply_markup=None)
    except TelegramBadRequest:
        pass


async def go(message: Message, data: dict[str, Any], step: str) -> None:
    """Move the dialog to ``step`` and ask its question."""
    state: FSMContext = data["state"]
    await state.set_state(STATE_OF_STEP[step])
    await ASKERS[step](message, data)


# ----- asking each question ---------------------------------------------------

@asks(OrderForm.category)
async def ask_category(message: Message, data: dict[str, Any]) -> None:
    texts: Texts = data["texts"]
    state: FSMContext = data["state"]
    repos: Repos = data["repos"]
    od = await _od(state)
    categories = await repos.products.categories()
    if not categories:
        await end_dialog(state)
        await message.answer(texts("orders/catalog_empty"))
        return
    od["cats"] = categories
    cart = _cart(od)
    if len(categories) == 1:
        od["cat"], od["page"] = 0, 0
        await _put(state, od)
        await go(message, data, "product")
        return
    await _put(state, od)
    builder = InlineKeyboardBuilder()
    for index, category in enumerate(categories):
        builder.button(text=texts.button("order_category", category=category), callback_data=_cb("cat", "category", index))
    builder.adjust(2)
    if cart:
        builder.row(InlineKeyboardButton(text=texts.button("order_checkout", count=len(cart)),
                                         callback_data=_cb("checkout", "category")))
    await message.answer(texts("orders/ask_category", cart_count=len(cart)), reply_markup=builder.as_markup())


async def _product_view(data: dict[str, Any]) -> tuple[str, InlineKeyboardMarkup] | None:
    """The product list of the chosen category at the remembered page; None when it is empty."""
    texts: Texts = data["texts"]
    state: FSMContext = data["state"]
    repos: Repos = data["repos"]
    od = await _od(state)
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
        await _put(state, od)
    builder = InlineKeyboardBuilder()
    for product in products[page * rules.PAGE_SIZE:(page + 1) * rules.PAGE_SIZE]:
        builder.row(InlineKeyboardButton(
            text=texts.button("order_product", name=product.name(texts.lang), unit=product.unit_for(texts.lang),
                              price=product.price),
            callback_data=_cb("prod", "product", product.id)))
    nav = []
    if page > 0:
        nav.append(InlineKeyboardButton(text=texts.button("order_prev"), callback_data=_cb("page", "product", page - 1)))
    if page < pages - 1:
        nav.append(InlineKeyboardButton(text=texts.button("order_next"), callback_data=_cb("page", "product", page + 1)))
    if nav:
        builder.row(*nav)
    last = []
    if len(categories) > 1:
        last.append(InlineKeyboardButton(text=texts.button("order_categories"), callback_data=_cb("back", "product")))
    cart = _cart(od)
    if cart:
        last.append(InlineKeyboardButton(text=texts.button("order_checkout", count=len(cart)),
                                         callback_data=_cb("checkout", "product")))
    if last:
        builder.row(*last)
    text = texts("orders/ask_product", category=texts.button("order_category", category=category),
                 page=page + 1, pages=pages)
    return text, builder.as_markup()


@asks(OrderForm.product)
async def ask_product(message: Message, data: dict[str, Any]) -> None:
    view = await _product_view(data)
    if view is None:  # the category emptied meanwhile: choose again
        await go(message, data, "category")
        return
    text, markup = view
    await message.answer(text, reply_markup=markup)


async def _unavailable(message: Message, data: dict[str, Any], product: Product | None) -> None:
    texts: Texts = data["texts"]
    await message.answer(texts("orders/unavailable", name=product.name(texts.lang) if product else None))
    await go(message, data, "product")


@asks(OrderForm.quantity)
async def ask_quantity(message: Message, data: dict[str, Any]) -> None:
    texts: Texts = data["texts"]
    state: FSMContext = data["state"]
    repos: Repos = data["repos"]
    od = await _od(state)
    product = await repos.products.get(int(od.get("pid", 0)))
    if product is None or not product.active:
        await _unavailable(message, data, product)
        return
    in_cart = next((qty for pid, qty in _cart(od) if pid == product.id), 0)
    builder = InlineKeyboardBuilder()
    for amount in rules.QTY_QUICK:
        builder.button(text=str(amount), callback_data=_cb("qty", "quantity", amount))
    builder.button(text=texts.button("order_back"), callback_data=_cb("back", "quantity"))
    builder.adjust(len(rules.QTY_QUICK), 1)
    sent = await at_once(message.answer(
        texts("orders/ask_quantity", name=product.name(texts.lang), unit=product.unit_for(texts.lang), price=product.price,
              in_cart=in_cart, low=rules.QTY_MIN, high=rules.QTY_MAX),
        reply_markup=builder.as_markup(),
    ))
    await _remember(state, sent)


@asks(OrderForm.more)
async def ask_more(message: Message, data: dict[str, Any]) -> None:
    texts: Texts = data["texts"]
    state: FSMContext = data["state"]
    repos: Repos = data["repos"]
    od = await _od(state)
    lines, _ = await _priced(repos, _cart(od))
    builder = InlineKeyboardBuilder()
    builder.button(text=texts.button("order_add_more"), callback_data=_cb("more", "more"))
    builder.button(text=texts.button("order_checkout", count=len(lines)), callback_data=_cb("checkout", "more"))
    await message.answer(
        texts("orders/cart", lines=[_line(p, q, texts.lang) for p, q in lines],
              total=rules.order_total((q, p.price) for p, q in lines)),
        reply_markup=builder.as_markup(),
    )


@asks(OrderForm.address)
async def ask_address(message: Message, data: dict[str, Any]) -> None:
    texts: Texts = data["texts"]
    customer: Customer | None = data.get("customer")
    saved = customer.address if customer else None
    markup = None
    if saved:
        builder = InlineKeyboardBuilder()
        builder.button(text=texts.button("order_saved_address", address=saved), callback_data=_cb("saved", "address"))
        markup = builder.as_markup()
    sent = await at_once(message.answer(texts("orders/ask_address", saved=saved), reply_markup=markup))
    if markup is not None:
        await _remember(data["state"], sent)


@asks(OrderForm.save_address)
async def ask_save_address(message: Message, data: dict[str, Any]) -> None:
    texts: Texts = data["texts"]
    state: FSMContext = data["state"]
    customer: Customer | None = data.get("customer")
    od = await _od(state)
    builder = InlineKeyboardBuilder()
    builder.button(text=texts.button("yes"), callback_data=_cb("save", "save_address", "yes"))
    builder.button(text=texts.button("no"), callback_data=_cb("save", "save_address", "no"))
    await message.answer(
        texts("orders/ask_save_address", address=od.get("address"), saved=customer.address if customer else None),
        reply_markup=builder.as_markup(),
    )


@asks(OrderForm.note)
async def ask_note(message: Message, data: dict[str, Any]) -> None:
    texts: Texts = data["texts"]
    builder = InlineKeyboardBuilder()
    builder.button(text=texts.button("skip"), callback_data=_cb("skip", "note"))
    sent = await at_once(message.answer(texts("orders/ask_note", limit=rules.NOTE_MAX), reply_markup=builder.as_markup()))
    await _remember(data["state"], sent)


@asks(OrderForm.confirm)
async def show_summary(message: Message, data: dict[str, Any]) -> None:
    """The order as it would be placed now, at today's prices, with Confirm."""
    texts: Texts = data["texts"]
    state: FSMContext = data["state"]
    repos: Repos = data["repos"]
    od = await _od(state)
    lines, gone = await _priced(repos, _cart(od))
    if gone:
        await message.answer(texts("orders/removed", names=[p.name(texts.lang) for p in gone], unknown=0))
        od["cart"] = [[p.id, q] for p, q in lines]
    if not lines:
        od["cart"] = []
        await _put(state, od)
        await go(message, data, "category")
        return
    if not od.get("address"):
        await _put(state, od)
        await go(message, data, "address")
        return
    od.setdefault("key", secrets.token_hex(8))
    od["quote"] = [[p.id, q, p.price] for p, q in lines]
    await _put(state, od)
    builder = InlineKeyboardBuilder()
    builder.button(text=texts.button("order_confirm"), callback_data=_cb("confirm", "confirm", od["key"]))
    builder.button(text=texts.button("order_change_address"), callback_data=_cb("readdress", "confirm"))
    builder.button(text=texts.button("order_abort"), callback_data=_cb("abort", "confirm"))
    builder.adjust(1, 2)
    await message.answer(
        texts("orders/summary", lines=[_line(p, q, texts.lang) for p, q in lines],
              total=rules.order_total((q, p.price) for p, q in lines), address=od["address"], note=od.get("note")),
        reply_markup=builder.as_markup(),
    )


ASKERS = {
    "category": ask_category, "product": ask_product, "quantity": ask_quantity, "more": ask_more,
    "address": ask_address, "save_address": ask_save_address, "note": ask_note, "confirm": show_summary,
}


# ----- starting -------------------------------------------------------------------

async def start_order(message: Message, data: dict[str, Any]) -> None:
    texts: Texts = data["texts"]
    state: FSMContext = data["state"]
    if data.get("customer") is None:
        await message.answer(texts("common/register_first"))
        return
    await _put(state, {"cart": [], "source": "dialog"})
    await go(message, data, "category")


@router.message(Command("order"))
async def order_command(message: Message, **data: Any) -> None:
    await start_order(message, data)


@router.callback_query(MenuCallback.filter(F.action == "order"))
async def order_from_menu(callback: CallbackQuery, **data: Any) -> None:
    await start_from_menu(callback, data, start_order)


async def begin_reorder(message: Message, data: dict, order_id: int | None = None,
                        items: list[tuple[int, int]] | None = None, source: str = "reorder",
                        outbox_id: int | None = None) -> None:
    """Fill the cart with an earlier order's items (or ``items``) at today's prices.

    Products no longer sold are left out (and the customer is told). With a
    saved address the customer lands on the summary, one tap from Confirm;
    without one, the address is asked first. ``source`` is recorded on the
    order (``reorder``, or ``reminder``/``winback`` from the care engine) with
    the care message's ``outbox_id``.
    """
    texts: Texts = data["texts"]
    state: FSMContext = data["state"]
    repos: Repos = data["repos"]
    customer: Customer | None = data.get("customer")
    if customer is None:
        await message.answer(texts("common/register_first"))
        return
    current = await state.get_state()
    if current is not None and _step_of(current) is None:
        await message.answer(texts("common/finish_first"))
        await ask_again(message, data)
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
    await _put(state, od)
    if not lines:
        await message.answer(texts("orders/reorder_nothing"))
        od["cart"] = []
        await _put(state, od)
        await go(message, data, "category")
        return
    await go(message, data, "confirm" if customer.address else "address")


# ----- typed answers ------------------------------------------------------------

async def _reject(message: Message, data: dict[str, Any], error: Invalid, area: str = "orders/errors") -> None:
    texts: Texts = data["texts"]
    await message.answer(texts(f"{area}/{error.code}", **error.params))
    await ask_again(message, data)


async def _add(message: Message, data: dict[str, Any], quantity: int) -> None:
    state: FSMContext = data["state"]
    repos: Repos = data["repos"]
    od = await _od(state)
    product = await repos.products.get(int(od.get("pid", 0)))
    if product is None or not product.active:
        await _unavailable(message, data, product)
        return
    try:
        od["cart"] = rules.add_to_cart(_cart(od), product.id, quantity)
    except Invalid as error:
        await _reject(message, data, error)
        return
    await _put(state, od)
    await go(message, data, "more")


@router.message(StateFilter(OrderForm.quantity), When((F.text) & (~F.text.startswith("/"))))
async def process_quantity(message: Message, **data: Any) -> None:
    try:
        quantity = rules.parse_quantity(message.text or "")
    except Invalid as error:
        await _reject(message, data, error)
        return
    await _answered_by_text(message, data)
    await _add(message, data, quantity)


async def _address_chosen(message: Message, data: dict[str, Any], address: str, offer_save: bool) -> None:
    state: FSMContext = data["state"]
    od = await _od(state)
    od["address"] = address
    await _put(state, od)
    if offer_save:
        await go(message, data, "save_address")
        return
    await _after_address(message, data)


async def _after_address(message: Message, data: dict[str, Any]) -> None:
    od = await _od(data["state"])
    # From the summary's "Change address", or a reorder that had none: back to the summary.
    await go(message, data, "confirm" if od.get("review") or od.get("source") != "dialog" else "note")


@router.message(StateFilter(OrderForm.address), When((F.text) & (~F.text.startswith("/"))))
async def process_address(message: Message, **data: Any) -> None:
    customer: Customer | None = data.get("customer")
    try:
        address = customer_file.parse_address(message.text or "")
    except Invalid as error:
        await _reject(message, data, error, area="errors")
        return
    await _answered_by_text(message, data)
    await _address_chosen(message, data, address, offer_save=customer is not None and address != customer.address)


@router.message(StateFilter(OrderForm.note), When((F.text) & (~F.text.startswith("/"))))
async def process_note(message: Message, **data: Any) -> None:
    try:
        note = rules.parse_note(message.text or "")
    except Invalid as error:
        await _reject(message, data, error)
        return
    await _answered_by_text(message, data)
    state: FSMContext = data["state"]
    od = await _od(state)
    od["note"] = note
    await _put(state, od)
    await go(message, data, "confirm")


# ----- buttons ------------------------------------------------------------------

# Which buttons belong to which step, and what their value must look like.
_BUTTONS: dict[tuple[str, str], Any] = {
    # Ids within bounds (callback data can be forged): an oversized one is an expired button.
    ("cat", "category"): lambda v, od: v.isdigit() and int(v) < len(od.get("cats") or []),
    ("page", "product"): lambda v, od: parse_row_id(v) is not None,
    ("prod", "product"): lambda v, od: parse_row_id(v) is not None,
    ("back", "product"): None, ("back", "quantity"): None,
    ("qty", "quantity"): lambda v, od: v.isdigit(),
    ("more", "more"): None,
    ("checkout", "category"): lambda v, od: bool(od.get("cart")),
    ("checkout", "product"): lambda v, od: bool(od.get("cart")),
    ("checkout", "more"): lambda v, od: bool(od.get("cart")),
    ("saved", "address"): None,
    ("save", "save_address"): lambda v, od: v in ("yes", "no"),
    ("skip", "note"): None,
    ("readdress", "confirm"): None, ("abort", "confirm"): None,
    ("confirm", "confirm"): lambda v, od: bool(v) and v == od.get("key"),
}


def _fits(action: str, step: str, value: str, od: dict[str, Any]) -> bool:
    if (action, step) not in _BUTTONS:
        return False
    check = _BUTTONS[(action, step)]
    return check is None or bool(check(value, od))


@router.callback_query(OrderCallback.filter())
async def process_button(callback: CallbackQuery, callback_data: OrderCallback, **data: Any) -> None:
    texts: Texts = data["texts"]
    state: FSMContext = data["state"]
    repos: Repos = data["repos"]
    customer: Customer | None = data.get("customer")
    message = callback.message
    action, value = callback_data.action, callback_data.value
    step = _step_of(await state.get_state())
    od = await _od(state)
    if action == "confirm" and value and not (step == "confirm" and value == od.get("key")):
        # Not the Confirm of the order being placed: a double press, the same update again, or an older order's.
        number = await _placed_number(data, value)
        await callback.answer(texts("orders/already_placed.txt", number=number) if number is not None
                              else texts("common/button_expired.txt"))
        return
    if (customer is None or step is None or step != callback_data.step or not isinstance(message, Message)
            or not _fits(action, step, value, od)):
        await callback.answer(texts("common/button_expired.txt"))
        return
    if action == "page" and step == "product":
        # Turning a page redraws the same message.
        od["page"] = int(value) if value.isdigit() else 0
        await _put(state, od)
        await callback.answer()
        view = await _product_view(data)
        if view is None:
            await _take_buttons(message)
            await go(message, data, "category")
            return
        try:
            await message.edit_text(view[0], reply_markup=view[1])
        except TelegramBadRequest:
            pass
        return
    await callback.answer()
    await _take_buttons(message)
    if action == "cat" and step == "category":
        od["cat"], od["page"] = int(value), 0
        await _put(state, od)
        await go(message, data, "product")
    elif action == "prod" and step == "product":
        product = await repos.products.get(int(value))
        if product is None or not product.active:
            await _unavailable(message, data, product)
            return
        od["pid"] = product.id
        await _put(state, od)
        await go(message, data, "quantity")
    elif action == "back" and step == "product":
        await go(message, data, "category")
    elif action == "back" and step == "quantity":
        await go(message, data, "product")
    elif action == "qty" and step == "quantity":
        try:
            quantity = rules.parse_quantity(value)
        except Invalid as error:
            await _reject(message, data, error)
            return
        await _add(message, data, quantity)
    elif action == "more" and step == "more":
        await go(message, data, "category")
    elif action == "checkout":
        await go(message, data, "address")
    elif action == "saved" and step == "address":
        if not customer.address:  # forgotten meanwhile
            await ask_again(message, data)
            return
        await _address_chosen(message, data, customer.address, offer_save=False)
    elif action == "save":
        if value == "yes" and od.get("address"):
            clock: Clock = data["clock"]
            await repos.customers.update_field(customer, "address", od["address"], clock.now())
            await message.answer(texts("orders/address_saved"))
        await _after_address(message, data)
    elif action == "skip" and step == "note":
        od["note"] = None
        await _put(state, od)
        await go(message, data, "confirm")
    elif action == "readdress" and step == "confirm":
        od["review"] = True
        await _put(state, od)
        await go(message, data, "address")
    elif action == "abort" and step == "confirm":
        await end_dialog(state)
        await message.answer(texts("orders/aborted"))
    elif action == "confirm" and step == "confirm":
        await _confirm(message, data, od)


async def _placed_number(data: dict[str, Any], key: str) -> int | None:
    """The number of this customer's order placed with this Confirm key; None when there is none."""
    placed = (await data["state"].get_data()).get(PLACED)
    if isinstance(placed, dict) and placed.get("key") == key:  # the order just placed: no query
        return int(placed["number"])
    customer: Customer | None = data.get("customer")
    repos: Repos = data["repos"]
    existing = await repos.orders.by_key(key) if customer is not None else None
    return existing.id if existing is not None and existing.customer_id == customer.id else None


async def _confirm(message: Message, data: dict[str, Any], od: dict[str, Any]) -> None:
    texts: Texts = data["texts"]
    state: FSMContext = data["state"]
    repos: Repos = data["repos"]
    clock: Clock = data["clock"]
    settings: Settings = data["settings"]
    customer: Customer = data["customer"]
    lines, _ = await _priced(repos, _cart(od))
    if [[p.id, q, p.price] for p, q in lines] != od.get("quote") or not lines:
        # A price changed or a product went away since the summary: show it again.
        await message.answer(texts("orders/changed"))
        await go(message, data, "confirm")
        return
    order, created = await repos.orders.create(
        customer_id=customer.id, lines=lines, currency=settings.currency, now=clock.now(),
        idempotency_key=od["key"], source=od.get("source") or "dialog", address=od.get("address"),
        note=od.get("note"), reorder_of_id=od.get("reorder_of"), attributed_outbox_id=od.get("outbox_id"),
    )
    await end_dialog(state)
    await state.update_data({PLACED: {"key": od["key"], "number": order.id}})  # for a second press
    await message.answer(texts("orders/placed", number=order.id, total=order.total))
    if created:
        bot: Bot = data["bot"]
        renderer: TextRenderer = data["renderer"]
        await post_card(bot, settings, renderer, repos, order, customer)
