"""The fake Telegram refuses what Telegram refuses, with the errors aiogram
raises for the real thing (a Bot on a FakeSession, no dispatcher)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.enums import ParseMode
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import BufferedInputFile, InlineKeyboardButton, InlineKeyboardMarkup

from bot.app import OFFLINE_TOKEN
from bot.fake_telegram import FakeTelegram, FakeUser

CHAT = 100001


@pytest.fixture
def world() -> FakeTelegram:
    world = FakeTelegram()
    world.chat(CHAT)
    return world


@pytest.fixture
async def bot(world: FakeTelegram) -> AsyncIterator[Bot]:
    bot = Bot(OFFLINE_TOKEN, session=world.session(), default=DefaultBotProperties(parse_mode=ParseMode.HTML))
    yield bot
    await bot.session.close()


def markup(data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="Press", callback_data=data)]])


def photo() -> BufferedInputFile:
    return BufferedInputFile(b"\x89PNG fake", filename="chart.png")


# ----- sizes ---------------------------------------------------------------------------------
async def test_text_up_to_4096_characters_after_entities(bot: Bot, world: FakeTelegram) -> None:
    await bot.send_message(CHAT, "a" * 4096)
    await bot.send_message(CHAT, "<b>" + "a" * 4096 + "</b>")  # tags do not count
    await bot.send_message(CHAT, "&amp;" * 4096)  # an entity is one character
    await bot.send_message(CHAT, "🍚" * 2048)  # Telegram counts UTF-16 units: an emoji is two
    assert [len(m.text or "") for m in world.sent(CHAT)] == [4096, 4096, 4096, 2048]


@pytest.mark.parametrize("text", ["a" * 4097, "<i>" + "a" * 4097 + "</i>", "🍚" * 2049])
async def test_text_over_4096_characters_is_refused(bot: Bot, world: FakeTelegram, text: str) -> None:
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(CHAT, text)
    assert world.sent(CHAT) == []
    assert world.calls[-1].ok is False


@pytest.mark.parametrize("text", ["", "   ", "<b></b>"])
async def test_empty_text_is_refused(bot: Bot, text: str) -> None:
    with pytest.raises(TelegramBadRequest, match="text is empty"):
        await bot.send_message(CHAT, text)


async def test_caption_up_to_1024_characters(bot: Bot, world: FakeTelegram) -> None:
    await bot.send_photo(CHAT, photo(), caption="c" * 1024)
    with pytest.raises(TelegramBadRequest, match="caption is too long"):
        await bot.send_photo(CHAT, photo(), caption="c" * 1025)
    with pytest.raises(TelegramBadRequest, match="caption is too long"):
        await bot.send_document(CHAT, photo(), caption="<b>" + "c" * 1025 + "</b>")
    sent = world.sent(CHAT)
    assert len(sent) == 1 and sent[0].kind == "photo" and sent[0].file == b"\x89PNG fake"


@pytest.mark.parametrize("data, ok", [
    ("x" * 64, True),
    ("x" * 65, False),
    ("订" * 21, True),  # 63 bytes: a Chinese character is three
    ("订" * 22, False),  # 66 bytes, though only 22 characters
    ("", False),
])
async def test_callback_data_is_1_to_64_bytes(bot: Bot, world: FakeTelegram, data: str, ok: bool) -> None:
    if ok:
        await bot.send_message(CHAT, "Choose", reply_markup=markup(data))
        assert world.last(CHAT).inline_buttons[0]["callback_data"] == data
    else:
        with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
            await bot.send_message(CHAT, "Choose", reply_markup=markup(data))


# ----- HTML --------------------------------------------------------------------------------------
@pytest.mark.parametrize("html, why", [
    ("<div>block</div>", "unknown tag"),
    ("<p>paragraph</p>", "unknown tag"),
    ("<br>", "unknown tag"),
    ("<b>bold", "unclosed tag"),
    ("<b><i>crossed</b></i>", "wrongly nested"),
    ("plain</b>", "end tag without start"),
    ("1 < 2", "bare <"),
    ("Li & Co", "bare &"),
    ("&nbsp;", "entity Telegram does not know"),
    ("<code><b>x</b></code>", "nothing inside code"),
    ("<blockquote><blockquote>x</blockquote></blockquote>", "nested blockquote"),
])
async def test_html_telegram_refuses(bot: Bot, world: FakeTelegram, html: str, why: str) -> None:
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.send_message(CHAT, html)
    assert world.sent(CHAT) == [], why


@pytest.mark.parametrize("html, visible", [
    ("&lt;b&gt;Li &amp; Co&lt;/b&gt; 🍚", "<b>Li & Co</b> 🍚"),
    ("<b>bold</b> <strong>s</strong> <i>i</i> <u>u</u> <s>s</s> <tg-spoiler>x</tg-spoiler>", "bold s i u s x"),
    ('<a href="https://example.com/?a=1&amp;b=2">link</a>', "link"),
    ('<span class="tg-spoiler">hidden</span>', "hidden"),
    ('<pre><code class="language-python">x = 1</code></pre>', "x = 1"),
    ("<blockquote expandable>quote</blockquote>", "quote"),
    ("it&#39;s &#34;quoted&#34; &quot;", "it's \"quoted\" \""),
    ("2 > 1", "2 > 1"),
])
async def test_html_telegram_accepts(bot: Bot, world: FakeTelegram, html: str, visible: str) -> None:
    await bot.send_message(CHAT, html)
    assert world.last(CHAT).text == visible
    assert world.last(CHAT).html == html


async def test_without_parse_mode_anything_goes(bot: Bot, world: FakeTelegram) -> None:
    await bot.send_message(CHAT, "1 < 2 & <div>", parse_mode=None)
    assert world.last(CHAT).text == "1 < 2 & <div>"


async def test_bad_html_in_an_edit_or_caption_is_refused(bot: Bot) -> None:
    message = await bot.send_message(CHAT, "fine")
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.edit_message_text("<b>broken", chat_id=CHAT, message_id=message.message_id)
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.send_photo(CHAT, photo(), caption="Li & Co")


# ----- people and failures -------------------------------------------------------------------------
async def test_blocked_chat_is_403(bot: Bot, world: FakeTelegram) -> None:
    world.block(CHAT)
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(CHAT, "hello")
    with pytest.raises(TelegramForbiddenError):
        await bot.send_photo(CHAT, photo())
    world.block(CHAT, blocked=False)
    await bot.send_message(CHAT, "hello again")
    assert [m.text for m in world.sent(CHAT)] == ["hello again"]


async def test_scripted_429_carries_retry_after(bot: Bot, world: FakeTelegram) -> None:
    world.fail("retry_after", chat_id=CHAT, retry_after=7)
    with pytest.raises(TelegramRetryAfter) as info:
        await bot.send_message(CHAT, "hello")
    assert info.value.retry_after == 7
    await bot.send_message(CHAT, "hello")  # a fault fires as many times as scripted, then Telegram is fine
    assert len(world.sent(CHAT)) == 1


async def test_scripted_faults_match_method_and_chat(bot: Bot, world: FakeTelegram) -> None:
    world.chat(CHAT + 1)
    world.fail("retry_after", method="sendMessage", chat_id=CHAT + 1, times=2)
    await bot.send_message(CHAT, "other chat is fine")
    await bot.send_photo(CHAT + 1, photo())  # another method is fine
    for _ in range(2):
        with pytest.raises(TelegramRetryAfter):
            await bot.send_message(CHAT + 1, "hello")
    await bot.send_message(CHAT + 1, "third time")


@pytest.mark.parametrize("kind, error, match", [
    ("network", TelegramNetworkError, "Cannot connect|timeout"),
    ("blocked", TelegramForbiddenError, "blocked"),
    ("deactivated", TelegramForbiddenError, "deactivated"),
    ("chat_not_found", TelegramBadRequest, "chat not found"),
    ("server", TelegramServerError, "Bad Gateway"),
])
async def test_scripted_failures_raise_what_aiogram_raises(
    bot: Bot, world: FakeTelegram, kind: str, error: type[Exception], match: str
) -> None:
    world.fail(kind, chat_id=CHAT)
    with pytest.raises(error, match=match):
        await bot.send_message(CHAT, "hello")
    assert world.sent(CHAT) == []


async def test_timeout_after_send_delivers_and_still_fails(bot: Bot, world: FakeTelegram) -> None:
    """sendMessage has no idempotency key: a timeout can mean it was delivered."""
    world.fail("timeout_after_send", chat_id=CHAT)
    with pytest.raises(TelegramNetworkError):
        await bot.send_message(CHAT, "maybe delivered")
    assert [m.text for m in world.sent(CHAT)] == ["maybe delivered"]


# ----- edits, deletes, replies -----------------------------------------------------------------------
async def test_edit_that_changes_nothing_is_refused(bot: Bot, world: FakeTelegram) -> None:
    message = await bot.send_message(CHAT, "<b>Order</b>", reply_markup=markup("o:1"))
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text("<b>Order</b>", chat_id=CHAT, message_id=message.message_id,
                                    reply_markup=markup("o:1"))
    await bot.edit_message_reply_markup(chat_id=CHAT, message_id=message.message_id)  # buttons removed: a change
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_reply_markup(chat_id=CHAT, message_id=message.message_id)
    await bot.edit_message_text("<b>Order</b> accepted", chat_id=CHAT, message_id=message.message_id)
    edited = world.message(CHAT, message.message_id)
    assert edited is not None and edited.text == "Order accepted" and edited.edits == 2 and not edited.buttons


async def test_edit_or_delete_of_a_missing_message_is_refused(bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=CHAT, message_id=999)
    message = await bot.send_message(CHAT, "x")
    assert await bot.delete_message(CHAT, message.message_id)
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(CHAT, message.message_id)


async def test_reply_to_a_missing_message_is_refused(bot: Bot, world: FakeTelegram) -> None:
    first = await bot.send_message(CHAT, "first")
    reply = await bot.send_message(CHAT, "second", reply_to_message_id=first.message_id)
    assert reply.reply_to_message is not None and reply.reply_to_message.message_id == first.message_id
    with pytest.raises(TelegramBadRequest, match="replied not found"):
        await bot.send_message(CHAT, "third", reply_to_message_id=999)


async def test_every_call_is_recorded(bot: Bot, world: FakeTelegram) -> None:
    await bot.send_message(CHAT, "hi")
    with pytest.raises(TelegramBadRequest):
        await bot.send_message(CHAT, "<x>")
    await bot.set_my_commands([])
    assert [(c.method, c.ok) for c in world.calls] == [
        ("sendMessage", True), ("sendMessage", False), ("setMyCommands", True)]
    assert world.calls[0].params["chat_id"] == CHAT and world.calls[0].params["parse_mode"] == "HTML"
    assert "can't parse entities" in (world.calls[1].error or "")


async def test_a_person_cannot_press_a_button_that_is_not_there(bot: Bot, world: FakeTelegram) -> None:
    user = FakeUser(world, CHAT, "Mei")
    await bot.send_message(CHAT, "Choose", reply_markup=markup("x:1"))
    assert user.find_button("press")[1]["callback_data"] == "x:1"  # by label, case-insensitive
    assert user.find_button(1)[1]["callback_data"] == "x:1"  # by number
    with pytest.raises(AssertionError, match="no button 'Nope'"):
        user.find_button("Nope")
    with pytest.raises(AssertionError, match="no button number 2"):
        user.find_button(2)
