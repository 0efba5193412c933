"""/orders: the last orders, "Order again" in one tap (also the care engine's
entry, begin_reorder), Cancel while new, forged buttons, and privacy."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from aiogram import F, Router
from aiogram.types import CallbackQuery

from bot.app import App
from bot.dialogs import Turn
from bot.fake_telegram import FakeTelegram, FakeUser
from bot.rules.tickets import Actor
from bot.texts import Texts
from handlers.ordering import begin_reorder
from storage.models import Customer
from storage.repositories import Repos
from tests.conftest import STAFF_CHAT_ID
from tests.helpers import (
    add_customer,
    customer_row,
    history,
    items_of,
    label,
    orders,
    quick_order,
    set_product,
    shop,  # noqa: F401  (a fixture)
    shown,
    texts_of,
)

NOT_FOUND = "We could not find that order."


def summary(lines: list[tuple[str, str, int, int]], address: str = "12 Rice Street") -> str:
    views = [{"name": n, "unit": u, "price": p, "quantity": q, "total": p * q} for n, u, p, q in lines]
    return shown("orders/summary", lines=views, total=sum(v["total"] for v in views), address=address, note=None)


async def test_no_orders_yet(app: App, shop: FakeUser) -> None:
    replies = await shop.send("/orders")
    assert texts_of(replies) == [shown("orders/none")]
    replies = await shop.press(label("menu_order"))
    assert texts_of(replies) == [shown("orders/ask_category", cart_count=0)]


async def test_the_last_ten_orders_newest_first(app: App, world: FakeTelegram, shop: FakeUser) -> None:
    for _ in range(12):
        app.clock.advance(timedelta(days=1))
        await quick_order(app, shop)
    async with app.db.session() as session:
        await Repos(session).orders.change_status(12, "new", "accepted", Actor("staff", 1, "Kim"), app.clock.now())
        await session.commit()
    [listing] = await shop.send("/orders")
    numbers = [line.split(" · ")[0] for line in listing.text.splitlines() if line.startswith("#")]
    assert numbers == [f"#{n}" for n in range(12, 2, -1)]
    assert "#12 · 2026-03-14 10:00 · Accepted · ¥275.00" in listing.text
    assert "2 × Jasmine rice, 1 × Peanut oil" in listing.text
    assert listing.labels[:3] == [label("order_again", number=12), label("order_again", number=11),
                                  label("order_cancel", number=11)]  # #12 is accepted: no Cancel
    assert len(listing.text) < 4096


async def test_the_menu_shows_orders(app: App, shop: FakeUser) -> None:
    await quick_order(app, shop)
    await shop.send("/start")
    [listing] = await shop.press(label("menu_orders"))
    assert listing.text.startswith("📦 Your last orders")


# ----- order again ------------------------------------------------------------------

async def test_order_again_is_one_tap_to_the_summary(app: App, world: FakeTelegram, shop: FakeUser) -> None:
    await quick_order(app, shop)
    await set_product(app, "RICE-1", price=7000)  # today's price
    await shop.send("/orders")
    replies = await shop.press(label("order_again", number=1))
    assert texts_of(replies) == [summary([("Jasmine rice", "5 kg bag", 7000, 2),
                                          ("Peanut oil", "5 L bottle", 13900, 1)])]
    await shop.press(label("order_confirm"))
    first, second = await orders(app)
    assert items_of(second) == [("RICE-1", 2, 7000), ("OIL-1", 1, 13900)]
    assert (second.source, second.reorder_of_id, second.address, second.total) == ("reorder", 1, "12 Rice Street",
                                                                                   27900)
    assert items_of(first) == [("RICE-1", 2, 6800), ("OIL-1", 1, 13900)]  # the old prices stay with the old order
    assert world.last(STAFF_CHAT_ID).text.splitlines()[3] == "Source: one-tap reorder"


async def test_order_again_leaves_out_what_is_not_sold_any_more(app: App, shop: FakeUser) -> None:
    await quick_order(app, shop)
    await set_product(app, "OIL-1", active=False)
    await shop.send("/orders")
    replies = await shop.press(label("order_again", number=1))
    assert texts_of(replies) == [shown("orders/removed", names=["Peanut oil"], unknown=0),
                                 summary([("Jasmine rice", "5 kg bag", 6800, 2)])]


async def test_order_again_with_nothing_left(app: App, shop: FakeUser) -> None:
    await quick_order(app, shop)
    for sku in ("RICE-1", "OIL-1"):
        await set_product(app, sku, active=False)
    await shop.send("/orders")
    replies = await shop.press(label("order_again", number=1))
    assert texts_of(replies)[1:] == [shown("orders/reorder_nothing"), shown("orders/ask_category", cart_count=0)]


async def test_order_again_without_a_saved_address_asks_for_one(app: App, world: FakeTelegram, shop: FakeUser) -> None:
    await quick_order(app, shop)
    async with app.db.session() as session:
        repos = Repos(session)
        row = await repos.customers.by_telegram_id(shop.id)
        await repos.customers.update_field(row, "address", None, app.clock.now())
        await repos.commit()
    await shop.send("/orders")
    replies = await shop.press(label("order_again", number=1))
    assert texts_of(replies) == [shown("orders/ask_address", saved=None)]
    await shop.send("3 New Road")
    replies = await shop.press(label("no"))
    assert texts_of(replies) == [summary([("Jasmine rice", "5 kg bag", 6800, 2),
                                          ("Peanut oil", "5 L bottle", 13900, 1)], address="3 New Road")]


async def test_order_again_twice_then_confirm_makes_one_order(app: App, shop: FakeUser) -> None:
    await quick_order(app, shop)
    [listing] = await shop.send("/orders")
    [first_summary] = await shop.press(label("order_again", number=1), listing)
    await shop.press(label("order_again", number=1), listing)
    assert await shop.press(label("order_confirm"), first_summary) == []  # the older summary is stale
    assert shop.alerts()[-1] == shown("common/button_expired.txt")
    await shop.press(label("order_confirm"))
    assert len(await orders(app)) == 2


async def test_order_again_in_the_middle_of_another_dialog(app: App, shop: FakeUser) -> None:
    await quick_order(app, shop)
    [listing] = await shop.send("/orders")
    await shop.send("/profile")
    await shop.press(label("field_name"))
    assert await shop.press(label("order_again", number=1), listing) == []
    assert shop.alerts()[-1] == shown("common/finish_first.txt")


async def test_buttons_for_other_peoples_orders_reveal_nothing(app: App, world: FakeTelegram, shop: FakeUser) -> None:
    await quick_order(app, shop)
    wei = FakeUser(world, 100002, "Wei")
    await add_customer(app, wei.id, name="Wei")
    [menu] = await wei.send("/start")
    for data in ("myo:again:1", "myo:cancel:1", "myo:cancel_yes:1", "myo:again:999", "myo:cancel:999"):
        assert await wei.press_data(data, menu) == []
        assert world.alerts[-1] == (0, NOT_FOUND, True)  # the same for someone else's and for no order
    assert [o.status for o in await orders(app)] == ["new"]


# ----- cancelling ----------------------------------------------------------------------

async def test_cancel_a_new_order(app: App, world: FakeTelegram, shop: FakeUser) -> None:
    await quick_order(app, shop)
    await shop.send("/orders")
    replies = await shop.press(label("order_cancel", number=1))
    assert texts_of(replies) == [shown("orders/cancel_confirm", number=1, total=27500)]
    replies = await shop.press(label("order_cancel_yes"))
    assert [m.text for m in replies if m.chat_id == shop.chat_id] == [shown("orders/cancelled_by_you", number=1)]
    assert world.last(STAFF_CHAT_ID).text == shown("orders/desk/customer_cancelled", number=1, name="Mei Lin")
    card = next(m for m in world.sent(STAFF_CHAT_ID) if m.text.startswith("🧾 Order #1"))
    assert card.text.startswith("🧾 Order #1 · Cancelled") and card.buttons == []
    changes = await history(app, 1)
    assert (changes[-1].to_status, changes[-1].actor_role, changes[-1].actor_telegram_id) == (
        "cancelled", "customer", shop.id)


async def test_keep_the_order(app: App, shop: FakeUser) -> None:
    await quick_order(app, shop)
    await shop.send("/orders")
    await shop.press(label("order_cancel", number=1))
    replies = await shop.press(label("order_cancel_no"))
    assert texts_of(replies) == [shown("orders/kept", number=1)]
    assert (await orders(app))[0].status == "new"


async def test_no_cancel_once_staff_accepted(app: App, world: FakeTelegram, shop: FakeUser, staff: FakeUser) -> None:
    await quick_order(app, shop)
    [listing] = await shop.send("/orders")
    [question] = await shop.press(label("order_cancel", number=1))
    await staff.press("Accept")
    # The confirmation that was already open: told, nothing cancelled.
    replies = await shop.press(label("order_cancel_yes"), question)
    assert [m.text for m in replies if m.chat_id == shop.chat_id] == []
    assert shop.alerts()[-1] == shown("orders/cannot_cancel.txt", number=1, status="Accepted")
    # The list's old Cancel button: the same.
    assert await shop.press(label("order_cancel", number=1), listing) == []
    assert (await orders(app))[0].status == "accepted"


async def test_customer_and_staff_at_once(app: App, world: FakeTelegram, shop: FakeUser, staff: FakeUser) -> None:
    """The customer's Yes loses to the staff's Accept that came first: compare-and-set on 'new'."""
    await quick_order(app, shop)
    await shop.send("/orders")
    [question] = await shop.press(label("order_cancel", number=1))
    async with app.db.session() as session:  # staff accepted in between the check and the update
        await Repos(session).orders.change_status(1, "new", "accepted", Actor("staff", 1, "Kim"), app.clock.now())
        await session.commit()
    replies = await shop.press(label("order_cancel_yes"), question)
    assert shop.alerts()[-1] == shown("orders/cannot_cancel.txt", number=1, status="Accepted")
    assert replies == []


# ----- the care engine's entry points -----------------------------------------------------

@pytest.fixture
def reminder_button(app: App) -> dict[str, Any]:
    """A stand-in for the care engine's "Order again" reminder button."""
    seen: dict[str, Any] = {}
    router = Router(name="test-reminder")

    @router.callback_query(F.data.startswith("test:remind:"))
    async def remind(callback: CallbackQuery, turn: Turn, texts: Texts, repos: Repos,
                     customer: Customer | None) -> None:
        await callback.answer()
        await begin_reorder(callback.message, turn, texts=texts, repos=repos, customer=customer,  # type: ignore[arg-type]
                            items=seen["items"], source="reminder", outbox_id=int(callback.data.split(":")[2]))

    app.dispatcher.include_router(router)
    app.dispatcher.sub_routers.remove(router)
    app.dispatcher.sub_routers.insert(0, router)  # before the fallbacks
    return seen


async def test_reminder_reorder_records_its_source_and_hooks_run(app: App, world: FakeTelegram, shop: FakeUser,
                                                                  reminder_button: dict[str, Any]) -> None:
    async with app.db.session() as session:
        repos = Repos(session)
        await repos.outbox.enqueue(dedupe_key="reorder:1", kind="reorder_reminder", chat_id=shop.id, text="Rice?",
                                   now=app.clock.now(), category="care")
        outbox_id = (await repos.outbox.by_key("reorder:1")).id
        await repos.commit()
    rice = (await _product_id(app, "RICE-1"))
    reminder_button["items"] = [(rice, 3), (999999, 1)]
    [menu] = await shop.send("/start")
    replies = await shop.press_data(f"test:remind:{outbox_id}", menu)
    assert texts_of(replies) == [shown("orders/removed", names=[], unknown=1),
                                 summary([("Jasmine rice", "5 kg bag", 6800, 3)])]
    _, confirm = shop.find_button(label("order_confirm"), replies[-1])
    for _ in range(2):  # twice: one order
        await shop.press_data(confirm["callback_data"], replies[-1])
    [order] = await orders(app)
    assert (order.source, order.attributed_outbox_id, order.reorder_of_id) == ("reminder", outbox_id, None)
    assert items_of(order) == [("RICE-1", 3, 6800)]


async def _product_id(app: App, sku: str) -> int:
    from tests.helpers import product

    return (await product(app, sku)).id


# ----- privacy -------------------------------------------------------------------------------

async def test_mydata_has_the_orders_and_forget_keeps_them_anonymous(app: App, world: FakeTelegram,
                                                                     shop: FakeUser) -> None:
    await shop.send("/order")
    await shop.press("Rice")
    await shop.press("Jasmine rice")
    await shop.send("2")
    await shop.press("Checkout")
    await shop.press("📍")
    await shop.send("Leave it with the guard")
    await shop.press(label("order_confirm"))
    [document] = await shop.send("/mydata")
    data = json.loads(world.files[document.file_id][1])
    [mine] = data["orders"]
    assert (mine["number"], mine["address"], mine["note"], mine["total_minor_units"]) == (
        1, "12 Rice Street", "Leave it with the guard", 13600)
    assert mine["items"] == [{"sku": "RICE-1", "name": "Jasmine rice", "quantity": 2, "unit_price_minor_units": 6800}]
    assert [h["status"] for h in mine["history"]] == ["new"]

    await shop.send("/forget")
    await shop.press(label("forget_yes"))
    [order] = await orders(app)
    assert (order.address, order.note) == (None, None)
    assert (order.total, items_of(order)) == (13600, [("RICE-1", 2, 6800)])  # kept for the reports
    assert await customer_row(app, shop.id) is None
