"""Running for real: long polling, or a webhook behind aiohttp.

Both take updates through one :class:`~bot.pipeline.UpdateIntake`: an update
is stored in the inbox before Telegram is told ``200`` (webhook) or before
the polling offset moves past it, then handled in its chat's lane. On start,
whatever the inbox holds unhandled (the process died) is handled first. On
SIGTERM (or SIGINT) the bot stops taking updates, finishes those in hand and
their sends, lets the outbox worker finish the row it is sending, and exits.

Webhook answers: a wrong or missing secret → 401; a body over
:data:`MAX_BODY` → 413; a body that is not JSON → 400 (not a traceback and a
500: no request of Telegram's looks like that, so it is refused plainly); JSON
that is not an update → 200 and one warning (a retry would bring the same body);
while shutting down → 503 (Telegram delivers it again later).

Telegram repeats a webhook request that got no 2XX answer, and gives up after a
reasonable number of attempts: https://core.telegram.org/bots/api#setwebhook
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import signal
from typing import Any

from aiogram.exceptions import TelegramAPIError
from aiohttp import web
from pydantic import ValidationError

from bot.app import App, create_app, register_commands
from bot.config import Settings
from bot.pipeline import UpdateIntake

log = logging.getLogger(__name__)

# https://core.telegram.org/bots/api#setwebhook: the secret comes in this header.
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# The largest webhook body taken (an update is a few KiB; a long message with entities stays far below).
MAX_BODY = 1024 * 1024
# setMyCommands that failed at start-up is tried again after these pauses (seconds), then every last one.
COMMAND_RETRIES = (5, 30, 120, 600)
# How often handled inbox ids are pruned.
PRUNE_EVERY = 3600.0


def _intake(app: App) -> UpdateIntake:
    if app.intake is None:
        app.intake = UpdateIntake(app.dispatcher, app.bot, app.db, app.clock)
    return app.intake


async def _register_commands_until_done(app: App) -> None:
    """setMyCommands; a failure is logged and tried again later, never a reason to stop the bot."""
    attempt = 0
    while True:
        try:
            await register_commands(app)
            return
        except (TimeoutError, TelegramAPIError, OSError) as exc:
            pause = COMMAND_RETRIES[min(attempt, len(COMMAND_RETRIES) - 1)]
            log.warning("could not set the command menus (%s); trying again in %d s", exc, pause)
            attempt += 1
            await asyncio.sleep(pause)


async def _prune_now_and_then(intake: UpdateIntake) -> None:
    while True:
        try:
            await intake.prune()
        except Exception:
            log.warning("could not prune the inbox", exc_info=True)
        await asyncio.sleep(PRUNE_EVERY)


def _spawn(app: App, name: str, coro: Any) -> None:
    task = asyncio.get_running_loop().create_task(coro, name=name)
    app.background.append(task)


async def _start(app: App) -> None:
    """Handle what the inbox holds from before; menus in the background; the scheduler."""
    from jobs.scheduler import start_scheduler

    intake = _intake(app)
    await intake.resume()
    _spawn(app, "set-my-commands", _register_commands_until_done(app))
    _spawn(app, "inbox-prune", _prune_now_and_then(intake))
    start_scheduler(app.jobs)


async def _stop(app: App) -> None:
    """Stop taking updates, finish those in hand (and their sends), then the scheduler and the worker."""
    from jobs.scheduler import stop_scheduler

    intake = _intake(app)
    await intake.finish()
    background, app.background = app.background, []
    for task in background:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    await stop_scheduler(app.jobs)


# ----- polling -------------------------------------------------------------------------------

async def run_polling(settings: Settings) -> None:
    app = create_app(settings)
    intake = _intake(app)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stopping.set)
    ops = None
    try:
        if settings.health_port:  # /healthz, /readyz, /metrics (bot.ops)
            from bot.ops import start_ops_server

            ops = await start_ops_server(app, settings.health_port)
        await app.bot.delete_webhook(drop_pending_updates=False)
        await _start(app)
        await poll(app, intake, stopping)
    finally:
        try:
            await _stop(app)
        finally:
            if ops is not None:
                await ops.cleanup()
            await app.close()


async def poll(app: App, intake: UpdateIntake, stopping: asyncio.Event, timeout: int = 25) -> None:
    """getUpdates until ``stopping``; the offset moves past a batch only once it is in the inbox.

    An update is confirmed (and not returned again) once getUpdates is called with an offset above its
    ``update_id``: https://core.telegram.org/bots/api#getupdates
    """
    offset: int | None = None
    allowed = app.dispatcher.resolve_used_update_types()
    failures = 0
    while not stopping.is_set():
        fetch = asyncio.ensure_future(app.bot.get_updates(offset=offset, timeout=timeout, allowed_updates=allowed))
        stop_wait = asyncio.ensure_future(stopping.wait())
        done, _ = await asyncio.wait({fetch, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        stop_wait.cancel()
        if fetch not in done:
            # Stopping: what this call would have returned stays with Telegram (offset not moved).
            fetch.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await fetch
            return
        try:
            updates = fetch.result()
        except TelegramAPIError as exc:
            failures += 1
            pause = min(60.0, 0.5 * 2 ** min(failures, 7))
            log.warning("getUpdates failed (%s); trying again in %.1f s", exc, pause)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stopping.wait(), pause)
            continue
        failures = 0
        if not updates:
            continue
        await intake.accept([(u, u.model_dump_json(exclude_none=True)) for u in updates])
        offset = max(u.update_id for u in updates) + 1


# ----- webhook -------------------------------------------------------------------------------

def build_webhook_app(app: App) -> web.Application:
    """The aiohttp application: the webhook route (see the module's docstring) and /healthz, /readyz, /metrics.

    On start it handles what the inbox holds, then points Telegram at
    ``WEBHOOK_URL`` + ``WEBHOOK_PATH``; on stop it finishes the updates in hand.
    """
    settings = app.settings
    if settings.webhook_secret is None:
        raise ValueError("WEBHOOK_SECRET is required for webhook mode")
    secret = settings.webhook_secret.get_secret_value().encode()
    intake = _intake(app)
    web_app = web.Application(client_max_size=MAX_BODY)

    async def receive(request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, secret):
            return web.Response(status=401)
        if not intake.accepting:
            return web.Response(status=503)
        body = await request.read()  # over client_max_size: aiohttp answers 413
        try:
            payload = json.loads(body)
        except ValueError:
            return web.Response(status=400, text="not JSON")
        try:
            if not isinstance(payload, dict):
                raise TypeError("not an object")
            update = intake.parse(payload)
        except (ValidationError, TypeError) as exc:
            count = exc.error_count() if isinstance(exc, ValidationError) else 1
            log.warning("webhook: a request that is not a Telegram update was ignored (%d bytes, %d problem(s))",
                        len(body), count)
            return web.Response(status=200)
        await intake.accept([(update, body.decode("utf-8", "replace"))])
        return web.Response(status=200)

    web_app.router.add_post(settings.webhook_path, receive)
    from bot.ops import add_ops_routes

    add_ops_routes(web_app, app)  # /healthz, /readyz, /metrics on the webhook's port

    async def on_startup(_: web.Application) -> None:
        await _start(app)
        url = (settings.webhook_url or "").rstrip("/") + settings.webhook_path
        await app.bot.set_webhook(url, secret_token=secret.decode(), drop_pending_updates=False,
                                  allowed_updates=app.dispatcher.resolve_used_update_types())

    async def on_shutdown(_: web.Application) -> None:
        await _stop(app)

    async def on_cleanup(_: web.Application) -> None:
        await app.close()

    web_app.on_startup.append(on_startup)
    web_app.on_shutdown.append(on_shutdown)
    web_app.on_cleanup.append(on_cleanup)
    return web_app


def run_webhook(settings: Settings) -> None:
    app = create_app(settings)
    # aiohttp's run_app stops on SIGTERM and SIGINT: the site stops taking requests, then on_shutdown.
    web.run_app(build_webhook_app(app), host=settings.webhook_host, port=settings.webhook_port,
                print=None)
