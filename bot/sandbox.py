"""``caredesk shell``: the real bot with Telegram replaced by a local fake.

Same dispatcher, routers, middlewares, storage and database as ``run``; the
person at the keyboard plays customers, staff and a manager. Bot messages are
printed as a reader sees them, buttons numbered ``[1] Label``. Lines starting
with ``:`` are sandbox commands (``:help`` lists them).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TextIO

import phonenumbers
import phonenumbers.timezone

from bot.app import App, create_app
from bot.catalog import load_sample_catalog_if_empty
from bot.clock import ManualClock, SystemClock
from bot.config import Settings
from bot.fake_telegram import FakeTelegram, FakeUser, SentMessage
from bot.private_files import write_private
from bot.telegram_html import to_plain
from jobs import leases
from jobs.delivery import OutboxWorker, worker_for
from storage.repositories import Repos

SANDBOX_STAFF_CHAT_ID = -1001000000001
SANDBOX_STAFF_ID = 200001
SANDBOX_MANAGER_ID = 300001
SANDBOX_INSTANCE_ID = "sandbox"
OTHER_CHATS_SHOWN = 3  # per line, messages shown to chats no persona speaks in (demo customers)
CUSTOMER_BASE_ID = 100000

HELP = """Sandbox commands:
  :as customer N           be customer N (1, 2, ...) in their private chat
  :as staff [private]      be the staff member, in the staff group (or private chat)
  :as manager [private]    be the manager, in the staff group (or private chat)
  :lang en|zh              set the current persona's Telegram language
  :press TEXT | :press N   press a button of the latest message with buttons
  :press N on -K           ... of an older message: -1 the latest message with buttons, -2 the one before
  :press N twice           tap it twice (also :press N on -K twice): try a double press
  :contact [PHONE]         share the persona's phone number
  :sticker | :photo [CAPTION] | :voice    send a sticker, a photo, a voice note
  :reply TEXT              as staff, reply in the staff chat to the latest ticket card or relayed message
  :advance DURATION        move the clock (e.g. 3d, 2h, 30m, 1d12h) and run the jobs
  :time                    show the sandbox clock
  :restart                 rebuild the bot from the database
  :quit                    leave
Anything else is sent as a message from the current persona."""

# Extra work on each start (the tests' own middlewares, say), after the sample catalog is loaded.
StartHook = Callable[[App], Awaitable[None]]

_TWICE = re.compile(r"\s+twice\s*$", re.I)
_PRESS_ON = re.compile(r"(?:(.*?)\s+)?on\s+-(\d+)", re.I)
_DURATION = re.compile(r"(\d+)\s*([wdhms])")
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def parse_duration(text: str) -> timedelta:
    text = text.strip().lower()
    parts = _DURATION.findall(text)
    if not parts or _DURATION.sub("", text).strip():
        raise ValueError(f"not a duration: {text!r} (try 3d, 2h, 30m or 1d12h)")
    delta = timedelta()
    for amount, unit in parts:
        delta += timedelta(**{_UNITS[unit]: int(amount)})
    return delta


def region_time_zone(region: str) -> str | None:
    """The time zone of a phone region's country when it has only one (CN → Asia/Shanghai), else None."""
    country_code = phonenumbers.country_code_for_region(region)
    if not country_code:
        return None
    # A number with no national part stands for the whole country: its zones are the country's.
    zones = phonenumbers.timezone.time_zones_for_geographical_number(
        phonenumbers.PhoneNumber(country_code=country_code, national_number=0))
    return zones[0] if len(zones) == 1 and zones[0] != phonenumbers.timezone.UNKNOWN_TIMEZONE else None


def sandbox_settings(settings: Settings) -> Settings:
    """The sandbox's personas are staff and manager, whatever the configuration says.

    Without ``DEFAULT_TIMEZONE`` the sandbox keeps the time of ``DEFAULT_REGION``'s country (when it
    has one zone), so that quiet hours, birthdays and reports fall where a shop there would see them.
    """
    update: dict[str, object] = {
        "staff_chat_id": settings.staff_chat_id or SANDBOX_STAFF_CHAT_ID,
        "staff_ids": settings.staff_ids | {SANDBOX_STAFF_ID},
        "manager_ids": settings.manager_ids | {SANDBOX_MANAGER_ID},
        # One name for every sandbox run: the leases (scheduler, SQLite delivery) that an earlier run took
        # on its travelled clock, days ahead, belong to the next run too instead of locking it out.
        "instance_id": settings.instance_id or SANDBOX_INSTANCE_ID,
    }
    if "default_timezone" not in settings.model_fields_set:
        zone = region_time_zone(settings.default_region)
        if zone:
            update["default_timezone"] = zone
    return settings.model_copy(update=update)


def time_zone_note(configured: Settings, used: Settings) -> str:
    """Where the sandbox's time zone comes from, in one line."""
    if "default_timezone" in configured.model_fields_set:
        return f"times are in {used.default_timezone} (DEFAULT_TIMEZONE)"
    if used.default_timezone != configured.default_timezone:
        return (f"times are in {used.default_timezone}, the zone of DEFAULT_REGION={configured.default_region} "
                f"(set DEFAULT_TIMEZONE to choose another)")
    return (f"times are in {used.default_timezone}: DEFAULT_TIMEZONE is not set and DEFAULT_REGION="
            f"{configured.default_region} has several zones (set DEFAULT_TIMEZONE, e.g. America/New_York)")


class FrozenTimer:
    """Pacing for messages sent right after a line: waiting moves this timer only, never the sandbox clock."""

    def __init__(self) -> None:
        self.elapsed = 0.0

    def monotonic(self) -> float:
        return self.elapsed

    async def sleep(self, seconds: float) -> None:
        self.elapsed += max(0.0, seconds)
        await asyncio.sleep(0)


class SandboxError(Exception):
    """A sandbox command that cannot be done (no such button, bad duration...)."""


class Sandbox:
    def __init__(self, settings: Settings, out: TextIO = sys.stdout, styled: bool = False,
                 start_hooks: Sequence[StartHook] = ()) -> None:
        self.configured = settings
        self.start_hooks = tuple(start_hooks)
        self.settings = sandbox_settings(settings)
        self.out = out
        self.styled = styled
        self.clock = ManualClock(SystemClock().now().replace(second=0, microsecond=0))
        self.world = FakeTelegram(self.clock)
        self.world.group(self.settings.staff_chat_id or SANDBOX_STAFF_CHAT_ID, "Staff")
        self.world.on_bot_message = self._print_message
        self.world.on_callback_answer = self._print_callback_answer
        self.app: App | None = None
        self._languages: dict[int, str] = {}  # Telegram language per person (user id), kept across :as
        self.persona: FakeUser = self._customer(1)
        self.persona_name = "customer 1"
        self.failures = 0
        self.advancing = False  # during :advance, messages show when they arrived
        self._printed: dict[tuple[int, int], tuple[str | None, tuple[str, ...]]] = {}  # (text, button labels)
        self._worker: OutboxWorker | None = None  # sends what falls due right after a line
        self._others_shown = self._others_hidden = 0  # messages to chats of no persona, per line
        self.files_dir = Path(self.settings.sandbox_files_dir)
        self.commands: dict[str, Callable[[str], Awaitable[None]]] = {
            "as": self._cmd_as, "lang": self._cmd_lang, "press": self._cmd_press, "contact": self._cmd_contact,
            "sticker": self._cmd_sticker, "photo": self._cmd_photo, "voice": self._cmd_voice,
            "advance": self._cmd_advance, "time": self._cmd_time, "restart": self._cmd_restart,
            "help": self._cmd_help, "reply": self._cmd_reply,
        }

    # ----- personas -----------------------------------------------------------
    def _customer(self, n: int) -> FakeUser:
        user_id = CUSTOMER_BASE_ID + n
        return FakeUser(self.world, user_id, f"Customer {n}", language_code=self._languages.get(user_id, "en"))

    def _staff_like(self, user_id: int, name: str, private: bool) -> FakeUser:
        chat_id = user_id if private else (self.settings.staff_chat_id or SANDBOX_STAFF_CHAT_ID)
        return FakeUser(self.world, user_id, name, language_code=self._languages.get(user_id, "en"), chat_id=chat_id)

    # ----- output -------------------------------------------------------------
    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def _chat_label(self, chat_id: int) -> str:
        if chat_id == self.settings.staff_chat_id:
            return "[staff chat]"
        if chat_id == self.persona.chat_id:
            return "bot"
        if CUSTOMER_BASE_ID < chat_id < CUSTOMER_BASE_ID + 100_000:
            return f"[to customer {chat_id - CUSTOMER_BASE_ID}]"
        if chat_id == SANDBOX_STAFF_ID:
            return "[to staff, private]"
        if chat_id == SANDBOX_MANAGER_ID:
            return "[to manager, private]"
        return f"[to chat {chat_id}]"

    def _print_message(self, message: SentMessage, edited: bool) -> None:
        key = (message.chat_id, message.message_id)
        shown = (message.html, tuple(message.labels))
        if edited and self._printed.get(key) == shown:
            return
        if edited and self._printed.get(key, (None,))[0] == message.html and not message.buttons:
            return  # only the buttons were taken away: nothing new to read
        self._printed[key] = shown
        label = self._chat_label(message.chat_id)
        if label.startswith("[to chat "):  # demo customers: a campaign to hundreds would bury the rest
            if self._others_shown >= OTHER_CHATS_SHOWN:
                self._others_hidden += 1
                return
            self._others_shown += 1
        head = f"{label} (edited #{message.message_id})" if edited else label
        if self.advancing:
            head = f"[{self.clock.now().astimezone(self.settings.tz):%a %d %b %H:%M}] {head}"
        body = to_plain(message.html, styled=self.styled) if message.html else ""
        if message.kind in ("document", "photo") and message.file is not None:
            name = message.file_name or f"{message.kind}.bin"
            path = write_private(self.files_dir / f"{message.chat_id}-{message.message_id}-{name}", message.file)
            body = (body + "\n" if body else "") + f"📎 {message.kind} saved to {path}"
        lines = body.splitlines() or [""]
        self.say(f"{head}: {lines[0]}")
        for line in lines[1:]:
            self.say(f"    {line}")
        rows = (message.reply_markup or {}).get("inline_keyboard") or (message.reply_markup or {}).get("keyboard")
        if rows:
            number = 0
            for row in rows:
                cells = []
                for button in row:
                    number += 1
                    cells.append(f"[{number}] {button['text']}")
                self.say("    " + "  ".join(cells))

    def _print_callback_answer(self, text: str, show_alert: bool) -> None:
        """A button's answer: a toast over the chat, or an alert with OK."""
        if show_alert:
            self.say(f"{self._chat_label(self.persona.chat_id)} (alert): {text}  [OK]")
        else:
            self.say(f"{self._chat_label(self.persona.chat_id)} (toast): {text}")

    # ----- lifecycle ------------------------------------------------------------
    async def start(self) -> None:
        self.app = create_app(self.settings, clock=self.clock, session=self.world.session())
        self.world.attach(self.app.dispatcher, self.app.bot)
        self._worker = OutboxWorker(self.app.jobs, timer=FrozenTimer())
        # A fresh database gets the sample shop's products.
        await load_sample_catalog_if_empty(self.app.db, self.settings.currency)
        for hook in self.start_hooks:
            await hook(self.app)

    async def close(self) -> None:
        if self.app is not None:
            # Give the leases up, so that `caredesk run` on this database does not wait for them to expire.
            for worker in (self._worker, worker_for(self.app.jobs)):
                if worker is not None:
                    await worker.stop()
            with contextlib.suppress(Exception):
                await leases.release(self.app.jobs, leases.SCHEDULER)
            await self.app.close()
            self.app = None
            self._worker = None

    async def deliver_due(self) -> None:
        """Send the outbox rows due now, as a live bot does within a second; the clock stays where it is."""
        if self._worker is not None:
            await self._worker.drain_if_due()

    async def handle_line(self, line: str) -> bool:
        """Do one line; False when the sandbox should end."""
        line = line.strip()
        if not line or line.startswith("#"):
            return True
        try:
            if line.startswith(":"):
                name, _, rest = line[1:].partition(" ")
                if name in ("quit", "exit", "q"):
                    return False
                command = self.commands.get(name)
                if command is None:
                    raise SandboxError(f"unknown sandbox command :{name} (:help lists them)")
                await command(rest.strip())
            else:
                await self.persona.send(line)
            await self.deliver_due()
        except (SandboxError, AssertionError, ValueError) as exc:
            self.failures += 1
            self.say(f"! {exc}")
        except Exception as exc:  # noqa: BLE001 - a handler raised: the bot would have logged it; the sandbox goes on
            self.failures += 1
            self.say(f"! the bot failed: {type(exc).__name__}: {exc}")
        if self._others_hidden:
            self.say(f"-- and {self._others_hidden} more message(s) to other customers' chats, not shown")
        self._others_shown = self._others_hidden = 0
        return True

    # ----- commands ---------------------------------------------------------------
    async def _cmd_help(self, _: str) -> None:
        self.say(HELP)

    async def _cmd_as(self, rest: str) -> None:
        parts = rest.split()
        if not parts:
            raise SandboxError("usage: :as customer N | :as staff [private] | :as manager [private]")
        who = parts[0].lower()
        if who == "customer":
            n = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 1
            self.persona, self.persona_name = self._customer(n), f"customer {n}"
        elif who in ("staff", "manager"):
            private = len(parts) > 1 and parts[1].lower() == "private"
            user_id, name = ((SANDBOX_STAFF_ID, "Sam (staff)") if who == "staff"
                             else (SANDBOX_MANAGER_ID, "Max (manager)"))
            self.persona = self._staff_like(user_id, name, private)
            self.persona_name = f"{who}{' (private chat)' if private else ' (staff chat)'}"
        else:
            raise SandboxError(f"unknown persona {who!r}")
        self.say(f"-- you are now {self.persona_name}")

    async def _cmd_lang(self, rest: str) -> None:
        lang = rest.strip().lower()
        if lang not in ("en", "zh"):
            raise SandboxError("usage: :lang en|zh")
        self.persona.language_code = self._languages[self.persona.id] = "zh-hans" if lang == "zh" else "en"
        if self.persona.chat.type == "private":
            self.world.users[self.persona.chat_id] = self.persona.user_dict()
        self.say(f"-- Telegram language of {self.persona_name}: {lang}")

    async def _cmd_press(self, rest: str) -> None:
        """``:press TEXT`` or ``:press N``; ``on -K``: of the K-th newest message with buttons; ``twice``:
        the same button tapped twice (the second tap as if it came before the bot's answer arrived)."""
        persona = self.persona
        twice = _TWICE.search(rest)
        if twice:
            rest = rest[:twice.start()]
        match = _PRESS_ON.fullmatch(rest)
        label, nth = ((match.group(1) or "").strip(), int(match.group(2))) if match else (rest.strip(), 1)
        if not label or nth < 1:
            raise SandboxError("usage: :press TEXT | :press N, optionally followed by on -K (-1 is the latest "
                               "message with buttons, -2 the one before) and twice")
        with_buttons = [m for m in reversed(persona.inbox()) if m.buttons]
        if not with_buttons:
            raise SandboxError(f"no message with buttons in this chat ({self.persona_name})")
        if len(with_buttons) < nth:
            raise SandboxError(f"only {len(with_buttons)} message(s) with buttons in this chat, so no -{nth}")
        message, button = persona.find_button(int(label) if label.isdigit() else label, with_buttons[nth - 1])
        for _ in range(2 if twice else 1):
            if "callback_data" in button:
                await persona.press_data(button["callback_data"], message)
            elif button.get("request_contact"):
                await persona.send_contact()
            else:
                await persona.send(button["text"])

    async def _cmd_contact(self, rest: str) -> None:
        await self.persona.send_contact(rest or None)

    async def _cmd_sticker(self, _: str) -> None:
        await self.persona.send_sticker()

    async def _cmd_photo(self, rest: str) -> None:
        await self.persona.send_photo(rest or None)

    async def _cmd_voice(self, _: str) -> None:
        await self.persona.send_voice()

    async def _cmd_advance(self, rest: str) -> None:
        from jobs.runner import advance

        delta = parse_duration(rest)
        assert self.app is not None
        self.advancing = True
        try:
            await advance(self.app.jobs, delta)
        finally:
            self.advancing = False
        await self._cmd_time("")

    async def _cmd_time(self, _: str) -> None:
        local = self.clock.now().astimezone(self.settings.tz)
        self.say(f"-- sandbox time: {local:%Y-%m-%d %H:%M %A} ({self.settings.default_timezone})")

    async def _cmd_reply(self, rest: str) -> None:
        """Typing a Telegram reply is not possible here: reply to the newest ticket message in the staff chat."""
        if not rest:
            raise SandboxError("usage: :reply TEXT")
        assert self.app is not None
        target = await self._latest_reply_target(self.app)
        if target is None:
            raise SandboxError("no ticket card or customer message in the staff chat yet")
        staff_chat = self.settings.staff_chat_id or SANDBOX_STAFF_CHAT_ID
        in_staff_chat = self.persona.chat_id == staff_chat and self.persona.id in self.settings.all_staff_ids
        staff = self.persona if in_staff_chat else self._staff_like(SANDBOX_STAFF_ID, "Sam (staff)", False)
        await staff.send(rest, reply_to=target)

    @staticmethod
    async def _latest_reply_target(app: App) -> int | None:
        """The newest ticket card or relayed customer message in the staff chat."""
        if app.settings.staff_chat_id is None:
            return None
        async with app.db.session() as session:
            return await Repos(session).tickets.latest_staff_target(app.settings.staff_chat_id)

    async def _cmd_restart(self, _: str) -> None:
        await self.close()
        await self.start()
        self.say("-- the bot was rebuilt from the database")


async def run_sandbox(settings: Settings, stdin: TextIO = sys.stdin, out: TextIO = sys.stdout,
                      start_hooks: Sequence[StartHook] = ()) -> int:
    interactive = stdin.isatty()
    sandbox = Sandbox(settings, out=out, styled=interactive and out.isatty(), start_hooks=start_hooks)
    await sandbox.start()
    sandbox.say("CareDesk sandbox — no Telegram, no network. You are customer 1; type /start. "
                ":help lists sandbox commands.")
    now = sandbox.clock.now().astimezone(sandbox.settings.tz)
    sandbox.say(f"-- the clock starts at {now:%Y-%m-%d %H:%M %A}; {time_zone_note(settings, sandbox.settings)}")
    try:
        while True:
            if interactive:
                try:
                    line = await asyncio.to_thread(input, f"{sandbox.persona_name}> ")
                except EOFError:
                    break
            else:
                raw = stdin.readline()
                if not raw:
                    break
                line = raw.rstrip("\n")
                if line.strip() and not line.lstrip().startswith("#"):
                    sandbox.say(f"{sandbox.persona_name}> {line}")
            if not await sandbox.handle_line(line):
                break
    finally:
        await sandbox.close()
    if not interactive and sandbox.failures:
        sandbox.say(f"-- {sandbox.failures} line(s) failed")
        return 1
    return 0
