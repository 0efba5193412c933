"""The care engine's rules: when a care message is due, and whether it may go.

Pure functions of a customer's history, a few settings and ``now`` — no
database, no Telegram. ``jobs.care`` feeds them from SQL and writes what they
return to the outbox; ``jobs.delivery`` asks the policy part again just
before sending (consent or caps may have changed since).

Times are timezone-aware UTC datetimes; local times (quiet hours, birthday
hour, "per day") are computed in the customer's time zone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from itertools import pairwise
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# Care kinds, most valuable first: when caps allow only one, the lower
# priority number goes and the others wait (or expire). A birthday greeting
# leads because it cannot move to another day; then reorder, survey, win-back.
KIND_BIRTHDAY = "birthday"
KIND_REORDER = "reorder"
KIND_SURVEY = "survey"
KIND_WINBACK = "winback"
CARE_PRIORITY = {KIND_BIRTHDAY: 10, KIND_REORDER: 11, KIND_SURVEY: 12, KIND_WINBACK: 13}
# Kinds tied to their day: the others give way to them under the caps (see ``decide``'s ``reserved``).
IMMOVABLE_KINDS = (KIND_BIRTHDAY,)
# Orders are credited to these messages (ATTRIBUTION_DAYS after they went out).
ATTRIBUTED_KINDS = (KIND_REORDER, KIND_WINBACK)

# How long a planned message stays worth sending when quiet hours or caps hold it.
REORDER_LATE_DAYS = 7  # a reminder for a run-out more than this long ago is not sent
SURVEY_VALID_DAYS = 7  # a survey this long after it fell due is stale
WINBACK_VALID_DAYS = 14
# "Not now" asks again this many days later.
SNOOZE_DAYS = 3

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@lru_cache(maxsize=512)
def zone(name: str | None, default: str = "UTC") -> ZoneInfo:
    """The customer's zone; an unknown name falls back to the default."""
    for candidate in (name, default, "UTC"):
        if not candidate:
            continue
        try:
            return ZoneInfo(candidate)
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return ZoneInfo("UTC")


def local_moment(day: date, at: time, tz: ZoneInfo) -> datetime:
    """``day`` at local time ``at`` in ``tz``, as UTC."""
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)


# ----- policy: quiet hours and caps ---------------------------------------------------------------

def in_quiet_hours(moment: datetime, tz: ZoneInfo, start: time, end: time) -> bool:
    if start == end:
        return False
    local = moment.astimezone(tz).time()
    if start < end:
        return start <= local < end
    return local >= start or local < end


def quiet_hours_end(moment: datetime, tz: ZoneInfo, start: time, end: time) -> datetime:
    """``moment`` itself when sending is allowed then; else when the window next opens."""
    if not in_quiet_hours(moment, tz, start, end):
        return moment
    local = moment.astimezone(tz)
    day = local.date()
    if start > end and local.time() >= start:  # late evening: the window opens tomorrow morning
        day += timedelta(days=1)
    return local_moment(day, end, tz)


def cap_allows_at(sent: Sequence[datetime], now: datetime, tz: ZoneInfo, per_day: int,
                  per_week: int) -> datetime | None:
    """When the next care message may go, given the care messages already sent.

    At most ``per_day`` per local calendar day and ``per_week`` per rolling
    seven days. ``now`` (or earlier) means now; None means never (a cap of 0).
    """
    if per_day <= 0 or per_week <= 0:
        return None
    allowed = now
    today = now.astimezone(tz).date()
    if sum(1 for s in sent if s.astimezone(tz).date() == today) >= per_day:
        allowed = max(allowed, local_moment(today + timedelta(days=1), time(0, 0), tz))
    recent = sorted((s for s in sent if s > now - timedelta(days=7)), reverse=True)
    if len(recent) >= per_week:
        allowed = max(allowed, recent[per_week - 1] + timedelta(days=7))
    return allowed


@dataclass(frozen=True)
class Recipient:
    """What the policy needs to know about a customer."""

    consent: bool
    reachable: bool
    forgotten: bool
    has_chat: bool


def refusal(recipient: Recipient | None) -> str | None:
    """Why a care message may not go to this customer at all (None: it may)."""
    if recipient is None or recipient.forgotten or not recipient.has_chat:
        return "forgotten"
    if not recipient.consent:
        return "no consent"
    if not recipient.reachable:
        return "unreachable"
    return None


@dataclass(frozen=True)
class Decision:
    """What delivery does with a due care message: send, hold until, or skip."""

    action: str  # send | hold | skip
    until: datetime | None = None
    reason: str | None = None


def crowds_out(sent: Sequence[datetime], at: datetime, reserved: Sequence[datetime], tz: ZoneInfo, *,
               per_day: int, per_week: int) -> datetime | None:
    """Whether a message sent ``at`` would take the cap's place of a message that cannot move.

    ``reserved``: when this customer's pending immovable messages (a birthday
    greeting) are due; those due by ``at`` count as sent. If sending at ``at``
    would push a later one over a cap it fits without, the answer is when to
    look again: the start of the local day after that one (it has gone then).
    None: no conflict.
    """
    gone = [*sent, *(r for r in reserved if r <= at)]
    taken = [*gone, at]
    for due in sorted(r for r in reserved if r > at):
        fits_without = cap_allows_at(gone, due, tz, per_day, per_week)
        if fits_without is None or fits_without > due:
            continue  # capped anyway: this message takes nothing from it
        fits_with = cap_allows_at(taken, due, tz, per_day, per_week)
        if fits_with is None or fits_with > due:
            return local_moment(due.astimezone(tz).date() + timedelta(days=1), time(0, 0), tz)
        gone.append(due)
        taken.append(due)
    return None


def decide(recipient: Recipient | None, now: datetime, tz: ZoneInfo, sent: Sequence[datetime], *,
           quiet_start: time, quiet_end: time, per_day: int, per_week: int,
           expires_at: datetime | None, reserved: Sequence[datetime] = ()) -> Decision:
    """The policy for one due care message, checked again at the moment of sending.

    ``reserved``: when the customer's pending messages that cannot move (a
    birthday greeting) are due, for a message that can: it waits rather than
    take their place under the caps (a reminder goes the day after the birthday).
    """
    why = refusal(recipient)
    if why is not None:
        return Decision("skip", reason=why)
    if expires_at is not None and now >= expires_at:
        return Decision("skip", reason="expired")
    if reserved:  # those due by now go first (they are more valuable): count them as sent
        sent = [*sent, *(r for r in reserved if r <= now)]
    allowed = cap_allows_at(sent, now, tz, per_day, per_week)
    if allowed is None:
        return Decision("skip", reason="cap")
    held = allowed > now
    reason = "cap" if held else "quiet hours"
    allowed = quiet_hours_end(allowed, tz, quiet_start, quiet_end)
    # After a cap ends the quiet window may start, and a message that cannot move may
    # need the slot; step until all are satisfied.
    for _ in range(4):
        counted = [*sent, *(r for r in reserved if now < r <= allowed)]
        again = cap_allows_at(counted, allowed, tz, per_day, per_week)
        if again is None:
            return Decision("skip", reason="cap")
        if again > allowed:
            allowed = quiet_hours_end(again, tz, quiet_start, quiet_end)
            continue
        later = crowds_out(sent, allowed, reserved, tz, per_day=per_day, per_week=per_week) if reserved else None
        if later is None:
            break
        allowed, reason = quiet_hours_end(later, tz, quiet_start, quiet_end), "gives way"
    if allowed <= now:
        return Decision("send")
    if expires_at is not None and allowed >= expires_at:
        return Decision("skip", reason="cap" if reason == "gives way" else reason)
    return Decision("hold", until=allowed, reason=reason)


# ----- planners ----------------------------------------------------------------------------------
# History comes in as "days": float days since 1970-01-01 UTC (what the SQL
# feed returns cheaply), oldest first. Results are UTC datetimes.

DAY_SECONDS = 86_400.0
# Planners look this far ahead; the hourly run writes a message before its time.
PLAN_HORIZON = timedelta(days=1)
# The planning job plans in full at least every REPLAN_EVERY, and looks that much
# further than the horizon to know when, before then, something new comes into it
# (it may skip runs until then while the data stays the same).
REPLAN_EVERY = timedelta(hours=12)
LOOKAHEAD = PLAN_HORIZON + REPLAN_EVERY
# Purchases older than this do not count (habits change; and it bounds the work).
HISTORY_DAYS = 365
# Two purchases closer than this are one top-up, not a new interval.
MIN_INTERVAL_DAYS = 1.0


def to_days(moment: datetime) -> float:
    return moment.timestamp() / DAY_SECONDS


def from_days(days: float) -> datetime:
    return EPOCH + timedelta(days=days)


def intervals(days: Sequence[float]) -> list[float]:
    """Gaps between consecutive purchases; a gap under a day (a top-up) does not count."""
    return [gap for gap in (b - a for a, b in pairwise(days)) if gap >= MIN_INTERVAL_DAYS]


def usual_interval(days: Sequence[float]) -> float | None:
    """The median gap between purchases (two or more purchases), in days."""
    gaps = intervals(days)
    if not gaps:
        return None
    gaps.sort()
    middle = len(gaps) // 2
    return gaps[middle] if len(gaps) % 2 else (gaps[middle - 1] + gaps[middle]) / 2


def supply_days(quantity: int, days_per_unit_per_person: float | None, household_size: int | None) -> float | None:
    """The rice-shop rule: how long ``quantity`` units last the household."""
    if not days_per_unit_per_person or not household_size or household_size <= 0 or quantity <= 0:
        return None
    return quantity * days_per_unit_per_person / household_size


def expected_next_purchase(days: Sequence[float], last_quantity: int, days_per_unit_per_person: float | None,
                           household_size: int | None) -> float | None:
    """When the customer will need the product again (days), or None when unknown.

    Two or more purchases: the last one plus the median interval. One: the
    last plus how long that quantity lasts the household, when both are known.
    """
    if not days:
        return None
    interval = usual_interval(days)
    if interval is None:
        interval = supply_days(last_quantity, days_per_unit_per_person, household_size)
    if interval is None:
        return None
    return days[-1] + interval


class Planned(NamedTuple):
    """A care message a planner wants sent. (A named tuple: the planner makes tens of thousands.)"""

    kind: str
    key: str
    customer_id: int
    send_at: datetime  # before quiet hours are applied
    expires_at: datetime
    product_id: int | None = None
    order_id: int | None = None
    due: date | None = None  # reorder: the expected run-out day (local)
    quantity: int | None = None

    @property
    def priority(self) -> int:
        return CARE_PRIORITY[self.kind]


def plan_reorder(customer_id: int, product_id: int, days: Sequence[float], last_quantity: int,
                 days_per_unit_per_person: float | None, household_size: int | None, now: datetime,
                 tz: ZoneInfo, *, days_before: int, last_order_id: int | None = None,
                 snoozed_until: datetime | None = None, stopped: bool = False,
                 horizon: timedelta = PLAN_HORIZON, expected: float | None = None) -> Planned | None:
    """A reminder ``days_before`` days before the expected run-out (from the start of that local day).

    ``expected``: :func:`expected_next_purchase`, when the caller computed it already.
    """
    if stopped:
        return None
    if expected is None:
        expected = expected_next_purchase(days, last_quantity, days_per_unit_per_person, household_size)
    if expected is None:
        return None
    expected_at = from_days(expected)
    if now > expected_at + timedelta(days=REORDER_LATE_DAYS):
        return None  # long run out: the win-back takes over
    due_day = expected_at.astimezone(tz).date()
    send_at = local_moment(due_day - timedelta(days=days_before), time(0, 0), tz)
    send_at = max(send_at, from_days(days[-1]) + timedelta(days=MIN_INTERVAL_DAYS))
    key = f"reorder:{customer_id}:{product_id}:{due_day.isoformat()}"
    if snoozed_until is not None and snoozed_until > send_at:
        send_at = snoozed_until
        key += f":s{snoozed_until.astimezone(UTC):%Y%m%d%H%M}"
    if send_at > now + horizon:
        return None
    expires = max(expected_at, send_at) + timedelta(days=REORDER_LATE_DAYS)
    return Planned(KIND_REORDER, key, customer_id, send_at, expires, product_id=product_id,
                   order_id=last_order_id, due=due_day, quantity=last_quantity)


def birthday_in_year(birthday: date, year: int) -> date:
    try:
        return birthday.replace(year=year)
    except ValueError:  # 29 February in a common year: the 28th
        return date(year, 2, 28)


def plan_birthday(customer_id: int, birthday: date | None, now: datetime, tz: ZoneInfo, *, hour: int,
                  horizon: timedelta = PLAN_HORIZON) -> Planned | None:
    """A greeting on the birthday at ``hour`` local time, once a year."""
    if birthday is None:
        return None
    today = now.astimezone(tz).date()
    for year in (today.year, today.year + 1):
        day = birthday_in_year(birthday, year)
        if day < today:
            continue
        send_at = local_moment(day, time(hour, 0), tz)
        if send_at > now + horizon:
            return None
        expires = local_moment(day + timedelta(days=1), time(0, 0), tz)
        return Planned(KIND_BIRTHDAY, f"birthday:{customer_id}:{year}", customer_id, send_at, expires)
    return None


def plan_winback(customer_id: int, order_days: Sequence[float], now: datetime, *, min_days: int,
                 repeat_days: int, last_winback_at: datetime | None = None, last_order_id: int | None = None,
                 horizon: timedelta = PLAN_HORIZON) -> Planned | None:
    """One "we miss you" per lapse: no order for max(2 × usual interval, ``min_days``).

    Not within ``repeat_days`` of the previous win-back; a lapse older than
    :data:`HISTORY_DAYS` is a lost customer, not one to win back.
    """
    if not order_days:
        return None
    last = from_days(order_days[-1])
    usual = usual_interval(order_days)
    threshold = max(2 * usual, float(min_days)) if usual is not None else float(min_days)
    send_at = last + timedelta(days=threshold)
    if last_winback_at is not None:
        send_at = max(send_at, last_winback_at + timedelta(days=repeat_days))
    if send_at > now + horizon or now - last > timedelta(days=HISTORY_DAYS):
        return None
    return Planned(KIND_WINBACK, f"winback:{customer_id}:{last:%Y%m%d%H%M}", customer_id, send_at,
                   max(send_at, now) + timedelta(days=WINBACK_VALID_DAYS), order_id=last_order_id)


def plan_survey(customer_id: int, order_id: int, delivered_at: datetime | None, now: datetime, *,
                days_after: int, horizon: timedelta = PLAN_HORIZON) -> Planned | None:
    """Once per order, ``days_after`` days after delivery; stale a week later."""
    if delivered_at is None:
        return None
    send_at = delivered_at + timedelta(days=days_after)
    expires = send_at + timedelta(days=SURVEY_VALID_DAYS)
    if send_at > now + horizon or now >= expires:
        return None
    return Planned(KIND_SURVEY, f"survey:{order_id}", customer_id, send_at, expires, order_id=order_id)


def not_before(planned: Planned, now: datetime, tz: ZoneInfo, quiet_start: time, quiet_end: time) -> datetime:
    """When the planned message may first go: not in the past, not in quiet hours."""
    return quiet_hours_end(max(planned.send_at, now), tz, quiet_start, quiet_end)
