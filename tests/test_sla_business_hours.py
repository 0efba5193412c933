"""Response targets counted in opening hours (Asia/Shanghai, Mon–Fri 9–18, Sat 10–14)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from bot.app import App
from bot.config import Settings
from bot.fake_telegram import FakeTelegram, FakeUser
from jobs.runner import advance
from tests.conftest import MANAGER_ID, register
from tests.tickets_helpers import file_complaint, outbox, ticket

SH = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"business_hours": "mon-fri 09:00-18:00; sat 10:00-14:00"})


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH).astimezone(timezone.utc)


async def test_evening_complaint_is_due_next_morning(app: App, world: FakeTelegram, customer: FakeUser,
                                                     manager: FakeUser) -> None:
    await register(customer, "Mei")
    app.clock.set(local(2026, 3, 2, 17, 50))  # type: ignore[attr-defined]  # Monday 17:50
    await file_complaint(customer, "late", category="Delivery")  # high: 30 counted minutes
    assert "within 30m of our opening hours" in customer.last().text
    saved = await ticket(app)
    assert saved.first_response_due_at == local(2026, 3, 3, 9, 20)
    # The night passes: 15 hours of wall time, 10 counted minutes.
    await advance(app, timedelta(hours=15), step=timedelta(hours=1))  # Tuesday 08:50
    assert await outbox(app, "sla:") == []
    await advance(app, timedelta(minutes=25), step=timedelta(minutes=5))  # 09:15: 25 counted minutes
    assert [r.dedupe_key for r in await outbox(app, "sla:")] == ["sla:1:first:warn"]
    await advance(app, timedelta(minutes=10), step=timedelta(minutes=5))  # 09:25: past 30
    assert f"sla:1:first:breach:{MANAGER_ID}" in [r.dedupe_key for r in await outbox(app, "sla:")]
    assert any("Escalation: no. 1" in (m.text or "") for m in manager.inbox())


async def test_first_response_minutes_are_counted_minutes(app: App, world: FakeTelegram, customer: FakeUser,
                                                          staff: FakeUser) -> None:
    await register(customer, "Mei")
    app.clock.set(local(2026, 3, 7, 13, 30))  # type: ignore[attr-defined]  # Saturday 13:30
    await file_complaint(customer, "late", category="Other")
    app.clock.set(local(2026, 3, 9, 9, 15))  # type: ignore[attr-defined]  # Monday 09:15
    from tests.tickets_helpers import card

    await staff.send("Good morning, looking into it", reply_to=card(world).message_id)
    saved = await ticket(app)
    assert saved.first_response_minutes == 45 and saved.first_response_breached is False
