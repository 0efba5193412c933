"""What every chat shares: languages, /help per role, /cancel, hints outside a
dialog, unknown commands, the staff group, stale buttons outside any dialog."""

from __future__ import annotations

from datetime import date

import pytest

from bot.app import App
from bot.commands import commands_for
from bot.fake_telegram import FakeTelegram, FakeUser
from bot.roles import Role
from tests.conftest import MANAGER_ID, STAFF_CHAT_ID, STAFF_ID, register
from tests.helpers import RENDERER, customer_row, error, label, question, shown, texts_of, walk_to


def help_lines(role: Role, lang: str = "en") -> list[str]:
    return [f"/{c.name} — {RENDERER.render(lang, f'commands/{c.name}.txt')}" for c in commands_for(role)]


# ----- languages -----------------------------------------------------------------------

@pytest.mark.parametrize("code", ["zh-hans", "zh", "zh-TW"])
async def test_chinese_telegram_gets_chinese(app: App, world: FakeTelegram, code: str) -> None:
    user = FakeUser(world, 100010, "美", language_code=code)
    replies = await user.send("/start")
    assert texts_of(replies) == [shown("registration/welcome", "zh"), question("name", "zh", suggested="美")]
    assert replies[-1].labels == [label("use_name", "zh", name="美")]


@pytest.mark.parametrize("code", [None, "en", "fr", "de-CH"])
async def test_other_languages_get_the_default(app: App, world: FakeTelegram, code: str | None) -> None:
    user = FakeUser(world, 100011, "Anna", language_code=code)
    assert texts_of(await user.send("/start"))[0] == shown("registration/welcome")


async def test_whole_registration_in_chinese_with_every_mistake(app: App, world: FakeTelegram) -> None:
    """Every message the fake accepted was valid Telegram HTML; here they are all zh."""
    user = FakeUser(world, 100012, "美", language_code="zh-hans")
    await user.send("/start")
    mistakes = {
        "name": [("   ", "name_empty", {}), ("?!", "name_no_letters", {}), ("x" * 65, "name_too_long", {"limit": 64})],
        "phone": [("abc", "phone_not_a_phone", {}), ("123", "phone_too_short", {}),
                  ("12345678901", "phone_invalid", {})],
        "birthday": [("昨天", "birthday_not_a_date", {}), ("2030-01-01", "birthday_future", {}),
                     ("1800-01-01", "birthday_too_old", {"year": 1900})],
        "address": [("a", "address_too_short", {}), ("x" * 301, "address_too_long", {"limit": 300})],
        "household": [("0", "household_out_of_range", {"low": 1, "high": 20}),
                      ("两", "household_not_a_number", {"low": 1, "high": 20})],
    }
    good = {"name": "李 <美> & 家", "phone": "138 0013 8000", "birthday": "1990年3月5日",
            "address": "北京市朝阳区 1 号", "household": "4"}
    for step, cases in mistakes.items():
        for typed, code, params in cases:
            replies = await user.send(typed)
            assert replies[0].text == error(code, "zh", **params)
        sticker = await user.send_sticker()
        assert texts_of(sticker)[0] == shown("common/expected_text", "zh")
        assert texts_of(await user.send("/profile"))[0] == shown("common/finish_first", "zh")
        await user.send(good[step])
    assert texts_of(await user.send("好"))[0] == shown("common/not_understood", "zh")
    await user.press(label("yes", "zh"))
    await user.press(label("edit", "zh"))
    assert user.last().text == shown("registration/which_field", "zh")
    await user.press(label("field_address", "zh"))
    await user.press(label("edit_keep", "zh"))
    replies = await user.press(label("confirm", "zh"))
    assert texts_of(replies) == [shown("registration/done", "zh", name="李 <美> & 家")]
    row = await customer_row(app, user.id)
    assert row is not None and row.language == "zh" and row.birthday == date(1990, 3, 5)
    for command in ("/profile", "/help", "/stop", "/resume", "/forget", "/cancel", "/nonsense", "/language"):
        for message in await user.send(command):
            assert message.text  # rendered, valid, and...
            assert any("\u4e00" <= ch <= "\u9fff" for ch in message.text), message.text  # ...in Chinese
    assert texts_of(await user.send("你好"))[-1] == shown("conversations/passed_on", "zh")  # passed on to staff


async def test_language_for_an_unregistered_person(app: App, customer: FakeUser) -> None:
    replies = await customer.send("/language")
    assert texts_of(replies) == [shown("profile/language_ask")]
    assert replies[0].labels == ["English", "中文"]
    replies = await customer.press("中文")
    assert replies == []  # the question itself turns into the answer
    assert customer.last().text == shown("profile/language_set", "zh")
    assert customer.last().labels == []
    assert texts_of(await customer.send("/start"))[0] == shown("registration/welcome", "zh")
    await customer.send("梅")
    await customer.send_contact()
    for _ in range(3):
        await customer.press(label("skip", "zh"))
    await customer.press(label("no", "zh"))
    await customer.press(label("confirm", "zh"))
    row = await customer_row(app, customer.id)
    assert row is not None and row.language == "zh"


async def test_staff_choose_the_staff_groups_language(app: App, world: FakeTelegram, staff: FakeUser,
                                                      staff2: FakeUser) -> None:
    replies = await staff.send("/language")
    assert texts_of(replies) == [shown("profile/language_ask", group=True)] and replies[0].labels == ["English", "中文"]
    await staff.press("中文")
    assert staff.last().text == shown("profile/language_set", "zh", group=True)
    await staff.send("/tickets")
    assert world.last(STAFF_CHAT_ID).text == shown("tickets/list", "zh", rows=[])
    await staff2.send("/tickets")  # one language for the whole group
    assert world.last(STAFF_CHAT_ID).text == shown("tickets/list", "zh", rows=[])
    staff_private = FakeUser(world, STAFF_ID, "Sam", language_code="en")  # their own chat keeps theirs
    assert texts_of(await staff_private.send("/tickets")) == [shown("tickets/list", "en", rows=[])]


async def test_language_for_a_registered_customer(app: App, customer: FakeUser) -> None:
    await register(customer, "Mei Lin")
    await customer.send("/start")
    await customer.press(label("menu_language"))
    await customer.press("中文")
    row = await customer_row(app, customer.id)
    assert row is not None and row.language == "zh"
    replies = await customer.send("/profile")
    assert replies[0].text.startswith("您的客户档案")
    # And back; the Telegram language does not override the choice.
    await customer.send("/language")
    await customer.press("English")
    assert (await customer.send("/profile"))[0].text.startswith("Your customer file")


async def test_language_switch_in_the_middle_of_registration(app: App, customer: FakeUser) -> None:
    await walk_to(customer, "address")
    assert texts_of(await customer.send("/language")) == [shown("profile/language_ask")]
    replies = await customer.press("中文")
    assert texts_of(replies) == [question("address", "zh")]  # the same question, now in Chinese
    assert replies[0].labels == [label("skip", "zh")]
    await customer.send("北京市朝阳区 1 号")
    assert customer.last().text == question("household", "zh", low=1, high=20)


# ----- /help per role -----------------------------------------------------------------

async def test_help_for_a_customer(app: App, customer: FakeUser) -> None:
    await register(customer, "Mei Lin")
    text = (await customer.send("/help"))[0].text
    assert text == "\n".join(["What I can do", *help_lines(Role.CUSTOMER)])
    assert "/profile" in text and "/forget" in text


async def test_help_for_someone_not_yet_registered(app: App, customer: FakeUser) -> None:
    text = (await customer.send("/help"))[0].text
    assert "/start" in text and text.splitlines()[0] == "What I can do"


async def test_help_for_staff_and_manager(app: App, world: FakeTelegram, staff: FakeUser) -> None:
    staff_private = FakeUser(world, STAFF_ID, "Sam", language_code="en")
    manager = FakeUser(world, MANAGER_ID, "Boss", language_code="en")
    customer_help = help_lines(Role.CUSTOMER)
    staff_text = (await staff_private.send("/help"))[0].text
    manager_text = (await manager.send("/help"))[0].text
    group_text = (await staff.send("/help"))[0].text
    assert staff_text == "\n".join(["Commands for staff", *help_lines(Role.STAFF)])
    assert manager_text == "\n".join(["Commands for managers", *help_lines(Role.MANAGER)])
    assert group_text == staff_text
    # Staff don't get the customer's own-file commands; managers get everything staff get.
    assert "/forget" not in staff_text and "/profile" not in staff_text
    assert set(help_lines(Role.STAFF)) <= set(help_lines(Role.MANAGER))
    assert help_lines(Role.STAFF) != customer_help


async def test_help_from_the_menu(app: App, customer: FakeUser) -> None:
    await register(customer, "Mei Lin")
    await customer.send("/start")
    replies = await customer.press(label("menu_help"))
    assert replies[0].text.splitlines()[1:] == help_lines(Role.CUSTOMER)


async def test_staff_start_shows_their_commands_not_registration(app: App, world: FakeTelegram) -> None:
    staff_private = FakeUser(world, STAFF_ID, "Sam", language_code="en")
    replies = await staff_private.send("/start")
    assert texts_of(replies) == ["\n".join(["Commands for staff", *help_lines(Role.STAFF)])]
    assert await customer_row(app, STAFF_ID) is None


# ----- outside a dialog -----------------------------------------------------------------

async def test_text_outside_a_dialog_gets_a_hint(app: App, world: FakeTelegram, customer: FakeUser) -> None:
    assert texts_of(await customer.send("hello?")) == [shown("common/register_first")]
    assert texts_of(await customer.send_sticker()) == [shown("common/register_first")]
    await register(customer, "Mei Lin")
    # A customer's words (and photos) go to the staff chat; a sticker gets the hint.
    assert texts_of(await customer.send("hello?"))[-1] == shown("conversations/passed_on")
    assert texts_of(await customer.send_photo())[-1] == shown("conversations/passed_on")
    assert texts_of(await customer.send_sticker()) == [shown("common/hint")]
    staff_private = FakeUser(world, STAFF_ID, "Sam", language_code="en")
    assert texts_of(await staff_private.send("hello?")) == [shown("common/hint")]


async def test_unknown_commands_are_answered(app: App, world: FakeTelegram, customer: FakeUser,
                                             staff: FakeUser) -> None:
    assert texts_of(await customer.send("/teleport")) == [shown("common/register_first")]
    await register(customer, "Mei Lin")
    assert texts_of(await customer.send("/teleport")) == [shown("common/unknown_command")]
    assert texts_of(await customer.send("/teleport@caredesk_bot now")) == [shown("common/unknown_command")]
    staff_private = FakeUser(world, STAFF_ID, "Sam", language_code="en")
    assert texts_of(await staff_private.send("/teleport")) == [shown("common/unknown_command")]
    assert texts_of(await staff.send("/teleport")) == [shown("common/unknown_command")]


async def test_staff_group_chatter_gets_no_answer(app: App, world: FakeTelegram, staff: FakeUser) -> None:
    assert await staff.send("morning all, who takes the rice deliveries today?") == []
    assert await staff.send_sticker() == []
    assert await staff.send_photo("the new shelf") == []


async def test_cancel_with_nothing_to_cancel(app: App, customer: FakeUser) -> None:
    assert texts_of(await customer.send("/cancel")) == [shown("common/nothing_to_cancel")]


@pytest.mark.parametrize("data", ["reg:confirm:confirm", "prof:forget_yes", "nonsense", "menu:teleport"])
async def test_buttons_outside_any_dialog_expire(app: App, customer: FakeUser, data: str) -> None:
    await customer.send("/help")
    assert await customer.press_data(data) == []
    assert customer.alerts() == [shown("common/button_expired.txt")]
    assert await customer_row(app, customer.id) is None
