"""Running for real: long polling, or a webhook behind aiohttp."""

from __future__ import annotations

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
    try:
        await app.bot.delete_webhook(drop_pending_updates=False)
        await app.dispatcher.start_polling(app.bot)
    finally:
        await app.close()


def build_webhook_app(app: App) -> web.Application:
    """The aiohttp application; a request without the secret token gets 401."""
    settings = app.settings
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    web_app = web.Application()
    SimpleRequestHandler(dispatcher=app.dispatcher, bot=app.bot, secret_token=secret).register(
        web_app, path=settings.webhook_path
    )
    setup_application(web_app, app.dispatcher, bot=app.bot)

    async def set_webhook(_: web.Application) -> None:
        url = (settings.webhook_url or "").rstrip("/") + settings.webhook_path
        await app.bot.set_webhook(url, secret_token=secret, drop_pending_updates=False)

    async def close(_: web.Application) -> None:
        await app.close()

    web_app.on_startup.append(set_webhook)
    web_app.on_cleanup.append(close)
    return web_app


def run_webhook(settings: Settings) -> None:
    app = create_app(settings)
    _hooks(app)
    web.run_app(build_webhook_app(app), host=settings.webhook_host, port=settings.webhook_port)
