"""A local stand-in for Telegram, shared by the test suite and ``caredesk shell``.

:class:`FakeTelegram` keeps chats and messages like the Bot API would, and its
session (:class:`FakeSession`) answers the bot's API calls through aiogram's
own ``check_response`` — so a rejected call raises the same exception a real
one would. It rejects what Telegram rejects: text over 4096 characters,
captions over 1024, callback data over 64 bytes, HTML that Telegram's parser
refuses, a 403 for a chat that blocked the bot, a scripted 429 with
``retry_after``, a scripted network failure.

What it imitates: https://core.telegram.org/bots/api#sendmessage (text),
https://core.telegram.org/bots/api#sendphoto (caption),
https://core.telegram.org/bots/api#inlinekeyboardbutton (callback_data),
https://core.telegram.org/bots/api#html-style, https://core.telegram.org/bots/api#making-requests
(error answers) and https://core.telegram.org/bots/api#responseparameters (``retry_after``).

:class:`FakeUser` is a person: it sends text, contacts, stickers, photos and
presses buttons by label, by feeding updates through the real ``Dispatcher``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiogram.client.default import Default
from aiogram.client.session.base import BaseSession
from aiogram.exceptions import TelegramNetworkError
from aiogram.methods import TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import BufferedInputFile, FSInputFile, InputFile, Update, URLInputFile

from bot.rules.text_units import CAPTION_LIMIT, TEXT_LIMIT, utf16_len
from bot.telegram_html import HTMLEntityError, check

if TYPE_CHECKING:
    from aiogram import Bot, Dispatcher

    from bot.clock import Clock

CALLBACK_DATA_LIMIT = 64  # bytes: https://core.telegram.org/bots/api#inlinekeyboardbutton
BOT_ID = 7_000_000_001
BOT_USERNAME = "caredesk_bot"

_MESSAGE_METHODS = {
    "sendMessage", "sendPhoto", "sendDocument", "sendSticker", "sendVoice", "sendVideo",
    "sendAudio", "sendAnimation", "sendContact", "sendLocation",
}
_TRUE_METHODS = {
    "answerCallbackQuery", "deleteMessage", "setMyCommands", "deleteMyCommands", "setWebhook",
    "deleteWebhook", "sendChatAction", "setChatMenuButton", "closeForumTopic", "reopenForumTopic",
    "editForumTopic", "pinChatMessage", "unpinChatMessage", "setMessageReaction",
}


class ScriptedError(Exception):
    """Raised inside the fake to produce an error response."""

    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after


@dataclass
class Fault:
    """A scripted failure for the next matching call(s)."""

    method: str | None
    chat_id: int | None
    # "retry_after" | "blocked" | "cant_initiate" | "chat_not_found" | "network" | "timeout_after_send" | "server"
    # | "redirect_loop"
    kind: str
    times: int = 1
    retry_after: int = 5

    def matches(self, method: str, chat_id: int | None) -> bool:
        return (self.method in (None, method)) and (self.chat_id in (None, chat_id))


@dataclass
class Call:
    """One API call the bot made, and what came of it."""

    method: str
    params: dict[str, Any]
    ok: bool = True
    error: str | None = None
    result: Any = None


@dataclass
class SentMessage:
    chat_id: int
    message_id: int
    from_bot: bool
    html: str | None  # as the bot sent it (text or caption)
    text: str | None  # as the reader sees it
    reply_markup: dict[str, Any] | None
    kind: str = "text"  # text | photo | document | sticker | contact | voice
    file: bytes | None = None
    file_name: str | None = None
    file_id: str | None = None
    thread_id: int | None = None
    reply_to: int | None = None
    sender_id: int | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    edits: int = 0
    deleted: bool = False

    @property
    def inline_buttons(self) -> list[dict[str, Any]]:
        if not self.reply_markup or "inline_keyboard" not in self.reply_markup:
            return []
        return [button for row in self.reply_markup["inline_keyboard"] for button in row]

    @property
    def reply_buttons(self) -> list[dict[str, Any]]:
        if not self.reply_markup or "keyboard" not in self.reply_markup:
            return []
        return [button for row in self.reply_markup["keyboard"] for button in row]

    @property
    def buttons(self) -> list[dict[str, Any]]:
        return self.inline_buttons or self.reply_buttons

    @property
    def labels(self) -> list[str]:
        return [b["text"] for b in self.buttons]


@dataclass
class Chat:
    id: int
    type: str  # private | group | supergroup
    title: str | None = None
    is_forum: bool = False
    messages: list[SentMessage] = field(default_factory=list)
    next_message_id: int = 1
    blocked: bool = False  # the user blocked the bot (private chats)

    def as_dict(self, user: dict[str, Any] | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "type": self.type}
        if self.type == "private" and user:
            data["first_name"] = user.get("first_name", "")
        else:
            data["title"] = self.title or "Staff"
            if self.is_forum:
                data["is_forum"] = True
        return data


def _resolve_defaults(value: Any, bot: Bot) -> Any:
    if isinstance(value, Default):
        return bot.default[value.name]
    if isinstance(value, dict):
        return {k: _resolve_defaults(v, bot) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_resolve_defaults(v, bot) for v in value]
    return value


class FakeTelegram:
    """The Telegram side: chats, messages, users, scripted faults."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock
        self.chats: dict[int, Chat] = {}
        self.users: dict[int, dict[str, Any]] = {}
        self.calls: list[Call] = []
        self.faults: list[Fault] = []
        self.alerts: list[tuple[int, str, bool]] = []  # (user_id, text, show_alert)
        self._update_ids = itertools.count(1)
        self._file_ids = itertools.count(1)
        self._callback_ids = itertools.count(1)
        self.files: dict[str, tuple[str, bytes]] = {}
        self.dispatcher: Dispatcher | None = None
        self.bot: Bot | None = None
        self.on_bot_message: Callable[[SentMessage, bool], None] | None = None
        # A button's answer with a text (text, show_alert): a toast, or an alert with OK.
        # https://core.telegram.org/bots/api#answercallbackquery
        self.on_callback_answer: Callable[[str, bool], None] | None = None

    # ----- wiring -------------------------------------------------------
    def session(self) -> FakeSession:
        return FakeSession(self)

    def attach(self, dispatcher: Dispatcher, bot: Bot) -> None:
        self.dispatcher = dispatcher
        self.bot = bot

    def now(self) -> datetime:
        return self.clock.now() if self.clock else datetime.now(UTC)

    # ----- chats and users ---------------------------------------------
    def chat(self, chat_id: int, type_: str = "private", title: str | None = None, is_forum: bool = False) -> Chat:
        if chat_id not in self.chats:
            self.chats[chat_id] = Chat(id=chat_id, type=type_, title=title, is_forum=is_forum)
        return self.chats[chat_id]

    def group(self, chat_id: int, title: str = "Staff", is_forum: bool = False) -> Chat:
        return self.chat(chat_id, "supergroup", title, is_forum)

    def block(self, user_id: int, blocked: bool = True) -> None:
        """The user blocks (or unblocks) the bot: sends to them get 403."""
        self.chat(user_id).blocked = blocked

    def fail(self, kind: str, method: str | None = "sendMessage", chat_id: int | None = None,
             times: int = 1, retry_after: int = 5) -> None:
        """Script a failure for the next matching call(s)."""
        self.faults.append(Fault(method=method, chat_id=chat_id, kind=kind, times=times, retry_after=retry_after))

    # ----- what the bot sent -------------------------------------------
    def sent(self, chat_id: int | None = None) -> list[SentMessage]:
        """Messages the bot sent (optionally to one chat), oldest first."""
        chats = [self.chats[chat_id]] if chat_id is not None and chat_id in self.chats else (
            [] if chat_id is not None else list(self.chats.values())
        )
        out = [m for c in chats for m in c.messages if m.from_bot and not m.deleted]
        return sorted(out, key=lambda m: (m.raw.get("date", 0), m.chat_id, m.message_id)) if chat_id is None else out

    def last(self, chat_id: int) -> SentMessage:
        messages = self.sent(chat_id)
        if not messages:
            raise AssertionError(f"the bot sent nothing to chat {chat_id}")
        return messages[-1]

    def message(self, chat_id: int, message_id: int) -> SentMessage | None:
        chat = self.chats.get(chat_id)
        if chat is None:
            return None
        for m in chat.messages:
            if m.message_id == message_id:
                return m
        return None

    def calls_of(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    # ----- the API ------------------------------------------------------
    def handle(self, method: str, params: dict[str, Any]) -> Any:
        # The chat a call is about (setMyCommands names it in its scope), for scripted faults.
        chat_id = params.get("chat_id", (params.get("scope") or {}).get("chat_id"))
        self._check_fault(method, chat_id, before_send=True)
        if method in _MESSAGE_METHODS:
            result = self._send(method, params)
        elif method in ("editMessageText", "editMessageCaption", "editMessageReplyMarkup"):
            result = self._edit(method, params)
        elif method in ("copyMessage", "forwardMessage"):
            result = self._copy(method, params)
        elif method == "answerCallbackQuery":
            if params.get("text"):
                self.alerts.append((0, params["text"], bool(params.get("show_alert"))))
                if self.on_callback_answer:
                    self.on_callback_answer(params["text"], bool(params.get("show_alert")))
            result = True
        elif method == "deleteMessage":
            msg = self.message(params["chat_id"], params["message_id"])
            if msg is None or msg.deleted:
                raise ScriptedError(400, "Bad Request: message to delete not found")
            msg.deleted = True
            result = True
        elif method == "getMe":
            result = {"id": BOT_ID, "is_bot": True, "first_name": "CareDesk", "username": BOT_USERNAME}
        elif method == "createForumTopic":
            chat = self.chat(params["chat_id"])
            topic_id = chat.next_message_id
            chat.next_message_id += 1
            result = {"message_thread_id": topic_id, "name": params["name"], "icon_color": 7322096}
        elif method in _TRUE_METHODS:
            result = True
        else:
            raise NotImplementedError(f"the fake Telegram does not know {method}")
        self._check_fault(method, chat_id, before_send=False)
        return result

    def _check_fault(self, method: str, chat_id: Any, before_send: bool) -> None:
        chat = self.chats.get(chat_id) if isinstance(chat_id, int) else None
        if before_send and chat is not None and chat.blocked and method != "answerCallbackQuery":
            raise ScriptedError(403, "Forbidden: bot was blocked by the user")
        for fault in self.faults:
            if fault.times <= 0 or not fault.matches(method, chat_id):
                continue
            if (fault.kind == "timeout_after_send") == before_send:
                continue
            fault.times -= 1
            if fault.kind == "retry_after":
                raise ScriptedError(429, f"Too Many Requests: retry after {fault.retry_after}", fault.retry_after)
            if fault.kind == "blocked":
                raise ScriptedError(403, "Forbidden: bot was blocked by the user")
            # https://core.telegram.org/bots#how-are-bots-different-from-users
            if fault.kind == "cant_initiate":  # the user never opened a private chat with the bot
                raise ScriptedError(403, "Forbidden: bot can't initiate conversation with a user")
            if fault.kind == "deactivated":
                raise ScriptedError(403, "Forbidden: user is deactivated")
            if fault.kind == "chat_not_found":
                raise ScriptedError(400, "Bad Request: chat not found")
            if fault.kind == "server":
                raise ScriptedError(502, "Bad Gateway")
            if fault.kind == "network":  # the connection failed: the request never went out
                raise TelegramNetworkError(method=None,  # type: ignore[arg-type]
                                           message="ClientConnectorError: Cannot connect to host api.telegram.org:443")
            if fault.kind == "redirect_loop":  # aiohttp names the URL, and with it the bot token
                raise TelegramNetworkError(method=None, message="TooManyRedirects: 302, message='Too many redirects', "  # type: ignore[arg-type]
                                           "url='https://api.telegram.org/bot{token}/sendMessage'")
            if fault.kind == "timeout_after_send":  # sent, but no answer came back (as aiogram words a timeout)
                raise TelegramNetworkError(method=None, message="Request timeout error")  # type: ignore[arg-type]
        self.faults = [f for f in self.faults if f.times > 0]

    @staticmethod
    def _check_markup(markup: dict[str, Any] | None) -> None:
        if not markup:
            return
        for row in markup.get("inline_keyboard", []):
            for button in row:
                if not button.get("text"):
                    raise ScriptedError(400, "Bad Request: text buttons are unallowed in the inline keyboard")
                data = button.get("callback_data")
                if data is not None:
                    size = len(data.encode("utf-8"))
                    if not 1 <= size <= CALLBACK_DATA_LIMIT:
                        raise ScriptedError(400, "Bad Request: BUTTON_DATA_INVALID")
        for row in markup.get("keyboard", []):
            for button in row:
                if not button.get("text"):
                    raise ScriptedError(400, "Bad Request: keyboard button text is empty")

    @staticmethod
    def _visible(text: str | None, parse_mode: str | None, limit: int, empty_ok: bool) -> str:
        text = text or ""
        if parse_mode == "HTML":
            try:
                visible = check(text)
            except HTMLEntityError as exc:
                raise ScriptedError(400, f"Bad Request: can't parse entities: {exc}") from None
        else:
            visible = text
        # https://core.telegram.org/api/entities#entity-length
        length = utf16_len(visible)  # Telegram counts UTF-16 code units (an emoji is 2)
        if not visible.strip() and not empty_ok:
            raise ScriptedError(400, "Bad Request: message text is empty")
        if length > limit:
            what = "message is too long" if limit == TEXT_LIMIT else "message caption is too long"
            raise ScriptedError(400, f"Bad Request: {what}")
        return visible

    def _store_file(self, value: Any, default_name: str) -> tuple[str, str, bytes]:
        # A file_id sent again reuses the file: https://core.telegram.org/bots/api#sending-files
        if isinstance(value, str):  # a file_id already known to Telegram
            name, data = self.files.get(value, (default_name, b""))
            return value, name, data
        if isinstance(value, BufferedInputFile):
            data, name = value.data, value.filename or default_name
        elif isinstance(value, FSInputFile):
            with open(value.path, "rb") as fh:
                data = fh.read()
            name = value.filename or default_name
        elif isinstance(value, (URLInputFile, InputFile)):
            data, name = b"", getattr(value, "filename", None) or default_name
        else:
            raise ScriptedError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        file_id = f"file-{next(self._file_ids)}"
        self.files[file_id] = (name, data)
        return file_id, name, data

    def _base_message(self, chat: Chat, params: dict[str, Any]) -> dict[str, Any]:
        message_id = chat.next_message_id
        chat.next_message_id += 1
        raw: dict[str, Any] = {
            "message_id": message_id,
            "date": int(self.now().timestamp()),
            "chat": chat.as_dict(self.users.get(chat.id)),
            "from": {"id": BOT_ID, "is_bot": True, "first_name": "CareDesk", "username": BOT_USERNAME},
        }
        if params.get("message_thread_id"):
            raw["message_thread_id"] = params["message_thread_id"]
            raw["is_topic_message"] = True
        reply_to = params.get("reply_to_message_id") or (params.get("reply_parameters") or {}).get("message_id")
        if reply_to:
            target = self.message(chat.id, reply_to)
            if target is None and not (params.get("reply_parameters") or {}).get("allow_sending_without_reply"):
                raise ScriptedError(400, "Bad Request: message to be replied not found")
            if target is not None:
                raw["reply_to_message"] = target.raw
        return raw

    def _send(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = params["chat_id"]
        if not isinstance(chat_id, int):
            raise ScriptedError(400, "Bad Request: chat not found")
        chat = self.chat(chat_id, "private" if chat_id > 0 else "supergroup")
        markup = params.get("reply_markup")
        self._check_markup(markup)
        parse_mode = params.get("parse_mode")
        kind = {"sendMessage": "text", "sendPhoto": "photo", "sendDocument": "document"}.get(method, method[4:].lower())
        raw = self._base_message(chat, params)
        html: str | None
        file_id = name = None
        data = None
        if method == "sendMessage":
            html = params.get("text")
            visible = self._visible(html, parse_mode, TEXT_LIMIT, empty_ok=False)
            raw["text"] = visible
        else:
            html = params.get("caption")
            visible = self._visible(html, parse_mode, CAPTION_LIMIT, empty_ok=True) if html else None
            if visible:
                raw["caption"] = visible
            key = {"sendPhoto": "photo", "sendDocument": "document", "sendSticker": "sticker",
                   "sendVoice": "voice"}.get(method)
            if key:
                file_id, name, data = self._store_file(params.get(key), f"{key}.bin")
                if key == "photo":
                    raw["photo"] = [{"file_id": file_id, "file_unique_id": file_id, "width": 800, "height": 600}]
                elif key == "document":
                    raw["document"] = {"file_id": file_id, "file_unique_id": file_id, "file_name": name}
                elif key == "sticker":
                    raw["sticker"] = {"file_id": file_id, "file_unique_id": file_id, "type": "regular",
                                      "width": 512, "height": 512, "is_animated": False, "is_video": False}
                else:
                    raw["voice"] = {"file_id": file_id, "file_unique_id": file_id, "duration": 1}
        if markup and "inline_keyboard" in markup:
            raw["reply_markup"] = markup
        message = SentMessage(
            chat_id=chat.id, message_id=raw["message_id"], from_bot=True, html=html, text=visible,
            reply_markup=markup, kind=kind, file=data, file_name=name, file_id=file_id,
            thread_id=params.get("message_thread_id"), reply_to=(raw.get("reply_to_message") or {}).get("message_id"),
            sender_id=BOT_ID, raw=raw,
        )
        chat.messages.append(message)
        if self.on_bot_message:
            self.on_bot_message(message, False)
        return raw

    def _edit(self, method: str, params: dict[str, Any]) -> dict[str, Any] | bool:
        if params.get("inline_message_id"):
            return True
        message = self.message(params["chat_id"], params["message_id"])
        if message is None or message.deleted or not message.from_bot:
            raise ScriptedError(400, "Bad Request: message to edit not found")
        markup = params.get("reply_markup")
        self._check_markup(markup)
        new_html, new_text = message.html, message.text
        if method == "editMessageText":
            new_html = params.get("text")
            new_text = self._visible(new_html, params.get("parse_mode"), TEXT_LIMIT, empty_ok=False)
        elif method == "editMessageCaption":
            new_html = params.get("caption")
            new_text = self._visible(new_html, params.get("parse_mode"), CAPTION_LIMIT, empty_ok=True)
        if new_html == message.html and (markup or None) == (message.reply_markup or None):
            raise ScriptedError(
                400,
                "Bad Request: message is not modified: specified new message content and reply markup "
                "are exactly the same as a current content and reply markup of the message",
            )
        message.html, message.text, message.reply_markup = new_html, new_text, markup
        message.edits += 1
        if message.kind == "text":
            message.raw["text"] = new_text
        else:
            message.raw["caption"] = new_text
        message.raw["edit_date"] = int(self.now().timestamp())
        if markup:
            message.raw["reply_markup"] = markup
        else:
            message.raw.pop("reply_markup", None)
        if self.on_bot_message:
            self.on_bot_message(message, True)
        return message.raw

    def _copy(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        source = self.message(params["from_chat_id"], params["message_id"])
        if source is None:
            raise ScriptedError(400, "Bad Request: message to copy not found")
        send_params = dict(params)
        if source.kind == "text":
            send_params["text"] = source.raw.get("text", "")
            send_params["parse_mode"] = None
            raw = self._send("sendMessage", send_params)
        else:
            key = source.kind
            send_params[key] = source.file_id
            if "caption" not in params:
                send_params["caption"] = source.raw.get("caption")
                send_params["parse_mode"] = None
            raw = self._send("send" + key.capitalize(), send_params)
        return raw if method == "forwardMessage" else {"message_id": raw["message_id"]}

    # ----- updates from people -----------------------------------------
    def next_update_id(self) -> int:
        return next(self._update_ids)

    def next_callback_id(self) -> str:
        return str(next(self._callback_ids))

    def new_file_id(self) -> str:
        return f"user-file-{next(self._file_ids)}"


class FakeSession(BaseSession):
    """The bot's HTTP session, answered by :class:`FakeTelegram`."""

    def __init__(self, world: FakeTelegram) -> None:
        super().__init__()
        self.world = world

    async def close(self) -> None:
        return None

    async def make_request(self, bot: Bot, method: TelegramMethod[TelegramType],
                           timeout: int | None = None) -> TelegramType:
        name = method.__api_method__
        params = _resolve_defaults(method.model_dump(warnings=False), bot)
        call = Call(method=name, params=params)
        self.world.calls.append(call)
        try:
            result = self.world.handle(name, params)
        except ScriptedError as exc:
            call.ok, call.error = False, exc.description
            body: dict[str, Any] = {"ok": False, "error_code": exc.status, "description": exc.description}
            if exc.retry_after is not None:
                body["parameters"] = {"retry_after": exc.retry_after}
            response = self.check_response(bot, method, exc.status, json.dumps(body))
            raise AssertionError("check_response accepted an error") from exc  # pragma: no cover
        except TelegramNetworkError as exc:
            call.ok, call.error = False, exc.message
            raise TelegramNetworkError(method=method, message=exc.message.replace("{token}", bot.token)) from None
        call.result = result
        response = self.check_response(bot, method, 200, json.dumps({"ok": True, "result": result}))
        return response.result  # type: ignore[return-value]

    async def stream_content(self, url: str, headers: dict[str, Any] | None = None, timeout: int = 30,
                             chunk_size: int = 65536, raise_for_status: bool = True) -> AsyncGenerator[bytes, None]:
        name, data = self.world.files.get(url.rsplit("/", 1)[-1], ("", b""))
        yield data


class FakeUser:
    """A person talking to the bot: in their private chat, or in a group."""

    def __init__(self, world: FakeTelegram, user_id: int, first_name: str = "Test", *,
                 language_code: str | None = "en", username: str | None = None,
                 chat_id: int | None = None, last_name: str | None = None) -> None:
        self.world = world
        self.id = user_id
        self.first_name = first_name
        self.last_name = last_name
        self.language_code = language_code
        self.username = username
        self.chat_id = chat_id if chat_id is not None else user_id
        self.phone = f"+86138{user_id % 100_000_000:08d}"[:14]
        chat = world.chat(self.chat_id, "private" if self.chat_id > 0 else "supergroup")
        if chat.type == "private":
            world.users[self.chat_id] = self.user_dict()

    def in_chat(self, chat_id: int) -> FakeUser:
        """The same person, speaking in another chat (e.g. the staff group)."""
        return FakeUser(self.world, self.id, self.first_name, language_code=self.language_code,
                        username=self.username, chat_id=chat_id, last_name=self.last_name)

    def user_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.last_name:
            data["last_name"] = self.last_name
        if self.language_code:
            data["language_code"] = self.language_code
        if self.username:
            data["username"] = self.username
        return data

    @property
    def chat(self) -> Chat:
        return self.world.chats[self.chat_id]

    # ----- what this person sees ----------------------------------------
    def inbox(self) -> list[SentMessage]:
        return self.world.sent(self.chat_id)

    def last(self) -> SentMessage:
        return self.world.last(self.chat_id)

    def last_with_buttons(self) -> SentMessage:
        for message in reversed(self.inbox()):
            if message.buttons:
                return message
        raise AssertionError(f"no message with buttons in chat {self.chat_id}")

    # ----- sending ------------------------------------------------------
    def _message(self, **content: Any) -> dict[str, Any]:
        chat = self.chat
        message_id = chat.next_message_id
        chat.next_message_id += 1
        raw = {
            "message_id": message_id,
            "date": int(self.world.now().timestamp()),
            "chat": chat.as_dict(self.user_dict()),
            "from": self.user_dict(),
            **content,
        }
        return raw

    async def _feed_message(self, raw: dict[str, Any]) -> list[SentMessage]:
        kind = next((k for k in ("text", "photo", "document", "sticker", "contact", "voice") if k in raw), "text")
        stored = SentMessage(
            chat_id=self.chat_id, message_id=raw["message_id"], from_bot=False,
            html=None, text=raw.get("text") or raw.get("caption"), reply_markup=None, kind=kind,
            file_id=(raw.get("photo") or [{}])[-1].get("file_id") if kind == "photo" else None,
            thread_id=raw.get("message_thread_id"),
            reply_to=(raw.get("reply_to_message") or {}).get("message_id"), sender_id=self.id, raw=raw,
        )
        self.chat.messages.append(stored)
        return await self.feed({"message": raw})

    async def feed(self, payload: dict[str, Any]) -> list[SentMessage]:
        """Feed one update through the dispatcher; return what the bot sent since."""
        world = self.world
        if world.dispatcher is None or world.bot is None:
            raise RuntimeError("FakeTelegram.attach(dispatcher, bot) first")
        before = {cid: len(c.messages) for cid, c in world.chats.items()}
        update = Update.model_validate({"update_id": world.next_update_id(), **payload}, context={"bot": world.bot})
        await world.dispatcher.feed_update(world.bot, update)
        new: list[SentMessage] = []
        for cid, chat in world.chats.items():
            new.extend(m for m in chat.messages[before.get(cid, 0):] if m.from_bot)
        return new

    async def send(self, text: str, *, reply_to: int | None = None, thread_id: int | None = None) -> list[SentMessage]:
        content: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            command = text.split()[0]
            content["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        self._add_reply(content, reply_to, thread_id)
        return await self._feed_message(self._message(**content))

    def _add_reply(self, content: dict[str, Any], reply_to: int | None, thread_id: int | None) -> None:
        if reply_to is not None:
            target = self.world.message(self.chat_id, reply_to)
            if target is None:
                raise AssertionError(f"no message {reply_to} in chat {self.chat_id} to reply to")
            content["reply_to_message"] = target.raw
            if target.thread_id and thread_id is None:
                thread_id = target.thread_id
        if thread_id is not None:
            content["message_thread_id"] = thread_id
            content["is_topic_message"] = True

    async def send_contact(self, phone: str | None = None, *, own: bool = True) -> list[SentMessage]:
        contact = {
            "phone_number": (phone or self.phone).lstrip("+"),
            "first_name": self.first_name,
            "user_id": self.id if own else self.id + 1,
        }
        return await self._feed_message(self._message(contact=contact))

    async def send_sticker(self) -> list[SentMessage]:
        file_id = self.world.new_file_id()
        sticker = {"file_id": file_id, "file_unique_id": file_id, "type": "regular", "width": 512,
                   "height": 512, "is_animated": False, "is_video": False, "emoji": "🙂"}
        return await self._feed_message(self._message(sticker=sticker))

    async def send_photo(self, caption: str | None = None, *, reply_to: int | None = None) -> list[SentMessage]:
        file_id = self.world.new_file_id()
        self.world.files[file_id] = ("photo.jpg", b"\xff\xd8fake-jpeg")
        photo = {"file_id": file_id, "file_unique_id": file_id, "width": 800, "height": 600}
        content: dict[str, Any] = {"photo": [photo]}
        if caption:
            content["caption"] = caption
        self._add_reply(content, reply_to, None)
        return await self._feed_message(self._message(**content))

    async def send_voice(self) -> list[SentMessage]:
        file_id = self.world.new_file_id()
        voice = {"file_id": file_id, "file_unique_id": file_id, "duration": 3}
        return await self._feed_message(self._message(voice=voice))

    # ----- buttons --------------------------------------------------------
    def find_button(self, label: str | int, message: SentMessage | None = None) -> tuple[SentMessage, dict[str, Any]]:
        """The button whose label contains ``label`` (case-insensitive) or number ``label`` (1-based).

        Without ``message``: the latest message with buttons in this chat.
        """
        candidates = [message] if message else [m for m in reversed(self.inbox()) if m.buttons]
        if not candidates:
            raise AssertionError(f"no buttons in chat {self.chat_id}")
        target = candidates[0]
        buttons = target.buttons
        if isinstance(label, int):
            if not 1 <= label <= len(buttons):
                raise AssertionError(f"no button number {label}: {target.labels}")
            return target, buttons[label - 1]
        wanted = label.casefold()
        for button in buttons:
            if button["text"].casefold() == wanted:
                return target, button
        for button in buttons:
            if wanted in button["text"].casefold():
                return target, button
        raise AssertionError(f"no button {label!r} in {target.labels}")

    async def press(self, label: str | int, message: SentMessage | None = None) -> list[SentMessage]:
        target, button = self.find_button(label, message)
        if "callback_data" in button:
            return await self.press_data(button["callback_data"], target)
        if button.get("request_contact"):
            return await self.send_contact()
        return await self.send(button["text"])

    async def press_data(self, data: str, message: SentMessage | None = None) -> list[SentMessage]:
        """Press a button with this callback data (also forged or stale data)."""
        if message is None:
            message = next((m for m in reversed(self.inbox())), None)
            if message is None:
                raise AssertionError("no bot message to attach the press to")
        callback = {
            "id": self.world.next_callback_id(),
            "from": self.user_dict(),
            "chat_instance": str(self.chat_id),
            "data": data,
            "message": message.raw,
        }
        return await self.feed({"callback_query": callback})

    def alerts(self) -> list[str]:
        """Texts of callback answers shown so far (any user)."""
        return [text for _, text, _ in self.world.alerts]
