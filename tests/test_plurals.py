"""Counts read right: English singular and plural forms, Chinese counters."""

from __future__ import annotations

import pytest

from bot.app import App
from bot.fake_telegram import FakeTelegram, FakeUser
from bot.texts import TextRenderer
from tests.conftest import MANAGER_ID
from tests.helpers import Data, utc

RENDERER = TextRenderer(currency="CNY")


async def _one_champion(app: App) -> None:
    async with app.db.session() as session:
        d = Data(session)
        cid = d.customer("Ann")
        for day in range(5):
            d.order(cid, utc(2026, 2, 20 + day, 3), 2000)
        await d.commit()


@pytest.mark.usefixtures("no_charts")
async def test_a_segment_of_one_customer(app: App, manager: FakeUser) -> None:
    await _one_champion(app)
    await manager.send("/rfm 12m")
    await manager.press("Message a segment")
    await manager.press("New")
    assert manager.last().text.startswith("📨 New: 1 customer, 1 of them accepts care messages.")
    await manager.press("Thank you")
    assert "1 of 1 customer accepts care messages and can be reached." in manager.last().text
    await manager.press("Send")
    assert manager.last().text.startswith("✅ 1 care message queued for New")


@pytest.mark.usefixtures("no_charts")
async def test_a_segment_of_one_customer_in_chinese(app: App, world: FakeTelegram) -> None:
    await _one_champion(app)
    boss = FakeUser(world, MANAGER_ID, "老板", language_code="zh-hans")
    await boss.send("/rfm 12m")
    await boss.press(1)
    await boss.press(1)
    assert "1 位客户，其中 1 位同意接收关怀消息" in boss.last().text


@pytest.mark.parametrize(("template", "context", "expected"), [
    ("orders/ask_category", {"cart_count": 1}, "You have 1 product in your cart;"),
    ("orders/ask_category", {"cart_count": 2}, "You have 2 products in your cart;"),
    ("orders/removed", {"names": [], "unknown": 1}, "left out: 1 product no longer sold."),
    ("care/snoozed", {"days": 1}, "we will ask again in 1 day."),
    ("tickets/reopen_too_late", {"ticket": {"id": 7}, "days": 1}, "more than 1 day ago"),
    ("reports/segment_confirm", {"template": "T", "segment": "S", "members": 3, "reachable": 0, "per_day": 1,
                                 "per_week": 3, "quiet": "21:00–09:00"}, "0 of 3 customers accept care messages"),
])
def test_english_counts(template: str, context: dict[str, object], expected: str) -> None:
    assert expected in RENDERER.render("en", template, **context)


@pytest.fixture
def no_charts(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.reports import output

    monkeypatch.setattr(output, "render_chart", lambda *_: None)
