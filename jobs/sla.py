"""``watch_tickets``, every minute: response targets and auto-closing.

* At ``SLA_WARN_RATIO`` of a target, a reminder goes to the assignee's
  private chat, in the language they chose there (or the staff chat, in its
  language, replying to the card, when nobody took the ticket).
* Past a target, the managers are told — once per ticket and target — and the
  ticket is marked breached for the reports.
* A resolved ticket the customer did not answer for ``TICKET_AUTOCLOSE_DAYS``
  is closed, and the customer told (after their quiet hours).

Reminders and escalations outside ``BUSINESS_HOURS`` wait for the opening,
unless the ticket's priority is in ``AFTER_HOURS_PRIORITIES`` (by default high).

Everything goes through the outbox, in this run's transaction, with dedupe
keys ``sla:<ticket>:<first|resolution>:<warn|breach>[:<manager>]`` and
``autoclose:<ticket>``, so a run repeated after a crash sends nothing twice.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.rules import care as care_rules
from bot.rules import tickets as rules
from bot.services.tickets import (
    CsatCallback,
    customer_texts,
    notify_managers,
    refresh_card,
    staff_chat_route,
    staff_chat_texts,
    staff_notice_time,
)
from bot.staff_language import member_languages
from bot.texts import Texts
from jobs.context import JobContext, job
from storage.models import Ticket
from storage.repositories import Repos

log = logging.getLogger(__name__)


@job("watch_tickets", every=timedelta(minutes=1), misfire_grace_time=120)
async def watch_tickets(ctx: JobContext) -> None:
    settings = ctx.settings
    renderer = ctx.renderer
    now = ctx.now
    async with ctx.db.session() as session:
        repos = Repos(session)
        texts = await staff_chat_texts(repos, renderer, settings)
        tickets = await repos.tickets.open_tickets()
        done = await repos.tickets.sla_events([t.id for t in tickets])
        customers = await repos.tickets.customers({t.customer_id for t in tickets})
        for ticket in tickets:
            for check in rules.running_checks(ticket, now, settings.sla):
                level = check.level(settings.sla_warn_ratio)
                if level == "breach" and (ticket.id, "sla_breach", check.target) not in done:
                    await _escalate(repos, ctx, ticket, check, customers.get(ticket.customer_id))
                elif level == "warn" and (ticket.id, "sla_warning", check.target) not in done:
                    await _remind(repos, ctx, ticket, check, customers.get(ticket.customer_id), texts)
        closed = await _autoclose(repos, ctx)
        await repos.commit()
    if closed:
        await _refresh_cards(ctx, closed)


async def _refresh_cards(ctx: JobContext, ticket_ids: list[int]) -> None:
    """Show "closed" on the staff-chat cards (an edit, not a message: best effort, after the commit)."""
    async with ctx.db.session() as session:
        repos = Repos(session)
        for ticket_id in ticket_ids:
            ticket = await repos.tickets.get(ticket_id)
            if ticket is not None:
                await refresh_card(ctx.bot, repos, ctx.renderer, ctx.settings, ticket, ctx.now)


async def _remind(repos: Repos, ctx: JobContext, ticket: Ticket, check: rules.Check, customer,  # type: ignore[no-untyped-def]
                  texts: Texts) -> None:
    """``texts``: the staff chat's; a reminder in the assignee's private chat is in the language they chose."""
    settings = ctx.settings
    options = None
    group_texts = texts
    facts = dict(ticket=ticket, customer=customer, target=check.target, minutes=check.minutes,
                 left=max(check.minutes - check.elapsed, 0), assigned=ticket.assignee_telegram_id is not None,
                 unreachable=None)
    if ticket.assignee_telegram_id is not None:
        chat_id = ticket.assignee_telegram_id
        if settings.staff_chat_id is not None:
            # The assignee may never have opened a private chat with the bot (Telegram then
            # answers 403): the reminder goes to the staff chat instead, naming them.
            # https://core.telegram.org/bots#how-are-bots-different-from-users
            options = {"fallback": {
                "chat_id": settings.staff_chat_id, "options": staff_chat_route(ticket, settings),
                "text": group_texts("tickets/sla_warning", **{**facts, "unreachable": ticket.assignee_name or "—"}),
            }}
        languages = await member_languages(repos, settings, [chat_id])
        texts = ctx.renderer.for_language(languages[chat_id])
    elif settings.staff_chat_id is not None:
        chat_id = settings.staff_chat_id
        options = staff_chat_route(ticket, settings) or None
    else:
        return
    text = texts("tickets/sla_warning", **facts)
    written = await repos.outbox.enqueue(
        dedupe_key=f"sla:{ticket.id}:{check.target}:warn", kind="sla_warning", chat_id=chat_id, text=text,
        now=ctx.now, category="service", options=options, ref_ticket_id=ticket.id,
        not_before=staff_notice_time(settings, ticket, ctx.now),
    )
    if written:
        await repos.tickets.add_event(ticket, "sla_warning", rules.SYSTEM, ctx.now, detail=check.target)


async def _escalate(repos: Repos, ctx: JobContext, ticket: Ticket, check: rules.Check, customer) -> None:  # type: ignore[no-untyped-def]
    if check.target == "first":
        ticket.first_response_breached = True
    else:
        ticket.resolution_breached = True

    def render(texts: Texts) -> str:  # each manager reads it in their language
        return texts("tickets/sla_breach", ticket=ticket, customer=customer, target=check.target,
                     minutes=check.minutes, over=check.elapsed - check.minutes)

    await notify_managers(repos, ctx.renderer, ctx.settings, ticket, now=ctx.now,
                          key=f"sla:{ticket.id}:{check.target}:breach", kind="sla_breach", render=render)
    await repos.tickets.add_event(ticket, "sla_breach", rules.SYSTEM, ctx.now, detail=check.target)


async def _autoclose(repos: Repos, ctx: JobContext) -> list[int]:
    settings = ctx.settings
    cutoff = ctx.now - timedelta(days=settings.ticket_autoclose_days)
    closed = []
    for ticket in await repos.tickets.resolved_before(cutoff):
        await repos.tickets.transition(ticket, "closed", rules.SYSTEM, ctx.now, settings.sla,
                                       detail="no answer")
        closed.append(ticket.id)
        customer = await repos.customers.get(ticket.customer_id)
        if customer is None or customer.telegram_id is None:
            continue
        texts = customer_texts(ctx.renderer, customer)
        markup = None
        if rules.can_reopen(ticket, ctx.now, settings.sla):
            builder = InlineKeyboardBuilder()
            builder.button(text=texts.button("csat_not_solved"),
                           callback_data=CsatCallback(action="notsolved", ticket=ticket.id))
            markup = builder.as_markup().model_dump(exclude_none=True)
        reopen_until = ticket.resolved_at + timedelta(days=settings.ticket_reopen_days) if ticket.resolved_at else None
        # Not a reply to anything the customer did: it waits for their quiet hours to end.
        tz = care_rules.zone(customer.timezone, settings.default_timezone)
        not_before = care_rules.quiet_hours_end(ctx.now, tz, settings.quiet_hours_start, settings.quiet_hours_end)
        await repos.outbox.enqueue(
            dedupe_key=f"autoclose:{ticket.id}" + (f":r{ticket.reopen_count}" if ticket.reopen_count else ""),
            kind="ticket_closed", chat_id=customer.telegram_id, customer_id=customer.id, category="service",
            text=texts("tickets/autoclosed", ticket=ticket, reopen=markup is not None, until=reopen_until,
                       tz=customer.timezone or settings.default_timezone),
            now=ctx.now, reply_markup=markup, ref_ticket_id=ticket.id, not_before=not_before,
        )
    return closed
