"""The /complaint dialog as conversations: happy paths, each wrong input,
/cancel, a restart in the middle, stale buttons and a double Submit."""

from __future__ import annotations

import json
from datetime import timedelta

from bot.app import App
from bot.fake_telegram import FakeTelegram, FakeUser
from tests.conftest import STAFF_CHAT_ID, START, register, restart
from tests.helpers import add_order, card, customer_row, file_complaint, ticket, tickets


async def test_happy_path_without_orders(app: App, world: FakeTelegram, customer: FakeUser) -> None:
    await register(customer, "Mei")
    await customer.send("/complaint")
    assert "What is the complaint about?" in customer.last().text
    assert customer.last().labels == ["Product quality", "Delivery", "Staff attitude", "Billing", "Other"]
    await customer.press("Product quality")
    # No orders: straight to the description.
    assert "describe the problem" in customer.last().text
    await customer.send("The rice smells <musty> & has bugs 🐛")
    summary = customer.last()
    assert "Product quality" in summary.text and "not about an order" in summary.text
    assert "The rice smells <musty> & has bugs 🐛" in summary.text
    await customer.press("Submit")
    assert "registered as no. 1" in customer.last().text
    saved = await ticket(app)
    assert (saved.category, saved.priority, saved.status) == ("quality", "normal", "new")
    assert saved.description == "The rice smells <musty> & has bugs 🐛"
    assert saved.first_response_due_at == START + timedelta(hours=2)
    staff_card = card(world)
    assert "Mei" in staff_card.text and "The rice smells <musty> & has bugs 🐛" in staff_card.text
    assert staff_card.labels == ["🙋 Take", "✅ Resolve", "⚖️ Priority"]
    assert saved.staff_chat_id == STAFF_CHAT_ID and saved.staff_message_id == staff_card.message_id


async def test_about_one_of_the_recent_orders(app: App, world: FakeTelegram, customer: FakeUser) -> None:
    await register(customer, "Mei")
    mei = (await customer_row(app, customer.id)).id
    for days in range(7):
        await add_order(app, mei, None, START - timedelta(days=days + 1), total=1000 + days)
    await customer.send("/complaint")
    await customer.press("Billing")
    assert "recent orders" in customer.last().text
    labels = customer.last().labels
    assert len(labels) == 6 and labels[-1] == "Not about an order"  # the last five, then "not about an order"
    assert labels[0].startswith("#1 ") and "¥10.00" in labels[0]
    await customer.press(labels[1])
    await customer.send("Charged twice")
    assert "#2 of" in customer.last().text
    await customer.press("Submit")
    assert (await ticket(app)).order_id == 2
    assert "#2" in card(world).text


async def test_photos_are_kept_by_file_id(app: App, world: FakeTelegram, customer: FakeUser) -> None:
    await register(customer, "Mei")
    await customer.send("/complaint")
    await customer.press("Delivery")
    await customer.send_photo()
    assert "Photo kept (1 of 5)" in customer.last().text
    await customer.send_photo("The bag, torn open")
    assert "Please check your complaint" in customer.last().text and "Photos:</b> 2" in customer.last().html
    await customer.send_photo()
    assert "Photo added to your complaint (3 of 5)" in customer.last().text
    await customer.press("Submit")
    saved = await ticket(app)
    assert saved.description == "The bag, torn open"
    photos = json.loads(saved.photo_file_ids or "[]")
    assert len(photos) == 3 and all(p.startswith("user-file-") for p in photos)
    posted = [m for m in world.sent(STAFF_CHAT_ID) if m.kind == "photo"]
    assert len(posted) == 3 and all(m.reply_to == saved.staff_message_id for m in posted)


async def test_bad_descriptions_get_specific_answers(app: App, world: FakeTelegram, customer: FakeUser) -> None:
    await register(customer, "Mei")
    await customer.send("/complaint")
    await customer.press("Other")
    answers = await customer.send("   ")
    assert "The description is empty" in answers[0].text and "describe the problem" in answers[-1].text
    answers = await customer.send_sticker()
    assert "write it as text" in answers[0].text and "describe the problem" in answers[-1].text
    answers = await customer.send_voice()
    assert "write it as text" in answers[0].text
    answers = await customer.send("x" * 5000)
    assert "That is 5000 characters; the limit is 3500" in answers[0].text
    assert "describe the problem" in answers[-1].text
    answers = await customer.send("/profile")
    assert "finish" in answers[0].text.lower() and "describe the problem" in answers[-1].text
    await customer.send("x" * 3500)  # exactly the limit is fine
    assert "Please check your complaint" in customer.last().text
    assert await tickets(app) == []


async def test_too_many_photos(app: App, world: FakeTelegram, customer: FakeUser) -> None:
    await register(customer, "Mei")
    await customer.send("/complaint")
    await customer.press("Other")
    for _ in range(5):
        await customer.send_photo()
    answers = await customer.send_photo()
    assert "up to 5 per complaint" in answers[0].text


async def test_wrong_input_at_button_steps(app: App, world: FakeTelegram, customer: FakeUser) -> None:
    await register(customer, "Mei")
    await customer.send("/complaint")
    answers = await customer.send("delivery was late")
    assert answers[-1].text.startswith("What is the complaint about?")
    await customer.press("Delivery")
    await customer.send("late")
    answers = await customer.send("hello?")  # at the summary: the summary again
    assert "Please check your complaint" in answers[-1].text


async def test_cancel_anywhere(app: App, world: FakeTelegram, customer: FakeUser) -> None:
    await register(customer, "Mei")
    await customer.send("/complaint")
    await customer.press("Delivery")
    await customer.send("/cancel")
    assert "cancel" in customer.last().text.lower()
    await customer.send("/complaint")
    await customer.press("Delivery")
    await customer.send("late again")
    await customer.press("Cancel")
    assert await tickets(app) == []
    # After cancelling, plain text is not a complaint (it goes to the staff as a conversation).
    await customer.send("hello")
    assert "passed this on to our team" in customer.last().text
    assert await tickets(app) == []


async def test_restart_in_the_middle(app: App, world: FakeTelegram, customer: FakeUser) -> None:
    await register(customer, "Mei")
    await customer.send("/complaint")
    await customer.press("Staff attitude")
    await customer.send_photo()
    app = await restart(app, world)
    await customer.send("The courier shouted at my mother")
    assert "Staff attitude" in customer.last().text and "Photos:</b> 1" in customer.last().html
    app = await restart(app, world)
    await customer.press("Submit")
    saved = await ticket(app)
    assert saved.category == "staff" and saved.description == "The courier shouted at my mother"
    await app.close()


async def test_stale_and_double_presses(app: App, world: FakeTelegram, customer: FakeUser) -> None:
    await register(customer, "Mei")
    await customer.send("/complaint")
    category_question = customer.last_with_buttons()
    await customer.press("Delivery")
    # The category buttons are gone from the answered question; forged presses of them are refused.
    assert category_question.buttons == []
    await customer.press_data("cmp:cat:category:quality", category_question)
    assert "expired" in customer.alerts()[-1]
    await customer.send("late")
    summary = customer.last_with_buttons()
    submit = next(b["callback_data"] for b in summary.buttons if "Submit" in b["text"])
    await customer.press_data(submit, summary)
    await customer.press_data(submit, summary)  # a double press
    assert len(await tickets(app)) == 1
    assert "expired" in customer.alerts()[-1]
    assert sum("🎫" in (m.html or "") for m in world.sent(STAFF_CHAT_ID)) == 1


async def test_change_the_text_from_the_summary(app: App, world: FakeTelegram, customer: FakeUser) -> None:
    await register(customer, "Mei")
    await customer.send("/complaint")
    await customer.press("Delivery")
    await customer.send("late")
    await customer.press("Change the text")
    assert "describe the problem" in customer.last().text
    await customer.send("very late, two days")
    await customer.press("Submit")
    assert (await ticket(app)).description == "very late, two days"


async def test_forged_order_button(app: App, world: FakeTelegram, customer: FakeUser) -> None:
    other = FakeUser(world, 100002, "Li")
    await register(customer, "Mei")
    await register(other, "Li")
    for user in (other, customer):
        await add_order(app, (await customer_row(app, user.id)).id, None, START - timedelta(days=1), total=500)
    await customer.send("/complaint")
    await customer.press("Billing")
    await customer.press_data("cmp:order:order:1")  # Li's order
    assert "expired" in customer.alerts()[-1]
    assert "recent orders" in customer.last().text


async def test_from_the_menu_and_for_strangers(app: App, world: FakeTelegram, customer: FakeUser) -> None:
    stranger = FakeUser(world, 100009, "Nobody")
    await stranger.send("/complaint")
    assert "/start to create your customer file" in stranger.last().text
    await register(customer, "Mei")
    await customer.send("/start")
    await customer.press("Complaint")
    assert "What is the complaint about?" in customer.last().text


async def test_priority_from_customer_value(app: App, world: FakeTelegram, customer: FakeUser) -> None:
    app.settings.value_priority_min_customers = app.settings.value_priority_min_orders = 0
    small = FakeUser(world, 100002, "Li")
    await register(customer, "Mei")
    await register(small, "Li")
    # Mei makes 80 % of the last year's revenue: class A. Older or cancelled orders do not count.
    mei, li = (await customer_row(app, customer.id)).id, (await customer_row(app, small.id)).id
    await add_order(app, mei, None, START - timedelta(days=30), total=8000)
    await add_order(app, li, None, START - timedelta(days=30), total=2000)
    await add_order(app, li, None, START - timedelta(days=400), total=900000)
    await add_order(app, li, None, START - timedelta(days=3), total=900000, status="cancelled")
    await file_complaint(small, "meh", category="Other", order="Not about an order")
    await file_complaint(customer, "meh", category="Other", order="Not about an order")
    first, second = await tickets(app)
    assert (first.priority, second.priority) == ("low", "high")
    # A second complaint while the first is open: high.
    await file_complaint(small, "still meh", category="Other", order="Not about an order")
    assert (await ticket(app, 3)).priority == "high"


async def test_value_priority_only_with_enough_history_and_its_reason_in_words(
        app: App, world: FakeTelegram, customer: FakeUser, staff: FakeUser) -> None:
    small = FakeUser(world, 100002, "Li")
    await register(customer, "Mei")
    await register(small, "Li")
    mei, li = (await customer_row(app, customer.id)).id, (await customer_row(app, small.id)).id
    await add_order(app, mei, None, START - timedelta(days=30), total=8000)
    await add_order(app, li, None, START - timedelta(days=30), total=2000)
    # Two customers and two orders: nobody's value counts yet (defaults: 30 customers, 100 orders).
    await file_complaint(customer, "meh", category="Other", order="Not about an order")
    assert (await ticket(app, 1)).priority == "low"
    assert "High" not in card(world, 1).text and "top_customer" not in card(world, 1).text
    # With the history the shop asks for, Mei (the top half by spend) is high, and the card says why.
    app.settings.value_priority_min_customers = app.settings.value_priority_min_orders = 2
    await file_complaint(customer, "meh again", category="Product quality", order="Not about an order")
    saved = await ticket(app, 2)
    assert (saved.priority, saved.priority_reason) == ("high", "top_customer:50,recent_unresolved")
    assert "🔴 High (top 50 % customer by spend; another complaint still open)" in card(world, 2).text
    await staff.send("/ticket 2")
    history = world.last(STAFF_CHAT_ID).text
    assert "🔴 High: top 50 % customer by spend; another complaint still open" in history
    assert "top_customer" not in history and "priority=" not in history
    # Staff set the priority: the system's reason goes.
    await staff.press("Priority", card(world, 2))
    await staff.press("Normal", card(world, 2))
    assert (await ticket(app, 2)).priority_reason is None and "customer by spend" not in card(world, 2).text


async def test_value_priority_reason_in_chinese(app: App, world: FakeTelegram, customer: FakeUser) -> None:
    app.settings.value_priority_min_customers = app.settings.value_priority_min_orders = 2
    app.settings.default_language = "zh"  # the staff chat's language
    small = FakeUser(world, 100002, "Li")
    await register(customer, "Mei")
    await register(small, "Li")
    mei, li = (await customer_row(app, customer.id)).id, (await customer_row(app, small.id)).id
    await add_order(app, mei, None, START - timedelta(days=30), total=8000)
    await add_order(app, li, None, START - timedelta(days=30), total=2000)
    await file_complaint(customer, "meh", category="Other", order="Not about an order")
    the_card = world.sent(STAFF_CHAT_ID)[0]
    assert "🔴 高（消费额前 50% 的客户）" in the_card.text


async def test_chinese_customer(app: App, world: FakeTelegram) -> None:
    wang = FakeUser(world, 100003, "王")
    await register(wang, "王芳")
    await wang.send("/language")
    await wang.press("中文")
    await wang.send("/complaint")
    assert "投诉" in wang.last().text
    await wang.press("配送")
    await wang.send("送货晚了两天")
    await wang.press("提交")
    assert "编号 <b>1</b>" in wang.last().html
