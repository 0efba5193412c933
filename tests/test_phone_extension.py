"""A phone typed with an extension keeps it: stored as E.164 plus the extension, shown back in the
customer's language, and on the staff's customer file."""

from __future__ import annotations

import pytest

from bot.app import App
from bot.fake_telegram import FakeTelegram, FakeUser
from bot.rules import customer_file as rules
from tests.helpers import customer_row, label, walk_to
from tests.test_registration import _edit_from_summary


@pytest.mark.parametrize("typed", ["(010) 8888-9999 ext 12", "010 8888 9999 转12", "010-88889999 x12",
                                   "010 8888 9999 分机：12", "+86 10 8888 9999 ext. 12"])
def test_extension_is_parsed(typed: str) -> None:
    assert rules.parse_phone(typed, "CN") == "+861088889999;ext=12"
    assert rules.split_phone(rules.parse_phone(typed, "CN")) == ("+861088889999", "12")
    assert rules.parse_phone("(010) 8888-9999", "CN") == "+861088889999"


async def test_extension_is_kept_and_shown(app: App, customer: FakeUser, staff: FakeUser) -> None:
    await walk_to(customer, "confirm")
    replies = await _edit_from_summary(customer, "phone", "(010) 8888-9999 ext 12")
    assert replies[0].text == "Phone: +861088889999 ext. 12 ✓"
    assert "+861088889999 ext. 12" in (replies[-1].text or "")
    await customer.press(label("confirm"))
    row = await customer_row(app, customer.id)
    assert row is not None
    assert (row.phone, row.phone_number, row.phone_extension) == ("+861088889999;ext=12", "+861088889999", "12")
    replies = await staff.send("/customer 88889999")
    assert "+861088889999 ext. 12" in (replies[-1].text or "")


async def test_extension_in_chinese(app: App, world: FakeTelegram) -> None:
    mei = FakeUser(world, 100777, "美玲", language_code="zh-hans")
    await mei.send("/start")
    await mei.send("美玲")
    replies = await mei.send("010 8888 9999 转 12")
    assert replies[0].text == "电话：+861088889999 转 12 ✓"
