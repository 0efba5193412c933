"""/customer: the card shows the chance of an order in 30 days and the likeliest next order date."""

from __future__ import annotations

import re
from datetime import timedelta

from bot.app import App
from bot.fake_telegram import FakeTelegram, FakeUser
from tests.conftest import STAFF_CHAT_ID, START
from tests.helpers import Data


def _chance(text: str) -> int:
    found = re.search(r"Next order: (\d+) % chance within 30 days · if within a year, likeliest around "
                      r"(\d{4}-\d{2}-\d{2})", text)
    assert found, text
    return int(found.group(1))


async def test_card_outlook_from_the_model(app: App, world: FakeTelegram, staff: FakeUser) -> None:
    async with app.db.session() as session:
        d = Data(session)
        for i in range(300):  # the shop: regulars every 7–28 days, a third of them gone quiet
            c = d.customer(f"R{i}")
            moment = START - timedelta(days=300 - i % 50)
            stop = START - timedelta(days=(20 + 3 * (i % 60)) * (i % 3 == 0))
            while moment < stop:
                d.order(c, moment, 1000)
                moment += timedelta(days=7 + (i % 4) * 7)
        for i in range(150):
            d.order(d.customer(f"O{i}"), START - timedelta(days=3 + (i * 7) % 300), 500)
        weekly = d.customer("Weekly Wu")
        for week in range(20):
            d.order(weekly, START - timedelta(days=5 + 7 * week), 3000)
        d.order(d.customer("Once Ou"), START - timedelta(days=200), 8000)
        d.customer("Never Ne")
        await d.commit()
    await staff.send("/customer Weekly Wu")
    weekly_text = world.last(STAFF_CHAT_ID).text
    await staff.send("/customer Once Ou")
    once_text = world.last(STAFF_CHAT_ID).text
    assert _chance(once_text) < 20 < 60 < _chance(weekly_text)
    assert "rough" not in weekly_text
    # The weekly customer's next order: within days of the next week.
    assert re.search(r"likeliest around 2026-03-0\d", weekly_text)
    await staff.send("/customer Never Ne")
    assert "Next order" not in world.last(STAFF_CHAT_ID).text  # no order yet: nothing to predict


async def test_card_outlook_says_when_it_is_rough(app: App, world: FakeTelegram, staff: FakeUser) -> None:
    async with app.db.session() as session:
        d = Data(session)
        c = d.customer("Mei <Lin>")
        for day in (10, 20, 30):
            d.order(c, START - timedelta(days=day), 1000)
        await d.commit()
    await staff.send("/customer Mei")
    text = world.last(STAFF_CHAT_ID).text
    assert "Mei <Lin>" in text
    assert _chance(text) > 50
    assert "(rough: too few repeat customers yet to fit the purchase model)" in text
