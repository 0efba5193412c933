"""No English in the Chinese flow: units, durations, period words and wording, as a Chinese-speaking
customer, staff member or manager meets them."""

from __future__ import annotations

import re

import pytest

from bot.app import App
from bot.fake_telegram import FakeTelegram, FakeUser
from tests.conftest import MANAGER_ID
from tests.helpers import add_customer, customer_row, load_catalog


async def test_units_in_chinese(app: App, world: FakeTelegram) -> None:
    """The sample catalog's units have Chinese names; a Chinese customer sees them, an English one does not."""
    await load_catalog(app)
    mei = FakeUser(world, 100009, "梅")
    await add_customer(app, mei.id, name="梅", language="zh")
    await mei.send("/order")
    replies = await mei.press("大米")
    assert replies[0].labels[0] == "泰国香米，5 公斤装 · ¥68.00"
    replies = await mei.press(replies[0].labels[0])
    assert "泰国香米</b>，5 公斤装 · ¥68.00" in (replies[0].html or "")
    await mei.press("2")
    replies = await mei.press("去结算")
    ann = FakeUser(world, 100010, "Ann")
    await add_customer(app, ann.id, name="Ann")
    await ann.send("/order")
    replies = await ann.press("Rice")
    assert replies[0].labels[0] == "Jasmine rice, 5 kg bag · ¥68.00"


async def test_period_words_in_chinese(app: App, world: FakeTelegram, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.reports import output

    monkeypatch.setattr(output, "render_chart", lambda *_: None)
    boss = FakeUser(world, MANAGER_ID, "老板", language_code="zh-hans")
    for word, label in (("本月", "2026-03-01 – 2026-03-02"), ("今天", "2026-03-02"), ("昨天", "2026-03-01"),
                        ("本周", "2026-03-02"), ("今年", "2026-01-01 – 2026-03-02"),
                        ("30天", "2026-02-01 – 2026-03-02"), ("12个月", "2025-03-03 – 2026-03-02")):
        replies = await boss.send(f"/report {word}")
        assert f"经营报表 · {label}" in replies[0].text, word
    replies = await boss.send("/report 上辈子")
    assert "今天、昨天、本周、本月、今年、30天、12个月" in replies[0].text
    assert "month" not in replies[0].text
    help_text = (await boss.send("/help")).pop().text or ""
    assert "/report [今天|本周|本月|2026-03|…]" in help_text
    assert not re.search(r"today|week|month", help_text)


async def test_durations_in_chinese(app: App, world: FakeTelegram) -> None:
    mei = FakeUser(world, 100011, "梅")
    await add_customer(app, mei.id, name="梅", language="zh")
    await mei.send("/complaint")
    await mei.press("配送")
    await mei.send("袋子破了")
    replies = await mei.press("✅ 提交")
    text = "\n".join(m.text or "" for m in replies if m.chat_id == mei.id)
    assert "通常在营业时间内 30 分钟之内" in text or "通常在 30 分钟之内" in text, text
    assert not re.search(r"\d+[mhd]\b", text)


def test_duration_words() -> None:
    from bot.texts import TextRenderer

    renderer = TextRenderer()
    for minutes, en, zh in ((0, "0m", "0 分钟"), (30, "30m", "30 分钟"), (60, "1h", "1 小时"),
                            (1501, "1d 1h 1m", "1 天 1 小时 1 分钟")):
        assert renderer.render("en", "reports/chart_target.txt", priority="High priority",
                               minutes=minutes) == f"High priority target: {en}"
        assert renderer.render("zh", "reports/chart_target.txt", priority="高优先级",
                               minutes=minutes) == f"高优先级目标：{zh}"


async def test_one_form_for_order_numbers_and_wording_for_any_product(app: App, world: FakeTelegram) -> None:
    """"订单 #N" everywhere, "再来一单" for ordering again, and a delivery note that fits water as well as rice."""
    from tests.test_plurals import RENDERER

    texts = [RENDERER.render("zh", name, **context) for name, context in (
        ("care/survey", {"order_id": 7, "delivered": None}),
        ("care/survey_ask_comment", {"order_id": 7, "rating": 4}),
        ("care/survey_comment_saved", {"order_id": 7}),
        ("care/ask_comment_again", {"order_id": 7}),
        ("orders/status_changed", {"status": "delivered", "number": 7, "status_label": "", "reason": None}),
        ("orders/list", {"orders": [{"number": 7, "created_at": None, "status": "已送达", "total": 100,
                                     "products": ["桶装矿泉水"], "more": 0}], "tz": "Asia/Shanghai"}),
    )]
    for text in texts:
        assert "订单 #7" in text and "7 号" not in text, text
    assert "用餐" not in texts[4]
    assert RENDERER.render("zh", "buttons/care_order_again") == "🔁 再来一单"
    assert RENDERER.render("zh", "buttons/order_again", number=7) == "🔁 再来一单 #7"


async def test_staff_who_chose_chinese(app: App, world: FakeTelegram, customer: FakeUser, staff: FakeUser) -> None:
    """Staff who chose 中文 (for the staff chat): history lines in words, answers to their replies in Chinese."""
    from datetime import timedelta

    from sqlalchemy import update

    from storage.models import Ticket
    from tests.conftest import register
    from tests.helpers import card, file_complaint

    await register(customer, "Mei")
    await file_complaint(customer, category="Quality")
    the_card = card(world)
    await staff.send("/language")
    await staff.press("中文")
    app.clock.advance(timedelta(minutes=12))  # type: ignore[attr-defined]
    await staff.send("很抱歉，马上换一袋", reply_to=the_card.message_id)
    await staff.press("优先级", the_card)  # the card is redrawn in the staff chat's language
    await staff.press("高", the_card)
    replies = await staff.send("/ticket 1")
    history = "\n".join(m.text or "" for m in replies)
    assert "首次响应（12 分钟）" in history and "优先级 🟡 普通 → 🔴 高" in history, history
    assert " min" not in history and "normal" not in history
    async with app.db.session() as session:
        await session.execute(update(Ticket).values(status="closed"))
        await session.commit()
    replies = await staff.send("还有别的问题吗？", reply_to=the_card.message_id)
    assert replies[-1].text == "1 号已关闭，您的消息没有发给客户。"


async def test_customer_file_for_staff_who_chose_chinese(app: App, world: FakeTelegram, customer: FakeUser,
                                                         staff: FakeUser) -> None:
    from tests.conftest import register
    from tests.helpers import add_order

    await register(customer, "Mei")
    await add_order(app, (await customer_row(app, customer.id)).id, None, app.clock.now(), total=6800)
    await staff.send("/language")
    await staff.press("中文")
    replies = await staff.send("/customer Mei")
    text = "\n".join(m.text or "" for m in replies)
    assert "语言：</b>英文" in "\n".join(m.html or "" for m in replies) and "已送达" in text, text
    assert "delivered" not in text and "en ·" not in text


def test_a_reopening_reads_chinese_in_the_ticket_history() -> None:
    """The "not solved" detail stored with a reopening is shown in words, not in English (#12 item 7)."""
    from bot.texts import TextRenderer

    template = TextRenderer(currency="CNY").env.from_string(
        '{% import "zh/tickets/_labels.html" as L %}{{ L.event_detail("not solved") }}')
    assert template.render() == "客户反馈问题未解决"
