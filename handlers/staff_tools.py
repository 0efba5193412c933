"""Staff commands, in the staff chat or in private: /tickets, /ticket N,
/customer TEXT and /note. Customers can use none of them (the commands fall
through to "unknown command" for them).
"""

from __future__ import annotations

from typing import Any

from aiogram import Router
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, ForceReply, Message, User
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot import prediction
from bot.callback_ids import RowId
from bot.clock import Clock
from bot.config import Settings
from bot.dialogs import TYPED, Dialog, Turn
from bot.roles import HasRole, InStaffPlace, Role
from bot.rules import tickets as rules
from bot.rules.customer_file import Invalid
from bot.rules.text_units import utf16_len
from bot.services.tickets import StaffForum, card_context, card_markup, learn_forum
from bot.texts import Texts
from storage.models import Customer
from storage.repositories import Repos


def build_router() -> Router:
    """A new router with this module's handlers, tried in this order (bot.app.build_routers places it)."""
    router = Router(name="staff-tools")
    router.message.filter(HasRole(Role.STAFF))
    # Buttons pressed in another group (forged data) are expired buttons there.
    router.callback_query.filter(HasRole(Role.STAFF), InStaffPlace())
    router.message.register(elsewhere, Command(*STAFF_COMMANDS), ~InStaffPlace())
    router.message.register(list_tickets, Command("tickets"))
    router.message.register(show_ticket, Command("ticket"))
    router.message.register(find_customer, Command("customer"))
    router.callback_query.register(customer_button, CustomerCallback.filter())
    router.message.register(process_note, StateFilter(NoteForm.text), TYPED)
    router.message.register(note_command, Command("note"))
    return router


STAFF_COMMANDS = ("tickets", "ticket", "customer", "note")

LIST_LIMIT = 40  # tickets in one /tickets message
MATCH_LIMIT = 8  # customers offered by /customer
# UTF-16 units of history per message (Telegram allows 4096: https://core.telegram.org/bots/api#sendmessage)
CHUNK = 3800


class NoteForm(StatesGroup):
    text = State()


class CustomerCallback(CallbackData, prefix="cust"):
    action: str  # open | note
    customer: RowId


async def elsewhere(message: Message, texts: Texts) -> None:
    """In a group that is not the staff group, staff tools say where they work, and show nothing."""
    await message.answer(texts("tickets/wrong_chat"))


# ----- /tickets -----------------------------------------------------------------------

async def list_tickets(message: Message, repos: Repos, clock: Clock, settings: Settings, texts: Texts,
                       staff_forum: StaffForum | None = None) -> None:
    learn_forum(staff_forum, message.chat, settings)
    now = clock.now()
    tickets = await repos.tickets.open_tickets()
    customers = await repos.tickets.customers({t.customer_id for t in tickets})
    rows = [(t, rules.sla_state(t, now, settings.sla)) for t in tickets]
    far = now.replace(year=now.year + 100)
    # Due soonest first; paused tickets (waiting for the customer) last.
    rows.sort(key=lambda r: (r[1].due_at is None, r[1].due_at or far, rules.PRIORITY_ORDER[r[0].priority], r[0].id))
    shown = rows[:LIST_LIMIT]
    await message.answer(texts(
        "tickets/list", rows=[(t, s, customers.get(t.customer_id)) for t, s in shown],
        more=len(rows) - len(shown), total=len(rows), tz=settings.default_timezone,
    ))


# ----- /ticket N -------------------------------------------------------------------------

async def show_ticket(message: Message, command: CommandObject, repos: Repos, clock: Clock, settings: Settings,
                      texts: Texts) -> None:
    number = rules.parse_ticket_number(command.args or "")
    if number is None:
        await message.answer(texts("tickets/ticket_usage"))
        return
    ticket = await repos.tickets.get(number)
    if ticket is None:
        await message.answer(texts("tickets/ticket_not_found", number=number))
        return
    now = clock.now()
    context = await card_context(repos, ticket, settings, now)
    await message.answer(texts("tickets/detail", **context), reply_markup=card_markup(texts, ticket))
    entries: list[tuple[str, Any, Any]] = [("event", e.created_at, e) for e in await repos.tickets.events(ticket.id)]
    entries += [("message", m.created_at, m) for m in await repos.tickets.messages(ticket.id)]
    if ticket.resolution_note:
        entries.append(("note", ticket.resolved_at or ticket.updated_at, ticket))
    if ticket.rating_comment:
        entries.append(("comment", ticket.rated_at or ticket.updated_at, ticket))
    order = {"event": 0, "message": 1, "note": 2, "comment": 3}
    entries.sort(key=lambda e: (e[1], order[e[0]], getattr(e[2], "id", 0)))
    entries.insert(0, ("description", ticket.created_at, ticket))
    tz = settings.default_timezone
    chunks = _chunks([(kind, item) for kind, _, item in entries],
                     lambda entry: utf16_len(texts("tickets/history_entry", kind=entry[0], item=entry[1], tz=tz)) + 2)
    for part, chunk in enumerate(chunks, start=1):
        await message.answer(texts("tickets/history", ticket=ticket, entries=chunk, part=part, parts=len(chunks),
                                   tz=tz))


# ----- /customer TEXT ------------------------------------------------------------------------

async def show_customer(message: Message, customer: Customer, *, texts: Texts, repos: Repos, settings: Settings,
                        clock: Clock) -> None:
    """The customer file: details, recent orders and complaints; then the staff notes (in as many messages
    as they need)."""
    tz = settings.default_timezone
    notes = await repos.customers.notes(customer.id)
    outlook = await prediction.for_customer(repos.session, settings, clock.now(), customer.id)
    builder = InlineKeyboardBuilder()
    builder.button(text=texts.button("customer_add_note"),
                   callback_data=CustomerCallback(action="note", customer=customer.id))
    await message.answer(
        texts("tickets/customer_file", customer=customer, notes_count=len(notes),
              orders=await repos.tickets.recent_orders(customer.id, 5),
              tickets=await repos.tickets.for_customer(customer.id, 5), tz=tz, outlook=outlook),
        reply_markup=builder.as_markup(),
    )
    chunks = _chunks(notes, lambda note: utf16_len(note.text) + utf16_len(note.author_name) + 40)
    for part, chunk in enumerate(chunks, start=1):
        if chunk:
            await message.answer(texts("tickets/customer_notes", customer=customer, notes=chunk, part=part,
                                       parts=len(chunks), tz=tz))


def _chunks(items: list[Any], size_of: Any) -> list[list[Any]]:
    """Consecutive groups of items whose sizes add up to at most CHUNK (one item alone may be bigger)."""
    chunks: list[list[Any]] = [[]]
    size = 0
    for item in items:
        length = size_of(item)
        if chunks[-1] and size + length > CHUNK:
            chunks.append([])
            size = 0
        chunks[-1].append(item)
        size += length
    return chunks


async def find_customer(message: Message, command: CommandObject, texts: Texts, repos: Repos, settings: Settings,
                        clock: Clock) -> None:
    query = (command.args or "").strip()
    if not query:
        await message.answer(texts("tickets/customer_usage"))
        return
    found = await repos.customers.search(query, limit=MATCH_LIMIT + 1)
    if not found:
        await message.answer(texts("tickets/customer_none", query=query))
        return
    if len(found) == 1:
        await show_customer(message, found[0], texts=texts, repos=repos, settings=settings, clock=clock)
        return
    builder = InlineKeyboardBuilder()
    for customer in found[:MATCH_LIMIT]:
        builder.button(text=texts.button("customer_open", customer=customer),
                       callback_data=CustomerCallback(action="open", customer=customer.id))
    builder.adjust(1)
    await message.answer(texts("tickets/customer_matches", query=query, customers=found[:MATCH_LIMIT],
                               more=len(found) > MATCH_LIMIT),
                         reply_markup=builder.as_markup())


async def customer_button(callback: CallbackQuery, callback_data: CustomerCallback, turn: Turn, texts: Texts,
                          repos: Repos, settings: Settings, clock: Clock) -> None:
    customer = await repos.customers.get(callback_data.customer)
    if customer is None or customer.is_forgotten or not isinstance(callback.message, Message):
        await turn.expired(callback)
        return
    if callback_data.action == "open":
        await callback.answer()
        await show_customer(callback.message, customer, texts=texts, repos=repos, settings=settings, clock=clock)
    elif callback_data.action == "note":
        message = await turn.start_by_button(callback)
        if message is not None:
            await turn.begin(message, note_customer=customer.id)
            await turn.ask(message, NoteForm.text)
    else:
        await turn.expired(callback)


# ----- /note ---------------------------------------------------------------------------------------

async def ask_note(message: Message, texts: Texts, repos: Repos, turn: Turn,
                   event_from_user: User | None = None) -> None:
    customer_id = (await turn.state.get_data()).get("note_customer")
    customer = await repos.customers.get(int(customer_id or 0))
    user = event_from_user
    await message.answer(
        texts("tickets/ask_note", customer=customer, limit=rules.NOTE_MAX, user_id=user.id if user else 0,
              name=user.full_name if user else ""),
        reply_markup=ForceReply(selective=True),
    )


# A staff note on a customer file, from the file's "Add a note" button: one question.
note_dialog = Dialog(NoteForm, prefix="note", ask={NoteForm.text: ask_note}, errors="tickets/errors")


async def _save_note(message: Message, customer: Customer, text: str, *, texts: Texts, repos: Repos,
                     clock: Clock) -> None:
    assert message.from_user is not None
    note = await repos.customers.add_note(customer, message.from_user.id, message.from_user.full_name[:64],
                                          text, clock.now())
    await message.answer(texts("tickets/note_saved", customer=customer, note=note))


async def process_note(message: Message, turn: Turn, texts: Texts, repos: Repos, clock: Clock) -> None:
    try:
        text = rules.parse_note(message.text or "")
    except Invalid as error:
        await turn.reject(message, error)
        return
    customer_id = (await turn.state.get_data()).get("note_customer")
    await turn.end()
    customer = await repos.customers.get(int(customer_id or 0))
    if customer is None or customer.is_forgotten:
        await message.answer(texts("tickets/customer_gone"))
        return
    await _save_note(message, customer, text, texts=texts, repos=repos, clock=clock)


async def note_command(message: Message, command: CommandObject, texts: Texts, repos: Repos, clock: Clock) -> None:
    """``/note N TEXT`` (N = customer number), or ``/note TEXT`` replying to a ticket's message."""
    args = (command.args or "").strip()
    customer: Customer | None = None
    text = args
    reply = message.reply_to_message
    if reply is not None:
        ticket = await repos.tickets.by_staff_message(message.chat.id, reply.message_id)
        if ticket is None and message.is_topic_message and message.message_thread_id:
            ticket = await repos.tickets.by_thread(message.chat.id, message.message_thread_id)
        if ticket is not None:
            customer = await repos.customers.get(ticket.customer_id)
    if customer is None:
        head, _, rest = args.partition(" ")
        if head.lstrip("#").isdigit():
            customer = await repos.customers.get(int(head.lstrip("#")))
            text = rest
            if customer is None or customer.is_forgotten:
                await message.answer(texts("tickets/customer_not_found", number=head.lstrip("#")))
                return
    if customer is None:
        await message.answer(texts("tickets/note_usage"))
        return
    if customer.is_forgotten:
        await message.answer(texts("tickets/customer_gone"))
        return
    try:
        text = rules.parse_note(text)
    except Invalid as error:
        await message.answer(texts(f"tickets/errors/{error.code}", **error.params))
        await message.answer(texts("tickets/note_usage"))
        return
    await _save_note(message, customer, text, texts=texts, repos=repos, clock=clock)
