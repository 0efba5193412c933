"""Promises that only show in a real process (issue 10, item 9).

``caredesk run`` in webhook mode runs as a subprocess against a local Bot API
stand-in (tests/botapi_standin.py) that adds latency and faults; the test
posts updates to the bot's webhook with the secret, as Telegram does, and
reads the database the bot writes. Each test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select
from sqlalchemy import text as sql

from bot.fake_telegram import FakeUser, SentMessage
from storage.db import Database
from storage.models import InboxUpdate, Ticket, TicketMessage
from storage.repositories import Repos
from tests.botapi_standin import BotAPIStandIn, post_update
from tests.conftest import STAFF_CHAT_ID, STAFF_ID, register

TOKEN = "123456:" + "A" * 35
SECRET = "real-process-secret"
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BotProcess:
    """``caredesk run`` (webhook mode) as a subprocess."""

    def __init__(self, db_url: str, api_url: str, workdir: Path, **extra: str) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "DATABASE_", "WEBHOOK_", "REDIS_"))},
            "BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": api_url, "MODE": "webhook", "DATABASE_URL": db_url,
            "WEBHOOK_URL": f"http://127.0.0.1:{self.port}", "WEBHOOK_SECRET": SECRET,
            "WEBHOOK_HOST": "127.0.0.1", "WEBHOOK_PORT": str(self.port),
            "STAFF_CHAT_ID": str(STAFF_CHAT_ID), "STAFF_IDS": str(STAFF_ID), "MANAGER_IDS": "",
            "DEFAULT_TIMEZONE": "Asia/Shanghai", "PYTHONUNBUFFERED": "1", **extra,
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.runs = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"bot-{self.runs}.log"

    async def start(self, session: aiohttp.ClientSession) -> None:
        self.runs += 1
        log = self.log_path.open("wb")
        self.process = subprocess.Popen([sys.executable, "-m", "bot", "run"], cwd=self.workdir, env=self.env,
                                        stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the bot exited at start:\n{self.log()}")
            try:
                async with session.get(self.url + "/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        raise AssertionError(f"the bot did not start:\n{self.log()}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.process is not None
        self.process.send_signal(sig)
        self.process.wait(timeout=60)

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    async def terminate(self, timeout: float = 90) -> int | None:
        """SIGTERM, then wait for the exit without blocking the event loop (the stand-in answers on it)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self.process.poll()

    def log(self) -> str:
        return "\n".join((self.workdir / f"bot-{n}.log").read_text(errors="replace")
                         for n in range(1, self.runs + 1) if (self.workdir / f"bot-{n}.log").exists())

    async def handled(self, session: aiohttp.ClientSession) -> int:
        """Updates the process has finished (from its /metrics)."""
        async with session.get(self.url + "/metrics") as response:
            text = await response.text()
        return int(sum(float(v) for v in re.findall(r'^caredesk_updates_total\{[^}]*\} ([0-9.e+]+)$', text, re.M)))


async def unhandled(db: Database) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(InboxUpdate)
                                        .where(InboxUpdate.handled_at.is_(None))) or 0)


async def settle(bot: BotProcess, session: aiohttp.ClientSession, expected: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await bot.handled(session) >= expected:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{await bot.handled(session)} of {expected} updates handled in {timeout} s:\n"
                         f"{bot.log()[-4000:]}")


class PostingUser(FakeUser):
    """A person whose updates reach the bot over HTTP, as Telegram posts them."""

    bot: BotProcess
    http: aiohttp.ClientSession
    posted = 0  # updates posted by all PostingUsers of a test (the class attribute is reset per test)

    async def feed(self, payload: dict[str, Any]) -> list[SentMessage]:
        world = self.world
        before = {cid: len(c.messages) for cid, c in world.chats.items()}
        status = await post_update(self.http, self.bot.url + "/telegram/webhook", SECRET,
                                   {"update_id": world.next_update_id(), **payload})
        assert status == 200
        type(self).posted += 1
        await settle(self.bot, self.http, type(self).posted)
        return [m for cid, chat in world.chats.items() for m in chat.messages[before.get(cid, 0):] if m.from_bot]


@pytest.fixture
async def standin() -> AsyncIterator[BotAPIStandIn]:
    api = BotAPIStandIn()
    api.world.group(STAFF_CHAT_ID, "Staff")
    await api.start()
    yield api
    await api.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


@pytest.fixture
def plain_db_url(db_url: str) -> str:
    return db_url


def start_update(update_id: int, user_id: int) -> dict[str, Any]:
    user = {"id": user_id, "is_bot": False, "first_name": "Mei", "language_code": "en"}
    chat = {"id": user_id, "type": "private", "first_name": "Mei"}
    message = {"message_id": 1, "date": int(time.time()), "chat": chat,
               "from": user, "text": "/start", "entities": [{"type": "bot_command", "offset": 0, "length": 6}]}
    return {"update_id": update_id, "message": message}


def name_questions(standin: BotAPIStandIn, chat_id: int) -> int:
    return sum(1 for c in standin.calls_of("sendMessage")
               if c.ok and c.params.get("chat_id") == chat_id and "name" in str(c.params.get("text", "")).lower())


def text_update(update_id: int, user_id: int, text: str) -> dict[str, Any]:
    user = {"id": user_id, "is_bot": False, "first_name": "Mei", "language_code": "en"}
    message = {"message_id": update_id, "date": int(time.time()),
               "chat": {"id": user_id, "type": "private", "first_name": "Mei"}, "from": user, "text": text}
    return {"update_id": update_id, "message": message}


async def seed_customers(db_url: str, telegram_ids: list[int]) -> None:
    db = Database(db_url)
    try:
        async with db.session() as session:
            repos = Repos(session)
            for telegram_id in telegram_ids:
                await repos.customers.register(telegram_id, {
                    "name": f"Customer {telegram_id}", "phone": f"+86138{telegram_id:08d}"[:14], "address": None,
                    "household_size": 2, "care_consent": True}, "en", datetime.now(UTC))
            await session.commit()
    finally:
        await db.dispose()


async def test_kill_9_mid_burst_loses_no_acknowledged_update(db_url: str, standin: BotAPIStandIn,
                                                              http: aiohttp.ClientSession, tmp_path: Path) -> None:
    """80 messages posted; SIGKILL once 27 were answered 200; restart: each of the 27 handled exactly once.

    Each message is free text a registered customer writes, which the bot passes to the staff chat with its
    words, so every update's effect can be seen on its own. Three customers: three lanes, each with a backlog.
    """
    customers = [500_001, 500_002, 500_003]
    await seed_customers(db_url, customers)
    standin.latency["sendMessage"] = 0.2  # handling is slower than posting: a backlog builds up
    bot = BotProcess(db_url, standin.url, tmp_path, RATE_GROUP_PER_MINUTE="6000", RATE_CHAT_PER_SECOND="100")
    await bot.start(http)
    acknowledged: list[str] = []
    try:
        for n in range(80):
            text = f"note number {n + 1}"
            update = text_update(n + 1, customers[n % 3], text)
            if await post_update(http, bot.url + "/telegram/webhook", SECRET, update) == 200:
                acknowledged.append(text)
            if len(acknowledged) == 27:
                bot.kill(signal.SIGKILL)
                break
        assert len(acknowledged) == 27
        db = Database(db_url)
        try:
            left = await unhandled(db)
            assert left > 0, "every update was handled before the kill: the test proves nothing"
            await bot.start(http)  # the next start handles what the inbox holds
            deadline = time.monotonic() + 60
            while await unhandled(db) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert await unhandled(db) == 0
            async with db.session() as session:
                inbox = (await session.scalars(select(InboxUpdate))).all()
        finally:
            await db.dispose()
        await asyncio.sleep(2.0)  # the replies of the last ones
        assert sorted(row.update_id for row in inbox) == list(range(1, 28))
        assert all(row.handled_at is not None and row.payload == "" for row in inbox)
        relayed = [str(c.params.get("text", "")) for c in standin.calls_of("sendMessage")
                   if c.ok and c.params.get("chat_id") == STAFF_CHAT_ID]
        counts = {text: sum(1 for r in relayed if r.split("\n")[1:2] == [text]) for text in acknowledged}
        assert max(counts.values()) == 1, f"handled twice: {[t for t, c in counts.items() if c > 1]}"
        # An update whose transaction had committed when the process died may have lost its sends
        # (at most the one in hand in each of the three lanes); every other one reached the staff chat.
        missing = [text for text, count in counts.items() if count == 0]
        assert len(missing) <= len(customers), missing
        assert "database is locked" not in bot.log()
    finally:
        bot.stop()


async def test_200_customers_at_once_with_a_slow_telegram(db_url: str, standin: BotAPIStandIn,
                                                           http: aiohttp.ClientSession, tmp_path: Path) -> None:
    standin.latency["*"] = 0.3
    bot = BotProcess(db_url, standin.url, tmp_path, RATE_GLOBAL_PER_SECOND="100")
    await bot.start(http)
    try:
        users = [600_000 + n for n in range(200)]
        statuses = await asyncio.gather(*[
            post_update(http, bot.url + "/telegram/webhook", SECRET, start_update(n + 1, user_id))
            for n, user_id in enumerate(users)])
        assert statuses == [200] * 200
        await settle(bot, http, 200, timeout=120)
        log = bot.log()
        assert "database is locked" not in log
        assert all(name_questions(standin, user_id) == 1 for user_id in users)
        errors = [c for c in standin.calls_of("sendMessage") if "went wrong" in str(c.params.get("text", ""))]
        assert errors == []
    finally:
        bot.stop()


async def test_a_failing_last_call_after_a_staff_reply_keeps_the_truth(
        db_url: str, standin: BotAPIStandIn, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    bot = BotProcess(db_url, standin.url, tmp_path)
    await bot.start(http)
    PostingUser.posted = 0
    PostingUser.bot, PostingUser.http = bot, http
    try:
        customer = PostingUser(standin.world, 100_001, "Mei")
        staff = PostingUser(standin.world, STAFF_ID, "Sam", chat_id=STAFF_CHAT_ID)
        await register(customer)
        await customer.send("/complaint")
        await customer.press("Delivery")
        await customer.send("The bag was torn")
        await customer.press("Submit")
        card = next(m for m in standin.world.sent(STAFF_CHAT_ID) if m.buttons)
        standin.fail("setMessageReaction", status=500, description="Internal Server Error")
        standin.fail("editMessageText", status=500, description="Internal Server Error")
        await staff.send("So sorry, a new bag comes today", reply_to=card.message_id)
        replies = [m for m in standin.world.sent(customer.id) if "new bag comes today" in (m.text or "")]
        assert len(replies) == 1, "the customer got the reply"
        db = Database(db_url)
        try:
            async with db.session() as session:
                ticket = (await session.scalars(select(Ticket))).one()
                stored = (await session.scalars(select(TicketMessage).where(TicketMessage.direction == "out"))).all()
        finally:
            await db.dispose()
        assert ticket.status == "waiting_customer" and ticket.first_response_at is not None
        assert [m.text for m in stored] == ["So sorry, a new bag comes today"]
        told = [m.text or "" for m in standin.world.sent(STAFF_CHAT_ID)]
        assert not any("went wrong" in t or "nothing was saved" in t for t in told), told
        assert any(not c.ok for c in standin.calls_of("setMessageReaction"))
    finally:
        bot.stop()


async def test_sigterm_finishes_what_is_in_hand(db_url: str, standin: BotAPIStandIn, http: aiohttp.ClientSession,
                                                tmp_path: Path) -> None:
    """SIGTERM: updates already answered 200 are handled and their messages sent; the outbox worker finishes
    the row it is sending and leaves none "sending"; the process exits cleanly."""
    customers = [510_001, 510_002]
    await seed_customers(db_url, customers)
    db = Database(db_url)
    try:
        async with db.session() as session:
            repos = Repos(session)
            now = datetime.now(UTC)
            for n in range(60):
                await repos.outbox.enqueue(dedupe_key=f"notice:{n}", kind="notice", chat_id=customers[n % 2],
                                           text=f"outbox notice {n}", now=now)
            await session.commit()
        standin.latency["sendMessage"] = 0.15
        bot = BotProcess(db_url, standin.url, tmp_path, RATE_GROUP_PER_MINUTE="6000", RATE_CHAT_PER_SECOND="100")
        await bot.start(http)
        try:
            # A first update warms the process up (aiogram builds its models on first use).
            assert await post_update(http, bot.url + "/telegram/webhook", SECRET,
                                     text_update(100, customers[0], "warming up")) == 200
            await settle(bot, http, 1)
            acknowledged = []
            for n in range(12):
                text = f"in hand {n + 1}"
                if await post_update(http, bot.url + "/telegram/webhook", SECRET,
                                     text_update(n + 1, customers[n % 2], text)) == 200:
                    acknowledged.append(text)
            assert len(acknowledged) == 12
            code = await bot.terminate()
            assert code == 0, bot.log()[-3000:]
        finally:
            bot.stop()
        relayed = [str(c.params.get("text", "")) for c in standin.calls_of("sendMessage")
                   if c.ok and c.params.get("chat_id") == STAFF_CHAT_ID]
        assert all(any(r.split("\n")[1:2] == [text] for r in relayed) for text in acknowledged)
        assert await unhandled(db) == 0
        async with db.session() as session:
            statuses = [row[0] for row in (await session.execute(sql("SELECT status FROM outbox"))).all()]
        assert "sending" not in statuses
        assert "uncertain" not in statuses
    finally:
        await db.dispose()


async def test_set_my_commands_failing_at_start_does_not_stop_the_bot(
        db_url: str, standin: BotAPIStandIn, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    standin.fail("setMyCommands", status=500, description="Internal Server Error", times=1)
    bot = BotProcess(db_url, standin.url, tmp_path)
    await bot.start(http)
    try:
        assert await post_update(http, bot.url + "/telegram/webhook", SECRET, start_update(1, 520_001)) == 200
        await settle(bot, http, 1)
        assert name_questions(standin, 520_001) == 1  # serving although the menus could not be set
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(c.ok for c in standin.calls_of("setMyCommands")):
            await asyncio.sleep(0.2)
        assert any(c.ok for c in standin.calls_of("setMyCommands")), "setMyCommands was not tried again"
        assert "could not set the command menus" in bot.log()
    finally:
        bot.stop()


async def test_polling_moves_the_offset_only_past_stored_updates(db_url: str, standin: BotAPIStandIn,
                                                                 http: aiohttp.ClientSession, tmp_path: Path) -> None:
    """Polling mode, killed mid-burst: what Telegram was told to forget (the offset moved past it) is in the
    inbox and handled after the restart; nothing is handled twice."""
    customers = [530_001, 530_002, 530_003]
    await seed_customers(db_url, customers)
    standin.latency["sendMessage"] = 0.2
    bot = BotProcess(db_url, standin.url, tmp_path, MODE="polling", RATE_GROUP_PER_MINUTE="6000",
                     RATE_CHAT_PER_SECOND="100")
    bot.env["HEALTH_PORT"] = str(bot.port)
    texts = [f"polled note {n + 1}" for n in range(40)]
    standin.updates = [text_update(n + 1, customers[n % 3], text) for n, text in enumerate(texts)]
    await bot.start(http)
    try:
        deadline = time.monotonic() + 60
        while standin.updates and standin.updates[0]["update_id"] == 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)  # until the first getUpdates with an offset confirmed a batch
        bot.kill(signal.SIGKILL)
        db = Database(db_url)
        try:
            async with db.session() as session:
                stored = set(await session.scalars(select(InboxUpdate.update_id)))
            confirmed = {n for n in range(1, 41)} - {u["update_id"] for u in standin.updates}
            assert confirmed <= stored, "Telegram forgot updates that were never stored"
            await bot.start(http)
            deadline = time.monotonic() + 90
            while (standin.updates or await unhandled(db)) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert await unhandled(db) == 0 and not standin.updates
        finally:
            await db.dispose()
        await asyncio.sleep(1.5)
        relayed = [str(c.params.get("text", "")) for c in standin.calls_of("sendMessage")
                   if c.ok and c.params.get("chat_id") == STAFF_CHAT_ID]
        counts = {text: sum(1 for r in relayed if r.split("\n")[1:2] == [text]) for text in texts}
        assert max(counts.values()) == 1, [t for t, c in counts.items() if c > 1]
        assert len([t for t, c in counts.items() if c == 0]) <= len(customers)
    finally:
        bot.stop()
