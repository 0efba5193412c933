"""/profile (view and edit), /stop and /resume, /mydata and /forget, as conversations."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from bot.app import App
from bot.clock import ManualClock
from bot.fake_telegram import FakeTelegram, FakeUser
from storage.models import Customer, StaffNote
from storage.models.outbox import OutboxMessage
from storage.repositories import Repos
from tests.conftest import START, register, restart
from tests.helpers import customer_count, customer_row, error, label, question, shown, texts_of

FIELD_BUTTONS = ["name", "phone", "birthday", "address", "household", "consent"]


def profile_text(**values: object) -> str:
    file = {"name": "Mei Lin", "phone": "+8613800100001", "birthday": date(1990, 3, 25),
            "address": "12 Rice Street", "household_size": 3, "care_consent": True, **values}
    return shown("profile/show", file=file)


def current(step: str, value: object) -> str:
    return "\n\n" + shown("registration/current", step=step, value=value)


@pytest.fixture
async def registered(app: App, customer: FakeUser) -> FakeUser:
    """A customer with a complete file (written directly: registration has its own tests)."""
    async with app.db.session() as session:
        repos = Repos(session)
        await repos.customers.register(customer.id, {
            "name": "Mei Lin", "phone": customer.phone, "birthday": date(1990, 3, 25),
            "address": "12 Rice Street", "household_size": 3, "care_consent": True,
        }, "en", START)
        await repos.commit()
    assert customer.phone == "+8613800100001"
    return customer


async def _row(app: App, user: FakeUser) -> Customer:
    row = await customer_row(app, user.id)
    assert row is not None
    return row


async def _add_outbox(app: App, customer_id: int, chat_id: int, key: str, category: str) -> None:
    async with app.db.session() as session:
        repos = Repos(session)
        await repos.outbox.enqueue(dedupe_key=key, kind="text", chat_id=chat_id, text="Time to reorder rice?",
                                   now=START, category=category, customer_id=customer_id)
        await repos.commit()


async def _outbox_status(app: App, key: str) -> tuple[str, str | None]:
    async with app.db.session() as session:
        row = await session.scalar(select(OutboxMessage).where(OutboxMessage.dedupe_key == key))
        assert row is not None
        return row.status, row.skip_reason


# ----- viewing and editing ---------------------------------------------------------------

async def test_profile_shows_the_file_with_a_button_per_field(app: App, registered: FakeUser) -> None:
    replies = await registered.send("/profile")
    assert texts_of(replies) == [profile_text()]
    assert replies[0].labels == [label(f"field_{f}") for f in FIELD_BUTTONS]


async def test_profile_from_the_menu(app: App, registered: FakeUser) -> None:
    await registered.send("/start")
    replies = await registered.press(label("menu_profile"))
    assert texts_of(replies) == [profile_text()]


@pytest.mark.parametrize(("field", "now", "bad", "code", "params", "good", "column", "stored"), [
    ("name", "Mei Lin", "x" * 65, "name_too_long", {"limit": 64}, "  Mei   Chen ", "name", "Mei Chen"),
    ("phone", "+8613800100001", "12345", "phone_too_short", {}, "139 0013 9000", "phone", "+8613900139000"),
    ("birthday", date(1990, 3, 25), "2030-01-01", "birthday_future", {}, "01.12.1985", "birthday",
     date(1985, 12, 1)),
    ("address", "12 Rice Street", "x", "address_too_short", {}, "88 Bamboo Road", "address", "88 Bamboo Road"),
    ("household", 3, "0", "household_out_of_range", {"low": 1, "high": 20}, "8", "household_size", 8),
])
async def test_edit_a_field_with_the_same_validation(app: App, registered: FakeUser, field: str, now: object,
                                                     bad: str, code: str, params: dict[str, object], good: str,
                                                     column: str, stored: object) -> None:
    await registered.send("/profile")
    replies = await registered.press(label(f"field_{field}"))
    context = {"suggested": "Mei"} if field == "name" else {}
    asked = question(field, **context) + current(field, now)
    assert texts_of(replies) == [asked]

    replies = await registered.send(bad)
    assert texts_of(replies) == [error(code, **params), asked]
    assert getattr(await _row(app, registered), column) == now  # nothing saved yet

    replies = await registered.send(good)
    # Saved at once: no summary, no confirm.
    assert texts_of(replies) == [shown("profile/saved"), profile_text(**{column: stored})]
    row = await _row(app, registered)
    assert getattr(row, column) == stored
    assert registered.last().labels == [label(f"field_{f}") for f in FIELD_BUTTONS]
    # The dialog is over: text now goes to the staff as a conversation.
    assert texts_of(await registered.send(good))[-1] == shown("conversations/passed_on")


async def test_edit_phone_by_sharing_the_contact_removes_the_keyboard(app: App, world: FakeTelegram) -> None:
    user = FakeUser(world, 100005, "Mei", language_code="en")
    await register(user, "Mei Lin")
    await user.send("/profile")
    await user.press(label("field_phone"))
    await user.send("+86 139 0013 9000")
    await user.press(label("field_phone"))
    replies = await user.send_contact()
    assert texts_of(replies)[0] == shown("profile/saved")
    assert replies[0].reply_markup == {"remove_keyboard": True}
    assert (await _row(app, user)).phone == user.phone


async def test_edit_household_by_button(app: App, registered: FakeUser) -> None:
    await registered.send("/profile")
    await registered.press(label("field_household"))
    assert registered.last().labels == ["1", "2", "3", "4", "5", "6", label("edit_remove"), label("edit_keep")]
    await registered.press("5")
    assert (await _row(app, registered)).household_size == 5


async def test_edit_name_with_telegram_name(app: App, registered: FakeUser) -> None:
    await registered.send("/profile")
    replies = await registered.press(label("field_name"))
    assert replies[0].labels == [label("use_name", name="Mei"), label("edit_keep")]
    await registered.press(label("use_name", name="Mei"))
    assert (await _row(app, registered)).name == "Mei"


@pytest.mark.parametrize("field", ["birthday", "address", "household"])
async def test_remove_an_optional_field(app: App, registered: FakeUser, field: str) -> None:
    await registered.send("/profile")
    await registered.press(label(f"field_{field}"))
    replies = await registered.press(label("edit_remove"))
    column = "household_size" if field == "household" else field
    assert texts_of(replies) == [shown("profile/saved"), profile_text(**{column: None})]
    assert getattr(await _row(app, registered), column) is None
    # Nothing to remove now: only "keep" is offered.
    await registered.press(label(f"field_{field}"))
    assert label("edit_remove") not in registered.last().labels


@pytest.mark.parametrize("field", ["name", "birthday", "address", "household"])
async def test_keep_as_is_changes_nothing(app: App, registered: FakeUser, field: str) -> None:
    await registered.send("/profile")
    await registered.press(label(f"field_{field}"))
    replies = await registered.press(label("edit_keep"))
    assert texts_of(replies) == [profile_text()]
    row = await _row(app, registered)
    assert (row.name, row.birthday, row.address, row.household_size) == (
        "Mei Lin", date(1990, 3, 25), "12 Rice Street", 3)
    assert row.updated_at == START


async def test_keep_phone_with_the_reply_button(app: App, registered: FakeUser) -> None:
    await registered.send("/profile")
    await registered.press(label("field_phone"))
    replies = await registered.press(label("edit_keep"))
    assert texts_of(replies) == [shown("registration/unchanged"), profile_text()]
    assert replies[0].reply_markup == {"remove_keyboard": True}


async def test_edit_consent_in_profile(app: App, registered: FakeUser) -> None:
    row = await _row(app, registered)
    await _add_outbox(app, row.id, registered.id, "care:1", "care")
    await registered.send("/profile")
    replies = await registered.press(label("field_consent"))
    assert texts_of(replies) == [question("consent") + current("consent", True)]
    await registered.press(label("no"))
    assert (await _row(app, registered)).care_consent is False
    assert (await _outbox_status(app, "care:1"))[0] == "skipped"
    await registered.press(label("field_consent"))
    await registered.press(label("yes"))
    assert (await _row(app, registered)).care_consent is True


async def test_edit_cancelled_saves_nothing(app: App, registered: FakeUser) -> None:
    await registered.send("/profile")
    await registered.press(label("field_address"))
    assert texts_of(await registered.send("/cancel")) == [shown("common/cancelled")]
    assert texts_of(await registered.send("99 Other Road"))[-1] == shown("conversations/passed_on")
    assert (await _row(app, registered)).address == "12 Rice Street"


async def test_restart_in_the_middle_of_an_edit(app: App, world: FakeTelegram, registered: FakeUser) -> None:
    await registered.send("/profile")
    asked = (await registered.press(label("field_household")))[0]
    current_app = await restart(app, world)
    try:
        assert texts_of(await registered.send("two")) == [
            error("household_not_a_number", low=1, high=20), asked.text]
        await registered.press("2")
        row = await customer_row(current_app, registered.id)
        assert row is not None and row.household_size == 2
    finally:
        await current_app.close()


async def test_sticker_while_editing(app: App, registered: FakeUser) -> None:
    await registered.send("/profile")
    asked = (await registered.press(label("field_address")))[0]
    replies = await registered.send_sticker()
    assert texts_of(replies) == [shown("common/expected_text"), asked.text]


async def test_field_button_while_in_another_dialog(app: App, registered: FakeUser) -> None:
    profile = (await registered.send("/profile"))[0]
    await registered.press(label("field_address"))
    replies = await registered.press(label("field_name"), profile)
    assert replies == []
    assert registered.alerts()[-1] == shown("common/finish_first.txt")
    assert texts_of(await registered.send("99 Other Road"))[0] == shown("profile/saved")
    assert (await _row(app, registered)).address == "99 Other Road"


async def test_edit_button_pressed_after_the_edit_has_expired(app: App, registered: FakeUser) -> None:
    await registered.send("/profile")
    asked = (await registered.press(label("field_birthday")))[0]
    _, remove = registered.find_button(label("edit_remove"), asked)
    await registered.press_data(remove["callback_data"], asked)
    assert (await _row(app, registered)).birthday is None
    await registered.send("/profile")
    await registered.press(label("field_birthday"))
    await registered.send("1991-01-01")
    # The first edit's Remove is stale: it must not clear the new birthday.
    assert await registered.press_data(remove["callback_data"], asked) == []
    assert (await _row(app, registered)).birthday == date(1991, 1, 1)


@pytest.mark.parametrize("data", ["prof:edit:nickname:1", "prof:edit:name:999", "prof:edit", "prof:lang:fr"])
async def test_forged_profile_buttons_expire(app: App, registered: FakeUser, data: str) -> None:
    profile = (await registered.send("/profile"))[0]
    assert await registered.press_data(data, profile) == []
    assert registered.alerts() == [shown("common/button_expired.txt")]
    assert texts_of(await registered.send("hello"))[-1] == shown("conversations/passed_on")  # no dialog open


# ----- care messages on and off ------------------------------------------------------

async def test_stop_and_resume(app: App, clock: ManualClock, registered: FakeUser) -> None:
    row = await _row(app, registered)
    await _add_outbox(app, row.id, registered.id, "care:reorder", "care")
    await _add_outbox(app, row.id, registered.id, "service:order", "service")
    clock.advance(timedelta(hours=1))

    replies = await registered.send("/stop")
    assert texts_of(replies) == [shown("profile/stopped", skipped=1)]
    row = await _row(app, registered)
    assert row.care_consent is False and row.care_consent_changed_at == START + timedelta(hours=1)
    assert await _outbox_status(app, "care:reorder") == ("skipped", "stopped by customer")
    assert (await _outbox_status(app, "service:order"))[0] == "pending"  # replies to the customer still go

    replies = await registered.send("/resume")
    assert texts_of(replies) == [shown("profile/resumed")]
    assert (await _row(app, registered)).care_consent is True
    assert (await _outbox_status(app, "care:reorder"))[0] == "skipped"  # a stopped message stays stopped


async def test_resume_makes_an_unreachable_customer_reachable(app: App, registered: FakeUser) -> None:
    async with app.db.session() as session:
        repos = Repos(session)
        row = await repos.customers.by_telegram_id(registered.id)
        assert row is not None
        await repos.customers.mark_unreachable(row.id, START)
        await repos.commit()
    await registered.send("/resume")
    row = await _row(app, registered)
    assert row.reachable is True and row.unreachable_since is None


async def test_stop_works_in_the_middle_of_a_dialog(app: App, registered: FakeUser) -> None:
    row = await _row(app, registered)
    await _add_outbox(app, row.id, registered.id, "care:birthday", "care")
    await registered.send("/profile")
    await registered.press(label("field_address"))
    replies = await registered.send("/stop")
    assert texts_of(replies) == [shown("profile/stopped", skipped=1), question("address") + current(
        "address", "12 Rice Street")]
    assert (await _row(app, registered)).care_consent is False
    assert (await _outbox_status(app, "care:birthday"))[0] == "skipped"
    # The dialog goes on.
    await registered.send("99 Other Road")
    assert (await _row(app, registered)).address == "99 Other Road"


# ----- /mydata and /forget --------------------------------------------------------------

async def test_mydata_sends_a_json_document(app: App, clock: ManualClock, registered: FakeUser) -> None:
    async with app.db.session() as session:
        repos = Repos(session)
        row = await repos.customers.by_telegram_id(registered.id)
        assert row is not None
        await repos.customers.add_note(row, 200001, "Sam", "Prefers jasmine rice", START)
        await repos.commit()
    replies = await registered.send("/mydata")
    assert len(replies) == 1
    document = replies[0]
    assert document.kind == "document" and document.file_name and document.file_name.endswith(".json")
    assert document.text == shown("profile/mydata_caption")
    data = json.loads((document.file or b"").decode("utf-8"))
    assert data["customer"]["name"] == "Mei Lin"
    assert data["customer"]["phone"] == "+8613800100001"
    assert data["customer"]["birthday"] == "1990-03-25"
    assert data["customer"]["address"] == "12 Rice Street"
    assert data["customer"]["household_size"] == 3
    assert data["customer"]["care_consent"] is True
    assert data["customer"]["language"] == "en"
    assert data["staff_notes"] == [{"text": "Prefers jasmine rice", "by": "Sam", "at": START.isoformat()}]
    assert data["exported_at"] == clock.now().isoformat()


async def test_mydata_keeps_an_html_name_intact(app: App, customer: FakeUser) -> None:
    await register(customer, "<b>Li & Co</b> 🍚")
    document = (await customer.send("/mydata"))[0]
    assert json.loads(document.file or b"")["customer"]["name"] == "<b>Li & Co</b> 🍚"


async def test_forget_no_keeps_everything(app: App, registered: FakeUser) -> None:
    replies = await registered.send("/forget")
    assert texts_of(replies) == [shown("profile/forget_confirm")]
    assert replies[0].labels == [label("forget_yes"), label("forget_no")]
    replies = await registered.press(label("forget_no"))
    assert texts_of(replies) == [shown("profile/forget_kept")]
    assert (await _row(app, registered)).name == "Mei Lin"


async def test_forget_yes_erases_and_start_registers_afresh(app: App, registered: FakeUser) -> None:
    row = await _row(app, registered)
    customer_id = row.id
    await _add_outbox(app, customer_id, registered.id, "care:miss-you", "care")
    async with app.db.session() as session:
        repos = Repos(session)
        row = await repos.customers.get(customer_id)
        assert row is not None
        await repos.customers.add_note(row, 200001, "Sam", "Lives upstairs", START)
        await repos.commit()

    await registered.send("/forget")
    confirm_message = registered.last()
    _, yes = registered.find_button(label("forget_yes"), confirm_message)
    replies = await registered.press_data(yes["callback_data"], confirm_message)
    assert texts_of(replies) == [shown("profile/forgotten")]

    async with app.db.session() as session:
        row = await session.get(Customer, customer_id)
        assert row is not None  # kept, anonymised, for the records that point at it
        assert (row.telegram_id, row.name, row.phone, row.birthday, row.address, row.household_size) == (
            None, None, None, None, None, None)
        assert row.care_consent is False and row.forgotten_at == START
        notes = list(await session.scalars(select(StaffNote).where(StaffNote.customer_id == customer_id)))
        assert notes == []
    assert (await _outbox_status(app, "care:miss-you"))[0] == "skipped"

    # Gone: the bot treats them as new.
    assert texts_of(await registered.send("/profile")) == [shown("common/register_first")]
    # A second press of Yes finds nothing to forget.
    assert await registered.press_data(yes["callback_data"], confirm_message) == []

    replies = await registered.send("/start")
    assert texts_of(replies) == [shown("registration/welcome"), question("name", suggested="Mei")]
    await registered.send("Mei Again")
    await registered.send_contact()
    for _ in range(3):
        await registered.press(label("skip"))
    await registered.press(label("no"))
    await registered.press(label("confirm"))
    new = await _row(app, registered)
    assert new.id != customer_id and new.name == "Mei Again"
    assert await customer_count(app) == 2


async def test_old_buttons_do_not_touch_a_new_file(app: App, registered: FakeUser) -> None:
    profile = (await registered.send("/profile"))[0]
    forget_question = (await registered.send("/forget"))[0]
    await registered.send("/forget")
    await registered.press(label("forget_yes"))
    await register(registered, "Mei Again")
    # Buttons made for the forgotten file are stale for the new one.
    assert await registered.press(label("forget_yes"), forget_question) == []
    assert await registered.press(label("field_name"), profile) == []
    assert registered.alerts() == [shown("common/button_expired.txt")] * 2
    assert (await _row(app, registered)).name == "Mei Again"


@pytest.mark.parametrize("command", ["/profile", "/stop", "/resume", "/mydata", "/forget"])
async def test_unregistered_is_asked_to_register(app: App, customer: FakeUser, command: str) -> None:
    assert texts_of(await customer.send(command)) == [shown("common/register_first")]
    assert await customer_count(app) == 0
