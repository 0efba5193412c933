"""The staff chat: cards, Take / Resolve / Priority, replies relayed both ways."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import update

from bot.app import App
from bot.fake_telegram import FakeTelegram, FakeUser
from bot.services.tickets import TicketCallback
from storage.models import Ticket
from tests.conftest import STAFF_CHAT_ID, register
from tests.helpers import card, customer_row, events, file_complaint, messages, outbox, ticket

TAKE = TicketCallback(action="take", ticket=1).pack()
RESOLVE = TicketCallback(action="resolve", ticket=1).pack()


async def _complaint(customer: FakeUser, text: str = "The rice bag was torn",
                     category: str = "Product quality") -> None:
    await register(customer, "Mei")
    await file_complaint(customer, text, category=category)


async def test_the_whole_cycle_in_the_staff_chat(app: App, world: FakeTelegram, customer: FakeUser,
                                                staff: FakeUser) -> None:
    await _complaint(customer)
    the_card = card(world)
    app.clock.advance(timedelta(minutes=4))  # type: ignore[attr-defined]
    await staff.press("Take", the_card)
    assert "No. 1 is yours now" in staff.alerts()[-1]
    assert "Taken by:</b> Sam" in the_card.html and "Take" not in the_card.labels
    assert "Sam from our team is now looking after your complaint no. 1" in customer.last().text
    saved = await ticket(app)
    assert (saved.status, saved.assignee_telegram_id, saved.assignee_name) == ("taken", staff.id, "Sam")

    app.clock.advance(timedelta(minutes=6))  # type: ignore[attr-defined]
    await staff.send("So sorry, Mei! A new bag comes today. <Promise> & more", reply_to=the_card.message_id)
    reply = customer.last()
    assert reply.text.startswith("💬 Sam about your complaint no. 1:")
    assert "So sorry, Mei! A new bag comes today. <Promise> & more" in reply.text
    saved = await ticket(app)
    assert saved.status == "waiting_customer" and saved.first_response_minutes == 10
    assert saved.first_response_breached is False
    assert any(c.method == "setMessageReaction" for c in world.calls)

    app.clock.advance(timedelta(minutes=30))  # type: ignore[attr-defined]
    answers = await customer.send("When exactly?")
    assert "Passed on to our staff (complaint no. 1)" in answers[-1].text
    relayed = world.last(STAFF_CHAT_ID)
    assert relayed.reply_to == the_card.message_id and "When exactly?" in relayed.text and "Mei" in relayed.text
    saved = await ticket(app)
    assert saved.status == "in_progress" and saved.waiting_minutes == 30

    await staff.send("Before 6 pm.", reply_to=relayed.message_id)  # a reply to the relayed message
    assert "Before 6 pm." in customer.last().text

    await staff.press("Resolve", the_card)
    question = world.last(STAFF_CHAT_ID)
    assert "how was no. 1 resolved?" in question.text and question.reply_markup["force_reply"] is True
    app.clock.advance(timedelta(minutes=20))  # type: ignore[attr-defined]
    await staff.send("New bag delivered; delivery fee refunded.", reply_to=question.message_id)
    assert "No. 1 is resolved" in world.last(STAFF_CHAT_ID).text
    saved = await ticket(app)
    assert saved.status == "resolved" and saved.resolution_note == "New bag delivered; delivery fee refunded."
    # 4 + 6 + 30 (waiting: not counted) + 20 (waiting again after "Before 6 pm.": not counted).
    assert saved.resolution_minutes == 10 and saved.waiting_minutes == 50 and saved.resolution_breached is False
    assert the_card.buttons == [] and "Resolved" in the_card.text
    survey = await outbox(app, "csat:1")
    assert len(survey) == 1 and survey[0].chat_id == customer.id and survey[0].category == "service"
    assert "New bag delivered" in survey[0].text

    rows = await messages(app)
    assert [(m.direction, m.delivered) for m in rows] == [("out", True), ("in", None), ("out", True)]
    history = [(e.kind, e.to_status, e.actor_role) for e in await events(app)]
    assert history == [
        ("status", "new", "customer"), ("status", "taken", "staff"), ("first_response", None, "staff"),
        ("status", "waiting_customer", "staff"), ("status", "in_progress", "customer"),
        ("status", "waiting_customer", "staff"), ("status", "resolved", "staff"),
    ]


async def test_a_reply_to_a_new_ticket_takes_it(app: App, world: FakeTelegram, customer: FakeUser,
                                                staff2: FakeUser) -> None:
    await _complaint(customer)
    await staff2.send("Looking into it", reply_to=card(world).message_id)
    saved = await ticket(app)
    assert saved.assignee_name == "Kim" and saved.status == "waiting_customer"


async def test_staff_reply_with_a_photo(app: App, world: FakeTelegram, customer: FakeUser, staff: FakeUser) -> None:
    await _complaint(customer)
    await staff.send_photo("This is the new bag", reply_to=card(world).message_id)
    got = customer.last()
    assert got.kind == "photo" and "This is the new bag" in got.text and "Sam" in got.text
    assert (await messages(app))[0].photo_file_id is not None


async def test_only_staff_replies_are_relayed(app: App, world: FakeTelegram, customer: FakeUser,
                                              staff: FakeUser) -> None:
    await _complaint(customer)
    stranger = FakeUser(world, 555, "Visitor", chat_id=STAFF_CHAT_ID)
    before = len(customer.inbox())
    answers = await stranger.send("I am not staff", reply_to=card(world).message_id)
    assert answers == [] and len(customer.inbox()) == before
    assert await messages(app) == []
    # Staff talking among themselves (not a reply) is not relayed either.
    assert await staff.send("lunch?") == []
    await stranger.press("Take", card(world))
    assert "Only staff" in stranger.alerts()[-1]
    assert (await ticket(app)).assignee_telegram_id is None


async def test_reply_to_a_closed_ticket(app: App, world: FakeTelegram, customer: FakeUser, staff: FakeUser) -> None:
    await _complaint(customer)
    async with app.db.session() as session:
        await session.execute(update(Ticket).values(status="closed"))
        await session.commit()
    before = len(customer.inbox())
    answers = await staff.send("Anything else?", reply_to=card(world).message_id)
    assert len(answers) == 1 and "No. 1 is closed" in answers[0].text and "not" in answers[0].text
    assert len(customer.inbox()) == before and await messages(app) == []


async def test_customer_blocked_the_bot(app: App, world: FakeTelegram, customer: FakeUser, staff: FakeUser) -> None:
    await _complaint(customer)
    world.block(customer.id)
    await staff.press("Take", card(world))  # telling the customer fails: the staff chat hears of it
    assert "they blocked the bot" in world.last(STAFF_CHAT_ID).text
    answers = await staff.send("Hello?", reply_to=card(world).message_id)
    assert "Not delivered" in answers[-1].text and "blocked the bot" in answers[-1].text
    rows = await messages(app)
    assert len(rows) == 1 and rows[0].delivered is False and rows[0].text == "Hello?"
    saved = await ticket(app)
    assert saved.first_response_at is None and saved.status == "taken"
    assert (await customer_row(app, customer.id)).reachable is False


async def test_take_pressed_by_two_at_once(app: App, world: FakeTelegram, customer: FakeUser, staff: FakeUser,
                                           staff2: FakeUser) -> None:
    await _complaint(customer)
    the_card = card(world)
    await asyncio.gather(staff.press("Take", the_card), staff2.press_data(TAKE, the_card))
    saved = await ticket(app)
    assert saved.assignee_telegram_id in (staff.id, staff2.id)
    loser = "Kim" if saved.assignee_name == "Sam" else "Sam"
    texts = [text for _, text, _ in world.alerts]
    assert f"{saved.assignee_name} has already taken no. 1." in texts and "No. 1 is yours now." in texts
    assert [e.to_status for e in await events(app)].count("taken") == 1
    # And later: still told who has it; the owner is told it is theirs.
    await (staff2 if loser == "Kim" else staff).press_data(TAKE, the_card)
    assert world.alerts[-1][1] == f"{saved.assignee_name} has already taken no. 1."


async def test_priority_buttons(app: App, world: FakeTelegram, customer: FakeUser, staff: FakeUser) -> None:
    await _complaint(customer)
    the_card = card(world)
    assert (await ticket(app)).priority == "normal"
    await staff.press("Priority", the_card)
    assert the_card.labels == ["🔴 High", "• 🟡 Normal", "🟢 Low", "↩️ Back"]
    await staff.press("High", the_card)
    saved = await ticket(app)
    assert saved.priority == "high" and saved.first_response_due_at == saved.created_at + timedelta(minutes=30)
    assert "🔴 High" in the_card.text and the_card.labels == ["🙋 Take", "✅ Resolve", "⚖️ Priority"]
    assert [e.detail for e in await events(app) if e.kind == "priority"] == ["normal→high"]
    await staff.press("Priority", the_card)
    await staff.press("Back", the_card)
    assert the_card.labels == ["🙋 Take", "✅ Resolve", "⚖️ Priority"]


async def test_resolution_note_wrong_input_cancel_and_a_race(app: App, world: FakeTelegram, customer: FakeUser,
                                                            staff: FakeUser, staff2: FakeUser) -> None:
    await _complaint(customer)
    the_card = card(world)
    await staff.press("Resolve", the_card)
    answers = await staff.send("   ")
    assert "The note is empty" in answers[0].text and "how was no. 1 resolved?" in answers[-1].text
    answers = await staff.send("x" * 1001)
    assert "the limit is 1000" in answers[0].text
    await staff.send("/cancel")
    assert (await ticket(app)).status == "new"
    # Both press Resolve; the first note wins, the second is told.
    await staff.press("Resolve", the_card)
    await staff2.press_data(RESOLVE, the_card)
    await staff2.send("Replaced the bag")
    assert (await ticket(app)).status == "resolved"
    answers = await staff.send("Refunded")
    assert "No. 1 is already resolved" in answers[-1].text
    saved = await ticket(app)
    assert saved.resolution_note == "Replaced the bag" and saved.assignee_name == "Kim"
    # Resolving without a reply first: the resolution is the first response.
    assert saved.first_response_at == saved.resolved_at
    await staff.press_data(RESOLVE, the_card)
    assert "already resolved" in world.alerts[-1][1]


async def test_relay_while_open_and_which_ticket(app: App, world: FakeTelegram, customer: FakeUser,
                                                 staff: FakeUser) -> None:
    await _complaint(customer, "bag torn")
    await customer.send_photo("look")
    relayed = world.last(STAFF_CHAT_ID)
    assert relayed.kind == "photo" and relayed.reply_to == card(world, 1).message_id
    await customer.send_sticker()
    assert "text and photos" in customer.last().text
    await file_complaint(customer, "driver rude", category="Staff attitude")
    await customer.send("Also the receipt is wrong")
    question = customer.last()
    assert "Which one" in question.text and question.labels == ["No. 1 · Product quality", "No. 2 · Staff attitude"]
    first_choice = question.buttons[0]["callback_data"]
    await customer.press("No. 2")
    assert question.buttons == []
    assert world.last(STAFF_CHAT_ID).reply_to == card(world, 2).message_id
    assert [m.text for m in await messages(app, 2)] == ["Also the receipt is wrong"]
    await customer.press_data(first_choice, question)  # stale: already sent
    assert "expired" in customer.alerts()[-1]
    assert [m.text for m in await messages(app, 1)] == ["look"]
    # Customers cannot press staff buttons, even forged.
    await customer.press_data(TAKE)
    assert "Only staff" in customer.alerts()[-1]


async def test_forum_staff_chat_gets_a_topic_per_ticket(app: App, world: FakeTelegram, customer: FakeUser,
                                                        staff: FakeUser) -> None:
    world.chats[STAFF_CHAT_ID].is_forum = True
    await _complaint(customer)
    assert len(world.calls_of("createForumTopic")) == 1
    saved = await ticket(app)
    assert saved.staff_thread_id is not None
    the_card = card(world)
    assert the_card.thread_id == saved.staff_thread_id and the_card.message_id == saved.staff_message_id
    assert "Write in this topic to answer the customer" in the_card.text
    assert [m.message_id for m in world.sent(STAFF_CHAT_ID) if m.thread_id is None] == []  # the General copy is gone
    # The second ticket goes straight into its own topic (no card in General to move).
    await file_complaint(customer, "again", category="Other")
    assert len(world.calls_of("createForumTopic")) == 2
    second = await ticket(app, 2)
    assert card(world, 2).thread_id == second.staff_thread_id != saved.staff_thread_id
    # Any staff message in the topic answers the customer.
    await staff.send("We are on it", thread_id=saved.staff_thread_id)
    assert "We are on it" in customer.last().text
    # Customer messages go into that topic (the customer picks ticket 1).
    await customer.send("thanks")
    await customer.press("No. 1")
    relayed = world.last(STAFF_CHAT_ID)
    assert relayed.thread_id == saved.staff_thread_id and "thanks" in relayed.text
    # A staff note typed in the topic is a note, not a message to the customer.
    before = len(customer.inbox())
    await staff.send("/customer Mei", thread_id=saved.staff_thread_id)
    await staff.press("Add a note", staff.last_with_buttons())
    assert world.last(STAFF_CHAT_ID).thread_id == saved.staff_thread_id
    await staff.send("VIP, be gentle", thread_id=saved.staff_thread_id)
    assert "Note added" in world.last(STAFF_CHAT_ID).text and len(customer.inbox()) == before


async def test_staff_chat_refuses_the_card(app: App, world: FakeTelegram, customer: FakeUser,
                                           staff: FakeUser) -> None:
    await register(customer, "Mei")
    world.fail("chat_not_found", "sendMessage", STAFF_CHAT_ID)
    await file_complaint(customer, "torn bag")
    assert "registered as no. 1" in customer.last().text
    rows = await outbox(app, "card:1")
    assert len(rows) == 1 and rows[0].chat_id == STAFF_CHAT_ID and rows[0].ref_ticket_id == 1


async def test_restart_while_staff_types_the_resolution_note(app: App, world: FakeTelegram, customer: FakeUser,
                                                             staff: FakeUser) -> None:
    from tests.conftest import restart

    await _complaint(customer)
    await staff.press("Resolve", card(world))
    app = await restart(app, world)
    await staff.send("Replaced the bag after the restart")
    saved = await ticket(app)
    assert saved.status == "resolved" and saved.resolution_note == "Replaced the bag after the restart"
    await app.close()
