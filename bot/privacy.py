"""Everything stored about a customer (``/mydata``) and forgetting it (``/forget``).

Each part of the product that stores something about a customer is listed in
:data:`COLLECTORS` (a JSON-ready dict of it) and :data:`FORGETTERS` (erase or
anonymise its rows): a new table with customer data adds its two here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import Any, NamedTuple

from storage.models import Customer
from storage.repositories import Repos
from storage.repositories.conversations import ConversationRepo
from storage.repositories.privacy import PrivacyRepo, ShownMessage

Collector = Callable[[Repos, Customer], Awaitable[dict[str, Any]]]
Forgetter = Callable[[Repos, Customer, datetime], Awaitable[None]]


class StaffEdit(NamedTuple):
    """What a staff-chat message that showed a forgotten customer becomes: its text, and its buttons
    (``reply_markup`` as stored in the outbox; None: no buttons)."""

    text: str
    reply_markup: dict[str, Any] | None = None


# Words the edit of one such message (in its chat's language; an order's card keeps the order).
StaffEditFor = Callable[[ShownMessage], Awaitable[StaffEdit]]


def _jsonable(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


async def _customer_file(repos: Repos, customer: Customer) -> dict[str, Any]:
    fields = (
        "name", "phone", "birthday", "address", "household_size", "preferences", "language",
        "timezone", "care_consent", "care_consent_changed_at", "registered_at", "updated_at",
    )
    notes = await repos.customers.notes(customer.id)
    return {
        "customer": {f: _jsonable(getattr(customer, f)) for f in fields},
        "staff_notes": [{"text": n.text, "by": n.author_name, "at": n.created_at.isoformat()} for n in notes],
    }



async def _tickets(repos: Repos, customer: Customer) -> dict[str, Any]:
    """Complaints: what the customer wrote, what staff answered, ratings."""
    return {"complaints": await repos.tickets.export_customer(customer.id)}


async def _forget_tickets(repos: Repos, customer: Customer, now: datetime) -> None:
    """Tickets stay (anonymised) for the reports; their texts go; open ones are closed."""
    await repos.tickets.anonymise_customer(customer.id, now)



async def _orders(repos: Repos, customer: Customer) -> dict[str, Any]:
    """Orders with their items, prices and status history."""
    return {"orders": await repos.orders.export_customer(customer.id)}


async def _forget_orders(repos: Repos, customer: Customer, now: datetime) -> None:
    """Orders stay for the reports; their delivery addresses and notes go."""
    await repos.orders.anonymise_customer(customer.id)


async def _care(repos: Repos, customer: Customer) -> dict[str, Any]:
    """Care reminders they stopped or snoozed, and their ratings of orders."""
    stops = await repos.care.stops_of(customer.id)
    answers = await repos.care.answers_of(customer.id)
    return {
        "care_reminders": [
            {"product_id": s.product_id, "choice": s.kind, "until": s.until.isoformat() if s.until else None,
             "at": s.created_at.isoformat()} for s in stops
        ],
        "order_ratings": [
            {"order_id": a.order_id, "rating": a.rating, "comment": a.comment, "at": a.created_at.isoformat()}
            for a in answers
        ],
    }


async def _forget_care(repos: Repos, customer: Customer, now: datetime) -> None:
    await repos.care.forget(customer.id)


async def _conversations(repos: Repos, customer: Customer) -> dict[str, Any]:
    """Conversations with staff outside a complaint."""
    return {"conversations": await ConversationRepo(repos.session).export_customer(customer.id)}


async def _forget_conversations(repos: Repos, customer: Customer, now: datetime) -> None:
    await ConversationRepo(repos.session).forget_customer(customer.id)


# Everything about a customer: /mydata shows what these collect, in this order; /forget runs these
# forgetters, then erases the customer file itself.
COLLECTORS: tuple[Collector, ...] = (_customer_file, _tickets, _orders, _care, _conversations)
FORGETTERS: tuple[Forgetter, ...] = (_forget_tickets, _forget_orders, _forget_care, _forget_conversations)


async def collect(repos: Repos, customer: Customer) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for collector in COLLECTORS:
        document.update(await collector(repos, customer))
    return document


async def forget(repos: Repos, customer: Customer, now: datetime,
                 staff_text: str | StaffEditFor | None = None) -> None:
    """Run every part's forgetter, then erase the customer file itself.

    Then nothing about the customer is left: the outbox keeps no text and no
    chat id of theirs, order histories no name, and every message in a staff
    chat that showed them (cards, relayed messages, notices) is edited through
    the outbox, paced like any other message: to ``staff_text`` ("(forgotten
    customer)"), or to what ``staff_text(message)`` makes of it, called once
    everything is erased (an order's card: the order without the customer).
    """
    privacy = PrivacyRepo(repos.session)
    telegram_id = customer.telegram_id
    shown = await privacy.shown_in_staff_chats(customer.id, telegram_id)
    for forgetter in FORGETTERS:
        await forgetter(repos, customer, now)
    await repos.outbox.skip_pending_care(customer.id, "forgotten")
    await privacy.erase_outbox(customer.id, telegram_id)
    await privacy.erase_order_actors(customer.id)
    await repos.customers.forget(customer, now)
    if staff_text:
        for message in shown:
            edit = StaffEdit(staff_text) if isinstance(staff_text, str) else await staff_text(message)
            await repos.outbox.enqueue(
                dedupe_key=f"forgotten:{message.chat_id}:{message.message_id}", kind="forgotten_edit",
                chat_id=message.chat_id, text=edit.text, now=now, reply_markup=edit.reply_markup,
                options={"edit_message_id": message.message_id, "caption": message.caption})
