"""/tickets, /ticket N, /customer TEXT and /note — for staff only."""

from __future__ import annotations

from datetime import timedelta

from bot.app import App
from bot.fake_telegram import FakeTelegram, FakeUser
from tests.conftest import STAFF_CHAT_ID, START, register
from tests.helpers import add_order, card, customer_row, file_complaint


async def test_tickets_lists_open_tickets_by_due_time(app: App, world: FakeTelegram, customer: FakeUser,
                                                      staff: FakeUser) -> None:
    await register(customer, "Mei")
    await staff.send("/tickets")
    assert "No open tickets" in world.last(STAFF_CHAT_ID).text
    await file_complaint(customer, "musty", category="Other")  # low: due in 8 h
    await file_complaint(customer, "late", category="Delivery")  # high: due in 30 min
    await file_complaint(customer, "wrong bill", category="Billing")
    await staff.send("Which bill?", reply_to=card(world, 3).message_id)  # waiting for the customer: last
    app.clock.advance(timedelta(minutes=40))  # type: ignore[attr-defined]
    await staff.send("/tickets")
    listing = world.last(STAFF_CHAT_ID).text
    assert "Open tickets: 3" in listing
    assert listing.index("no. 2") < listing.index("no. 1") < listing.index("no. 3")
    assert "🚨" in listing and "overdue by 10m" in listing and "waiting for the customer" in listing


async def test_ticket_shows_everything(app: App, world: FakeTelegram, customer: FakeUser, staff: FakeUser,
                                       manager: FakeUser) -> None:
    await register(customer, "Mei")
    await file_complaint(customer, "The bag <was> torn & wet")
    await staff.press("Take", card(world))
    await staff.send("Sorry! New bag today.", reply_to=card(world).message_id)
    await customer.send("ok, thanks")
    await manager.send("/ticket 1")
    detail, history = manager.inbox()[-2:]
    assert "Complaint no. 1" in detail.text and "Taken by: Sam" in detail.text
    assert detail.labels == ["✅ Resolve", "⚖️ Priority"]
    assert "History of no. 1" in history.text
    for line in ("The bag <was> torn & wet", "New → Taken", "Sorry! New bag today.", "ok, thanks", "first response"):
        assert line in history.text
    await manager.send("/ticket 99")
    assert "no ticket no. 99" in manager.last().text
    await manager.send("/ticket")
    assert "/ticket 12" in manager.last().text
    # Resolving from the private view works too.
    await manager.press("Resolve", detail)
    await manager.send("Refunded the bag")
    assert "No. 1 is resolved" in manager.last().text


async def test_long_history_is_split(app: App, world: FakeTelegram, customer: FakeUser, staff: FakeUser) -> None:
    await register(customer, "Mei")
    await file_complaint(customer, "x" * 3500)
    for n in range(6):
        await customer.send(f"message {n} " + "y" * 2000)
    await staff.send("/ticket 1")
    parts = [m for m in world.sent(STAFF_CHAT_ID) if "History of no. 1" in (m.text or "")]
    assert len(parts) >= 3 and "(1/" in parts[0].text
    assert all(len(p.text) <= 4096 for p in parts)


async def test_customer_search_and_file(app: App, world: FakeTelegram, staff: FakeUser) -> None:
    mei = FakeUser(world, 100001, "Mei")
    wang = FakeUser(world, 100002, "Wang")
    wang2 = FakeUser(world, 100003, "Wang2")
    await register(mei, "Mei Lin")
    await register(wang, "王芳")
    await register(wang2, "王小明")
    await add_order(app, (await customer_row(app, mei.id)).id, None, START - timedelta(days=3), total=2550)
    await file_complaint(mei, "late", order="#1")
    await staff.send("/customer mei")
    file_ = world.last(STAFF_CHAT_ID)
    assert "Mei Lin" in file_.text and "customer no. 1" in file_.text and "¥25.50" in file_.text
    assert "no. 1 ·" in file_.text and "Delivery" in file_.text
    await staff.send("/customer 王")
    matches = world.last(STAFF_CHAT_ID)
    assert len(matches.labels) == 2 and "王芳" in matches.labels[0]
    await staff.press("王小明", matches)
    assert "王小明" in world.last(STAFF_CHAT_ID).text
    await staff.send(f"/customer {wang.phone[-6:]}")
    assert "王芳" in world.last(STAFF_CHAT_ID).text
    await staff.send("/customer nobody-like-this")
    assert "No customer matches" in world.last(STAFF_CHAT_ID).text
    await staff.send("/customer")
    assert "Whom are you looking for?" in world.last(STAFF_CHAT_ID).text


async def test_notes(app: App, world: FakeTelegram, customer: FakeUser, staff: FakeUser) -> None:
    await register(customer, "Mei")
    await file_complaint(customer, "late")
    await staff.send("/note 1 Prefers deliveries after 6 pm <always>")
    assert "Note added to Mei's file" in world.last(STAFF_CHAT_ID).text
    await staff.send("/note Allergic to peanuts", reply_to=card(world).message_id)
    assert "Note added" in world.last(STAFF_CHAT_ID).text
    await staff.send("/note")
    assert "/note N text" in world.last(STAFF_CHAT_ID).text
    await staff.send("/note 77 hello")
    assert "no customer no. 77" in world.last(STAFF_CHAT_ID).text
    await staff.send("/note 1")
    assert "The note is empty" in world.sent(STAFF_CHAT_ID)[-2].text
    # From the customer file: the button asks for the note.
    await staff.send("/customer Mei")
    assert "Notes:</b> 2 (below)" in world.sent(STAFF_CHAT_ID)[-2].html
    await staff.press("Add a note", staff.last_with_buttons())
    assert "reply with the note" in world.last(STAFF_CHAT_ID).text
    answers = await staff.send_photo()
    assert "reply with the note" in answers[-1].text
    await staff.send("Pays on the 10th")
    await staff.send("/customer Mei")
    file_ = world.last(STAFF_CHAT_ID).text  # the notes, after the file
    assert "Notes on Mei" in file_
    for note in ("Prefers deliveries after 6 pm <always>", "Allergic to peanuts", "Pays on the 10th"):
        assert note in file_
    assert "Sam" in file_


async def test_customers_cannot_use_staff_commands(app: App, world: FakeTelegram, customer: FakeUser) -> None:
    await register(customer, "Mei")
    await file_complaint(customer, "late")
    for command in ("/tickets", "/ticket 1", "/customer Mei", "/note 1 hi"):
        answers = await customer.send(command)
        assert len(answers) == 1 and "Mei" not in answers[0].text and "no. 1" not in answers[0].text
    await customer.send("/help")
    assert "/tickets" not in customer.last().text and "/complaint" in customer.last().text


async def test_staff_help_lists_the_desk_commands(app: App, world: FakeTelegram, staff: FakeUser) -> None:
    await staff.send("/help")
    text = world.last(STAFF_CHAT_ID).text
    for command in ("/tickets", "/ticket", "/customer", "/note"):
        assert command in text
    assert "/complaint" not in text


async def test_note_dialog_cancel_and_restart(app: App, world: FakeTelegram, customer: FakeUser,
                                              staff: FakeUser) -> None:
    from tests.conftest import restart

    await register(customer, "Mei")
    await staff.send("/customer Mei")
    await staff.press("Add a note", staff.last_with_buttons())
    await staff.send("/cancel")
    await staff.send("hello colleagues")  # not a note any more
    await staff.press("Add a note", staff.last_with_buttons())
    app = await restart(app, world)
    await staff.send("Likes brown rice")
    await staff.send("/customer Mei")
    notes = world.last(STAFF_CHAT_ID).text
    assert "Likes brown rice" in notes and "hello colleagues" not in notes
    await app.close()
