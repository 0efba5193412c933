"""Staff read their language (#12 item 7, staff cards): the staff chat has one language, chosen there
with /language (STAFF_LANGUAGE until then) and kept in the database; a staff member's private chat has
the language they chose there. Survey comments reach staff as something they can answer, and a
forgotten customer's order card keeps the order (#12 review)."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from bot.app import App
from bot.fake_telegram import FakeTelegram, FakeUser, SentMessage
from jobs.runner import advance, run_job
from storage.models import StaffLanguage
from tests.conftest import MANAGER_ID, STAFF_CHAT_ID, STAFF_ID, register, restart
from tests.helpers import (
    SMALL_CATALOG,
    add_customer,
    add_order,
    add_product,
    deliver,
    file_complaint,
    label,
    load_catalog,
    messages,
    place_order,
)

# English a Chinese staff text must not carry (template words, not names or numbers).
ENGLISH = re.compile(r"\b(Complaint|Order|Customer|Total|Reply|Take|Resolve|Priority|Accept|Cancel|target|left|"
                     r"Nobody|Escalation|Low rating|Deliver|New|High|Normal|Delivery)\b")


def staff_texts(world: FakeTelegram) -> list[SentMessage]:
    return world.sent(STAFF_CHAT_ID)


def order_card(world: FakeTelegram, number: int = 1) -> SentMessage:
    return next(m for m in world.sent(STAFF_CHAT_ID) if m.text.startswith(("🧾 Order #", "🧾 订单 #"))
                and f"#{number} " in m.text)


def ticket_card(world: FakeTelegram, number: int = 1) -> SentMessage:
    """The ticket's card in the staff chat, in either language."""
    for message in world.sent(STAFF_CHAT_ID):
        if message.html and "🎫" in message.html and (f"no. {number}</b>" in message.html
                                                     or f"{number} 号投诉</b>" in message.html):
            return message
    raise AssertionError(f"no card of ticket {number} in the staff chat")


def chinese_only(message: SentMessage) -> None:
    shown = "\n".join([message.text or "", *message.labels])
    assert not ENGLISH.search(shown), shown
    assert re.search(r"[\u4e00-\u9fff]", shown), shown


async def _choose(user: FakeUser, lang: str) -> list[SentMessage]:
    await user.send("/language")
    return await user.press("中文" if lang == "zh" else "English")


# ----- the staff chat's language ------------------------------------------------------------------------

async def test_staff_choose_chinese_for_the_staff_chat_cards_notices_and_warnings(
        app: App, world: FakeTelegram, customer: FakeUser, staff: FakeUser, staff2: FakeUser) -> None:
    await load_catalog(app, SMALL_CATALOG)
    await register(customer, "Mei")
    asked = await staff.send("/language")
    assert "this staff chat" in asked[0].text and asked[0].labels == ["English", "中文"]
    await staff.press("中文")
    assert staff.last().text == "本员工群已改用中文，之后的卡片、通知和提醒都会用中文。"
    async with app.db.session() as session:
        assert [(r.key, r.language) for r in await session.scalars(select(StaffLanguage))] == [("staff_chat", "zh")]
    # A new complaint's card, its buttons included.
    await file_complaint(customer, "musty rice", category="Product quality")  # normal: 2 h first response
    complaint = ticket_card(world)
    assert complaint.text.startswith("🎫 1 号投诉")
    assert complaint.labels == ["🙋 受理", "✅ 解决", "⚖️ 优先级"]
    chinese_only(complaint)
    assert not re.search(r"[\u4e00-\u9fff]", customer.last().text)  # the customer reads their own language
    # A new order's card.
    await place_order(customer)
    placed = order_card(world)
    assert placed.text.startswith("🧾 订单 #1 · 新订单") and "合计：¥275.00" in placed.text
    assert placed.labels[0] == label("desk_accepted", "zh")
    chinese_only(placed)
    # Everyone in the group reads it: the other staff member too.
    replies = await staff2.send("/tickets")
    assert "1 号" in replies[-1].text
    chinese_only(replies[-1])
    # Pressing a button redraws the card in the same language.
    await staff2.press(label("desk_accepted", "zh"), placed)
    assert placed.text.startswith("🧾 订单 #1 · 已接单") and placed.labels[0] == label("desk_out_for_delivery", "zh")
    chinese_only(placed)
    # The SLA warning for the unassigned complaint, in the staff chat.
    await advance(app.jobs, timedelta(minutes=97), step=timedelta(minutes=5))
    await deliver(app)
    warning = world.last(STAFF_CHAT_ID)
    assert warning.text.startswith("⏰ 1 号") and "即将到期" in warning.text and "目前还没有人受理" in warning.text
    chinese_only(warning)
    # The staff members' private chats are theirs: still English.
    sam = FakeUser(world, STAFF_ID, "Sam", language_code="en")
    assert (await sam.send("/help"))[0].text.startswith("Commands for staff")


async def test_the_staff_chat_keeps_its_language_after_a_restart_and_can_go_back(
        app: App, world: FakeTelegram, customer: FakeUser, staff: FakeUser) -> None:
    await register(customer, "Mei")
    await _choose(staff, "zh")
    app = await restart(app, world)
    await file_complaint(customer, "late again")
    chinese_only(ticket_card(world))
    await _choose(staff, "en")
    assert staff.last().text.startswith("This staff chat now reads English")
    await staff.press("🙋 受理", ticket_card(world))  # the old card's button still works, and it is redrawn in English
    assert ticket_card(world).text.startswith("🎫 Complaint no. 1") and "🙋 Take" not in ticket_card(world).labels
    await app.close()


async def test_staff_language_setting_and_who_may_switch(app: App, world: FakeTelegram, customer: FakeUser) -> None:
    app.settings.staff_language = "zh"  # STAFF_LANGUAGE=zh; the bot's default stays English
    await register(customer, "Mei")
    assert customer.last().text and not re.search(r"[\u4e00-\u9fff]", customer.last().text)
    await file_complaint(customer, "torn bag")
    chinese_only(ticket_card(world))
    # Someone in the staff group who is not staff cannot switch it.
    visitor = FakeUser(world, 100077, "Visitor", chat_id=STAFF_CHAT_ID)
    await visitor.send("/language")
    await visitor.press("English")
    assert visitor.alerts()[-1] == "只有工作人员可以操作。"  # in the staff chat's language
    await file_complaint(customer, "torn bag again")
    chinese_only(ticket_card(world, 2))


# ----- a staff member's private chat --------------------------------------------------------------------

async def test_a_staff_member_who_chose_chinese_gets_reminders_in_chinese_while_the_group_stays_english(
        app: App, world: FakeTelegram, customer: FakeUser, staff: FakeUser) -> None:
    sam = FakeUser(world, STAFF_ID, "Sam", language_code="en")
    await _choose(sam, "zh")
    assert sam.last().text == "语言已设置为中文。"
    await register(customer, "Mei")
    await file_complaint(customer, "late", category="Delivery")  # high: 30 min
    await staff.press("Take", ticket_card(world))
    assert ticket_card(world).text.startswith("🎫 Complaint no. 1")  # the group stays English
    await advance(app.jobs, timedelta(minutes=25))
    await deliver(app)
    [reminder] = [m for m in world.sent(STAFF_ID) if "⏰" in (m.text or "")]
    assert reminder.text.startswith("⏰ 1 号") and "即将到期" in reminder.text
    chinese_only(reminder)
    # Restarted, the bot still knows: the next reminder is Chinese too.
    app = await restart(app, world)
    await file_complaint(customer, "late again", category="Delivery")
    await staff.press("Take", ticket_card(world, 2))
    await advance(app.jobs, timedelta(minutes=25))
    await deliver(app)
    reminders = [m for m in world.sent(STAFF_ID) if "⏰" in (m.text or "")]
    assert len(reminders) == 2 and reminders[-1].text.startswith("⏰ 2 号")
    assert not any("⏰" in (m.text or "") for m in world.sent(STAFF_CHAT_ID))
    await app.close()


async def test_a_manager_who_chose_chinese_gets_escalations_and_low_rating_alerts_in_chinese(
        app: App, world: FakeTelegram, customer: FakeUser, staff: FakeUser, manager: FakeUser) -> None:
    await _choose(manager, "zh")
    await register(customer, "Mei")
    await file_complaint(customer, "late", category="Delivery")  # high: 30 min first response
    await advance(app.jobs, timedelta(minutes=35), step=timedelta(minutes=5))
    await deliver(app)
    escalation = next(m for m in manager.inbox() if "🚨" in (m.text or ""))
    assert escalation.text.startswith("🚨 升级：1 号")
    chinese_only(escalation)
    await staff.press("Resolve", ticket_card(world))
    await staff.send("New bag delivered.")
    await deliver(app)
    await customer.press("1 ⭐", next(m for m in customer.inbox() if "is resolved" in (m.text or "")))
    await deliver(app)
    alert = next(m for m in manager.inbox() if "😞" in (m.text or ""))
    assert alert.text.startswith("😞 低评分：1/5")
    chinese_only(alert)


# ----- survey comments reach staff who can answer them --------------------------------------------------

async def _delivery_surveyed(app: App, customer: FakeUser) -> int:
    cid = await add_customer(app, customer.id, name="Mei")
    tea = await add_product(app, "tea", name="Green tea", days_per_unit_per_person=None)
    order_id = await add_order(app, cid, tea, app.clock.now() - timedelta(days=3),
                               delivered_at=app.clock.now() - timedelta(days=2))
    await run_job(app.jobs, "plan_care")
    await run_job(app.jobs, "deliver_outbox")
    assert "How was order no." in (customer.last().text or "")
    return order_id


async def test_a_delivery_survey_comment_reaches_the_staff_who_reply(app: App, world: FakeTelegram,
                                                                    customer: FakeUser, staff: FakeUser) -> None:
    order_id = await _delivery_surveyed(app, customer)
    await customer.press("2 ⭐")
    await customer.send("The bag was torn & <wet>")
    assert customer.last().text.startswith(f"Thank you — your comment on order no. {order_id} was passed on")
    relayed = world.last(STAFF_CHAT_ID)
    assert "The bag was torn & <wet>" in relayed.text
    assert f"a comment on the delivery survey of order no. {order_id}, rated 2 ⭐" in relayed.text
    assert relayed.labels == ["⚠️ Make it a complaint"]
    await staff.send("Sorry! A new bag comes today.", reply_to=relayed.message_id)
    assert customer.last().text == "💬 Sam from our team:\nSorry! A new bag comes today."
    # The low rating is a notice of its own (not answered by replying to it).
    await deliver(app)
    assert any("Low rating" in (m.text or "") for m in world.sent(STAFF_CHAT_ID))


async def test_a_survey_comment_goes_to_the_open_ticket(app: App, world: FakeTelegram, customer: FakeUser,
                                                       staff: FakeUser) -> None:
    order_id = await _delivery_surveyed(app, customer)
    survey = customer.last_with_buttons()
    await file_complaint(customer, "Rice was wet", category="Other", order="Not about an order")  # first
    await customer.press("2 ⭐", survey)
    await customer.send("Also the tea was wet")
    relayed = world.last(STAFF_CHAT_ID)
    assert relayed.reply_to == ticket_card(world).message_id  # under the open complaint's card
    assert f"a comment on the delivery survey of order no. {order_id}, rated 2 ⭐" in relayed.text
    assert [m.text for m in await messages(app) if m.direction == "in"][-1] == "Also the tea was wet"
    await staff.send("We will replace both.", reply_to=relayed.message_id)
    assert "We will replace both." in customer.last().text


async def test_a_low_rating_comment_of_a_complaint_reaches_the_staff_who_reply(
        app: App, world: FakeTelegram, customer: FakeUser, staff: FakeUser) -> None:
    await register(customer, "Mei")
    await file_complaint(customer, "torn bag")
    await staff.press("Resolve", ticket_card(world))
    await staff.send("New bag delivered.")
    await deliver(app)
    await customer.press("1 ⭐", next(m for m in customer.inbox() if "is resolved" in (m.text or "")))
    await customer.send("Nobody called me back")
    assert "passed on to our team" in customer.last().text
    relayed = next(m for m in reversed(world.sent(STAFF_CHAT_ID)) if "Nobody called me back" in (m.text or ""))
    assert "a comment on their 1/5 rating of complaint no. 1" in relayed.text
    assert relayed.reply_to == ticket_card(world).message_id
    await staff.send("I am calling you now.", reply_to=relayed.message_id)
    assert "I am calling you now." in customer.last().text
    # No duplicate in the staff chat: the managers (configured) were alerted privately.
    await deliver(app)
    assert [m for m in world.sent(STAFF_CHAT_ID) if "Nobody called me back" in (m.text or "")] == [relayed]
    assert any("Nobody called me back" in (m.text or "") for m in world.sent(MANAGER_ID))


# ----- /forget keeps the order on its card ---------------------------------------------------------------

async def test_forget_keeps_the_order_details_on_its_card(app: App, world: FakeTelegram, customer: FakeUser,
                                                          staff: FakeUser) -> None:
    await load_catalog(app, SMALL_CATALOG)
    await register(customer, "Meixiu Qiao", address="88 Lotus Lane")
    await _choose(staff, "zh")
    await place_order(customer)
    placed = order_card(world)
    assert "Meixiu Qiao" in placed.text and "88 Lotus Lane" in placed.text
    await customer.send("/forget")
    await customer.press("Yes")
    await advance(app.jobs, timedelta(minutes=5))
    lines = placed.text.splitlines()
    assert lines[0] == "🧾 订单 #1 · 新订单"
    assert lines[1] == "顾客：（客户资料已删除）" and lines[2] == "送货地址：（应客户要求已删除）"
    assert "2 × 泰国香米" in placed.text
    assert "合计：¥275.00" in placed.text and "新订单 · 顾客" in placed.text
    assert not any(s in placed.text for s in ("Meixiu", "Qiao", "88 Lotus Lane", customer.phone.lstrip("+")[2:]))
    # Still an order staff can move: its buttons stay, and a move keeps it anonymous.
    assert placed.labels[0] == label("desk_accepted", "zh")
    await staff.press(label("desk_accepted", "zh"), placed)
    assert placed.text.startswith("🧾 订单 #1 · 已接单") and "（客户资料已删除）" in placed.text
    assert "Meixiu" not in placed.text
