"""The dialog protocol (bot.dialogs) from a new dialog's point of view.

"Refer a friend" — three questions (name, phone, confirm) — is written here
the way a new dialog would be written in handlers/: a StatesGroup, one asker
per question, a :class:`Dialog`, handlers that take ``turn``, and ``build_router``. It is not
part of the bot: the test gives it to ``create_app`` (``extra_dialogs``) and
its texts to the renderer. Driven through the real dispatcher: the happy
path, wrong input asked again, a stale button, a double press, /cancel, a
command in the middle, and a restart between questions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiogram import Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder
from jinja2 import ChoiceLoader, DictLoader

from bot.app import App, create_app
from bot.config import Settings
from bot.dialogs import TYPED, Dialog, StepButton, Turn
from bot.fake_telegram import FakeTelegram, FakeUser, SentMessage
from bot.rules import customer_file as rules
from bot.texts import Texts

# ----- the dialog: this part is what a new dialog's file in handlers/ holds ------------------------


class ReferralForm(StatesGroup):
    name = State()
    phone = State()
    confirm = State()


async def ask_name(message: Message, texts: Texts) -> None:
    await message.answer(texts("referral/ask_name"))


async def ask_phone(message: Message, texts: Texts) -> None:
    builder = InlineKeyboardBuilder()
    builder.button(text=texts.button("skip"), callback_data=referral.button("skip", "phone"))
    await message.answer(texts("referral/ask_phone"), reply_markup=builder.as_markup())


async def ask_confirm(message: Message, texts: Texts, turn: Turn) -> None:
    builder = InlineKeyboardBuilder()
    builder.button(text=texts.button("confirm"), callback_data=referral.button("send", "confirm"))
    builder.button(text=texts.button("edit"), callback_data=referral.button("again", "confirm"))
    values = await referral.values(turn.state)
    await message.answer(texts("referral/summary", **values), reply_markup=builder.as_markup())


referral = Dialog(
    ReferralForm, prefix="ref",
    ask={ReferralForm.name: ask_name, ReferralForm.phone: ask_phone, ReferralForm.confirm: ask_confirm},
    buttons={("skip", "phone"): None, ("send", "confirm"): None, ("again", "confirm"): None},
    buttons_only={ReferralForm.confirm},
)


def build_router() -> Router:
    """A new router each time (one per dispatcher), its handlers in the order aiogram tries them."""
    router = Router(name="referral")
    router.message.register(refer, Command("refer"))
    router.message.register(got_name, StateFilter(ReferralForm.name), TYPED)
    router.message.register(got_phone, StateFilter(ReferralForm.phone), TYPED)
    router.callback_query.register(pressed, referral.Button.filter())
    return router


async def refer(message: Message, turn: Turn) -> None:
    await turn.begin(message, **{referral.key: {"phone": None}})
    await turn.ask(message, ReferralForm.name)


async def _keep(turn: Turn, **answer: object) -> None:
    values = await referral.values(turn.state)
    await referral.save(turn.state, {**values, **answer})


async def got_name(message: Message, turn: Turn) -> None:
    try:
        name = rules.parse_name(message.text or "")
    except rules.Invalid as error:
        await turn.reject(message, error)
        return
    await _keep(turn, name=name)
    await turn.ask(message, ReferralForm.phone)


async def got_phone(message: Message, turn: Turn, settings: Settings) -> None:
    try:
        phone = rules.parse_phone(message.text or "", settings.default_region)
    except rules.Invalid as error:
        await turn.reject(message, error)
        return
    await _keep(turn, phone=phone)
    await turn.ask(message, ReferralForm.confirm)


async def pressed(callback: CallbackQuery, callback_data: StepButton, turn: Turn, texts: Texts) -> None:
    press = await turn.press(callback, callback_data)
    if press is None:
        return
    if press.action == "skip":
        await turn.ask(press.message, ReferralForm.confirm)
    elif press.action == "again":
        await turn.ask(press.message, ReferralForm.name)
    elif press.action == "send":
        values = await referral.values(turn.state)
        await turn.end()
        await press.message.answer(texts("referral/sent", name=values["name"]))


TEMPLATES = {
    "en/referral/ask_name.html": "Who should we invite? Their name, please.",
    "en/referral/ask_phone.html": "Their phone number?",
    "en/referral/summary.html": "Invite {{ name }} ({{ phone or 'no phone' }})?",
    "en/referral/sent.html": "Invitation for {{ name }} sent.",
}

# ----- driving it ---------------------------------------------------------------------------------


def _last(replies: list[SentMessage]) -> str:
    return replies[-1].text if replies else ""


def _build(settings: Settings, app_clock: object, world: FakeTelegram) -> App:
    app = create_app(settings, clock=app_clock, session=world.session(),  # type: ignore[arg-type]
                     extra_dialogs=[(build_router(), referral)])
    env = app.renderer.env
    env.loader = ChoiceLoader([DictLoader(TEMPLATES), env.loader])  # type: ignore[list-item]
    world.attach(app.dispatcher, app.bot)
    return app


@pytest.fixture
async def shop(settings: Settings, clock: object, world: FakeTelegram) -> AsyncIterator[App]:
    app = _build(settings, clock, world)
    yield app
    await app.close()


@pytest.fixture
def mei(world: FakeTelegram, shop: App) -> FakeUser:
    return FakeUser(world, 100001, "Mei", language_code="en")


async def test_happy_path(mei: FakeUser) -> None:
    assert _last(await mei.send("/refer")) == "Who should we invite? Their name, please."
    assert _last(await mei.send("Li Na")) == "Their phone number?"
    assert _last(await mei.send("+8613800138000")) == "Invite Li Na (+8613800138000)?"
    assert _last(await mei.press("Confirm")) == "Invitation for Li Na sent."
    # The dialog is over: free text is not taken as an answer any more.
    assert "Invitation" not in _last(await mei.send("Li Na"))


async def test_wrong_input_is_explained_and_asked_again(mei: FakeUser) -> None:
    await mei.send("/refer")
    await mei.send("Li Na")
    replies = await mei.send("not a phone")
    assert len(replies) == 2 and "phone" in replies[0].text.lower()  # the specific message (errors/...)
    assert replies[1].text == "Their phone number?"  # and the same question again
    replies = await mei.send_sticker()
    assert [r.text for r in replies][-1] == "Their phone number?"
    # A buttons-only step tells to use the buttons.
    await mei.press("Skip")
    replies = await mei.send("yes please")
    assert replies[0].text == "Please use the buttons below the question."
    assert replies[1].text == "Invite Li Na (no phone)?"


async def test_stale_and_double_presses(world: FakeTelegram, mei: FakeUser) -> None:
    await mei.send("/refer")
    await mei.send("Li Na")
    phone_question = mei.last_with_buttons()
    await mei.press("Skip")
    assert phone_question.buttons == []  # an answered question loses its buttons
    await mei.press_data(referral.button("skip", "phone"), phone_question)  # pressed again anyway
    assert mei.alerts()[-1] == "This button has expired."
    summary = mei.last_with_buttons()
    send = referral.button("send", "confirm")
    assert len(await mei.press_data(send, summary)) == 1
    assert await mei.press_data(send, summary) == []  # a double press
    assert mei.alerts()[-1] == "This button has expired."
    assert sum("Invitation for" in m.text for m in mei.inbox()) == 1
    # Forged: a step's button at another step, an unknown action.
    await mei.send("/refer")
    await mei.press_data("ref:send:name:", mei.last())
    assert mei.alerts()[-1] == "This button has expired."
    await mei.press_data("ref:teleport:name:", mei.last())
    assert mei.alerts()[-1] == "This button has expired."


async def test_buttons_of_an_earlier_dialog_are_stale(mei: FakeUser) -> None:
    await mei.send("/refer")
    await mei.send("Li Na")
    old_phone_question = mei.last_with_buttons()
    await mei.send("/cancel")
    await mei.send("/refer")
    await mei.send("Wang Fang")  # the same step again, in a new dialog
    await mei.press_data(referral.button("skip", "phone"), old_phone_question)
    assert mei.alerts()[-1] == "This button has expired."
    assert mei.last().text == "Their phone number?"


async def test_cancel_and_commands_in_the_middle(mei: FakeUser) -> None:
    await mei.send("/refer")
    replies = await mei.send("/order")
    assert [r.text for r in replies] == ["Please finish this step first, or send /cancel to leave it.",
                                         "Who should we invite? Their name, please."]
    replies = await mei.send("/help")
    assert replies[-1].text == "Who should we invite? Their name, please."  # /help reminds where they were
    replies = await mei.send("/cancel")
    assert "cancel" in replies[0].text.lower()
    assert "Who should we invite" not in _last(await mei.send("Li Na"))


async def test_the_dialog_goes_on_after_a_restart(settings: Settings, clock: object, world: FakeTelegram,
                                                 shop: App, mei: FakeUser) -> None:
    await mei.send("/refer")
    await mei.send("Li Na")
    phone_question = mei.last_with_buttons()
    await shop.close()
    again = _build(settings, clock, world)
    try:
        await mei.press_data(referral.button("skip", "phone"), phone_question)
        assert mei.last().text == "Invite Li Na (no phone)?"
    finally:
        await again.close()
