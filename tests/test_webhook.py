"""Running for real, without Telegram: the webhook application served on
loopback by aiohttp's test server (the bot's calls go to the fake session),
and the commands registered with setMyCommands. (Crashes, latency and a real
process: tests/test_real_process.py.)"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from sqlalchemy import select

from bot.app import App, create_app, register_commands
from bot.clock import ManualClock
from bot.commands import commands_for
from bot.config import Settings
from bot.fake_telegram import FakeTelegram, FakeUser
from bot.roles import Role
from bot.runner import MAX_BODY, build_webhook_app
from storage.models import DialogState, InboxUpdate
from tests.conftest import MANAGER_ID, STAFF2_ID, STAFF_CHAT_ID, STAFF_ID

SECRET = "s3cret_Token-1"
PATH = "/telegram/webhook"
HEADER = "X-Telegram-Bot-Api-Secret-Token"
USER = 100001


@pytest.fixture
def webhook_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={
        "mode": "webhook", "webhook_url": "https://bot.example.com/", "webhook_secret": SecretStr(SECRET),
    })


@pytest.fixture
async def hook_app(webhook_settings: Settings, clock: ManualClock, world: FakeTelegram) -> AsyncIterator[App]:
    app = create_app(webhook_settings, clock=clock, session=world.session())
    world.attach(app.dispatcher, app.bot)
    FakeUser(world, USER, "Mei")  # Telegram knows the person's chat
    yield app
    await app.close()


@pytest.fixture
async def client(hook_app: App) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(build_webhook_app(hook_app))) as client:
        yield client


def start_update(update_id: int = 1, text: str = "/start") -> dict[str, Any]:
    user = {"id": USER, "is_bot": False, "first_name": "Mei", "language_code": "en"}
    chat = {"id": USER, "type": "private", "first_name": "Mei"}
    message = {"message_id": update_id, "date": 1772416800, "chat": chat,
               "from": user, "text": text}
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    return {"update_id": update_id, "message": message}


async def handled(app: App) -> None:
    """Wait for the updates the webhook answered 200 for and handles in their chats' lanes."""
    await app.intake.lanes.wait_idle()


async def test_start_points_telegram_at_the_webhook(client: TestClient, world: FakeTelegram) -> None:
    calls = world.calls_of("setWebhook")
    assert len(calls) == 1
    params = calls[0].params
    assert params["url"] == "https://bot.example.com/telegram/webhook"
    assert params["secret_token"] == SECRET
    assert {"message", "callback_query"} <= set(params["allowed_updates"])


async def test_a_request_without_the_secret_is_refused(client: TestClient, world: FakeTelegram) -> None:
    response = await client.post(PATH, json=start_update())
    assert response.status == 401
    response = await client.post(PATH, json=start_update(), headers={HEADER: "wrong"})
    assert response.status == 401
    assert world.sent(USER) == []


async def test_a_request_with_the_secret_is_handled(client: TestClient, hook_app: App, world: FakeTelegram) -> None:
    response = await client.post(PATH, json=start_update(), headers={HEADER: SECRET})
    assert response.status == 200
    await handled(hook_app)
    sent = world.sent(USER)
    assert sent, "the bot answered nothing"
    assert sent[-1].buttons  # registration asks the name with a button offering the Telegram name
    async with hook_app.db.session() as session:
        rows = (await session.scalars(select(DialogState))).all()
    assert [row.state for row in rows] == ["RegistrationForm:name"]  # the dialog started and was committed


async def test_only_post_on_the_path(client: TestClient) -> None:
    assert (await client.get(PATH)).status == 405
    assert (await client.post("/elsewhere", json=start_update(), headers={HEADER: SECRET})).status == 404


async def test_stopping_finishes_updates_already_accepted(hook_app: App, world: FakeTelegram) -> None:
    """Telegram was told 200: an update still being handled at shutdown must not be lost."""
    async with TestClient(TestServer(build_webhook_app(hook_app))) as client:
        response = await client.post(PATH, json=start_update(), headers={HEADER: SECRET})
        assert response.status == 200
    assert world.sent(USER), "the update was dropped at shutdown"


async def test_webhook_needs_a_secret(hook_app: App) -> None:
    hook_app.settings = hook_app.settings.model_copy(update={"webhook_secret": None})
    with pytest.raises(ValueError, match="WEBHOOK_SECRET"):
        build_webhook_app(hook_app)


async def test_a_redelivered_update_has_one_effect(client: TestClient, hook_app: App, world: FakeTelegram) -> None:
    """Telegram sends an update again when it did not see our 200: the second copy is a no-op."""
    for _ in range(2):
        assert (await client.post(PATH, json=start_update(), headers={HEADER: SECRET})).status == 200
        await handled(hook_app)
    assert len([m for m in world.sent(USER) if m.buttons]) == 1  # one welcome + name question, not two
    async with hook_app.db.session() as session:
        rows = (await session.scalars(select(InboxUpdate))).all()
    assert [(row.update_id, row.lane, row.payload, row.handled_at is not None) for row in rows] == [(1, 0, "", True)]


async def test_bad_requests_get_the_right_answers_and_the_bot_keeps_serving(
        client: TestClient, hook_app: App, world: FakeTelegram, caplog: pytest.LogCaptureFixture) -> None:
    headers = {HEADER: SECRET}
    assert (await client.post(PATH, data=b"{not json", headers=headers)).status == 400
    with caplog.at_level(logging.WARNING):
        assert (await client.post(PATH, json={"hello": "world"}, headers=headers)).status == 200
        assert (await client.post(PATH, json=[1, 2], headers=headers)).status == 200
    warnings = [r for r in caplog.records if r.name == "bot.runner"]
    assert len(warnings) == 2 and all("not a Telegram update" in r.getMessage() for r in warnings)
    huge = start_update(text="x" * (MAX_BODY + 10))
    assert (await client.post(PATH, json=huge, headers=headers)).status == 413
    assert (await client.post(PATH, json=start_update(), headers=headers)).status == 200
    await handled(hook_app)
    assert world.sent(USER), "the bot stopped serving after bad requests"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# ----- setMyCommands ---------------------------------------------------------------------------------
def _names(call: Any) -> list[str]:
    return [c["command"] for c in call.params["commands"]]


async def test_commands_are_registered_per_language_and_role(app: App, world: FakeTelegram) -> None:
    await register_commands(app)
    calls = world.calls_of("setMyCommands")
    assert all(call.ok for call in calls)
    by_scope: dict[tuple[Any, ...], Any] = {}
    for call in calls:
        scope = call.params["scope"]
        key = (scope["type"], scope.get("chat_id"), scope.get("user_id"), call.params.get("language_code"))
        assert key not in by_scope, f"set twice: {key}"
        by_scope[key] = call

    customer = [c.name for c in commands_for(Role.CUSTOMER)]
    staff = [c.name for c in commands_for(Role.STAFF)]
    manager = [c.name for c in commands_for(Role.MANAGER)]
    for code in (None, "zh"):  # the default language (en) has no language code
        assert _names(by_scope[("default", None, None, code)]) == customer
        assert _names(by_scope[("chat", STAFF_ID, None, code)]) == staff
        assert _names(by_scope[("chat", STAFF2_ID, None, code)]) == staff
        assert _names(by_scope[("chat", MANAGER_ID, None, code)]) == manager
        assert _names(by_scope[("chat", STAFF_CHAT_ID, None, code)]) == staff
        assert _names(by_scope[("chat_member", STAFF_CHAT_ID, MANAGER_ID, code)]) == manager
    assert len(by_scope) == 2 * 6

    english = by_scope[("default", None, None, None)].params["commands"]
    chinese = by_scope[("default", None, None, "zh")].params["commands"]
    assert english != chinese  # translated descriptions
    for command in english + chinese:
        assert 1 <= len(command["description"]) <= 256
        assert command["command"].islower() and len(command["command"]) <= 32
    assert "forget" in customer and "forget" not in staff  # customer-only commands stay out of staff menus
    assert "report" in manager and "report" not in staff


async def test_a_staff_member_telegram_refuses_does_not_stop_the_bot(app: App, world: FakeTelegram) -> None:
    """A staff id that never opened a chat with the bot: Telegram says "chat not found"."""
    world.fail("chat_not_found", method="setMyCommands", chat_id=STAFF2_ID, times=2)
    await register_commands(app)
    failed = [c for c in world.calls_of("setMyCommands") if not c.ok]
    assert [c.params["scope"]["chat_id"] for c in failed] == [STAFF2_ID, STAFF2_ID]
    assert any(c.ok and c.params["scope"].get("chat_id") == STAFF_ID for c in world.calls_of("setMyCommands"))
