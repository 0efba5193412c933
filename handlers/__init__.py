"""One router per conversation, assembled in the order updates try them.

Common commands (/help, /cancel) first, then the guard that stops other
commands in the middle of a dialog, then every feature, then the fallbacks
that make sure nothing goes unanswered.
"""

from __future__ import annotations

from aiogram import Router

from bot.dialogs import Dialog, Dialogs
from handlers import common, profile, registration
from handlers import my_orders, order_desk, ordering
from handlers import complaint, csat, staff_tools, ticket_desk, ticket_relay
from handlers import reports
from handlers import care, conversations

# Feature routers in order; add a new conversation here.
FEATURE_ROUTERS: list[Router] = [
    registration.router,
    profile.router,
    profile.language_router,
    # Orders: the /order dialog, /orders, and the staff order desk.
    ordering.router,
    my_orders.router,
    order_desk.router,
    # Care messages' buttons and the survey comment (before the ticket relay takes free text).
    care.router,
    # Complaints and the service desk; the relay of a customer's free text
    # to their open ticket goes last.
    complaint.router,
    csat.router,
    ticket_desk.router,
    staff_tools.router,
    ticket_relay.router,
    # Free text outside a dialog with no open ticket: a conversation in the staff chat.
    conversations.router,
    # Manager reports (commands and their buttons only).
    reports.router,
]


def _attach(parent: Router, child: Router) -> None:
    # Routers are module-level (handlers register by decorator), but the tests
    # and the sandbox's :restart build many dispatchers in one process, and
    # aiogram lets a router have one parent: release it from the discarded one.
    old = child.parent_router
    if old is not None:
        old.sub_routers.remove(child)
        child._parent_router = None  # noqa: SLF001
    parent.include_router(child)


def build_dialogs(*extra: Dialog) -> Dialogs:
    """Every dialog on the protocol (bot.dialogs), so /help, the guard and the fallback can ask its question
    again; add a new dialog here (and its router to FEATURE_ROUTERS)."""
    return Dialogs([registration.dialog, ordering.dialog, complaint.dialog, staff_tools.note_dialog, *extra])


def build_root_router(*extra: Router) -> Router:
    """``extra``: more feature routers, after the bot's own and before the fallbacks."""
    root = Router(name="root")
    for router in (common.commands_router, common.guard_router, *FEATURE_ROUTERS, *extra, common.fallback_router):
        _attach(root, router)
    return root
