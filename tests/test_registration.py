"""Registration on /start, as conversations: the happy paths, every bad input,
wrong kinds of message, commands in the middle, stale and forged buttons,
restarts between steps, and a name full of HTML."""

from __future__ import annotations

from datetime import date

import pytest

from bot.app import App
from bot.fake_telegram import FakeTelegram, FakeUser, SentMessage
from bot.menu import MENU_ENTRIES
from tests.conftest import START, register, restart
from tests.helpers import (
    STEP_ORDER,
    customer_count,
    customer_row,
    error,
    finish_from,
    label,
    question,
    shown,
    texts_of,
    walk_to,
)

HTML_NAME = "<b>Li & Co</b> 🍚"


def summary(**values: object) -> str:
    file = {"name": None, "phone": None, "birthday": None, "address": None,
            "household_size": None, "care_consent": False, **values}
    return shown("registration/summary", file=file)


# ----- happy paths -----------------------------------------------------------------

async def test_typed_answers_make_a_complete_file(app: App, customer: FakeUser) -> None:
    replies = await customer.send("/start")
    assert texts_of(replies) == [shown("registration/welcome"), question("name", suggested="Mei")]
    assert replies[-1].labels == [label("use_name", name="Mei")]

    replies = await customer.send("Mei Lin")
    assert texts_of(replies) == [question("phone")]
    assert replies[0].reply_buttons[0]["request_contact"] is True

    replies = await customer.send_contact()
    assert texts_of(replies) == [shown("registration/phone_saved", phone=customer.phone), question("birthday")]
    assert replies[0].reply_markup == {"remove_keyboard": True}  # the share button goes away
    assert replies[1].labels == [label("skip")]

    assert texts_of(await customer.send("1990-03-25")) == [question("address")]
    assert texts_of(await customer.send("12 Rice Street, Apt 5")) == [question("household")]
    replies = await customer.send("3")
    assert texts_of(replies) == [question("consent")]
    assert replies[0].labels == [label("yes"), label("no")]

    replies = await customer.press(label("yes"))
    expected = summary(name="Mei Lin", phone=customer.phone, birthday=date(1990, 3, 25),
                       address="12 Rice Street, Apt 5", household_size=3, care_consent=True)
    assert texts_of(replies) == [expected]
    assert replies[0].labels == [label("confirm"), label("edit")]
    assert await customer_row(app, customer.id) is None  # nothing saved before Confirm

    replies = await customer.press(label("confirm"))
    assert texts_of(replies) == [shown("registration/done", name="Mei Lin")]
    assert replies[0].labels == [label(button) for _, button in MENU_ENTRIES]

    row = await customer_row(app, customer.id)
    assert row is not None
    assert (row.name, row.phone, row.birthday, row.address, row.household_size, row.care_consent) == (
        "Mei Lin", customer.phone, date(1990, 3, 25), "12 Rice Street, Apt 5", 3, True)
    assert row.language == "en"
    assert row.registered_at == START and row.care_consent_changed_at == START
    assert row.reachable and row.forgotten_at is None


async def test_telegram_name_button_skips_and_no_consent(app: App, customer: FakeUser) -> None:
    await customer.send("/start")
    replies = await customer.press(label("use_name", name="Mei"))
    assert texts_of(replies) == [question("phone")]
    await customer.send("138 0013 8000")
    for step in ("birthday", "address"):
        replies = await customer.press(label("skip"))
        assert texts_of(replies) == [question(STEP_ORDER[STEP_ORDER.index(step) + 1])]
    await customer.press(label("skip"))
    replies = await customer.press(label("no"))
    assert texts_of(replies) == [summary(name="Mei", phone="+8613800138000", care_consent=False)]
    await customer.press(label("confirm"))

    row = await customer_row(app, customer.id)
    assert row is not None
    assert (row.name, row.phone, row.birthday, row.address, row.household_size, row.care_consent) == (
        "Mei", "+8613800138000", None, None, None, False)


async def test_pressed_question_loses_its_buttons(app: App, customer: FakeUser) -> None:
    await walk_to(customer, "household")
    asked = customer.last_with_buttons()
    await customer.press("4")
    assert asked.reply_markup is None and asked.edits == 1


FULL = dict(name="Mei Lin", birthday=date(1990, 3, 25), address="12 Rice Street", household_size=3,
            care_consent=True)


async def _edit_from_summary(user: FakeUser, field: str, typed: str | None = None,
                             press: str | None = None) -> list[SentMessage]:
    await user.press(label("edit"))
    await user.press(label(f"field_{field}"))
    return await (user.send(typed) if typed is not None else user.press(press or ""))


async def test_typed_phone_is_normalised_to_e164(app: App, customer: FakeUser) -> None:
    forms = [
        ("138 0013 8000", "+8613800138000"),
        ("+86 138-0013-8000", "+8613800138000"),
        ("0086 138 0013 8000", "+8613800138000"),
        ("86 13800138000", "+8613800138000"),
        ("(010) 1234 5678", "+861012345678"),
        ("+1 650 253 0000", "+16502530000"),
    ]
    await walk_to(customer, "confirm")
    for typed, e164 in forms:
        replies = await _edit_from_summary(customer, "phone", typed)
        assert texts_of(replies) == [shown("registration/phone_saved", phone=e164), summary(**FULL, phone=e164)]
    await customer.press(label("confirm"))
    row = await customer_row(app, customer.id)
    assert row is not None and row.phone == "+16502530000"


async def test_birthday_forms(app: App, customer: FakeUser) -> None:
    await walk_to(customer, "confirm")
    for typed in ("1990-03-05", "05.03.1990", "5.3.1990", "1990年3月5日", "1990/3/5", "19900305"):
        await _edit_from_summary(customer, "birthday", press=label("edit_remove"))
        replies = await _edit_from_summary(customer, "birthday", typed)
        assert texts_of(replies) == [summary(**{**FULL, "phone": customer.phone, "birthday": date(1990, 3, 5)})]
    await customer.press(label("confirm"))
    row = await customer_row(app, customer.id)
    assert row is not None and row.birthday == date(1990, 3, 5)


async def test_household_by_button_or_typed(app: App, customer: FakeUser) -> None:
    await walk_to(customer, "household")
    assert texts_of(await customer.press("6")) == [question("consent")]
    await customer.press(label("yes"))
    for answer, size in (("press 1", 1), (" 7 ", 7), ("20", 20), ("press 4", 4)):
        if answer.startswith("press"):
            replies = await _edit_from_summary(customer, "household", press=answer.split()[1])
        else:
            replies = await _edit_from_summary(customer, "household", answer)
        assert texts_of(replies) == [summary(**{**FULL, "phone": customer.phone, "household_size": size})]
    await customer.press(label("confirm"))
    row = await customer_row(app, customer.id)
    assert row is not None and row.household_size == 4


async def test_edit_one_field_from_the_summary(app: App, customer: FakeUser) -> None:
    await walk_to(customer, "confirm")
    replies = await customer.press(label("edit"))
    assert texts_of(replies) == [shown("registration/which_field")]
    assert replies[0].labels == [label(f"field_{s}") for s in STEP_ORDER[:-1]] + [label("edit_back")]

    replies = await customer.press(label("field_birthday"))
    current = shown("registration/current", step="birthday", value=date(1990, 3, 25))
    assert texts_of(replies) == [question("birthday") + "\n\n" + current]
    assert replies[0].labels == [label("edit_remove"), label("edit_keep")]

    replies = await customer.send("2099-01-01")  # same validation while editing
    assert texts_of(replies)[0] == error("birthday_future")
    replies = await customer.send("1988-07-14")
    assert texts_of(replies) == [summary(name="Mei Lin", phone=customer.phone, birthday=date(1988, 7, 14),
                                         address="12 Rice Street", household_size=3, care_consent=True)]
    await customer.press(label("confirm"))
    row = await customer_row(app, customer.id)
    assert row is not None and row.birthday == date(1988, 7, 14) and row.address == "12 Rice Street"


async def test_edit_back_keep_and_remove(app: App, customer: FakeUser) -> None:
    await walk_to(customer, "confirm")
    full = dict(name="Mei Lin", phone=customer.phone, birthday=date(1990, 3, 25),
                address="12 Rice Street", household_size=3, care_consent=True)
    await customer.press(label("edit"))
    assert texts_of(await customer.press(label("edit_back"))) == [summary(**full)]

    await customer.press(label("edit"))
    await customer.press(label("field_phone"))
    asked = customer.last()
    assert [b["text"] for b in asked.reply_buttons] == [label("share_phone"), label("edit_keep")]
    replies = await customer.press(label("edit_keep"))  # a reply-keyboard button: sent as text
    assert texts_of(replies) == [shown("registration/unchanged"), summary(**full)]
    assert replies[0].reply_markup == {"remove_keyboard": True}

    await customer.press(label("edit"))
    await customer.press(label("field_address"))
    assert texts_of(await customer.press(label("edit_remove"))) == [summary(**{**full, "address": None})]

    await customer.press(label("edit"))
    await customer.press(label("field_consent"))
    assert texts_of(await customer.press(label("no"))) == [summary(**{**full, "address": None,
                                                                      "care_consent": False})]
    await customer.press(label("confirm"))
    row = await customer_row(app, customer.id)
    assert row is not None and row.address is None and row.care_consent is False and row.household_size == 3


async def test_registered_customer_start_shows_menu(app: App, customer: FakeUser) -> None:
    await register(customer, "Mei Lin")
    replies = await customer.send("/start")
    assert texts_of(replies) == [shown("menu/main", name="Mei Lin")]
    assert replies[0].labels == [label(button) for _, button in MENU_ENTRIES]
    assert await customer_count(app) == 1


async def test_two_customers_do_not_mix(app: App, world: FakeTelegram, customer: FakeUser) -> None:
    other = FakeUser(world, 100002, "Wang", language_code="en")
    await walk_to(customer, "birthday", name="Mei Lin")
    await walk_to(other, "address", name="Wang Wei")
    await finish_from(customer, "birthday")
    await finish_from(other, "address")
    first, second = await customer_row(app, customer.id), await customer_row(app, other.id)
    assert first is not None and second is not None
    assert (first.name, first.birthday) == ("Mei Lin", None)
    assert (second.name, second.birthday) == ("Wang Wei", date(1990, 3, 25))


# ----- bad input: a specific message and the same question again ------------------------

BAD_INPUT = {
    "name": [("   ", "name_empty", {}), ("x" * 65, "name_too_long", {"limit": 64}),
             ("!!! ... ???", "name_no_letters", {})],
    "phone": [("12345678901", "phone_invalid", {}), ("1380013800", "phone_invalid", {}),
              ("12345", "phone_too_short", {}), ("call me maybe", "phone_not_a_phone", {})],
    "birthday": [("next Tuesday", "birthday_not_a_date", {}), ("1990-02-30", "birthday_not_a_date", {}),
                 ("2026-03-03", "birthday_future", {}), ("1899-12-31", "birthday_too_old", {"year": 1900})],
    "address": [("ab", "address_too_short", {}), ("x" * 301, "address_too_long", {"limit": 300})],
    "household": [("0", "household_out_of_range", {"low": 1, "high": 20}),
                  ("21", "household_out_of_range", {"low": 1, "high": 20}),
                  ("two", "household_not_a_number", {"low": 1, "high": 20})],
}


@pytest.mark.parametrize("step", list(BAD_INPUT))
async def test_bad_input_is_explained_and_asked_again(app: App, customer: FakeUser, step: str) -> None:
    await walk_to(customer, step)
    asked = customer.last()
    for typed, code, params in BAD_INPUT[step]:
        replies = await customer.send(typed)
        assert texts_of(replies) == [error(code, **params), asked.text], typed
        assert replies[1].reply_markup == asked.reply_markup
    # Still at the same step: a good answer moves on.
    await finish_from(customer, step)
    assert await customer_count(app) == 1


async def test_someone_elses_contact_is_refused(app: App, customer: FakeUser) -> None:
    await walk_to(customer, "phone")
    replies = await customer.send_contact("+8613911112222", own=False)
    assert texts_of(replies) == [error("phone_not_own"), question("phone")]
    replies = await customer.send_contact()
    assert texts_of(replies)[0] == shown("registration/phone_saved", phone=customer.phone)


async def test_contact_card_without_telegram_user_is_refused(app: App, customer: FakeUser) -> None:
    await walk_to(customer, "phone")
    raw = customer._message(contact={"phone_number": "8613911112222", "first_name": "Aunt"})
    replies = await customer._feed_message(raw)
    assert texts_of(replies) == [error("phone_not_own"), question("phone")]


@pytest.mark.parametrize("step", ["name", "phone", "birthday", "address", "household"])
async def test_non_text_where_text_is_needed(app: App, customer: FakeUser, step: str) -> None:
    await walk_to(customer, step)
    asked = customer.last()
    for send in (customer.send_sticker, lambda: customer.send_photo("hi"), customer.send_voice):
        replies = await send()
        assert texts_of(replies) == [shown("common/expected_text"), asked.text]


@pytest.mark.parametrize("step", ["consent", "confirm"])
async def test_anything_but_a_button_where_a_button_is_needed(app: App, customer: FakeUser, step: str) -> None:
    await walk_to(customer, step)
    asked = customer.last()
    for send in (customer.send_sticker, lambda: customer.send("yes")):
        replies = await send()
        assert texts_of(replies) == [shown("common/not_understood"), asked.text]
        assert replies[1].labels == asked.labels


# ----- commands in the middle ---------------------------------------------------------

async def test_other_commands_ask_to_finish_first(app: App, customer: FakeUser) -> None:
    await walk_to(customer, "birthday")
    for command in ("/profile", "/start", "/START", "/mydata", "/forget", "/stop", "/resume", "/nonsense",
                    "/profile@caredesk_bot"):
        replies = await customer.send(command)
        assert texts_of(replies) == [shown("common/finish_first"), question("birthday")], command
    await finish_from(customer, "birthday")
    assert await customer_count(app) == 1


async def test_help_works_mid_dialog_and_asks_again(app: App, customer: FakeUser) -> None:
    await walk_to(customer, "address")
    replies = await customer.send("/help")
    assert len(replies) == 2
    assert "/profile" in replies[0].text and "/cancel" in replies[0].text
    assert replies[1].text == question("address")


async def test_cancel_leaves_registration_and_saves_nothing(app: App, customer: FakeUser) -> None:
    await walk_to(customer, "birthday")
    replies = await customer.send("/cancel")
    assert texts_of(replies) == [shown("common/cancelled")]
    assert replies[0].reply_markup == {"remove_keyboard": True}
    assert texts_of(await customer.send("1990-01-01")) == [shown("common/register_first")]
    assert await customer_count(app) == 0
    # /start begins again from the first question.
    assert texts_of(await customer.send("/start"))[-1] == question("name", suggested="Mei")


async def test_cancel_at_phone_step_removes_share_keyboard(app: App, customer: FakeUser) -> None:
    await walk_to(customer, "phone")
    replies = await customer.send("/cancel")
    assert replies[0].reply_markup == {"remove_keyboard": True}


# ----- stale, double and forged presses ---------------------------------------------------

async def test_skip_of_an_answered_question_has_expired(app: App, world: FakeTelegram, customer: FakeUser) -> None:
    await walk_to(customer, "birthday")
    birthday_question = customer.last()
    await customer.send("1990-03-25")  # typed, so the Skip button stays on that message
    replies = await customer.press(label("skip"), birthday_question)
    assert replies == []
    assert customer.alerts()[-1] == shown("common/button_expired.txt")
    # Nothing changed: still at the address step, the birthday is kept.
    assert texts_of(await customer.send("12 Rice Street")) == [question("household")]
    await customer.send("2")
    replies = await customer.press(label("yes"))
    assert "1990-03-25" in replies[0].text


async def test_confirm_twice_makes_one_customer(app: App, customer: FakeUser) -> None:
    await walk_to(customer, "confirm")
    summary_message = customer.last()
    _, confirm = customer.find_button(label("confirm"), summary_message)
    await customer.press_data(confirm["callback_data"], summary_message)
    replies = await customer.press_data(confirm["callback_data"], summary_message)
    assert replies == []
    assert customer.alerts()[-1] == shown("common/button_expired.txt")
    assert await customer_count(app) == 1


FORGED = (
    "reg:confirm",  # does not parse: a field is missing
    "garbage",
    "reg:household:household:99",
    "reg:household:household:two",
    "reg:consent:household:yes",
    "reg:skip:name",
    "reg:keep:household",  # "keep" belongs to editing, not to registering
    "reg:field:household:phone",
    "reg:teleport:household",
)


async def test_forged_presses_expire_and_change_nothing(app: App, customer: FakeUser) -> None:
    await walk_to(customer, "household")
    asked = customer.last()
    for data in FORGED:
        assert await customer.press_data(data, asked) == [], data
    assert customer.alerts() == [shown("common/button_expired.txt")] * len(FORGED)
    assert asked.reply_markup is not None and asked.edits == 0  # the real buttons are still there
    assert texts_of(await customer.send("2")) == [question("consent")]


async def test_button_of_a_cancelled_dialog_has_expired(app: App, customer: FakeUser) -> None:
    await customer.send("/start")
    old_question = customer.last()
    await customer.send("/cancel")
    await customer.send("/start")  # a new dialog, at the same step as the old button
    replies = await customer.press(label("use_name", name="Mei"), old_question)
    assert replies == []
    assert customer.alerts()[-1] == shown("common/button_expired.txt")
    assert texts_of(await customer.send("Mei Lin")) == [question("phone")]


async def test_buttons_of_a_finished_registration_have_expired(app: App, customer: FakeUser) -> None:
    await customer.send("/start")
    name_question = customer.last()
    await customer.send("Mei Lin")  # typed: the "use Mei" button stays
    await finish_from(customer, "phone")
    assert texts_of(await customer.press(label("use_name", name="Mei"), name_question)) == []
    # Even while the profile asks for the name again.
    await customer.send("/profile")
    await customer.press(label("field_name"))
    assert texts_of(await customer.press(label("use_name", name="Mei"), name_question)) == []
    assert customer.alerts() == [shown("common/button_expired.txt")] * 2
    row = await customer_row(app, customer.id)
    assert row is not None and row.name == "Mei Lin"


# ----- a name full of HTML ------------------------------------------------------------------

async def test_html_name_is_stored_and_shown_exactly(app: App, customer: FakeUser) -> None:
    await walk_to(customer, "phone", name=HTML_NAME)
    await customer.send_contact()
    await customer.press(label("skip"))
    await customer.press(label("skip"))
    await customer.press(label("skip"))
    replies = await customer.press(label("yes"))
    assert replies[0].text.splitlines()[2] == f"Name: {HTML_NAME}"
    assert "&lt;" in (replies[0].html or "")  # escaped on the wire, intact on the screen

    replies = await customer.press(label("confirm"))
    assert replies[0].text.startswith(f"Thank you, {HTML_NAME}!")
    assert texts_of(await customer.send("/start")) == [f"Hello, {HTML_NAME}! What can we do for you?"]
    replies = await customer.send("/profile")
    assert f"Name: {HTML_NAME}\n" in replies[0].text
    row = await customer_row(app, customer.id)
    assert row is not None and row.name == HTML_NAME


async def test_telegram_name_with_markup_goes_through_the_button(app: App, world: FakeTelegram) -> None:
    user = FakeUser(world, 100003, "<i>Ann</i> & Co", language_code="en")
    await user.send("/start")
    assert user.last().labels == ["Use “<i>Ann</i> & Co”"]
    await user.press(1)
    await finish_from(user, "phone")
    row = await customer_row(app, user.id)
    assert row is not None and row.name == "<i>Ann</i> & Co"
    assert user.last().text.startswith("Thank you, <i>Ann</i> & Co!")


# ----- restarts ------------------------------------------------------------------------------

ACTIONS = ("start", "name", "phone", "birthday", "address", "household", "consent", "confirm")


async def _act(user: FakeUser, action: str) -> None:
    if action == "start":
        await user.send("/start")
    elif action == "name":
        await user.send(HTML_NAME)
    elif action == "phone":
        await user.send("+86 139 0013 9000")
    elif action == "birthday":
        await user.send("1990年3月5日")
    elif action == "address":
        await user.press(label("skip"))
    elif action == "household":
        await user.press("2")
    elif action == "consent":
        await user.press(label("yes"))
    else:
        await user.press(label("confirm"))


def _assert_file(row: object) -> None:
    assert row is not None
    assert (row.name, row.phone, row.birthday, row.address, row.household_size, row.care_consent) == (  # type: ignore[attr-defined]
        HTML_NAME, "+8613900139000", date(1990, 3, 5), None, 2, True)


@pytest.mark.parametrize("after", ACTIONS[:-1])
async def test_restart_between_steps_continues(app: App, world: FakeTelegram, customer: FakeUser, after: str) -> None:
    current = app
    for action in ACTIONS:
        await _act(customer, action)
        if action == after:
            asked = customer.last()
            current = await restart(current, world)
            # The same question is still open: the answer goes where it was.
            assert customer.last() is asked
    try:
        _assert_file(await customer_row(current, customer.id))
        assert await customer_count(current) == 1
    finally:
        if current is not app:
            await current.close()


async def test_restart_after_every_step(app: App, world: FakeTelegram, customer: FakeUser) -> None:
    current = app
    try:
        for action in ACTIONS:
            await _act(customer, action)
            current = await restart(current, world)
        _assert_file(await customer_row(current, customer.id))
    finally:
        if current is not app:
            await current.close()


async def test_wrong_input_after_restart_asks_the_right_question(app: App, world: FakeTelegram,
                                                                 customer: FakeUser) -> None:
    await walk_to(customer, "household")
    current = await restart(app, world)
    try:
        replies = await customer.send("21")
        assert texts_of(replies) == [error("household_out_of_range", low=1, high=20), question("household")]
    finally:
        await current.close()
