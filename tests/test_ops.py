"""Operations: /healthz, /readyz and /metrics (webhook routes and the polling-mode server), JSON log lines."""

from __future__ import annotations

import json
import logging
import socket

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.app import App, create_app
from bot.clock import ManualClock
from bot.config import Settings
from bot.fake_telegram import FakeTelegram
from bot.logs import JsonFormatter, RedactingFilter
from bot.metrics import observe_update
from bot.ops import add_ops_routes, start_ops_server
from jobs.runner import run_job
from tests.helpers import enqueue


async def _client(app: App) -> TestClient:
    web_app = web.Application()
    add_ops_routes(web_app, app)
    client = TestClient(TestServer(web_app))
    await client.start_server()
    return client


async def test_health_ready_and_metrics_on_the_webhook_app(app: App, world: FakeTelegram) -> None:
    await enqueue(app, "svc:ops:1", 4242, category="service")
    await enqueue(app, "svc:ops:2", 4243, category="service")
    await run_job(app.jobs, "lease")
    client = await _client(app)
    try:
        health = await client.get("/healthz")
        assert health.status == 200 and (await health.json())["status"] == "ok"

        ready = await client.get("/readyz")
        body = await ready.json()
        assert ready.status == 200 and body["ready"] is True and body["database"] == "ok"
        assert body["scheduler_lease"]["held_here"] is True and body["delivers_outbox"] is True

        observe_update("registration", 0.012, ok=True)
        observe_update("registration", 0.5, ok=False)
        text = await (await client.get("/metrics")).text()
        assert 'caredesk_outbox_rows{category="service",status="pending"} 2.0' in text
        assert 'caredesk_updates_total{handler="registration",result="failed"}' in text
        assert 'caredesk_update_seconds_bucket{handler="registration",le="0.025"}' in text
        assert "caredesk_scheduler_lease_held 1.0" in text

        world.block(4243)
        await run_job(app.jobs, "deliver_outbox")
        text = await (await client.get("/metrics")).text()
        assert 'caredesk_outbox_rows{category="service",status="sent"} 1.0' in text
        assert 'caredesk_sends_total{category="service",outcome="sent"}' in text
        assert 'caredesk_sends_total{category="service",outcome="forbidden"}' in text
        assert "caredesk_telegram_403_total" in text
    finally:
        await client.close()


async def test_readyz_says_503_when_the_database_does_not_answer(clock: ManualClock) -> None:
    settings = Settings(_env_file=None, database_url="postgresql+asyncpg://nobody@127.0.0.1:1/nothing")
    app = create_app(settings, clock=clock, session=FakeTelegram(clock).session())
    client = await _client(app)
    try:
        ready = await client.get("/readyz")
        body = await ready.json()
        assert ready.status == 503 and body["ready"] is False
        assert body["database"].startswith("failed")
        assert (await client.get("/healthz")).status == 200  # up, just not ready
    finally:
        await client.close()
        await app.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_polling_mode_serves_the_same_on_health_port(app: App) -> None:
    port = _free_port()
    runner = await start_ops_server(app, port, host="127.0.0.1")
    try:
        async with aiohttp.ClientSession() as http:
            for path, status in (("/healthz", 200), ("/readyz", 200), ("/metrics", 200)):
                async with http.get(f"http://127.0.0.1:{port}{path}") as response:
                    assert response.status == status, path
            async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                assert response.headers["Content-Type"].startswith("text/plain")
    finally:
        await runner.cleanup()


def test_json_log_lines_carry_context_and_no_token() -> None:
    token = "123456789:" + "AAExample" * 4  # shaped like a bot token (built here, so no token is committed)
    record = logging.LogRecord("caredesk.pipeline", logging.WARNING, __file__, 1,
                               "update failed calling https://api.telegram.org/bot%s/sendMessage", (token,), None)
    record.update_id, record.chat_id, record.handler, record.duration_ms = 42, 1001, "ordering", 12.5
    RedactingFilter().filter(record)
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert entry["level"] == "warning" and entry["logger"] == "caredesk.pipeline"
    fields = (entry["update_id"], entry["chat_id"], entry["handler"], entry["duration_ms"])
    assert fields == (42, 1001, "ordering", 12.5)
    assert token not in line and "<redacted>" in entry["message"]
    assert "\n" not in line


async def test_the_webhook_app_has_the_ops_routes(settings: Settings, clock: ManualClock, world: FakeTelegram) -> None:
    from pydantic import SecretStr

    from bot.runner import build_webhook_app

    hooked = settings.model_copy(update={"webhook_secret": SecretStr("s3cret"), "webhook_url": "https://bot.example"})
    app = create_app(hooked, clock=clock, session=world.session())
    web_app = build_webhook_app(app)
    paths = {getattr(r, "canonical", None) for r in web_app.router.resources()}
    assert {"/healthz", "/readyz", "/metrics"} <= paths
    await app.close()
