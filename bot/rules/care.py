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
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from statistics import median
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# Care kinds, most valuable first: when caps allow only one, the lower
# priority number goes and the others wait (or expire). A birthday greeting
# leads because it cannot move to another day; then reorder, survey, win-back.
KIND_BIRTHDAY = "birthday"
KIND_REORDER = "reorder"
KIND_SURVEY = "survey"
KIND_WINBACK = "winback"
CARE_PRIORITY = {KIND_BIRTHDAY: 10, KIND_REORDER: 11, KIND_SURVEY: 12, KIND_WINBACK: 13}

# How long a planned message stays worth sending when quiet hours or caps hold it.
REORDER_LATE_DAYS = 7  # a reminder for a run-out more than this long ago is not sent
SURVEY_VALID_DAYS = 7  # a survey this long after it fell due is stale
WINBACK_VALID_DAYS = 14
# "Not now" asks again this many days later.
SNOOZE_DAYS = 3

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


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
    return datetime.combine(day, at, tzinfo=tz).astimezone(timezone.utc)


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


def decide(recipient: Recipient | None, now: datetime, tz: ZoneInfo, sent: Sequence[datetime], *,
           quiet_start: time, quiet_end: time, per_day: int, per_week: int,
           expires_at: datetime | None) -> Decision:
    """The policy for one due care message, checked again at the moment of sending."""
    why = refusal(recipient)
    if why is not None:
        return Decision("skip", reason=why)
    if expires_at is not None and now >= expires_at:
        return Decision("skip", reason="expired")
    allowed = cap_allows_at(sent, now, tz, per_day, per_week)
    if allowed is None:
        return Decision("skip", reason="cap")
    held = allowed > now
    allowed = quiet_hours_end(allowed, tz, quiet_start, quiet_end)
    # After a cap ends the quiet window may start; step until both are satisfied.
    for _ in range(3):
        again = cap_allows_at(sent, allowed, tz, per_day, per_week)
        if again is None or again <= allowed:
            break
        allowed = quiet_hours_end(again, tz, quiet_start, quiet_end)
    if allowed <= now:
        return Decision("send")
    if expires_at is not None and allowed >= expires_at:
        return Decision("skip", reason="cap" if held else "quiet hours")
    return Decision("hold", until=allowed, reason="cap" if held else "quiet hours")
