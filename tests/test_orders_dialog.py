"""The /order dialog as conversations: the whole path, every bad input, stale
and forged buttons, a product that goes away, prices that change, restarts
between any two steps, /cancel, and Confirm pressed twice or replayed."""

from __future__ import annotations

import asyncio

import pytest
from aiogram.types import Update

from bot.app import App
from bot.fake_telegram import FakeTelegram, FakeUser, SentMessage
from tests.conftest import STAFF_CHAT_ID, restart
from tests.helpers import (
    SMALL_CATALOG,
    add_customer,
    customer_row,
    fill_cart,
    items_of,
    label,
    load_catalog,
    orders,
    place_order,
    set_product,
    shop,  # noqa: F401  (a fixture)
    shown,
    texts_of,
    to_summary,
)

EXPIRED = "This button has expired."


def ask_quantity(name: str, unit: str, price: int, in_cart: int = 0, lang: str = "en") -> str:
    return shown("orders/ask_quantity", lang, name=name, unit=unit, price=price, in_cart=in_cart, low=1, high=999)


def ask_products(category: str, page: int = 1, pages: int = 1, lang: str = "en") -> str:
    return shown("orders/ask_product", lang, category=label("order_category", lang, category=category),
                 page=page, pages=pages)


def product_label(name: str, unit: str, price: int, lang: str = "en") -> str:
    return label("order_product", lang, name=name, unit=unit, price=price)


RICE = ("Jasmine rice", "5 kg bag", 6800)
OIL = ("Peanut oil", "5 L bottle", 13900)


def summary(lines: list[tuple[str, str, int, int]], address: str = "12 Rice Street", note: str | None = None) -> str:
    views = [{"name": n, "unit": u, "price": p, "quantity": q, "total": p * q} for n, u, p, q in lines]
    return shown("orders/summary", lines=views, total=sum(v["total"] for v in views), address=address, note=note)


# ----- the whole path ---------------------------------------------------------------

async def test_whole_order_path(app: App, world: FakeTelegram, shop: FakeUser) -> None:
    customer = shop
    replies = await customer.send("/order")
    assert texts_of(replies) == [shown("orders/ask_category", cart_count=0)]
    assert replies[0].labels == [label("order_category", category="rice"), label("order_category", category="oil")]

    replies = await customer.press("Rice")
    assert texts_of(replies) == [ask_products("rice", 1, 2)]
    assert replies[0].labels[:2] == [product_label(*RICE), product_label("Northeast rice", "5 kg bag", 5900)]
    assert len(replies[0].labels) == 8 + 2  # a page of 8, then Next and Categories

    replies = await customer.press(product_label(*RICE))
    assert texts_of(replies) == [ask_quantity(*RICE)]
    assert replies[0].labels == ["1", "2", "3", "5", "10", label("order_back")]

    quantity_question = replies[0]
    replies = await customer.send("2")
    cart = [{"name": "Jasmine rice", "unit": "5 kg bag", "price": 6800, "quantity": 2, "total": 13600}]
    assert texts_of(replies) == [shown("orders/cart", lines=cart, total=13600)]
    assert replies[0].labels == [label("order_add_more"), label("order_checkout", count=1)]
    assert world.message(customer.chat_id, quantity_question.message_id).buttons == []  # quick amounts gone

    replies = await customer.press(label("order_add_more"))
    assert texts_of(replies) == [shown("orders/ask_category", cart_count=1)]
    assert replies[0].labels[-1] == label("order_checkout", count=1)
    await customer.press("Cooking oil")
    replies = await customer.press("Peanut oil")
    assert texts_of(replies) == [ask_quantity(*OIL)]
    await customer.press("1")

    replies = await customer.press("Checkout")
    assert texts_of(replies) == [shown("orders/ask_address", saved="12 Rice Street")]
    assert replies[0].labels == [label("order_saved_address", address="12 Rice Street")]

    replies = await customer.press("📍")
    assert texts_of(replies) == [shown("orders/ask_note", limit=300)]
    replies = await customer.send("Please call, the <bell> & gate are broken")
    note = "Please call, the <bell> & gate are broken"
    assert texts_of(replies) == [summary([(*RICE, 2), (*OIL, 1)], note=note)]
    assert replies[0].labels == [label("order_confirm"), label("order_change_address"), label("order_abort")]

    replies = await customer.press(label("order_confirm"))
    assert texts_of([r for r in replies if r.chat_id == customer.chat_id]) == [
        shown("orders/placed", number=1, total=27500)]
    [order] = await orders(app)
    assert items_of(order) == [("RICE-1", 2, 6800), ("OIL-1", 1, 13900)]
    assert (order.total, order.currency, order.status, order.source) == (27500, "CNY", "new", "dialog")
    assert (order.address, order.note) == ("12 Rice Street", note)
    assert order.idempotency_key and order.created_at == app.clock.now()
    assert order.history == []  # the placing is the order row itself; the history holds changes
    card = world.last(STAFF_CHAT_ID)
    assert card.text.startswith("🧾 Order #1 · New")
    assert (order.staff_chat_id, order.staff_message_id) == (STAFF_CHAT_ID, card.message_id)
    assert await app.storage.get_state(_key(app, customer)) is None  # the dialog is over


def _key(app: App, customer: FakeUser):  # type: ignore[no-untyped-def]
    from aiogram.fsm.storage.base import StorageKey

    return StorageKey(bot_id=app.bot.id, chat_id=customer.chat_id, user_id=customer.id)


async def test_pages_turn_in_place(app: App, world: FakeTelegram, shop: FakeUser) -> None:
    customer = shop
    await customer.send("/order")
    [page1] = await customer.press("Rice")
    assert label("order_next") in page1.labels and label("order_prev") not in page1.labels
    replies = await customer.press(label("order_next"))
    assert replies == []  # no new message: the same one shows page 2
    page = world.message(customer.chat_id, page1.message_id)
    assert page.text == ask_products("rice", 2, 2)
    assert page.labels == [product_label("Wild rice", "500 g bag", 3000),
                           product_label("Broken rice", "5 kg bag", 3500),
                           label("order_prev"), label("order_categories")]
    await customer.press(label("order_prev"))
    assert world.message(customer.chat_id, page1.message_id).text == ask_products("rice", 1, 2)
    replies = await customer.press(label("order_categories"))
    assert texts_of(replies) == [shown("orders/ask_category", cart_count=0)]


async def test_back_from_quantity_to_the_list(shop: FakeUser) -> None:
    await shop.send("/order")
    await shop.press("Cooking oil")
    await shop.press("Peanut oil")
    replies = await shop.press(label("order_back"))
    assert texts_of(replies) == [ask_products("oil")]
    assert "Old tea" not in " ".join(replies[0].labels)  # inactive products are not listed


async def test_one_category_goes_straight_to_its_products(app: App, customer: FakeUser) -> None:
    await load_catalog(app, "sku,name_en,name_zh,category,unit,price\nW,Water,水,drinks,18.9 L,22\n")
    await add_customer(app, customer.id, name="Mei Lin")
    replies = await customer.send("/order")
    assert texts_of(replies) == [ask_products("drinks")]
    assert replies[0].labels == [product_label("Water", "18.9 L", 2200)]  # no way back to one category


async def test_empty_catalog(app: App, customer: FakeUser) -> None:
    await add_customer(app, customer.id, name="Mei Lin")
    assert texts_of(await customer.send("/order")) == [shown("orders/catalog_empty")]
    assert texts_of(await customer.send("2"))[-1] == shown("conversations/passed_on")  # no dialog left open


async def test_chinese_customer_sees_chinese(app: App, world: FakeTelegram) -> None:
    await load_catalog(app, SMALL_CATALOG)
    mei = FakeUser(world, 100009, "梅")
    await add_customer(app, mei.id, name="梅", language="zh")
    replies = await mei.send("/order")
    assert texts_of(replies) == [shown("orders/ask_category", "zh", cart_count=0)]
    assert replies[0].labels[0] == "🍚 大米"
    replies = await mei.press("大米")
    assert replies[0].labels[0] == product_label("泰国香米", "5 kg bag", 6800, "zh")


async def test_unregistered_people_register_first(app: App, customer: FakeUser) -> None:
    await load_catalog(app, SMALL_CATALOG)
    assert texts_of(await customer.send("/order")) == [shown("common/register_first")]


async def test_order_from_the_menu(shop: FakeUser) -> None:
    replies = await shop.send("/start")
    assert replies[0].labels[:2] == [label("menu_order"), label("menu_orders")]
    replies = await shop.press(label("menu_order"))
    assert texts_of(replies) == [shown("orders/ask_category", cart_count=0)]
    # The menu again in the middle of the order: finish it first.
    menu = (await shop.send("/cancel"), await shop.send("/start"))[1][0]
    await shop.press(label("menu_order"), menu)
    await shop.press(label("menu_order"), menu)
    assert shop.alerts()[-1] == shown("common/finish_first.txt")


# ----- bad input ----------------------------------------------------------------------

@pytest.mark.parametrize(("typed", "code"), [
    ("0", "qty_too_small"), ("-1", "qty_too_small"), ("1000", "qty_too_large"),
    ("abc", "qty_not_a_number"), ("2.5", "qty_not_whole"),
])
async def test_bad_quantity_gets_a_reason_and_the_same_question(app: App, shop: FakeUser, typed: str,
                                                                 code: str) -> None:
    await shop.send("/order")
    await shop.press("Rice")
    await shop.press(product_label(*RICE))
    replies = await shop.send(typed)
    assert texts_of(replies) == [shown(f"orders/errors/{code}", low=1, high=999), ask_quantity(*RICE)]
    replies = await shop.send("3")
    assert replies[0].text.startswith("🧺 Your cart\n3 × Jasmine rice")


async def test_wrong_kinds_of_message_in_the_dialog(shop: FakeUser) -> None:
    await shop.send("/order")
    replies = await shop.send("rice please")  # a category is chosen by button
    assert texts_of(replies) == [shown("common/not_understood"), shown("orders/ask_category", cart_count=0)]
    await shop.press("Rice")
    await shop.press(product_label(*RICE))
    replies = await shop.send_sticker()
    assert texts_of(replies) == [shown("common/expected_text"), ask_quantity(*RICE)]
    replies = await shop.send("/profile")
    assert texts_of(replies) == [shown("common/finish_first"), ask_quantity(*RICE)]


async def test_cart_limits(shop: FakeUser) -> None:
    await shop.send("/order")
    await shop.press("Rice")
    await shop.press(product_label(*RICE))
    await shop.send("999")
    await shop.press(label("order_add_more"))
    await shop.press("Rice")
    replies = await shop.press(product_label(*RICE))
    assert texts_of(replies) == [ask_quantity(*RICE, in_cart=999)]
    replies = await shop.press("1")
    assert texts_of(replies) == [shown("orders/errors/qty_cart_limit", have=999, high=999),
                                 ask_quantity(*RICE, in_cart=999)]


async def test_bad_address_and_note(app: App, shop: FakeUser) -> None:
    await fill_cart(shop)
    replies = await shop.send("x")
    assert texts_of(replies) == [shown("errors/address_too_short"), shown("orders/ask_address", saved="12 Rice Street")]
    replies = await shop.send("88 Noodle Road")
    assert texts_of(replies) == [shown("orders/ask_save_address", address="88 Noodle Road", saved="12 Rice Street")]
    replies = await shop.send("yes")  # answered by button
    assert texts_of(replies) == [shown("common/not_understood"),
                                 shown("orders/ask_save_address", address="88 Noodle Road", saved="12 Rice Street")]
    replies = await shop.press(label("no"))
    assert texts_of(replies) == [shown("orders/ask_note", limit=300)]
    replies = await shop.send("x" * 301)
    assert texts_of(replies) == [shown("orders/errors/note_too_long", limit=300), shown("orders/ask_note", limit=300)]
    await shop.press(label("skip"))
    await shop.press(label("order_confirm"))
    [order] = await orders(app)
    assert (order.address, order.note) == ("88 Noodle Road", None)
    assert (await customer_row(app, shop.id)).address == "12 Rice Street"  # not saved: "No"


async def test_a_new_address_can_be_saved(app: App, shop: FakeUser) -> None:
    await fill_cart(shop)
    await shop.send("88 Noodle Road")
    replies = await shop.press(label("yes"))
    assert texts_of(replies) == [shown("orders/address_saved"), shown("orders/ask_note", limit=300)]
    assert (await customer_row(app, shop.id)).address == "88 Noodle Road"


async def test_a_customer_without_an_address_types_one(app: App, world: FakeTelegram) -> None:
    await load_catalog(app, SMALL_CATALOG)
    wei = FakeUser(world, 100002, "Wei")
    await add_customer(app, wei.id, name="Wei", address=None)
    await fill_cart(wei)
    assert wei.last().text == shown("orders/ask_address", saved=None)
    assert wei.last().buttons == []
    replies = await wei.send("5 Tofu Lane")
    assert texts_of(replies) == [shown("orders/ask_save_address", address="5 Tofu Lane", saved=None)]


async def test_change_address_from_the_summary_returns_to_it(app: App, shop: FakeUser) -> None:
    await to_summary(shop)
    replies = await shop.press(label("order_change_address"))
    assert texts_of(replies) == [shown("orders/ask_address", saved="12 Rice Street")]
    await shop.send("7 Market Street")
    replies = await shop.press(label("no"))
    assert texts_of(replies) == [summary([(*RICE, 2), (*OIL, 1)], address="7 Market Street")]
    await shop.press(label("order_confirm"))
    assert [o.address for o in await orders(app)] == ["7 Market Street"]


async def test_abort_at_the_summary_orders_nothing(app: App, shop: FakeUser) -> None:
    await to_summary(shop)
    replies = await shop.press(label("order_abort"))
    assert texts_of(replies) == [shown("orders/aborted")]
    assert await orders(app) == []


async def test_cancel_in_the_middle(app: App, shop: FakeUser) -> None:
    await fill_cart(shop)
    replies = await shop.send("/cancel")
    assert texts_of(replies) == [shown("common/cancelled")]
    assert await orders(app) == []
    assert texts_of(await shop.send("/order")) == [shown("orders/ask_category", cart_count=0)]  # a fresh cart


# ----- things that change under the customer ------------------------------------------------

async def test_product_deactivated_between_listing_and_pressing(app: App, shop: FakeUser) -> None:
    await shop.send("/order")
    await shop.press("Rice")
    await set_product(app, "RICE-1", active=False)
    replies = await shop.press(product_label(*RICE))
    assert texts_of(replies) == [shown("orders/unavailable", name="Jasmine rice"), ask_products("rice", 1, 2)]
    assert product_label(*RICE) not in replies[1].labels


async def test_product_deactivated_while_choosing_the_quantity(app: App, shop: FakeUser) -> None:
    await shop.send("/order")
    await shop.press("Rice")
    await shop.press(product_label(*RICE))
    await set_product(app, "RICE-1", active=False)
    replies = await shop.send("2")
    assert texts_of(replies)[0] == shown("orders/unavailable", name="Jasmine rice")


async def test_last_product_of_a_category_goes_away(app: App, shop: FakeUser) -> None:
    await shop.send("/order")
    await shop.press("Cooking oil")
    for sku in ("OIL-1", "OIL-2"):
        await set_product(app, sku, active=False)
    replies = await shop.press("Peanut oil")
    assert texts_of(replies) == [shown("orders/unavailable", name="Peanut oil"),
                                 ask_products("rice", 1, 2)]  # oil is gone; rice is the only category left


async def test_product_deactivated_before_the_summary_is_left_out(app: App, shop: FakeUser) -> None:
    await fill_cart(shop)
    await shop.press("📍")
    await set_product(app, "OIL-1", active=False)
    replies = await shop.press(label("skip"))
    assert texts_of(replies) == [shown("orders/removed", names=["Peanut oil"], unknown=0),
                                 summary([(*RICE, 2)])]
    await shop.press(label("order_confirm"))
    assert [items_of(o) for o in await orders(app)] == [[("RICE-1", 2, 6800)]]


async def test_price_change_before_confirm_shows_the_summary_again(app: App, shop: FakeUser) -> None:
    await to_summary(shop)
    await set_product(app, "RICE-1", price=7000)
    replies = await shop.press(label("order_confirm"))
    assert texts_of(replies) == [shown("orders/changed"),
                                 summary([("Jasmine rice", "5 kg bag", 7000, 2), (*OIL, 1)])]
    assert await orders(app) == []
    await shop.press(label("order_confirm"))
    [order] = await orders(app)
    assert items_of(order) == [("RICE-1", 2, 7000), ("OIL-1", 1, 13900)]
    assert order.total == 27900


# ----- stale, forged and repeated buttons ----------------------------------------------------

async def test_stale_button_is_refused(app: App, world: FakeTelegram, shop: FakeUser) -> None:
    [categories] = await shop.send("/order")
    _, oil = shop.find_button("Cooking oil", categories)
    await shop.press("Rice")
    replies = await shop.press_data(oil["callback_data"], categories)
    assert replies == [] and shop.alerts()[-1] == EXPIRED
    # Forged: a category number that was never listed, and a button of another dialog step.
    [products] = [m for m in shop.inbox() if m.buttons][-1:]
    assert (await shop.press_data("ordr:cat:product:7", products)) == []
    assert shop.alerts()[-1] == EXPIRED
    replies = await shop.press_data("ordr:prod:product:999999", products)
    assert texts_of(replies) == [shown("orders/unavailable", name=None), ask_products("rice", 1, 2)]


async def test_buttons_after_the_order_are_stale(app: App, shop: FakeUser) -> None:
    [categories] = await shop.send("/order")
    _, rice = shop.find_button("Rice", categories)
    await shop.send("/cancel")
    assert await shop.press_data(rice["callback_data"], categories) == []
    assert shop.alerts()[-1] == EXPIRED


async def test_confirm_pressed_twice_makes_one_order(app: App, world: FakeTelegram, shop: FakeUser) -> None:
    [summary_message] = await to_summary(shop)
    _, confirm = shop.find_button(label("order_confirm"), summary_message)
    await shop.press_data(confirm["callback_data"], summary_message)
    replies = await shop.press_data(confirm["callback_data"], summary_message)
    assert replies == []
    assert shop.alerts()[-1] == shown("orders/already_placed.txt", number=1)
    assert len(await orders(app)) == 1
    assert len([m for m in world.sent(STAFF_CHAT_ID) if m.text.startswith("🧾 Order")]) == 1


async def test_an_earlier_orders_confirm_still_says_placed(app: App, world: FakeTelegram, shop: FakeUser) -> None:
    """In the next dialog (the placed order kept in dialog data) and after it ended (looked up by its key)."""
    [summary_message] = await to_summary(shop)
    _, confirm = shop.find_button(label("order_confirm"), summary_message)
    await shop.press_data(confirm["callback_data"], summary_message)
    await shop.send("/order")
    for _ in range(2):
        assert await shop.press_data(confirm["callback_data"], summary_message) == []
        assert shop.alerts()[-1] == shown("orders/already_placed.txt", number=1)
        await shop.send("/cancel")
    assert len(await orders(app)) == 1


async def test_confirm_pressed_twice_at_once_makes_one_order(app: App, world: FakeTelegram, shop: FakeUser) -> None:
    [summary_message] = await to_summary(shop)
    _, confirm = shop.find_button(label("order_confirm"), summary_message)
    await asyncio.gather(shop.press_data(confirm["callback_data"], summary_message),
                         shop.press_data(confirm["callback_data"], summary_message))
    assert len(await orders(app)) == 1
    assert len([m for m in world.sent(STAFF_CHAT_ID) if m.text.startswith("🧾 Order")]) == 1


async def test_the_same_confirm_update_twice_makes_one_order(app: App, world: FakeTelegram, shop: FakeUser) -> None:
    [summary_message] = await to_summary(shop)
    _, confirm = shop.find_button(label("order_confirm"), summary_message)
    payload = {"update_id": 424242, "callback_query": {
        "id": "replayed-1", "from": shop.user_dict(), "chat_instance": str(shop.chat_id),
        "data": confirm["callback_data"], "message": summary_message.raw}}
    update = Update.model_validate(payload, context={"bot": world.bot})
    for _ in range(2):
        await world.dispatcher.feed_update(world.bot, update)
    assert len(await orders(app)) == 1
    placed = [m for m in shop.inbox() if m.text == shown("orders/placed", number=1, total=27500)]
    assert len(placed) == 1


async def test_another_customers_confirm_button_is_refused(app: App, world: FakeTelegram, shop: FakeUser) -> None:
    [summary_message] = await to_summary(shop)
    _, confirm = shop.find_button(label("order_confirm"), summary_message)
    await shop.press_data(confirm["callback_data"], summary_message)
    wei = FakeUser(world, 100002, "Wei")
    await add_customer(app, wei.id, name="Wei")
    await wei.send("/start")
    assert await wei.press_data(confirm["callback_data"], wei.last()) == []
    assert wei.alerts()[-1] == EXPIRED  # nothing about whose order it was
    assert len(await orders(app)) == 1


# ----- restarts -------------------------------------------------------------------------------

STEPS = (
    ("start", lambda u: u.send("/order")),
    ("category", lambda u: u.press("Rice")),
    ("product", lambda u: u.press("Jasmine rice")),
    ("quantity", lambda u: u.send("2")),
    ("more", lambda u: u.press(label("order_add_more"))),
    ("category2", lambda u: u.press("Cooking oil")),
    ("product2", lambda u: u.press("Peanut oil")),
    ("quantity2", lambda u: u.press("1")),
    ("checkout", lambda u: u.press("Checkout")),
    ("address", lambda u: u.send("88 Noodle Road")),
    ("save", lambda u: u.press(label("yes"))),
    ("note", lambda u: u.send("Ring twice")),
    ("confirm", lambda u: u.press(label("order_confirm"))),
)


async def test_restart_between_any_two_steps(app: App, world: FakeTelegram, shop: FakeUser) -> None:
    """The bot is rebuilt from the database after every step; the order still comes out whole."""
    current = app
    try:
        for name, act in STEPS:
            await act(shop)
            if name != STEPS[-1][0]:
                asked = shop.last()
                current = await restart(current, world)
                assert shop.last() is asked  # the same question is still open
        [order] = await orders(current)
        assert items_of(order) == [("RICE-1", 2, 6800), ("OIL-1", 1, 13900)]
        assert (order.address, order.note, order.source) == ("88 Noodle Road", "Ring twice", "dialog")
        assert (await customer_row(current, shop.id)).address == "88 Noodle Road"
    finally:
        if current is not app:
            await current.close()


async def test_no_staff_chat_configured(app: App, world: FakeTelegram, shop: FakeUser) -> None:
    app.settings.staff_chat_id = None
    replies: list[SentMessage] = await place_order(shop)
    assert texts_of(replies) == [shown("orders/placed", number=1, total=27500)]
    [order] = await orders(app)
    assert order.staff_message_id is None
    assert world.sent(STAFF_CHAT_ID) == []


async def test_a_staff_chat_that_fails_does_not_lose_the_order(app: App, world: FakeTelegram, shop: FakeUser) -> None:
    world.fail("chat_not_found", chat_id=STAFF_CHAT_ID)
    replies = await place_order(shop)
    assert texts_of(replies) == [shown("orders/placed", number=1, total=27500)]
    [order] = await orders(app)
    assert order.status == "new" and order.staff_message_id is None
