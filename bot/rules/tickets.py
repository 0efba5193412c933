"""The rules of a ticket: its lifecycle, priority and response-target clock.

Lifecycle::

    new ──Take──▶ taken ──staff reply──▶ waiting_customer ◀──▶ in_progress
     │              │                          │                   │
     └──────────────┴──────────Resolve─────────┴───────────────────┘
                                  ▼
                              resolved ──rating / no answer in N days──▶ closed
                                  │                                        │
                                  └───── "not solved" within N days ◀──────┘
                                              (back to in_progress)

A delivered staff reply puts the ticket in ``waiting_customer``; the
customer's next message puts it back ``in_progress``. Time spent waiting for
the customer, and time between a resolution and a reopening, is *paused*: it
does not count toward the resolution target. Pauses start only after the
first response, so the first-response clock never pauses.

Everything here works on a ticket in memory (anything with the fields of
:class:`TicketTimes`; the repository passes its rows) and takes the time and
the targets (:class:`SlaPolicy`, plain values built from the settings) as
arguments; the repository stores the events.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bot.rules.customer_file import Invalid
from bot.rules.sla import Schedule, counted_minutes, due_after
from bot.rules.text_units import utf16_len

CATEGORIES = ("quality", "delivery", "staff", "billing", "other")
PRIORITIES = ("high", "normal", "low")
PRIORITY_ORDER = {p: i for i, p in enumerate(PRIORITIES)}
OPEN_STATUSES = ("new", "taken", "in_progress", "waiting_customer")
DONE_STATUSES = ("resolved", "closed")

# The allowed moves; closing an open ticket is only done by the system
# (the customer asked to be forgotten).
TRANSITIONS: dict[str, frozenset[str]] = {
    "new": frozenset({"taken", "in_progress", "waiting_customer", "resolved", "closed"}),
    "taken": frozenset({"in_progress", "waiting_customer", "resolved", "closed"}),
    "in_progress": frozenset({"waiting_customer", "resolved", "closed"}),
    "waiting_customer": frozenset({"in_progress", "resolved", "closed"}),
    "resolved": frozenset({"closed", "in_progress"}),
    "closed": frozenset({"in_progress"}),
}

# Priority by category; a valuable customer, or one already waiting on
# another complaint, is always high. A late delivery leaves a household
# without its rice or water today, so it starts high too.
CATEGORY_PRIORITY = {
    "quality": "normal",
    "delivery": "high",
    "staff": "normal",
    "billing": "normal",
    "other": "low",
}
RECENT_COMPLAINT_DAYS = 30  # "a recent unresolved complaint" looks this far back
TOP_CLASS_MONTHS = 12  # revenue class over this many months

DESCRIPTION_MAX = 3500
NOTE_MAX = 1000  # resolution notes, staff notes
COMMENT_MAX = 1000  # satisfaction comments
PHOTOS_MAX = 5
LOW_RATING = 2  # a rating at or below this alerts the managers
CONFIRMING_RATING = 3  # a rating at or above this confirms the resolution (closes)


class TransitionError(ValueError):
    def __init__(self, from_status: str, to_status: str) -> None:
        super().__init__(f"{from_status} → {to_status} is not allowed")
        self.from_status = from_status
        self.to_status = to_status


@dataclass(frozen=True)
class Actor:
    """Who did something (in a ticket's or an order's history): a customer, a staff member, or the system."""

    role: str  # customer | staff | system
    telegram_id: int | None = None
    name: str | None = None


SYSTEM = Actor("system")


@dataclass(frozen=True)
class Targets:
    first_response: int  # minutes
    resolution: int


@dataclass(frozen=True)
class SlaPolicy:
    """The response targets of each priority and the clock they run on (``Settings.sla`` builds it)."""

    targets: Mapping[str, Targets]  # by priority
    warn_ratio: float  # a reminder at this share of a target (SLA_WARN_RATIO)
    reopen_days: int  # a resolved ticket may be reopened this long (TICKET_REOPEN_DAYS)
    schedule: Schedule | None = None  # BUSINESS_HOURS; None: around the clock


class TicketTimes(Protocol):
    """The fields of a ticket these rules read and write (``storage.models.Ticket`` has them)."""

    status: str
    priority: str
    created_at: datetime
    updated_at: datetime
    taken_at: datetime | None
    first_response_at: datetime | None
    first_response_minutes: float | None
    first_response_breached: bool | None
    first_response_due_at: datetime | None
    resolution_due_at: datetime | None
    resolution_minutes: float | None
    resolution_breached: bool | None
    waiting_since: datetime | None
    waiting_minutes: float | None
    resolved_at: datetime | None
    closed_at: datetime | None
    reopen_count: int | None


def targets(priority: str, policy: SlaPolicy) -> Targets:
    return policy.targets.get(priority) or policy.targets["normal"]


def priority_for(category: str, *, top_customer: bool, recent_unresolved: bool,
                 top_percent: int | None = None) -> tuple[str, list[str]]:
    """The priority of a new ticket and why (reason codes for the staff card).

    ``top_customer``: class A by revenue, counted only once the shop has the history
    for it (:func:`enough_history`); ``top_percent``: the share of customers at or
    ahead of them (the reason reads "top 20 % customer by spend").
    """
    reasons: list[str] = []
    if top_customer:
        reasons.append(f"top_customer:{top_percent}" if top_percent else "top_customer")
    if recent_unresolved:
        reasons.append("recent_unresolved")
    if reasons:
        return "high", reasons
    return CATEGORY_PRIORITY.get(category, "normal"), reasons


def enough_history(customers: int, orders: int, *, min_customers: int, min_orders: int) -> bool:
    """Value classes mean something only with enough customers and orders behind them."""
    return customers >= min_customers and orders >= min_orders


def top_percent(at_or_ahead: int, customers: int) -> int:
    """"Top N %": the share of customers at or ahead of this one, rounded up to 5 % (at least 1 %)."""
    if customers <= 0:
        return 100
    share = 100.0 * at_or_ahead / customers
    if share <= 1:
        return 1
    return min(100, int(-(-share // 5) * 5))


def priority_reasons(detail: str | None) -> list[tuple[str, int | None]]:
    """Reason codes as stored (``top_customer:20,recent_unresolved``) → [(code, percent)]."""
    out: list[tuple[str, int | None]] = []
    for part in (detail or "").split(","):
        code, _, value = part.strip().partition(":")
        if code:
            out.append((code, int(value) if value.isdigit() else None))
    return out


# ----- what people type --------------------------------------------------------

def _too_long(code: str, limit: int, value: str) -> Invalid:
    """The error for a text over ``limit`` UTF-16 units; ``wide`` when emoji made it count more than it shows."""
    length = utf16_len(value)
    params: dict[str, object] = {"limit": limit, "length": length}
    if length != len(value):
        params["wide"] = True
    return Invalid(code, **params)


def parse_description(text: str) -> str:
    value = (text or "").strip()
    if not value:
        raise Invalid("description_empty")
    if utf16_len(value) > DESCRIPTION_MAX:  # counted as Telegram counts (an emoji is 2)
        raise _too_long("description_too_long", DESCRIPTION_MAX, value)
    return value


def parse_note(text: str) -> str:
    value = (text or "").strip()
    if not value:
        raise Invalid("note_empty")
    if utf16_len(value) > NOTE_MAX:
        raise _too_long("note_too_long", NOTE_MAX, value)
    return value


def parse_comment(text: str) -> str:
    value = (text or "").strip()
    if not value:
        raise Invalid("comment_empty")
    if utf16_len(value) > COMMENT_MAX:
        raise _too_long("comment_too_long", COMMENT_MAX, value)
    return value


_NUMBER = re.compile(r"^#?\s*(\d{1,9})$")


def parse_ticket_number(text: str) -> int | None:
    match = _NUMBER.match((text or "").strip())
    return int(match.group(1)) if match else None


# ----- the clock ------------------------------------------------------------------

def _paused_now(ticket: TicketTimes, now: datetime, schedule: Schedule | None) -> float:
    """Counted minutes paused so far, including a pause still running."""
    paused = ticket.waiting_minutes or 0.0
    if ticket.waiting_since is not None:
        paused += counted_minutes(ticket.waiting_since, now, schedule)
    return paused


def first_response_elapsed(ticket: TicketTimes, now: datetime, schedule: Schedule | None) -> float:
    end = ticket.first_response_at or now
    return counted_minutes(ticket.created_at, end, schedule)


def resolution_elapsed(ticket: TicketTimes, now: datetime, schedule: Schedule | None) -> float:
    end = ticket.resolved_at if ticket.status in DONE_STATUSES and ticket.resolved_at else now
    total = counted_minutes(ticket.created_at, end, schedule) - _paused_now(ticket, end, schedule)
    return max(total, 0.0)


def refresh_due(ticket: TicketTimes, policy: SlaPolicy, now: datetime) -> None:
    """Due moments for both targets, as if the clock keeps running from now."""
    schedule = policy.schedule
    t = targets(ticket.priority, policy)
    ticket.first_response_due_at = due_after(ticket.created_at, t.first_response, schedule)
    ticket.resolution_due_at = due_after(
        ticket.created_at, t.resolution + _paused_now(ticket, now, schedule), schedule
    )


def _unpause(ticket: TicketTimes, now: datetime, schedule: Schedule | None) -> None:
    if ticket.waiting_since is not None:
        ticket.waiting_minutes = (ticket.waiting_minutes or 0.0) + counted_minutes(ticket.waiting_since, now, schedule)
        ticket.waiting_since = None


def record_first_response(ticket: TicketTimes, now: datetime, policy: SlaPolicy) -> bool:
    """The first answer the customer got; False if there was one already."""
    if ticket.first_response_at is not None:
        return False
    minutes = first_response_elapsed(ticket, now, policy.schedule)
    ticket.first_response_at = now
    ticket.first_response_minutes = round(minutes, 2)
    target = targets(ticket.priority, policy).first_response
    ticket.first_response_breached = bool(ticket.first_response_breached) or minutes > target
    return True


def change_status(ticket: TicketTimes, to: str, now: datetime, policy: SlaPolicy) -> str:
    """Move the ticket and keep its clock right; returns the old status."""
    schedule = policy.schedule
    old = ticket.status
    if to not in TRANSITIONS.get(old, frozenset()):
        raise TransitionError(old, to)
    if old == "waiting_customer":
        _unpause(ticket, now, schedule)
    if old in DONE_STATUSES and to in OPEN_STATUSES:  # reopened
        if ticket.resolved_at is not None:
            waited = counted_minutes(ticket.resolved_at, now, schedule)
            ticket.waiting_minutes = (ticket.waiting_minutes or 0.0) + waited
        ticket.resolved_at = None
        ticket.closed_at = None
        ticket.resolution_minutes = None
        if not ticket.resolution_breached:
            ticket.resolution_breached = None
        ticket.reopen_count = (ticket.reopen_count or 0) + 1
    if to == "taken" and ticket.taken_at is None:
        ticket.taken_at = now
    if to == "waiting_customer":
        ticket.waiting_since = now
    if to == "resolved":
        record_first_response(ticket, now, policy)
        ticket.status = to  # resolution_elapsed reads the status
        ticket.resolved_at = now
        minutes = resolution_elapsed(ticket, now, schedule)
        ticket.resolution_minutes = round(minutes, 2)
        target = targets(ticket.priority, policy).resolution
        ticket.resolution_breached = bool(ticket.resolution_breached) or minutes > target
    if to == "closed":
        _unpause(ticket, now, schedule)
        ticket.closed_at = now
    ticket.status = to
    ticket.updated_at = now
    refresh_due(ticket, policy, now)
    return old


def can_reopen(ticket: TicketTimes, now: datetime, policy: SlaPolicy) -> bool:
    if ticket.status not in DONE_STATUSES or ticket.resolved_at is None:
        return False
    return (now - ticket.resolved_at).total_seconds() <= policy.reopen_days * 86400


# ----- where a ticket stands against its targets ------------------------------------

@dataclass(frozen=True)
class Check:
    """One running target of an open ticket."""

    target: str  # first | resolution
    minutes: int  # the target
    elapsed: float  # counted minutes so far

    def level(self, warn_ratio: float) -> str:
        if self.elapsed > self.minutes:
            return "breach"
        if self.elapsed >= self.minutes * warn_ratio:
            return "warn"
        return "ok"


def running_checks(ticket: TicketTimes, now: datetime, policy: SlaPolicy) -> list[Check]:
    """The targets still running: first response until answered, resolution until resolved (not while paused)."""
    if ticket.status not in OPEN_STATUSES:
        return []
    schedule = policy.schedule
    t = targets(ticket.priority, policy)
    checks = []
    if ticket.first_response_at is None:
        checks.append(Check("first", t.first_response, first_response_elapsed(ticket, now, schedule)))
    if ticket.waiting_since is None:
        checks.append(Check("resolution", t.resolution, resolution_elapsed(ticket, now, schedule)))
    return checks


@dataclass(frozen=True)
class SlaState:
    """What /tickets shows: the most urgent running target."""

    level: str  # ok | warn | breach | paused | done
    target: str | None  # first | resolution
    minutes_left: float | None  # counted minutes; negative when overdue
    due_at: datetime | None


def sla_state(ticket: TicketTimes, now: datetime, policy: SlaPolicy) -> SlaState:
    if ticket.status not in OPEN_STATUSES:
        return SlaState("done", None, None, None)
    schedule = policy.schedule
    checks = running_checks(ticket, now, policy)
    if not checks:
        return SlaState("paused", None, None, None)
    check = min(checks, key=lambda c: c.minutes - c.elapsed)
    if check.target == "first":
        due = due_after(ticket.created_at, check.minutes, schedule)
    else:
        due = due_after(ticket.created_at, check.minutes + _paused_now(ticket, now, schedule), schedule)
    return SlaState(check.level(policy.warn_ratio), check.target, check.minutes - check.elapsed, due)
