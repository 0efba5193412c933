"""A local Bot API stand-in over HTTP, for tests that run ``caredesk run`` as a real process.

It answers ``POST /bot<token>/<method>`` as Telegram does
(https://core.telegram.org/bots/api#making-requests), with the same
rules as the in-process fake (:class:`bot.fake_telegram.FakeTelegram` does the
work: limits counted as Telegram counts them, HTML checked, 403 for a blocked
chat), records every call with the time it came in, and can add latency and
faults per method. Point the bot at it with ``TELEGRAM_API_URL``.

    standin = BotAPIStandIn()
    await standin.start()            # on 127.0.0.1, a free port: standin.url
    standin.latency["*"] = 0.3       # every method answers after 300 ms
    standin.fail("setMessageReaction", status=400, description="Bad Request: REACTION_INVALID")
    ...
    await standin.stop()

Updates are posted to the bot's webhook by the test itself (:func:`post_update`),
with the secret header, as Telegram would (``secret_token``: https://core.telegram.org/bots/api#setwebhook).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from bot.fake_telegram import FakeTelegram, ScriptedError

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


@dataclass
class Recorded:
    method: str
    params: dict[str, Any]
    at: float
    ok: bool = True
    error: str | None = None


@dataclass
class StandInFault:
    method: str
    status: int
    description: str
    times: int
    retry_after: int | None = None


@dataclass
class BotAPIStandIn:
    world: FakeTelegram = field(default_factory=FakeTelegram)
    latency: dict[str, float] = field(default_factory=dict)  # method (or "*") → seconds
    calls: list[Recorded] = field(default_factory=list)
    faults: list[StandInFault] = field(default_factory=list)
    url: str = ""
    # Updates waiting for getUpdates (polling mode): Telegram forgets one once an offset above its id is asked
    # (https://core.telegram.org/bots/api#getupdates).
    updates: list[dict[str, Any]] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    def fail(self, method: str, *, status: int = 400, description: str = "Bad Request", times: int = 1_000_000,
             retry_after: int | None = None) -> None:
        self.faults.append(StandInFault(method, status, description, times, retry_after))

    def calls_of(self, method: str) -> list[Recorded]:
        return [c for c in self.calls if c.method == method]

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/bot{token}/{method}", self._handle)
        app.router.add_get("/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            params.update(await request.json())
            return params
        if request.content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    params[key] = {"filename": value.filename, "bytes": value.file.read()}
                    continue
                text = str(value)
                if text[:1] in "{[":
                    try:
                        params[key] = json.loads(text)
                        continue
                    except ValueError:
                        pass
                params[key] = _scalar(text)
        return params

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or 100)
        self.updates = [u for u in self.updates if u["update_id"] >= offset]  # confirmed ones are gone
        deadline = time.monotonic() + min(float(params.get("timeout") or 0), 1.0)
        while not self.updates and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return self.updates[:limit]

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await self._params(request)
        record = Recorded(method=method, params=params, at=time.monotonic())
        self.calls.append(record)
        delay = self.latency.get(method, self.latency.get("*", 0.0))
        if delay:
            await asyncio.sleep(delay)
        for fault in self.faults:
            if fault.method in (method, "*") and fault.times > 0:
                fault.times -= 1
                record.ok, record.error = False, fault.description
                body: dict[str, Any] = {"ok": False, "error_code": fault.status, "description": fault.description}
                if fault.retry_after is not None:
                    body["parameters"] = {"retry_after": fault.retry_after}
                return web.json_response(body, status=fault.status)
        if method == "getUpdates":
            return web.json_response({"ok": True, "result": await self._get_updates(params)})
        try:
            result = self.world.handle(method, _files_as_ids(params, self.world))
        except ScriptedError as exc:
            record.ok, record.error = False, exc.description
            body = {"ok": False, "error_code": exc.status, "description": exc.description}
            return web.json_response(body, status=exc.status)
        except NotImplementedError as exc:
            record.ok, record.error = False, str(exc)
            return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
        return web.json_response({"ok": True, "result": result})


def _scalar(text: str) -> Any:
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        return text


def _files_as_ids(params: dict[str, Any], world: FakeTelegram) -> dict[str, Any]:
    """An uploaded file becomes what the in-process fake expects (its bytes stored under a new file id)."""
    out = dict(params)
    for key, value in params.items():
        if isinstance(value, dict) and "bytes" in value:
            file_id = world.new_file_id()
            world.files[file_id] = (value["filename"] or key, value["bytes"])
            out[key] = file_id
    return out


async def post_update(session: aiohttp.ClientSession, url: str, secret: str, update: dict[str, Any]) -> int:
    """POST an update to the bot's webhook as Telegram does; returns the HTTP status (0: no answer)."""
    try:
        async with session.post(url, json=update, headers={SECRET_HEADER: secret}) as response:
            return response.status
    except (TimeoutError, aiohttp.ClientError, ConnectionError):
        return 0
