"""/report's forecast: orders expected in the next 30 days beside the last 30 days, seasonal when it can be."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.app import App
from bot.config import Settings
from bot.fake_telegram import FakeUser
from bot.reports import forecast, output, seasonal
from storage.db import Database
from tests.conftest import START
from tests.helpers import Data, utc

NOW = START  # Mon 2 March 2026 02:00 UTC


def _shop(d: Data, customers: int, days: int) -> None:
    """Customers buying every 10–40 days over the last ``days`` days (more in December), some stopping."""
    for i in range(customers):
        c = d.customer(f"S{i}")
        gap = 10 + (i % 4) * 10
        moment = NOW - timedelta(days=days - (i % 20))
        stop = NOW - timedelta(days=40 + i % 200) if i % 4 == 0 else NOW
        while moment < stop:
            d.order(c, moment, 2000 if moment.month == 12 else 1000)
            moment += timedelta(days=gap if moment.month != 12 else gap / 2)


async def test_forecast_applies_the_seasonal_index_after_a_year(db: Database, settings: Settings) -> None:
    async with db.session() as session:
        d = Data(session)
        _shop(d, 260, 800)
        await d.commit()
        result = await forecast.compute(session, settings, NOW)
        season = await seasonal.compute(session, settings, None, NOW)
    assert result.method == "bgnbd" and result.customers == 260
    index = {i.month: i.index for i in season.indexes}
    # The next 30 days (business days in Shanghai): 3–31 March and 1 April.
    assert result.season_index == pytest.approx((29 * index[3] + index[4]) / 30)
    assert result.expected == pytest.approx(result.expected_base * result.season_index / 100)
    # The regulars that still buy (about 195 of them, every 10–40 days) make about 20 × 30 / 25 days: same order.
    assert 0.5 * result.actual < result.expected_base < 2 * result.actual
    assert result.actual > 100


async def test_forecast_without_a_year_does_not_know_the_season(db: Database, settings: Settings) -> None:
    async with db.session() as session:
        d = Data(session)
        a = d.customer("Ann")
        for day in (1, 11, 21):
            d.order(a, utc(2026, 2, day), 1000)
        d.order(a, utc(2026, 2, 21, 5), 500)  # the same day: one purchase day
        await d.commit()
        result = await forecast.compute(session, settings, NOW)
    assert (result.season_index, result.method, result.actual) == (None, "fallback", 3)
    assert result.expected == result.expected_base > 0


@pytest.fixture
def no_charts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(output, "render_chart", lambda *_: None)


@pytest.mark.usefixtures("no_charts")
async def test_report_shows_the_forecast(app: App, manager: FakeUser) -> None:
    async with app.db.session() as session:
        d = Data(session)
        a = d.customer("Ann")
        for day in (1, 11, 21):
            d.order(a, utc(2026, 2, day), 1000)
        await d.commit()
    replies = await manager.send("/report")
    text = "\n".join(m.text or "" for m in replies if m.kind == "text")
    assert "Next 30 days\nExpected orders: about 1 (last 30 days: 3; a customer's orders on one day count once)" in text
    assert ("The season is not known yet (less than a year of orders): no seasonal adjustment, so ahead of "
            "a busy season (the holidays, a festival) expect more orders than this.") in text
    assert "A rough estimate: too few repeat customers yet to fit the purchase model." in text
