"""The care planners and policy as pure functions: history + settings + now → decision."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from bot.rules import care as rules

SHANGHAI = rules.zone("Asia/Shanghai")
UTC = UTC
NOW = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
QUIET = dict(quiet_start=time(21, 0), quiet_end=time(9, 0))


def d(*args: int) -> float:
    """Day number of a UTC moment."""
    return rules.to_days(datetime(*args, tzinfo=UTC))


# ----- expected next purchase ------------------------------------------------------------------

def test_median_interval_of_two_or_more_purchases() -> None:
    days = [d(2026, 1, 1), d(2026, 1, 11), d(2026, 1, 31), d(2026, 2, 10)]  # gaps 10, 20, 10
    assert rules.usual_interval(days) == 10
    assert rules.from_days(rules.expected_next_purchase(days, 1, None, None)) == datetime(2026, 2, 20, tzinfo=UTC)


def test_median_ignores_same_day_top_ups_and_outliers() -> None:
    days = [d(2026, 1, 1), d(2026, 1, 1, 6), d(2026, 1, 15), d(2026, 1, 29), d(2026, 4, 29)]
    assert rules.intervals(days) == [13.75, 14, 90]  # the six-hour top-up is no interval
    assert rules.usual_interval(days) == 14


def test_one_purchase_uses_the_rice_shop_rule() -> None:
    # 2 bags × 10 days per bag per person ÷ 4 people = 5 days.
    expected = rules.expected_next_purchase([d(2026, 2, 1)], 2, 10.0, 4)
    assert rules.from_days(expected) == datetime(2026, 2, 6, tzinfo=UTC)


@pytest.mark.parametrize("days_per_unit, household", [(None, 3), (10.0, None), (10.0, 0)])
def test_one_purchase_without_the_facts_gives_no_prediction(days_per_unit: float | None, household: int | None) -> None:
    assert rules.expected_next_purchase([d(2026, 2, 1)], 1, days_per_unit, household) is None


# ----- reorder reminder ----------------------------------------------------------------------------

def _reorder(days: list[float], now: datetime = NOW, **kw: object) -> rules.Planned | None:
    params: dict = dict(days_before=2, last_order_id=7)
    params.update(kw)
    return rules.plan_reorder(1, 5, days, 1, None, None, now, SHANGHAI, **params)  # type: ignore[arg-type]


def test_reorder_reminder_goes_n_days_before_the_expected_run_out() -> None:
    days = [d(2026, 2, 2, 3), d(2026, 2, 16, 3)]  # every 14 days: next ~2026-03-02 11:00 Shanghai
    planned = _reorder(days, now=datetime(2026, 2, 26, 17, 0, tzinfo=UTC))  # 27 Feb 01:00 local
    assert planned is not None
    assert planned.kind == "reorder" and planned.due == date(2026, 3, 2)
    assert planned.key == "reorder:1:5:2026-03-02"
    assert planned.send_at == datetime(2026, 2, 27, 16, 0, tzinfo=UTC)  # 28 Feb 00:00 local
    assert planned.order_id == 7 and planned.product_id == 5


def test_reorder_reminder_is_not_planned_too_early_or_too_late() -> None:
    days = [d(2026, 2, 2, 3), d(2026, 2, 16, 3)]
    assert _reorder(days, now=datetime(2026, 2, 20, tzinfo=UTC)) is None  # a week early: not yet
    assert _reorder(days, now=datetime(2026, 3, 12, tzinfo=UTC)) is None  # run out 10 days ago: win-back's job
    assert _reorder(days, now=datetime(2026, 3, 5, tzinfo=UTC)) is not None  # a little late: still useful


def test_stopped_product_gets_no_reminder_and_a_snooze_moves_it() -> None:
    days = [d(2026, 2, 2, 3), d(2026, 2, 16, 3)]
    now = datetime(2026, 2, 28, 2, 0, tzinfo=UTC)
    assert _reorder(days, now=now, stopped=True) is None
    assert _reorder(days, now=now, snoozed_until=now + timedelta(days=3)) is None  # not yet
    later = _reorder(days, now=now + timedelta(days=3), snoozed_until=now + timedelta(days=3))
    assert later is not None and later.send_at == now + timedelta(days=3)
    assert later.key == "reorder:1:5:2026-03-02:s202603030200"


def test_reminder_never_goes_right_after_the_purchase() -> None:
    days = [d(2026, 2, 27), d(2026, 2, 28, 12), d(2026, 3, 1, 23)]  # gaps 1.5 and 1.46 days
    planned = _reorder(days, now=datetime(2026, 3, 2, tzinfo=UTC))
    assert planned is not None and planned.send_at >= datetime(2026, 3, 2, 23, tzinfo=UTC)


# ----- birthday --------------------------------------------------------------------------------------

def test_birthday_greeting_at_the_local_hour_on_the_day() -> None:
    planned = rules.plan_birthday(1, date(1990, 3, 3), NOW, SHANGHAI, hour=10)
    assert planned is not None
    assert planned.send_at == datetime(2026, 3, 3, 2, 0, tzinfo=UTC)  # 10:00 Shanghai
    assert planned.key == "birthday:1:2026"
    assert planned.expires_at == datetime(2026, 3, 3, 16, 0, tzinfo=UTC)  # local midnight


def test_birthday_outside_the_horizon_or_past_is_not_planned() -> None:
    assert rules.plan_birthday(1, date(1990, 3, 10), NOW, SHANGHAI, hour=10) is None
    assert rules.plan_birthday(1, date(1990, 3, 1), NOW, SHANGHAI, hour=10) is None
    assert rules.plan_birthday(1, None, NOW, SHANGHAI, hour=10) is None


def test_birthday_today_after_the_hour_still_goes_and_new_year_rolls_over() -> None:
    late = datetime(2026, 3, 3, 8, 0, tzinfo=UTC)  # 16:00 local on the day
    planned = rules.plan_birthday(1, date(1990, 3, 3), late, SHANGHAI, hour=10)
    assert planned is not None and planned.send_at < late
    eve = datetime(2026, 12, 31, 10, 0, tzinfo=UTC)  # 18:00 local on 31 December
    planned = rules.plan_birthday(1, date(1990, 1, 1), eve, SHANGHAI, hour=10)
    assert planned is not None and planned.key == "birthday:1:2027"


def test_leap_day_birthday_in_a_common_year() -> None:
    planned = rules.plan_birthday(1, date(2000, 2, 29), datetime(2026, 2, 27, 20, tzinfo=UTC), SHANGHAI, hour=10)
    assert planned is not None and planned.send_at.astimezone(SHANGHAI).date() == date(2026, 2, 28)


# ----- win-back ---------------------------------------------------------------------------------------

def test_winback_after_twice_the_usual_interval_or_the_minimum() -> None:
    every_30 = [d(2025, 10, 1), d(2025, 10, 31), d(2025, 11, 30)]  # usual 30 → lapse after 60 days
    planned = rules.plan_winback(1, every_30, datetime(2026, 1, 29, tzinfo=UTC), min_days=45, repeat_days=60)
    assert planned is not None and planned.send_at == datetime(2026, 1, 29, tzinfo=UTC)
    assert planned.key == "winback:1:202511300000"
    assert rules.plan_winback(1, every_30, datetime(2026, 1, 27, tzinfo=UTC), min_days=45, repeat_days=60) is None
    weekly = [d(2026, 1, 1), d(2026, 1, 8), d(2026, 1, 15)]  # usual 7 → the 45-day minimum applies
    assert rules.plan_winback(1, weekly, datetime(2026, 2, 20, tzinfo=UTC), min_days=45, repeat_days=60) is None
    assert rules.plan_winback(1, weekly, datetime(2026, 3, 1, tzinfo=UTC), min_days=45, repeat_days=60) is not None


def test_winback_not_again_within_the_repeat_days() -> None:
    orders = [d(2025, 12, 1)]
    now = datetime(2026, 2, 1, tzinfo=UTC)
    recent = datetime(2026, 1, 10, tzinfo=UTC)
    assert rules.plan_winback(1, orders, now, min_days=45, repeat_days=60, last_winback_at=recent) is None
    planned = rules.plan_winback(1, orders, datetime(2026, 3, 11, tzinfo=UTC), min_days=45, repeat_days=60,
                                 last_winback_at=recent)
    assert planned is not None and planned.send_at == recent + timedelta(days=60)


def test_no_winback_without_orders_or_for_a_long_lost_customer() -> None:
    assert rules.plan_winback(1, [], NOW, min_days=45, repeat_days=60) is None
    assert rules.plan_winback(1, [d(2024, 1, 1)], NOW, min_days=45, repeat_days=60) is None


# ----- survey --------------------------------------------------------------------------------------------

def test_survey_days_after_delivery_once_per_order() -> None:
    delivered = datetime(2026, 2, 28, 6, tzinfo=UTC)
    planned = rules.plan_survey(1, 42, delivered, NOW, days_after=2)
    assert planned is not None and planned.key == "survey:42"
    assert planned.send_at == datetime(2026, 3, 2, 6, tzinfo=UTC)
    assert rules.plan_survey(1, 42, None, NOW, days_after=2) is None
    assert rules.plan_survey(1, 42, delivered, NOW - timedelta(days=2), days_after=2) is None  # too early
    assert rules.plan_survey(1, 42, delivered, NOW + timedelta(days=8), days_after=2) is None  # stale


# ----- policy: quiet hours ------------------------------------------------------------------------------

def test_quiet_hours_hold_until_the_window_opens() -> None:
    evening = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # 23:00 Shanghai
    assert rules.in_quiet_hours(evening, SHANGHAI, time(21), time(9))
    assert rules.quiet_hours_end(evening, SHANGHAI, time(21), time(9)) == datetime(2026, 3, 3, 1, 0, tzinfo=UTC)
    small_hours = datetime(2026, 3, 2, 19, 0, tzinfo=UTC)  # 03:00 Shanghai
    assert rules.quiet_hours_end(small_hours, SHANGHAI, time(21), time(9)) == datetime(2026, 3, 3, 1, 0, tzinfo=UTC)
    assert rules.quiet_hours_end(NOW, SHANGHAI, time(21), time(9)) == NOW  # 10:00: fine


def test_quiet_hours_use_the_customers_zone_and_daytime_windows() -> None:
    london = rules.zone("Europe/London")
    assert rules.in_quiet_hours(NOW, london, time(21), time(9))  # 02:00 in London: quiet
    assert rules.in_quiet_hours(datetime(2026, 3, 2, 13, tzinfo=UTC), london, time(12), time(14))
    assert not rules.in_quiet_hours(NOW, SHANGHAI, time(9), time(9))  # equal ends: no quiet hours
    assert rules.zone("Not/AZone", "Asia/Shanghai") == SHANGHAI


# ----- policy: caps -----------------------------------------------------------------------------------

def test_one_per_local_day() -> None:
    sent = [NOW - timedelta(hours=1)]  # 09:00 today in Shanghai
    allowed = rules.cap_allows_at(sent, NOW, SHANGHAI, per_day=1, per_week=3)
    assert allowed == datetime(2026, 3, 2, 16, 0, tzinfo=UTC)  # local midnight


def test_three_per_rolling_week() -> None:
    sent = [NOW - timedelta(days=6), NOW - timedelta(days=4), NOW - timedelta(days=2)]
    allowed = rules.cap_allows_at(sent, NOW, SHANGHAI, per_day=1, per_week=3)
    assert allowed == NOW + timedelta(days=1)  # when the oldest leaves the window
    assert rules.cap_allows_at(sent[1:], NOW, SHANGHAI, per_day=1, per_week=3) == NOW
    assert rules.cap_allows_at([], NOW, SHANGHAI, per_day=0, per_week=3) is None


def _decide(sent: list[datetime], now: datetime = NOW, recipient: rules.Recipient | None = None,
            expires: datetime | None = None) -> rules.Decision:
    recipient = recipient or rules.Recipient(consent=True, reachable=True, forgotten=False, has_chat=True)
    return rules.decide(recipient, now, SHANGHAI, sent, per_day=1, per_week=3, expires_at=expires, **QUIET)


def test_decide_refuses_without_consent_reachability_or_a_file() -> None:
    def who(**kw: bool) -> rules.Recipient:
        base = dict(consent=True, reachable=True, forgotten=False, has_chat=True)
        base.update(kw)
        return rules.Recipient(**base)

    assert _decide([], recipient=who(consent=False)) == rules.Decision("skip", reason="no consent")
    assert _decide([], recipient=who(reachable=False)).reason == "unreachable"
    assert _decide([], recipient=who(forgotten=True)).reason == "forgotten"
    assert rules.decide(None, NOW, SHANGHAI, [], per_day=1, per_week=3, expires_at=None, **QUIET).action == "skip"
    assert _decide([]).action == "send"


def test_decide_holds_for_caps_then_quiet_hours() -> None:
    evening = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # 20:00 Shanghai
    decision = _decide([evening - timedelta(hours=3)], now=evening)  # one already today
    # Tomorrow starts at midnight, which is quiet: the window opens at 09:00.
    assert decision == rules.Decision("hold", until=datetime(2026, 3, 3, 1, 0, tzinfo=UTC), reason="cap")
    late = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # 23:00
    assert _decide([], now=late) == rules.Decision("hold", until=datetime(2026, 3, 3, 1, 0, tzinfo=UTC),
                                                   reason="quiet hours")


def test_decide_skips_what_would_expire_while_held() -> None:
    sent = [NOW - timedelta(days=6), NOW - timedelta(days=4), NOW - timedelta(days=2)]
    assert _decide(sent, expires=NOW + timedelta(hours=5)) == rules.Decision("skip", reason="cap")
    assert _decide([], expires=NOW - timedelta(minutes=1)).reason == "expired"


def test_a_message_that_can_move_gives_way_to_a_birthday_under_the_day_cap() -> None:
    morning = datetime(2026, 3, 4, 1, 0, tzinfo=UTC)  # 09:00 Shanghai
    birthday = morning + timedelta(hours=1)
    recipient = rules.Recipient(consent=True, reachable=True, forgotten=False, has_chat=True)
    decision = rules.decide(recipient, morning, SHANGHAI, [], per_day=1, per_week=3, expires_at=None,
                            reserved=[birthday], **QUIET)
    assert decision == rules.Decision("hold", until=datetime(2026, 3, 5, 1, 0, tzinfo=UTC), reason="gives way")
    # No birthday that day, or room for both: it goes.
    assert rules.decide(recipient, morning, SHANGHAI, [], per_day=2, per_week=3, expires_at=None,
                        reserved=[birthday], **QUIET).action == "send"
    assert rules.decide(recipient, morning, SHANGHAI, [], per_day=1, per_week=3, expires_at=None,
                        reserved=[birthday + timedelta(days=1)], **QUIET).action == "send"
    # The weekly cap: two sent this week, the birthday in two days takes the third place.
    sent = [morning - timedelta(days=3), morning - timedelta(days=2)]
    decision = rules.decide(recipient, morning, SHANGHAI, sent, per_day=1, per_week=3, expires_at=None,
                            reserved=[birthday + timedelta(days=2)], **QUIET)
    assert decision.action == "hold" and decision.until is not None and decision.until > birthday + timedelta(days=2)
    # Past its use while waiting: skipped.
    assert rules.decide(recipient, morning, SHANGHAI, [], per_day=1, per_week=3,
                        expires_at=morning + timedelta(hours=12), reserved=[birthday], **QUIET).action == "skip"
