"""Running for real: long polling, or a webhook behind aiohttp."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application

from bot.app import App, create_app, register_commands
from bot.config import Settings

log = logging.getLogger(__name__)


def _hooks(app: App) -> None:
    async def on_startup() -> None:
        await register_commands(app)
        from jobs.scheduler import start_scheduler

        start_scheduler(app)

    async def on_shutdown() -> None:
        from jobs.scheduler import stop_scheduler

        await stop_scheduler(app)

    app.dispatcher.startup.register(on_startup)
    app.dispatcher.shutdown.register(on_shutdown)


async def run_polling(settings: Settings) -> None:
    app = create_app(settings)
    _hooks(app)
    ops = None
    try:
        if settings.health_port:  # /healthz, /readyz, /metrics (bot.ops)
            from bot.ops import start_ops_server

            ops = await start_ops_server(app, settings.health_port)
        await app.bot.delete_webhook(drop_pending_updates=False)
        await app.dispatcher.start_polling(app.bot)
    finally:
        if ops is not None:
            await ops.cleanup()
        await app.close()


# The aiogram request handler of a webhook application (tests wait on its background updates).
WEBHOOK_HANDLER = web.AppKey("caredesk_webhook_handler", SimpleRequestHandler)


def build_webhook_app(app: App, *, handle_in_background: bool = True) -> web.Application:
    """The aiohttp application; a request without the secret token gets 401.

    On start it points Telegram at ``WEBHOOK_URL`` + ``WEBHOOK_PATH`` (through
    ``app.bot``, so a fake session in tests); on stop it first lets updates
    still being handled finish (Telegram was already told 200 for them), then
    closes the bot.
    """
    settings = app.settings
    if settings.webhook_secret is None:
        raise ValueError("WEBHOOK_SECRET is required for webhook mode")
    secret = settings.webhook_secret.get_secret_value()
    web_app = web.Application()
    handler = SimpleRequestHandler(dispatcher=app.dispatcher, bot=app.bot, secret_token=secret,
                                   handle_in_background=handle_in_background)

    async def finish_updates(_: web.Application) -> None:
        # Runs before the handler's own shutdown hook closes the bot's session.
        pending = list(handler._background_feed_update_tasks)  # noqa: SLF001  (aiogram keeps no public handle)
        if pending:
            log.info("waiting for %d update(s) still being handled", len(pending))
            await asyncio.gather(*pending, return_exceptions=True)

    web_app.on_shutdown.append(finish_updates)
    handler.register(web_app, path=settings.webhook_path)
    from bot.ops import add_ops_routes

    add_ops_routes(web_app, app)  # /healthz, /readyz, /metrics on the webhook's port
    setup_application(web_app, app.dispatcher, bot=app.bot)
    web_app[WEBHOOK_HANDLER] = handler

    async def set_webhook(_: web.Application) -> None:
        url = (settings.webhook_url or "").rstrip("/") + settings.webhook_path
        await app.bot.set_webhook(url, secret_token=secret, drop_pending_updates=False,
                                  allowed_updates=app.dispatcher.resolve_used_update_types())

    async def close(_: web.Application) -> None:
        await app.close()

    web_app.on_startup.append(set_webhook)
    web_app.on_cleanup.append(close)
    return web_app


def run_webhook(settings: Settings) -> None:
    app = create_app(settings)
    _hooks(app)
    web.run_app(build_webhook_app(app), host=settings.webhook_host, port=settings.webhook_port)
