"""Response targets counted in opening hours (Asia/Shanghai, Mon–Fri 9–18, Sat 10–14)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.app import App
from bot.config import Settings
from bot.fake_telegram import FakeTelegram, FakeUser
from jobs.runner import advance
from tests.conftest import MANAGER_ID, STAFF_CHAT_ID, register
from tests.helpers import file_complaint, outbox, ticket

SH = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"business_hours": "mon-fri 09:00-18:00; sat 10:00-14:00"})


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH).astimezone(UTC)


async def test_evening_complaint_is_due_next_morning(app: App, world: FakeTelegram, customer: FakeUser,
                                                     manager: FakeUser) -> None:
    await register(customer, "Mei")
    app.clock.set(local(2026, 3, 2, 17, 50))  # type: ignore[attr-defined]  # Monday 17:50
    await file_complaint(customer, "late", category="Delivery")  # high: 30 counted minutes
    assert "within 30m of our opening hours" in customer.last().text
    saved = await ticket(app)
    assert saved.first_response_due_at == local(2026, 3, 3, 9, 20)
    # The night passes: 15 hours of wall time, 10 counted minutes.
    await advance(app.jobs, timedelta(hours=15), step=timedelta(hours=1))  # Tuesday 08:50
    assert await outbox(app, "sla:") == []
    await advance(app.jobs, timedelta(minutes=25), step=timedelta(minutes=5))  # 09:15: 25 counted minutes
    assert [r.dedupe_key for r in await outbox(app, "sla:")] == ["sla:1:first:warn"]
    await advance(app.jobs, timedelta(minutes=10), step=timedelta(minutes=5))  # 09:25: past 30
    assert f"sla:1:first:breach:{MANAGER_ID}" in [r.dedupe_key for r in await outbox(app, "sla:")]
    assert any("Escalation: no. 1" in (m.text or "") for m in manager.inbox())


async def test_first_response_minutes_are_counted_minutes(app: App, world: FakeTelegram, customer: FakeUser,
                                                          staff: FakeUser) -> None:
    await register(customer, "Mei")
    app.clock.set(local(2026, 3, 7, 13, 30))  # type: ignore[attr-defined]  # Saturday 13:30
    await file_complaint(customer, "late", category="Other")
    app.clock.set(local(2026, 3, 9, 9, 15))  # type: ignore[attr-defined]  # Monday 09:15
    from tests.helpers import card

    await staff.send("Good morning, looking into it", reply_to=card(world).message_id)
    saved = await ticket(app)
    assert saved.first_response_minutes == 45 and saved.first_response_breached is False


# ----- notices and escalations follow opening hours -------------------------------------------------

async def _rated_at_night(app: App, world: FakeTelegram, customer: FakeUser, staff: FakeUser, category: str,
                          rating: int = 1) -> None:
    from tests.helpers import card

    await register(customer, "Mei")
    app.clock.set(local(2026, 3, 2, 17, 0))  # type: ignore[attr-defined]  # Monday 17:00
    await file_complaint(customer, "musty", category=category)
    await staff.press("Resolve", card(world))
    await staff.send("Replaced the bag", reply_to=world.last(STAFF_CHAT_ID).message_id)
    await advance(app.jobs, timedelta(minutes=1))
    survey = customer.last()
    app.clock.set(local(2026, 3, 2, 23, 0))  # type: ignore[attr-defined]  # the customer rates at 23:00
    await customer.press(f"{rating}", survey)


async def test_a_low_rating_at_night_reaches_the_managers_when_the_shop_opens(
        app: App, world: FakeTelegram, customer: FakeUser, staff: FakeUser, manager: FakeUser) -> None:
    await _rated_at_night(app, world, customer, staff, "Product quality")  # normal priority
    await advance(app.jobs, timedelta(hours=9, minutes=30), step=timedelta(minutes=30))  # Tuesday 08:30
    assert not any("Low rating" in (m.text or "") for m in manager.inbox())
    await advance(app.jobs, timedelta(hours=1), step=timedelta(minutes=30))  # Tuesday 09:30
    (alert,) = [m for m in manager.inbox() if "Low rating" in (m.text or "")]
    assert datetime.fromtimestamp(alert.raw["date"], UTC) == local(2026, 3, 3, 9, 0)


async def test_a_high_priority_alert_goes_at_any_hour_unless_configured_otherwise(
        app: App, world: FakeTelegram, customer: FakeUser, staff: FakeUser, manager: FakeUser) -> None:
    await _rated_at_night(app, world, customer, staff, "Delivery")  # high priority
    await advance(app.jobs, timedelta(minutes=2))
    assert any("Low rating" in (m.text or "") for m in manager.inbox())


async def test_with_no_after_hours_priorities_even_high_waits(app: App, world: FakeTelegram, customer: FakeUser,
                                                               staff: FakeUser, manager: FakeUser) -> None:
    app.settings.after_hours_priorities = ""
    await _rated_at_night(app, world, customer, staff, "Delivery")
    await advance(app.jobs, timedelta(hours=1))
    assert not any("Low rating" in (m.text or "") for m in manager.inbox())
    rows = [r for r in await outbox(app, "csat:1:low") if r.chat_id == MANAGER_ID]
    assert rows and rows[0].not_before == local(2026, 3, 3, 9, 0)


def test_notice_time_rules() -> None:
    from bot.rules.sla import notice_time, parse_business_hours

    schedule = parse_business_hours("mon-fri 09:00-18:00; sat 10:00-14:00", "Asia/Shanghai")
    friday_night = local(2026, 3, 6, 22, 0)
    assert notice_time(friday_night, schedule, "normal", {"high"}) == local(2026, 3, 7, 10, 0)  # Saturday 10:00
    assert notice_time(friday_night, schedule, "high", {"high"}) == friday_night
    assert notice_time(local(2026, 3, 7, 15, 0), schedule, None, {"high"}) == local(2026, 3, 9, 9, 0)  # Monday
    assert notice_time(local(2026, 3, 9, 11, 0), schedule, "low", set()) == local(2026, 3, 9, 11, 0)  # open
    assert notice_time(friday_night, None, "low", set()) == friday_night  # around the clock


async def test_an_autoclose_notice_waits_for_the_customers_morning(app: App, world: FakeTelegram,
                                                                   customer: FakeUser, staff: FakeUser) -> None:
    from tests.helpers import card

    await register(customer, "Mei")
    app.clock.set(local(2026, 3, 2, 1, 0))  # type: ignore[attr-defined]  # Monday 01:00
    await file_complaint(customer, "musty", category="Delivery")
    await staff.press("Resolve", card(world))
    await staff.send("Replaced the bag", reply_to=world.last(STAFF_CHAT_ID).message_id)
    app.clock.set(local(2026, 3, 5, 1, 10))  # type: ignore[attr-defined]  # three days later, 01:10
    await advance(app.jobs, timedelta(minutes=30), step=timedelta(minutes=10))  # autoclosed at about 01:10
    assert (await ticket(app)).status == "closed"
    assert not any("closed" in (m.text or "") for m in customer.inbox()[-1:])
    await advance(app.jobs, timedelta(hours=8), step=timedelta(minutes=30))
    closing = [m for m in customer.inbox() if "closed" in (m.text or "").lower()]
    assert closing and datetime.fromtimestamp(closing[-1].raw["date"], UTC) == local(2026, 3, 5, 9, 0)
