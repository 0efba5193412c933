"""The staff order desk: the card in the staff chat, status buttons that only
staff may press, compare-and-set when two press at once, cancelling with a
reason, and telling the customer (in their language) of every change."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from bot.app import App
from bot.fake_telegram import FakeTelegram, FakeUser, SentMessage
from bot.pipeline import CALL_ATTEMPTS
from tests.conftest import STAFF2_ID, STAFF_CHAT_ID, STAFF_ID, restart
from tests.helpers import (
    SMALL_CATALOG,
    add_customer,
    customer_row,
    history,
    label,
    load_catalog,
    orders,
    quick_order,
    shown,
    texts_of,
)


@pytest.fixture
async def ordered(app: App, customer: FakeUser) -> FakeUser:
    """A customer who has just placed order #1 (2 × Jasmine rice, 1 × Peanut oil)."""
    await load_catalog(app, SMALL_CATALOG)
    await add_customer(app, customer.id, name="Mei Lin")
    await quick_order(app, customer)
    return customer


def card(world: FakeTelegram) -> SentMessage:
    return next(m for m in world.sent(STAFF_CHAT_ID) if m.text.startswith("🧾 Order #1"))


def told(status: str, lang: str = "en", reason: str | None = None) -> str:
    return shown("orders/status_changed", lang, number=1, status=status, status_label="", reason=reason, total=27500)


def alerts(world: FakeTelegram) -> list[str]:
    return [text for _, text, _ in world.alerts]


async def test_card_lists_the_order_with_all_buttons(app: App, world: FakeTelegram, ordered: FakeUser) -> None:
    posted = card(world)
    assert posted.text.splitlines()[:3] == [
        "🧾 Order #1 · New", f"Customer: Mei Lin · {ordered.phone}", "Deliver to: 12 Rice Street"]
    assert "2 × Jasmine rice, 5 kg bag · ¥68.00 = ¥136.00" in posted.text
    assert "Total: ¥275.00" in posted.text
    assert posted.text.splitlines()[-1] == "2026-03-02 10:00 · New · Mei Lin"  # Shanghai time
    assert posted.labels == [label("desk_accepted"), label("desk_out_for_delivery"), label("desk_delivered"),
                             label("desk_cancelled")]


async def test_staff_move_the_order_to_delivered(app: App, world: FakeTelegram, ordered: FakeUser,
                                                 staff: FakeUser) -> None:
    for button, status in (("Accept", "accepted"), ("Out for delivery", "out_for_delivery"),
                           ("Delivered", "delivered")):
        app.clock.advance(timedelta(minutes=30))
        replies = await staff.press(button)
        assert [m.text for m in replies if m.chat_id == ordered.chat_id] == [told(status)]
        assert alerts(world)[-1] == shown("orders/desk/done.txt", number=1,
                                          status=shown("orders/status_name.txt", status=status))
    shown_card = card(world)
    assert shown_card.text.startswith("🧾 Order #1 · Delivered")
    assert shown_card.text.splitlines()[-3:] == [
        "2026-03-02 10:30 · Accepted · Sam", "2026-03-02 11:00 · Out for delivery · Sam",
        "2026-03-02 11:30 · Delivered · Sam"]
    assert shown_card.buttons == []  # nothing more to do
    [order] = await orders(app)
    assert order.status == "delivered" and order.delivered_at == app.clock.now()
    changes = await history(app, 1)
    assert [(c.from_status, c.to_status, c.actor_role, c.actor_telegram_id, c.actor_name) for c in changes] == [
        ("new", "accepted", "staff", STAFF_ID, "Sam"),
        ("accepted", "out_for_delivery", "staff", STAFF_ID, "Sam"),
        ("out_for_delivery", "delivered", "staff", STAFF_ID, "Sam"),
    ]


async def test_staff_may_skip_steps(app: App, world: FakeTelegram, ordered: FakeUser, staff: FakeUser) -> None:
    await staff.press("Delivered")
    assert (await orders(app))[0].status == "delivered"
    assert ordered.last().text == told("delivered")


async def test_the_customer_is_told_in_their_language(app: App, world: FakeTelegram, staff: FakeUser) -> None:
    await load_catalog(app, SMALL_CATALOG)
    mei = FakeUser(world, 100009, "梅")
    await add_customer(app, mei.id, name="梅", language="zh")
    await quick_order(app, mei)
    await staff.press("Accept")
    assert mei.last().text == told("accepted", "zh")
    assert card(world).text.startswith("🧾 Order #1 · Accepted")  # the card stays in the staff language


async def test_only_staff_may_press(app: App, world: FakeTelegram, ordered: FakeUser) -> None:
    posted = card(world)
    _, accept = ordered.find_button("Accept", posted)
    stranger = FakeUser(world, 555, "Eve", chat_id=STAFF_CHAT_ID)  # in the group, but not staff
    for person in (stranger, ordered):  # ... and a customer forging the button in their own chat
        assert await person.press_data(accept["callback_data"], posted) == []
        assert world.alerts[-1] == (0, shown("orders/desk/staff_only.txt"), True)
    assert (await orders(app))[0].status == "new"
    assert await history(app, 1) == []  # the placing is the order row; nothing changed since
    assert card(world).edits == 0


async def test_a_finished_order_does_not_change(app: App, world: FakeTelegram, ordered: FakeUser,
                                               staff: FakeUser) -> None:
    posted = card(world)
    _, cancel = staff.find_button("Cancel", posted)
    old_snapshot = dict(posted.raw)
    await staff.press("Delivered")
    replies = await staff.press_data(cancel["callback_data"], posted)  # the old card's Cancel
    assert replies == []
    assert alerts(world)[-1].startswith("Order #1 is already Delivered (Sam, ")
    assert (await orders(app))[0].status == "delivered"
    assert old_snapshot["message_id"] == card(world).message_id


async def test_two_staff_press_at_once_one_wins(app: App, world: FakeTelegram, ordered: FakeUser, staff: FakeUser,
                                               staff2: FakeUser) -> None:
    posted = card(world)
    _, accept = staff.find_button("Accept", posted)
    _, out = staff.find_button("Out for delivery", posted)
    await asyncio.gather(staff.press_data(accept["callback_data"], posted),
                         staff2.press_data(out["callback_data"], posted))
    changes = await history(app, 1)
    assert len(changes) == 1  # one winner
    winner = changes[0]
    assert winner.from_status == "new" and winner.actor_telegram_id in (STAFF_ID, STAFF2_ID)
    losing = [t for t in alerts(world) if "already" in t]
    assert len(losing) == 1
    order = (await orders(app))[0]
    assert order.status == winner.to_status
    status_name = shown("orders/status_name.txt", status=order.status)
    assert card(world).text.startswith(f"🧾 Order #1 · {status_name}")  # the card shows the truth
    assert len([m for m in ordered.inbox() if m.text.startswith(("✅", "🚚"))]) == 1  # told once


async def test_the_slower_press_is_told_who_won(app: App, world: FakeTelegram, ordered: FakeUser, staff: FakeUser,
                                               staff2: FakeUser) -> None:
    posted = card(world)
    stale = dict(posted.raw)  # what staff2's client still shows
    _, accept = staff2.find_button("Accept", posted)
    await staff.press("Accept")
    app.clock.advance(timedelta(minutes=1))
    await staff2.press_data(accept["callback_data"], posted)
    assert alerts(world)[-1] == "Order #1 is already Accepted (Sam, 2026-03-02 10:00). Nothing changed."
    assert [c.to_status for c in await history(app, 1)] == ["accepted"]
    assert stale["message_id"] == card(world).message_id


async def test_forged_order_ids_are_refused(app: App, world: FakeTelegram, ordered: FakeUser, staff: FakeUser) -> None:
    assert await staff.press_data("desk:accepted:999:new:", card(world)) == []
    assert alerts(world)[-1] == shown("common/button_expired.txt")


# ----- cancelling with a reason ----------------------------------------------------------

async def test_cancel_asks_for_a_reason_and_tells_the_customer(app: App, world: FakeTelegram, ordered: FakeUser,
                                                              staff: FakeUser) -> None:
    replies = await staff.press("Cancel")
    assert texts_of(replies) == [shown("orders/desk/ask_reason", number=1, name="Sam")]
    assert replies[0].labels == [label("desk_reason_out_of_stock"), label("desk_reason_customer_asked"),
                                 label("desk_reason_cannot_deliver"), label("desk_keep")]
    assert (await orders(app))[0].status == "new"  # not before the reason
    replies = await staff.send("x")
    assert texts_of(replies) == [shown("orders/errors/reason_too_short"), replies[-1].text]
    replies = await staff.send_sticker()
    assert texts_of(replies)[0] == shown("common/expected_text")
    replies = await staff.send("The <rice> & oil truck broke down")
    reason = "The <rice> & oil truck broke down"
    assert ordered.last().text == told("cancelled", reason=reason)
    assert staff.last().text == shown("orders/desk/cancelled_done", number=1, reason=reason, told=True)
    [order] = await orders(app)
    assert (order.status, order.cancel_reason, order.cancelled_at) == ("cancelled", reason, app.clock.now())
    assert (await history(app, 1))[-1].reason == reason
    assert card(world).text.startswith("🧾 Order #1 · Cancelled") and card(world).buttons == []


async def test_a_quick_reason_reaches_the_customer_in_their_language(app: App, world: FakeTelegram,
                                                                     staff: FakeUser) -> None:
    await load_catalog(app, SMALL_CATALOG)
    mei = FakeUser(world, 100009, "梅")
    await add_customer(app, mei.id, name="梅", language="zh")
    await quick_order(app, mei)
    await staff.press("Cancel")
    await staff.press("Customer asked")
    assert mei.last().text == told("cancelled", "zh", reason="应您的要求取消")
    assert (await orders(app))[0].cancel_reason == "Customer asked to cancel"


async def test_keep_the_order_and_cancel_command(app: App, world: FakeTelegram, ordered: FakeUser,
                                                 staff: FakeUser) -> None:
    await staff.press("Cancel")
    replies = await staff.press(label("desk_keep"))
    assert texts_of(replies) == [shown("orders/desk/kept", number=1)]
    await staff.press("Cancel", card(world))
    assert texts_of(await staff.send("/cancel")) == [shown("common/cancelled")]
    assert (await orders(app))[0].status == "new"
    assert texts_of(await staff.send("never mind")) == []  # staff chatter is not a reason any more


async def test_reason_buttons_belong_to_who_pressed_cancel(app: App, world: FakeTelegram, ordered: FakeUser,
                                                           staff: FakeUser, staff2: FakeUser) -> None:
    [question] = await staff.press("Cancel")
    assert await staff2.press("Out of stock", question) == []
    assert alerts(world)[-1] == shown("common/button_expired.txt")
    assert (await orders(app))[0].status == "new"


async def test_order_changed_while_the_reason_was_typed(app: App, world: FakeTelegram, ordered: FakeUser,
                                                        staff: FakeUser, staff2: FakeUser) -> None:
    await staff.press("Cancel")
    await staff2.press("Accept", card(world))
    replies = await staff.send("Customer called to cancel")
    assert texts_of(replies)[-1].startswith("Order #1 changed meanwhile: it is now Accepted (Kim, ")
    assert (await orders(app))[0].status == "accepted"


async def test_restart_in_the_middle_of_the_reason(app: App, world: FakeTelegram, ordered: FakeUser,
                                                   staff: FakeUser) -> None:
    await staff.press("Cancel")
    new = await restart(app, world)
    try:
        await staff.send("Out of stock today")
        assert (await orders(new))[0].cancel_reason == "Out of stock today"
    finally:
        await new.close()


# ----- a customer the bot cannot reach ------------------------------------------------------

async def test_a_customer_who_blocked_the_bot_is_marked_and_staff_are_told(
        app: App, world: FakeTelegram, ordered: FakeUser, staff: FakeUser) -> None:
    world.block(ordered.id)
    await staff.press("Accept")
    assert (await orders(app))[0].status == "accepted"  # the change stands
    row = await customer_row(app, ordered.id)
    assert row.reachable is False and row.unreachable_since == app.clock.now()
    notice = world.last(STAFF_CHAT_ID)
    assert notice.text == shown("orders/desk/customer_unreachable", number=1, blocked=True)
    assert notice.reply_to == card(world).message_id
    world.block(ordered.id, False)
    await staff.press("Delivered")
    assert (await customer_row(app, ordered.id)).reachable is True  # reached again


async def test_one_network_failure_is_retried(app: App, world: FakeTelegram, ordered: FakeUser,
                                              staff: FakeUser) -> None:
    world.fail("network", chat_id=ordered.id)
    await staff.press("Accept")
    assert world.last(ordered.id).text == shown("orders/status_changed", number=1, status="accepted",
                                                status_label="Accepted", reason=None, total=13600)


async def test_a_network_failure_is_not_a_block(app: App, world: FakeTelegram, ordered: FakeUser,
                                                staff: FakeUser) -> None:
    # The send path tries a call that failed on the network three times (bot.pipeline.CALL_ATTEMPTS).
    world.fail("network", chat_id=ordered.id, times=CALL_ATTEMPTS)
    await staff.press("Accept")
    assert (await customer_row(app, ordered.id)).reachable is True
    assert world.last(STAFF_CHAT_ID).text == shown("orders/desk/customer_unreachable", number=1, blocked=False)
