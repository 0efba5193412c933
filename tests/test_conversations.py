"""Whatever a customer writes reaches a person: free text outside a dialog, with no
open ticket, goes to the staff chat as a conversation staff answer by replying."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.app import App
from bot.fake_telegram import FakeTelegram, FakeUser
from bot.rules.text_units import utf16_len
from jobs.runner import advance, run_job
from storage.models import Conversation, ConversationMessage, OutboxMessage, Ticket
from tests.conftest import STAFF_CHAT_ID, register
from tests.helpers import add_customer, add_order, add_product, file_complaint, messages

COMPLAINT_WORDS = "Delivery was late and the bag was torn"


async def _conversations(app: App) -> list[Conversation]:
    async with app.db.session() as session:
        return list(await session.scalars(select(Conversation).order_by(Conversation.id)))


async def _conversation_messages(app: App) -> list[ConversationMessage]:
    async with app.db.session() as session:
        return list(await session.scalars(select(ConversationMessage).order_by(ConversationMessage.id)))


async def _surveyed(app: App, customer: FakeUser, name: str = "Mei", language: str = "en") -> int:
    """A registered customer whose order was delivered two days ago; the survey has arrived."""
    cid = await add_customer(app, customer.id, name=name, language=language)
    tea = await add_product(app, "tea", name="Green tea", days_per_unit_per_person=None)
    order_id = await add_order(app, cid, tea, app.clock.now() - timedelta(days=3),
                               delivered_at=app.clock.now() - timedelta(days=2))
    await run_job(app.jobs, "plan_care")
    await run_job(app.jobs, "deliver_outbox")
    assert "How was order no." in (customer.last().text or "") or "订单" in (customer.last().text or "")
    return order_id


async def test_an_answer_to_the_survey_reaches_the_staff_who_reply(app: App, world: FakeTelegram,
                                                                   customer: FakeUser, staff: FakeUser) -> None:
    order_id = await _surveyed(app, customer)
    answers = await customer.send(COMPLAINT_WORDS)
    assert "passed this on to our team" in answers[-1].text
    relayed = world.last(STAFF_CHAT_ID)
    assert COMPLAINT_WORDS in relayed.text and "Mei" in relayed.text
    assert f"after the delivery survey of order no. {order_id}" in relayed.text
    assert relayed.labels == ["⚠️ Make it a complaint"]
    async with app.db.session() as session:
        assert (await session.scalar(select(Ticket))) is None  # not a complaint
    # A second message joins the conversation, under its first message.
    await customer.send("And the driver was rude")
    more = world.last(STAFF_CHAT_ID)
    assert more.reply_to == relayed.message_id and "And the driver was rude" in more.text and more.labels == []
    # Staff answer with a reply to either message.
    await staff.send("So sorry, Mei! <A new bag> & a refund today.", reply_to=more.message_id)
    reply = customer.last()
    assert reply.text.startswith("💬 Sam from our team:")
    assert "So sorry, Mei! <A new bag> & a refund today." in reply.text
    assert any(c.method == "setMessageReaction" for c in world.calls)
    (conversation,) = await _conversations(app)
    assert (conversation.status, conversation.context_kind, conversation.context_order_id) == ("open", "survey",
                                                                                              order_id)
    assert [(m.direction, m.text) for m in await _conversation_messages(app)] == [
        ("in", COMPLAINT_WORDS), ("in", "And the driver was rude"),
        ("out", "So sorry, Mei! <A new bag> & a refund today."),
    ]


async def test_in_chinese_the_customer_and_the_staff_read_their_language(app: App, world: FakeTelegram,
                                                                         staff: FakeUser) -> None:
    customer = FakeUser(world, 100002, "美玲", language_code="zh")
    await _surveyed(app, customer, "<b>李&美玲</b>", "zh")
    answers = await customer.send("送货太晚了，袋子也破了")
    assert answers[-1].text == "谢谢，您的消息已转给我们的工作人员，他们会在这里回复您。"
    relayed = world.last(STAFF_CHAT_ID)
    assert "<b>李&美玲</b>" in relayed.text and "送货太晚了，袋子也破了" in relayed.text  # escaped, shown as typed
    await staff.send("非常抱歉，今天给您补送。", reply_to=relayed.message_id)
    assert customer.last().text == "💬 工作人员 Sam：\n非常抱歉，今天给您补送。"


async def test_after_a_resolved_complaint_a_new_message_is_a_conversation_about_it(
        app: App, world: FakeTelegram, customer: FakeUser, staff: FakeUser) -> None:
    await register(customer, "Mei")
    await file_complaint(customer, "Musty smell")
    await staff.press("Resolve", world.sent(STAFF_CHAT_ID)[0])
    await staff.send("Replaced the bag", reply_to=world.last(STAFF_CHAT_ID).message_id)
    await advance(app.jobs, timedelta(minutes=1))  # the resolution notice goes out
    answers = await customer.send("Rice was still smelly")
    assert "passed this on to our team" in answers[-1].text
    relayed = world.last(STAFF_CHAT_ID)
    assert "Rice was still smelly" in relayed.text and "after the resolution of complaint no. 1" in relayed.text
    async with app.db.session() as session:
        assert len(list(await session.scalars(select(Ticket)))) == 1  # no new complaint by itself


async def test_with_an_open_ticket_the_message_goes_to_the_ticket(app: App, world: FakeTelegram,
                                                                  customer: FakeUser) -> None:
    await register(customer, "Mei")
    await file_complaint(customer, "Musty smell")
    answers = await customer.send("Any news?")
    assert "complaint no. 1" in answers[-1].text
    assert await _conversations(app) == []


async def test_staff_make_a_conversation_a_complaint(app: App, world: FakeTelegram, customer: FakeUser,
                                                     staff: FakeUser) -> None:
    order_id = await _surveyed(app, customer)
    await customer.send(COMPLAINT_WORDS)
    first = world.last(STAFF_CHAT_ID)
    outsider = FakeUser(world, 555, "Nosy", chat_id=STAFF_CHAT_ID)
    await outsider.press("Make it a complaint", first)
    assert "Only staff" in outsider.alerts()[-1]
    await staff.press("Make it a complaint", first)
    assert "Delivery" in first.labels and "Product quality" in first.labels
    await staff.press("Delivery", first)
    assert first.buttons == []
    async with app.db.session() as session:
        (ticket,) = list(await session.scalars(select(Ticket)))
    assert (ticket.category, ticket.order_id, ticket.description) == ("delivery", order_id, COMPLAINT_WORDS)
    assert ticket.staff_message_id is not None  # its card is posted
    assert "made this a complaint: no. 1" in world.last(STAFF_CHAT_ID).text
    assert "registered what you wrote as complaint no. 1" in customer.last().text
    (conversation,) = await _conversations(app)
    assert (conversation.status, conversation.ticket_id) == ("complaint", ticket.id)
    # Replies to the old message now go through the ticket (and count as its first response).
    await staff.send("We are on it", reply_to=first.message_id)
    assert customer.last().text.startswith("💬 Sam about your complaint no. 1:")
    assert [m.direction for m in await messages(app)][-1] == "out"
    # The customer's next words go to the ticket, a second press changes nothing.
    answers = await customer.send("Thanks")
    assert "complaint no. 1" in answers[-1].text
    await staff.press_data(first.buttons[0]["callback_data"] if first.buttons else "cv:cat:1:quality", first)
    async with app.db.session() as session:
        assert len(list(await session.scalars(select(Ticket)))) == 1


async def test_a_sticker_or_a_command_is_not_passed_on_and_strangers_are_asked_to_register(
        app: App, world: FakeTelegram, customer: FakeUser) -> None:
    answers = await customer.send("hello?")
    assert "/start" in answers[-1].text and world.sent(STAFF_CHAT_ID) == []
    await register(customer, "Mei")
    await customer.send_sticker()
    await customer.send("/nonsense")
    assert world.sent(STAFF_CHAT_ID) == []


async def test_a_new_conversation_after_some_days_and_the_privacy_commands(app: App, world: FakeTelegram,
                                                                           customer: FakeUser) -> None:
    await register(customer, "Mei")
    await customer.send("Do you sell brown rice?")
    app.clock.advance(timedelta(days=4))  # type: ignore[attr-defined]
    await customer.send("Hello again")
    again = world.last(STAFF_CHAT_ID)
    assert again.labels == ["⚠️ Make it a complaint"] and again.reply_to is None
    assert len(await _conversations(app)) == 2
    await customer.send("/mydata")
    document = json.loads(customer.last().file or b"{}")
    assert [m["text"] for c in document["conversations"] for m in c["messages"]] == [
        "Do you sell brown rice?", "Hello again"]
    await customer.send("/forget")
    await customer.press(1)
    assert await _conversations(app) == [] and await _conversation_messages(app) == []


@pytest.mark.parametrize("limit", [4000])
async def test_a_long_message_reaches_the_staff_chat_in_pieces(app: App, world: FakeTelegram, customer: FakeUser,
                                                               limit: int) -> None:
    await register(customer, "Mei")
    await customer.send("x " * (limit // 2))
    pieces = [m for m in world.sent(STAFF_CHAT_ID) if "Mei" in m.text]
    assert len(pieces) == 2 and pieces[1].reply_to is None  # the second piece of the first message


async def test_a_photo_keeps_its_words_as_caption_while_they_fit_else_they_follow(
        app: App, world: FakeTelegram, customer: FakeUser) -> None:
    """Telegram allows a caption of 1024 UTF-16 units (https://core.telegram.org/bots/api#sendphoto)."""
    await register(customer, "Mei")
    await customer.send_photo("torn " * 140)  # 700 units: fits with the header
    photo = world.last(STAFF_CHAT_ID)
    assert photo.kind == "photo" and ("torn " * 140).strip() in (photo.text or "")
    await customer.send_photo("torn " * 200)  # 1000 units: the header would push it past the limit
    photo, after = world.sent(STAFF_CHAT_ID)[-2:]
    assert photo.kind == "photo" and "torn" not in (photo.text or "") and utf16_len(photo.html or "") <= 1024
    assert after.kind == "text" and ("torn " * 200).strip() in (after.text or "")
    assert photo.reply_to == after.reply_to == world.sent(STAFF_CHAT_ID)[-3].message_id  # the same conversation


async def test_forget_edits_the_staff_chats_copies_and_deletes_the_conversation(
        app: App, world: FakeTelegram, customer: FakeUser, staff: FakeUser) -> None:
    await register(customer, "Meixiu Qiao")
    await customer.send("Torn sack from Qiao")
    await staff.send("Sorry, Meixiu", reply_to=world.last(STAFF_CHAT_ID).message_id)
    world.fail("network", method="sendMessage", chat_id=STAFF_CHAT_ID)  # the next one goes through the outbox
    await customer.send("Call me after six, Qiao here")
    await customer.send("/forget")
    await customer.press("Yes")
    await advance(app.jobs, timedelta(minutes=5))
    assert await _conversations(app) == [] and await _conversation_messages(app) == []
    for message in world.sent(STAFF_CHAT_ID):
        assert "Qiao" not in (message.text or ""), message.text
    async with app.db.session() as session:
        rows = list(await session.scalars(select(OutboxMessage)))
    assert not any("Qiao" in (r.text or "") for r in rows)
