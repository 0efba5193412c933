"""The composition: settings + clock + database + texts → Dispatcher, Bot and the jobs' dependencies.

``caredesk run``, ``caredesk shell`` and the tests all build the bot here, so
they share the same routers, middlewares, services, storage and jobs. This is
the one place that wires them: no module registers anything by being imported.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiogram import Bot, Dispatcher, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.base import BaseSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage
from aiogram.fsm.storage.memory import SimpleEventIsolation
from aiogram.types import (
    BotCommand,
    BotCommandScope,
    BotCommandScopeChat,
    BotCommandScopeChatMember,
    BotCommandScopeDefault,
)

from bot.clock import Clock, ManualClock, SystemClock
from bot.commands import commands_for
from bot.config import LANGUAGES, Settings
from bot.dialogs import Dialog, DialogMiddleware, Dialogs
from bot.metrics import observe_update
from bot.middlewares import DatabaseMiddleware, HandlerNameMiddleware, PersonMiddleware
from bot.pipeline import CareDispatcher, SendPath
from bot.roles import Role
from bot.rules import care as care_rules
from bot.services.tickets import StaffForum
from bot.texts import TextRenderer
from handlers import (
    care,
    common,
    complaint,
    conversations,
    csat,
    my_orders,
    order_desk,
    ordering,
    profile,
    registration,
    reports,
    staff_tools,
    ticket_desk,
    ticket_relay,
)
from jobs import care as care_jobs
from jobs import delivery, digest, leases
from jobs import sla as sla_jobs
from jobs.context import JobDeps, JobSpec
from jobs.delivery import worker_for
from storage.db import Database
from storage.dialog_state import SQLStorage

log = logging.getLogger(__name__)

# Accepted by aiogram's token check, refused by any real Bot API server.
OFFLINE_TOKEN = "7000000001:offline-sandbox"

# The scheduled jobs. Time travel (jobs.runner.advance) runs those due at one moment in this order:
# the SLA watch writes its notices before delivery sends what is due, and care planning comes after
# delivery (a care message planned now goes at the next tick, as live).
JOBS: tuple[JobSpec, ...] = (
    sla_jobs.watch_tickets,
    delivery.deliver_outbox,
    delivery.recover_outbox,
    digest.queue_digests,
    care_jobs.plan_care,
    care_jobs.care_daily,
    leases.renew_lease,
)


@dataclass
class App:
    settings: Settings
    clock: Clock
    db: Database
    renderer: TextRenderer
    storage: BaseStorage
    dispatcher: Dispatcher
    bot: Bot
    # What the jobs get (jobs.context): the scheduler, time travel and the outbox worker work on it.
    jobs: JobDeps
    # Set by bot.runner while running for real: the update intake, its background tasks, and the
    # Redis connection /readyz checks when dialog state is elsewhere.
    intake: Any = None
    background: list[asyncio.Task[Any]] = field(default_factory=list)
    ops_redis: Any = None

    async def close(self) -> None:
        await self.storage.close()
        await self.bot.session.close()
        await self.db.dispose()


def build_storage(settings: Settings, db: Database, clock: Clock) -> tuple[BaseStorage, BaseEventIsolation]:
    if settings.redis_url:
        from aiogram.fsm.storage.redis import DefaultKeyBuilder, RedisEventIsolation, RedisStorage

        storage = RedisStorage.from_url(settings.redis_url, key_builder=DefaultKeyBuilder(with_destiny=True))
        return storage, RedisEventIsolation(storage.redis, key_builder=storage.key_builder)
    return SQLStorage(db.sessionmaker, clock=clock), SimpleEventIsolation()


def build_bot(settings: Settings, session: BaseSession | None = None) -> Bot:
    if session is None and settings.telegram_api_url:
        session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_url))
    token = settings.bot_token.get_secret_value() if settings.bot_token else OFFLINE_TOKEN
    return Bot(token=token, session=session, default=DefaultBotProperties(parse_mode=ParseMode.HTML))


def build_dispatcher(settings: Settings, clock: Clock, db: Database, renderer: TextRenderer,
                     storage: BaseStorage, isolation: BaseEventIsolation,
                     extra_dialogs: Sequence[tuple[Router, Dialog]] = ()) -> Dispatcher:
    dispatcher = CareDispatcher(db=db, clock=clock, renderer=renderer, settings=settings,
                                storage=storage, events_isolation=isolation)
    # Shared objects reach handlers by parameter name.
    dispatcher["settings"] = settings
    dispatcher["clock"] = clock
    dispatcher["db"] = db
    dispatcher["renderer"] = renderer
    # What the bot learns about the staff chat as messages come (a forum: a topic per ticket).
    dispatcher["staff_forum"] = StaffForum()
    dispatcher.update.outer_middleware(DatabaseMiddleware())
    dispatcher.update.outer_middleware(PersonMiddleware(settings, renderer))
    for observer in (dispatcher.message, dispatcher.callback_query, dispatcher.edited_message):
        observer.middleware(HandlerNameMiddleware())
    # Every message and button handler gets its dialog `turn` (bot.dialogs), which knows every dialog's questions.
    dialog_turns = DialogMiddleware(build_dialogs(*(dialog for _, dialog in extra_dialogs)))
    for observer in (dispatcher.message, dispatcher.callback_query):
        observer.middleware(dialog_turns)
    dispatcher.update_observers.append(_count_update)
    dispatcher.include_router(build_routers(*(router for router, _ in extra_dialogs)))
    return dispatcher


def build_dialogs(*extra: Dialog) -> Dialogs:
    """Every dialog on the protocol (bot.dialogs), so /help, the guard and the fallback can ask its question
    again; a new dialog goes here, and its router in build_routers."""
    return Dialogs([registration.dialog, ordering.dialog, complaint.dialog, csat.comment_dialog, care.survey,
                    staff_tools.note_dialog, ticket_desk.resolve_dialog, order_desk.reason_dialog, *extra])


def build_routers(*extra: Router) -> Router:
    """Every router, in the order an update tries them: aiogram runs the first handler whose filters
    pass, so where two routers could take the same update, the one listed first gets it.

    ``extra``: more routers (the tests' own dialogs, new for each call too), after the bot's own and
    before the fallbacks.
    """
    # Each call makes new routers (aiogram gives a router one parent, and the tests and the sandbox's
    # :restart build many dispatchers in one process).
    common_routers = common.build_routers()
    profile_routers = profile.build_routers()
    root = Router(name="root")
    routers = (
        # Everywhere, first: /help and /cancel, then the guard that answers other commands in the
        # middle of a dialog by asking the dialog's question again.
        common_routers.commands,
        common_routers.guard,
        # Private chats, customers: each router takes only private chats. The care buttons and the
        # survey comment come before the ticket relay, which takes any free text of a customer with an
        # open ticket to the staff chat.
        registration.build_router(),
        profile_routers.profile,
        ordering.build_router(),
        my_orders.build_router(),
        care.build_router(),
        complaint.build_router(),
        csat.build_router(),
        ticket_relay.build_router(),
        # Any chat: /language (a person's own; an admin's in the staff chat is the chat's).
        profile_routers.language,
        # Staff (their role; in the staff chat or a private chat): orders, tickets (a reply to a card
        # or in a ticket's topic goes to its customer), staff tools.
        order_desk.build_router(),
        ticket_desk.build_router(),
        staff_tools.build_router(),
        # Free text nothing above took: a customer's starts a conversation in the staff chat, a staff
        # reply to it goes back. After the ticket relay and the ticket desk, which keep a ticket's own.
        conversations.build_router(),
        # Managers: reports (commands and their buttons only).
        reports.build_router(),
        *extra,
        # Last: nothing goes unanswered.
        common_routers.fallback,
    )
    root.include_routers(*routers)
    return root


def _count_update(_update: Any, handler: str | None, seconds: float, ok: bool) -> None:
    observe_update(handler or "unhandled", seconds, ok)


def create_app(settings: Settings, *, clock: Clock | None = None, session: BaseSession | None = None,
               extra_dialogs: Sequence[tuple[Router, Dialog]] = ()) -> App:
    """Build everything. Migrations are the caller's job (see storage.migrate).

    ``extra_dialogs``: more dialogs (with their routers, tried after the bot's own conversations);
    the tests drive a dialog of their own this way.
    """
    clock = clock or SystemClock()
    db = Database(settings.database_url)
    renderer = TextRenderer(currency=settings.currency)
    storage, isolation = build_storage(settings, db, clock)
    dispatcher = build_dispatcher(settings, clock, db, renderer, storage, isolation, extra_dialogs)
    bot = build_bot(settings, session)
    jobs = build_jobs(settings, clock, db, renderer, storage, bot)
    app = App(settings=settings, clock=clock, db=db, renderer=renderer, storage=storage,
              dispatcher=dispatcher, bot=bot, jobs=jobs)
    # Every Telegram call passes the one send path: commit first, then the pacer the outbox worker
    # uses too (built on first use, after the tests and the sandbox had their say about it).
    bot.session.middleware(SendPath(pacer=lambda: worker_for(jobs).pacer, timer=lambda: worker_for(jobs).timer,
                                    wait_for_turn=not isinstance(clock, ManualClock)))
    return app


def build_jobs(settings: Settings, clock: Clock, db: Database, renderer: TextRenderer, storage: BaseStorage,
               bot: Bot) -> JobDeps:
    """What the scheduled jobs get: never the App object."""
    return JobDeps(
        settings=settings, clock=clock, db=db, bot=bot, renderer=renderer, specs=JOBS,
        # The last check before a reminder or a win-back goes: the customer may have ordered since.
        care_checks={care_rules.KIND_REORDER: care_jobs.reordered_since,
                     care_rules.KIND_WINBACK: care_jobs.ordered_since},
        redis=getattr(storage, "redis", None),  # the rate limits share the dialog-state Redis connection
    )


async def register_commands(app: App) -> None:
    """setMyCommands per language: customers by default, staff and managers per chat.

    Managers also get their commands in the staff group (a per-member scope).
    A staff member who never opened a chat with the bot makes Telegram refuse
    their scope; that is logged and skipped, not a reason to stop the bot.
    https://core.telegram.org/bots/api#setmycommands,
    https://core.telegram.org/bots/api#botcommandscopechatmember
    """
    settings, renderer = app.settings, app.renderer

    def commands(lang: str, role: Role) -> list[BotCommand]:
        return [BotCommand(command=c.name, description=renderer.render(lang, f"commands/{c.name}.txt"))
                for c in commands_for(role)]

    async def set_for(scope: BotCommandScope, role: Role, lang: str, code: str | None) -> None:
        try:
            await app.bot.set_my_commands(commands(lang, role), scope=scope, language_code=code)
        except (TelegramBadRequest, TelegramForbiddenError) as exc:
            log.warning("could not set the %s commands for %s: %s", role.name.lower(), scope.model_dump(), exc)

    for lang in LANGUAGES:
        code = None if lang == settings.default_language else lang
        # The default scope must work: a failure here (a bad token...) stops start-up.
        await app.bot.set_my_commands(commands(lang, Role.CUSTOMER), scope=BotCommandScopeDefault(), language_code=code)
        for user_id in sorted(settings.all_staff_ids):
            role = Role.MANAGER if user_id in settings.manager_ids else Role.STAFF
            await set_for(BotCommandScopeChat(chat_id=user_id), role, lang, code)
        if settings.staff_chat_id is not None:
            await set_for(BotCommandScopeChat(chat_id=settings.staff_chat_id), Role.STAFF, lang, code)
            for user_id in sorted(settings.manager_ids):
                await set_for(BotCommandScopeChatMember(chat_id=settings.staff_chat_id, user_id=user_id),
                              Role.MANAGER, lang, code)
