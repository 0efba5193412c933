"""No English in the Chinese flow: units, durations, period words and wording, as a Chinese-speaking
customer, staff member or manager meets them."""

from __future__ import annotations

from bot.app import App
from bot.fake_telegram import FakeTelegram, FakeUser
from tests.orders_helpers import load_catalog, make_customer


async def test_units_in_chinese(app: App, world: FakeTelegram) -> None:
    """The sample catalog's units have Chinese names; a Chinese customer sees them, an English one does not."""
    await load_catalog(app)
    mei = FakeUser(world, 100009, "梅")
    await make_customer(app, mei, "梅", lang="zh")
    await mei.send("/order")
    replies = await mei.press("大米")
    assert replies[0].labels[0] == "泰国香米，5 公斤装 · ¥68.00"
    replies = await mei.press(replies[0].labels[0])
    assert "泰国香米</b>，5 公斤装 · ¥68.00" in (replies[0].html or "")
    await mei.press("2")
    replies = await mei.press("去结算")
    ann = FakeUser(world, 100010, "Ann")
    await make_customer(app, ann, "Ann")
    await ann.send("/order")
    replies = await ann.press("Rice")
    assert replies[0].labels[0] == "Jasmine rice, 5 kg bag · ¥68.00"
