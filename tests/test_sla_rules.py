"""Business-hours arithmetic and the ticket clock (pure rules, no bot)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.config import Settings
from bot.rules import tickets as rules
from bot.rules.customer_file import Invalid
from bot.rules.sla import BusinessHoursError, counted_minutes, due_after, is_open, parse_business_hours
from storage.models import Ticket

SH = ZoneInfo("Asia/Shanghai")
HOURS = "mon-fri 09:00-18:00; sat 10:00-14:00"


def local(*args: int, tz: ZoneInfo = SH) -> datetime:
    return datetime(*args, tzinfo=tz).astimezone(UTC)


def test_parse_days_ranges_and_gaps() -> None:
    schedule = parse_business_hours(HOURS, "Asia/Shanghai")
    assert schedule is not None
    assert schedule.intervals[0] == ((540, 1080),)
    assert schedule.intervals[5] == ((600, 840),)
    assert schedule.intervals[6] == ()
    assert schedule.weekly_minutes == 5 * 540 + 240
    lunch = parse_business_hours("Mon,Wed,Fri 09:00-12:00,13:00-18:00", "UTC")
    assert lunch is not None and lunch.intervals[2] == ((540, 720), (780, 1080)) and lunch.intervals[1] == ()
    assert parse_business_hours("daily 00:00-24:00").weekly_minutes == 7 * 1440  # type: ignore[union-attr]
    overnight = parse_business_hours("fri 22:00-02:00")
    assert overnight is not None and overnight.intervals[4] == ((1320, 1440),) and overnight.intervals[5] == ((0, 120),)
    wrap = parse_business_hours("sat-mon 10:00-11:00")
    assert wrap is not None and [bool(d) for d in wrap.intervals] == [True, False, False, False, False, True, True]
    assert parse_business_hours("") is None
    assert parse_business_hours("   ") is None


@pytest.mark.parametrize("spec", [
    "09:00-18:00", "mon-fri", "funday 09:00-10:00", "mon 25:00-26:00", "mon 09:00-09:00", "mon 9-18",
    "mon 09:60-10:00",
])
def test_parse_refuses_nonsense(spec: str) -> None:
    with pytest.raises(BusinessHoursError):
        parse_business_hours(spec)


def test_bad_business_hours_stop_start_up(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from bot.config import ConfigError, load_settings

    with pytest.raises(ConfigError):
        load_settings(_env_file=None, business_hours="mon-fri 9am-6pm")


def test_counted_minutes_within_and_across_days() -> None:
    schedule = parse_business_hours(HOURS, "Asia/Shanghai")
    # Friday 17:00 → Saturday 11:00 local: 1 h on Friday + 1 h on Saturday.
    assert counted_minutes(local(2026, 3, 6, 17), local(2026, 3, 7, 11), schedule) == 120
    # Saturday 13:00 → Monday 10:00: 1 h Saturday, nothing Sunday, 1 h Monday.
    assert counted_minutes(local(2026, 3, 7, 13), local(2026, 3, 9, 10), schedule) == 120
    # Entirely at night: nothing.
    assert counted_minutes(local(2026, 3, 2, 19), local(2026, 3, 3, 8, 59), schedule) == 0
    assert counted_minutes(local(2026, 3, 3), local(2026, 3, 2), schedule) == 0
    # Around the clock.
    assert counted_minutes(local(2026, 3, 2, 19), local(2026, 3, 3, 8), None) == 13 * 60


def test_due_after_skips_closed_time() -> None:
    schedule = parse_business_hours(HOURS, "Asia/Shanghai")
    # 30 minutes from Friday 17:50 → Saturday 10:20.
    assert due_after(local(2026, 3, 6, 17, 50), 30, schedule) == local(2026, 3, 7, 10, 20)
    # Created at night: the clock starts at opening.
    assert due_after(local(2026, 3, 2, 23), 60, schedule) == local(2026, 3, 3, 10)
    # 8 h from Saturday 13:00: 1 h Sat + 7 h Monday → Monday 16:00.
    assert due_after(local(2026, 3, 7, 13), 8 * 60, schedule) == local(2026, 3, 9, 16)
    assert due_after(local(2026, 3, 7, 13), 45, None) == local(2026, 3, 7, 13, 45)
    assert is_open(local(2026, 3, 7, 13), schedule) and not is_open(local(2026, 3, 8, 13), schedule)


def test_due_after_and_counted_minutes_agree() -> None:
    schedule = parse_business_hours("mon-fri 08:30-12:00 13:30-17:45; sun 10:00-12:00", "Asia/Shanghai")
    start = local(2026, 3, 4, 11, 10)
    for minutes in (1, 50, 51, 200, 600, 3000):
        due = due_after(start, minutes, schedule)
        assert counted_minutes(start, due, schedule) == pytest.approx(minutes)


def test_daylight_saving_keeps_wall_clock_hours() -> None:
    ny = ZoneInfo("America/New_York")
    schedule = parse_business_hours("daily 09:00-17:00", ny)
    # 2026-03-08: clocks jump from 02:00 to 03:00; opening hours stay 09:00-17:00 local.
    assert counted_minutes(local(2026, 3, 7, 16, tz=ny), local(2026, 3, 8, 10, tz=ny), schedule) == 120
    assert due_after(local(2026, 3, 7, 16, tz=ny), 120, schedule) == local(2026, 3, 8, 10, tz=ny)


# ----- the ticket's clock -----------------------------------------------------------------

def _settings(**overrides: object) -> Settings:
    return Settings(_env_file=None, **overrides)  # type: ignore[arg-type]


def _ticket(created: datetime, priority: str = "normal") -> Ticket:
    return Ticket(id=1, customer_id=1, category="quality", priority=priority, status="new", description="x",
                  created_at=created, updated_at=created, waiting_minutes=0.0, reopen_count=0)


def test_priority_rule() -> None:
    assert rules.priority_for("other", top_customer=False, recent_unresolved=False) == ("low", [])
    assert rules.priority_for("quality", top_customer=False, recent_unresolved=False) == ("normal", [])
    assert rules.priority_for("delivery", top_customer=False, recent_unresolved=False) == ("high", [])
    assert rules.priority_for("other", top_customer=True, recent_unresolved=False) == ("high", ["top_customer"])
    assert rules.priority_for("other", top_customer=False, recent_unresolved=True) == ("high", ["recent_unresolved"])


def test_lifecycle_transitions_and_refusals() -> None:
    settings = _settings()
    t0 = datetime(2026, 3, 2, 2, tzinfo=UTC)
    ticket = _ticket(t0)
    rules.refresh_due(ticket, settings.sla, t0)
    assert ticket.first_response_due_at == t0 + timedelta(hours=2)
    assert ticket.resolution_due_at == t0 + timedelta(hours=24)
    with pytest.raises(rules.TransitionError):
        rules.change_status(ticket, "new", t0, settings.sla)
    rules.change_status(ticket, "taken", t0 + timedelta(minutes=5), settings.sla)
    assert ticket.taken_at == t0 + timedelta(minutes=5)
    assert rules.record_first_response(ticket, t0 + timedelta(minutes=30), settings.sla)
    assert not rules.record_first_response(ticket, t0 + timedelta(minutes=40), settings.sla)
    assert ticket.first_response_minutes == 30 and ticket.first_response_breached is False
    rules.change_status(ticket, "waiting_customer", t0 + timedelta(minutes=30), settings.sla)
    # Two hours waiting for the customer do not count toward resolution.
    rules.change_status(ticket, "in_progress", t0 + timedelta(hours=2, minutes=30), settings.sla)
    assert ticket.waiting_minutes == 120 and ticket.waiting_since is None
    assert ticket.resolution_due_at == t0 + timedelta(hours=26)
    rules.change_status(ticket, "resolved", t0 + timedelta(hours=3), settings.sla)
    assert ticket.resolution_minutes == 60 and ticket.resolution_breached is False
    with pytest.raises(rules.TransitionError):
        rules.change_status(ticket, "waiting_customer", t0 + timedelta(hours=3), settings.sla)
    # Reopened a day later: the day in between is paused too.
    assert rules.can_reopen(ticket, t0 + timedelta(days=1, hours=3), settings.sla)
    rules.change_status(ticket, "in_progress", t0 + timedelta(days=1, hours=3), settings.sla)
    assert ticket.reopen_count == 1 and ticket.resolved_at is None and ticket.resolution_minutes is None
    assert ticket.waiting_minutes == 120 + 24 * 60
    rules.change_status(ticket, "resolved", t0 + timedelta(days=1, hours=4), settings.sla)
    assert ticket.resolution_minutes == 120
    rules.change_status(ticket, "closed", t0 + timedelta(days=2), settings.sla)
    assert ticket.closed_at is not None
    assert not rules.can_reopen(ticket, t0 + timedelta(days=9), settings.sla)


def test_running_checks_warn_and_breach_levels() -> None:
    settings = _settings(sla_first_response_high=30)
    t0 = datetime(2026, 3, 2, 2, tzinfo=UTC)
    ticket = _ticket(t0, "high")
    checks = {c.target: c for c in rules.running_checks(ticket, t0 + timedelta(minutes=24), settings.sla)}
    assert checks["first"].level(0.8) == "warn" and checks["resolution"].level(0.8) == "ok"
    checks = {c.target: c for c in rules.running_checks(ticket, t0 + timedelta(minutes=31), settings.sla)}
    assert checks["first"].level(0.8) == "breach"
    state = rules.sla_state(ticket, t0 + timedelta(minutes=31), settings.sla)
    assert state.level == "breach" and state.target == "first" and state.minutes_left == pytest.approx(-1)
    rules.record_first_response(ticket, t0 + timedelta(minutes=40), settings.sla)
    assert ticket.first_response_breached is True
    rules.change_status(ticket, "waiting_customer", t0 + timedelta(minutes=40), settings.sla)
    assert rules.running_checks(ticket, t0 + timedelta(hours=20), settings.sla) == []
    assert rules.sla_state(ticket, t0 + timedelta(hours=20), settings.sla).level == "paused"


def test_resolution_clock_in_business_hours_excludes_waiting() -> None:
    settings = _settings(business_hours=HOURS, default_timezone="Asia/Shanghai")
    created = local(2026, 3, 6, 17)  # Friday 17:00
    ticket = _ticket(created)
    rules.refresh_due(ticket, settings.sla, created)
    assert ticket.first_response_due_at == local(2026, 3, 7, 11)  # 1 h Fri + 1 h Sat
    rules.record_first_response(ticket, local(2026, 3, 6, 17, 30), settings.sla)
    rules.change_status(ticket, "waiting_customer", local(2026, 3, 6, 17, 30), settings.sla)
    rules.change_status(ticket, "in_progress", local(2026, 3, 7, 11), settings.sla)  # waited 30 m + 1 h
    assert ticket.waiting_minutes == 90
    rules.change_status(ticket, "resolved", local(2026, 3, 9, 10), settings.sla)
    # Counted: Fri 17-18 (60) + Sat 10-14 (240) + Mon 9-10 (60) = 360, minus 90 waiting.
    assert ticket.resolution_minutes == 270


def test_texts_people_type() -> None:
    assert rules.parse_description("  torn bag  ") == "torn bag"
    with pytest.raises(Invalid) as empty:
        rules.parse_description("   ")
    assert empty.value.code == "description_empty"
    with pytest.raises(Invalid) as long:
        rules.parse_description("x" * 3501)
    assert long.value.code == "description_too_long" and long.value.params == {"limit": 3500, "length": 3501}
    assert rules.parse_ticket_number("#12") == 12 and rules.parse_ticket_number(" 7 ") == 7
    assert rules.parse_ticket_number("twelve") is None
