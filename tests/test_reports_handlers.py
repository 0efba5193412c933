"""The manager's report commands as conversations: /report and friends,
/export, messages to a segment, and the daily digest."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import func, select

from bot.app import App
from bot.fake_telegram import FakeTelegram, FakeUser, SentMessage
from bot.reports import REPORTS, ReportSpec, output
from bot.reports.output import split_text
from jobs.runner import advance
from storage.models import OutboxMessage, ReportDigest, SegmentCampaign
from tests.conftest import MANAGER_ID, STAFF_CHAT_ID, restart
from tests.helpers import Data, utc
from tests.test_reports_sales import build_shop


def photos(messages: list[SentMessage]) -> list[SentMessage]:
    return [m for m in messages if m.kind == "photo"]


def texts_of(messages: list[SentMessage]) -> str:
    return "\n".join(m.text or "" for m in messages if m.kind == "text")


def assert_png(message: SentMessage) -> None:
    assert message.file is not None and message.file.startswith(b"\x89PNG")
    with Image.open(io.BytesIO(message.file)) as image:
        assert image.size[0] >= 800 and image.size[1] >= 400


@pytest.fixture
def no_charts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reports without their chart, for tests about something else (drawing takes a while)."""
    monkeypatch.setattr(output, "render_chart", lambda *_: None)


@pytest.fixture
def no_compute(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replace every report's computation with one that records the call."""
    calls: list[str] = []

    def fake(name: str) -> Any:
        async def compute(*_: Any) -> Any:
            calls.append(name)
            raise AssertionError(f"{name} was computed")
        return compute

    for name, spec in list(REPORTS.items()):
        monkeypatch.setitem(REPORTS, name, ReportSpec(name, fake(name), spec.default_period, spec.optional_period))
    return calls


# ----- who may ask ---------------------------------------------------------------------------

async def test_customers_and_staff_are_refused_and_nothing_is_computed(
        app: App, customer: FakeUser, staff: FakeUser, no_compute: list[str]) -> None:
    for command in ("/report", "/abc 12m", "/rfm", "/churn", "/seasonal", "/sla", "/csat", "/care",
                    "/export abc", "/digest 8"):
        replies = await customer.send(command)
        assert [m.text for m in replies] == ["Sorry, reports are for managers only. If you need figures, "
                                            "please ask a manager."], command
        replies = await staff.send(command)
        assert len(replies) == 1 and "managers only" in replies[0].text and replies[0].chat_id == STAFF_CHAT_ID
    assert no_compute == []
    async with app.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(ReportDigest)) == 0


@pytest.mark.usefixtures("no_charts")
async def test_a_press_by_someone_else_is_refused(app: App, world: FakeTelegram, manager: FakeUser,
                                                  staff: FakeUser) -> None:
    await build_shop(app.db)
    await manager.in_chat(STAFF_CHAT_ID).send("/rfm 2026-02")
    button = staff.last_with_buttons()
    assert await staff.press("Message a segment", button) == []
    assert world.alerts[-1] == (0, "Sorry, reports are for managers only.", True)


async def test_other_groups_get_no_reports(app: App, world: FakeTelegram, no_compute: list[str]) -> None:
    world.group(-100777, "Family chat")
    boss = FakeUser(world, MANAGER_ID, "Boss", chat_id=-100777)
    replies = await boss.send("/report")
    assert len(replies) == 1 and "private chat with a manager or in the staff group" in replies[0].text
    assert no_compute == []


# ----- the reports ---------------------------------------------------------------------------

async def test_report_in_private_chat_has_a_chart_and_figures(app: App, manager: FakeUser) -> None:
    await build_shop(app.db)
    replies = await manager.send("/report 2026-02")
    [photo] = photos(replies)
    assert_png(photo)
    assert "Revenue · 2026-02-01 – 2026-02-28" in photo.text
    assert "¥250.00 from 4 orders" in photo.text and "¥110.00 from 3" in photo.text
    text = texts_of(replies)
    assert "Beside each figure: 2026-01-01 – 2026-01-31" in text
    assert "Orders: 4 (was 3, +33%)" in text
    assert "Revenue: ¥250.00 (was ¥110.00, +127%)" in text
    assert "Average order: ¥62.50 (was ¥36.67, +70%)" in text
    assert "Cancelled (not counted): 1 (was 0)" in text
    assert "1. Rice, bag — ¥120.00 (48%), 3 sold" in text
    assert "First response, median: 25m (was 40m)" in text
    assert "First response, 9 in 10 answered within: 2h 29m" in text
    assert "Average rating (of 5): 3.7 (was —)" in text
    assert "• Reorder reminders: 2 sent → 2 orders, ¥130.00 (was 1 → 1)" in text
    care_text = texts_of(await manager.send("/care 2026-02"))
    assert "• the weekly cap: 1" in care_text
    assert photo.message_id < next(m for m in replies if m.kind == "text").message_id


async def test_reports_in_the_staff_group_for_a_manager(app: App, world: FakeTelegram, manager: FakeUser) -> None:
    await build_shop(app.db)
    boss = manager.in_chat(STAFF_CHAT_ID)
    for command, chart, words in (
        ("/abc 2026-02", True, "ABC classes · 2026-02-01 – 2026-02-28"),
        ("/rfm 2026-02", True, "RFM segments · 2026-02-01 – 2026-02-28"),
        ("/seasonal", True, "Seasonal index · 2026-02 – 2026-02"),
        ("/sla 2026-02", True, "Complaint handling · 2026-02-01 – 2026-02-28"),
        ("/csat 2026-02", True, "Satisfaction · 2026-02-01 – 2026-02-28"),
        ("/care 2026-02", False, "Care messages · 2026-02-01 – 2026-02-28"),
        ("/churn", False, "Churn risk · 2026-03-02"),
    ):
        replies = await boss.send(command)
        assert all(m.chat_id == STAFF_CHAT_ID for m in replies), command
        assert len(photos(replies)) == (1 if chart else 0), command
        for photo in photos(replies):
            assert_png(photo)
        assert words in texts_of(replies), command
    text = texts_of(await boss.send("/abc 2026-02"))
    assert "1. Ann (#1) — ¥150.00 (60.0%), 2 orders" in text
    assert text.endswith("2. Bo (#2) — ¥80.00 (32.0%), 1 order")


async def test_reports_without_data_say_so(app: App, manager: FakeUser) -> None:
    expected = {
        "/report": "Orders: 0 (was 0)",
        "/abc": "No orders in this period, so there is nobody to class.",
        "/rfm": "No orders in this period, so there is nobody to score.",
        "/churn": "No customer has ordered in the last 365 days yet.",
        "/seasonal": "No orders in the last three years",
        "/sla": "No complaints in this period.",
        "/csat": "No complaint was resolved in this period.",
        "/care": "No care messages in this period.",
    }
    for command, words in expected.items():
        replies = await manager.send(command)
        assert photos(replies) == [], command
        assert words in texts_of(replies), command
        assert not any(m.buttons for m in replies), command


async def test_bad_periods_are_explained(app: App, manager: FakeUser, no_compute: list[str]) -> None:
    replies = await manager.send("/report lastyear")
    assert "I could not read the period “lastyear”." in replies[0].text
    assert "/report today, week, month" in replies[0].text
    replies = await manager.send("/churn 2026-02")
    assert "/churn takes no period" in replies[0].text
    replies = await manager.send("/abc 2099-01")
    assert "could not read the period" in replies[0].text
    assert no_compute == []


async def test_reports_in_chinese(app: App, world: FakeTelegram) -> None:
    await build_shop(app.db)
    boss = FakeUser(world, MANAGER_ID, "老板", language_code="zh-hans")
    replies = await boss.send("/report 2026-02")
    text = texts_of(replies)
    assert "经营报表" in text and "订单数：4（上期 3，+33%）" in text
    assert "销售额" in photos(replies)[0].text
    replies = await boss.send("/rfm 2026-02")
    assert "RFM 客户分群" in texts_of(replies) and replies[-1].labels == ["📨 给分群发消息"]


# ----- export ----------------------------------------------------------------------------------

def read_csv(message: SentMessage) -> list[list[str]]:
    assert message.kind == "document" and message.file is not None
    return list(csv.reader(io.StringIO(message.file.decode("utf-8-sig"))))


@pytest.mark.usefixtures("no_charts")
async def test_export_sends_csv(app: App, manager: FakeUser) -> None:
    await build_shop(app.db)
    [document] = await manager.send("/export abc 2026-02")
    assert document.file_name == "caredesk-abc-2026-02-01_2026-02-28.csv"
    assert "/abc · 2026-02-01 – 2026-02-28 as CSV" in document.text
    rows = read_csv(document)
    assert rows[0] == ["customer_id", "name", "orders", "revenue", "class"]
    assert rows[1:] == [["1", "Ann", "2", "15000", "A"], ["2", "Bo", "1", "8000", "A"], ["3", "Cy", "1", "2000", "B"]]
    [document] = await manager.send("/export report 2026-02")
    rows = {row[0]: row[1:] for row in read_csv(document)}
    assert rows["revenue"] == ["25000", "11000"] and rows["orders"] == ["4", "3"]
    [document] = await manager.in_chat(STAFF_CHAT_ID).send("/export churn")
    assert read_csv(document)[0][0] == "customer_id" and document.chat_id == STAFF_CHAT_ID
    for name in ("rfm", "seasonal", "sla", "csat", "care"):
        [document] = await manager.send(f"/export {name} 2026-02" if name != "seasonal" else "/export seasonal")
        assert len(read_csv(document)) >= 1, name


async def test_export_without_a_name(app: App, manager: FakeUser) -> None:
    for command in ("/export", "/export sales"):
        [reply] = await manager.send(command)
        assert "Which report?" in reply.text and "report, abc, rfm, churn" in reply.text
    [reply] = await manager.send("/export abc nonsense")
    assert "could not read the period" in reply.text


# ----- a care message to a segment ----------------------------------------------------------------

async def _segment_shop(app: App) -> dict[str, int]:
    """Five champions (three can receive care messages) among twenty one-off customers of last spring.

    Over the last 12 months the champions have 5 orders each, the others 1: F = 5 and 1. The others
    last ordered on 1–20 April 2025, one a day: R = 1 for the first five (Lost), 2, 3, 4 for the next.
    """
    async with app.db.session() as session:
        d = Data(session)
        ids: dict[str, int] = {}
        for n in range(5):
            cid = d.customer(f"Champ <{n}>", consent=n != 3, reachable=n != 4,
                             language="zh" if n == 1 else "en")
            ids[f"champ{n}"] = cid
            for day in range(5):
                d.order(cid, utc(2026, 2, 20 + day, 3), 2000)
        for n in range(20):
            cid = d.customer(f"Once {n}")
            ids[f"once{n}"] = cid
            d.order(cid, utc(2025, 4, 1 + n, 3), 100)
        await d.commit()
    return ids


@pytest.mark.usefixtures("no_charts")
async def test_message_a_segment(app: App, world: FakeTelegram, manager: FakeUser) -> None:
    ids = await _segment_shop(app)
    replies = await manager.send("/rfm 12m")
    assert replies[-1].labels == ["📨 Message a segment"]
    await manager.press("Message a segment")
    choose = manager.last()
    assert "Which customers?" in choose.text
    assert choose.labels == ["Champions · 5", "New · 5", "Potential loyalists · 5", "Hibernating · 5", "Lost · 5",
                             "Cancel"]
    await manager.press("Champions")
    assert manager.last().text.startswith("📨 Champions: 5 customers, 3 of them accept care messages.")
    assert "Hello friend! We have not seen you for a while" in manager.last().text
    assert "<blockquote>Thank you, friend, for being with us!" in manager.last().html
    assert "<i>Rather not get messages like this? Send /stop.</i></blockquote>" in manager.last().html
    assert manager.last().labels == ["We miss you", "Thank you", "Time to restock?", "How are we doing?", "Cancel"]
    await manager.press("Thank you")
    confirm = manager.last()
    assert "Send “Thank you” to Champions?" in confirm.text
    assert "3 of 5 customers accept care messages" in confirm.text
    assert "at most 1 a day and 3 a week" in confirm.text and "21:00–09:00" in confirm.text
    await manager.press("Send")
    assert manager.last().text == ("✅ 3 care messages queued for Champions (“Thank you”). They go out with the next "
                                   "deliveries, within the care rules.")
    async with app.db.session() as session:
        rows = list(await session.scalars(select(OutboxMessage).order_by(OutboxMessage.customer_id)))
        campaign = await session.scalar(select(SegmentCampaign))
    assert [r.customer_id for r in rows] == [ids["champ0"], ids["champ1"], ids["champ2"]]
    assert {(r.kind, r.category, r.status) for r in rows} == {("segment", "care", "pending")}
    assert rows[0].dedupe_key == f"seg:rfm:champions:thanks:20260302:{ids['champ0']}"
    assert rows[0].text.startswith("Thank you, Champ &lt;0&gt;, for being with us!")
    assert rows[1].text.startswith("Champ &lt;1&gt;，谢谢您一直以来的支持！")
    assert (campaign.members, campaign.queued, campaign.source, campaign.created_by) == (5, 3, "rfm", MANAGER_ID)
    # Every pressed message lost its buttons.
    assert all(not m.buttons for m in manager.inbox())


@pytest.mark.usefixtures("no_charts")
async def test_segment_send_twice_and_stale_buttons(app: App, world: FakeTelegram, manager: FakeUser) -> None:
    await _segment_shop(app)
    await manager.send("/rfm 12m")
    await manager.press("Message a segment")
    await manager.press("Champions")
    await manager.press("We miss you")
    confirm = manager.last_with_buttons()
    send = confirm.inline_buttons[0]["callback_data"]
    await manager.press("Send")
    # A double press (or the same message to the same segment again today) queues nothing more.
    assert await manager.press_data(send, confirm) == []
    assert world.alerts[-1] == (0, "This message already went to this segment today.", True)
    # Forged or stale data: an unknown segment, template, or period.
    for forged in ("rp:go:rfm:vips:thanks:2026-01-01..2026-03-02", "rp:go:rfm:champions:spam:2026-01-01..2026-03-02",
                   "rp:tpl:rfm:champions:thanks:someday", "rp:go:crm:champions:thanks:", "rp:zap:rfm:::"):
        assert await manager.press_data(forged, confirm) == []
        assert world.alerts[-1] == (0, "This choice is out of date; run the report again.", True)
    async with app.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(OutboxMessage)) == 3


@pytest.mark.usefixtures("no_charts")
async def test_segment_cancel_and_restart_in_the_middle(app: App, world: FakeTelegram, manager: FakeUser) -> None:
    await _segment_shop(app)
    await manager.send("/rfm 12m")
    await manager.press("Message a segment")
    await manager.press("Cancel")
    assert manager.last().text == "Nothing was sent."
    await manager.send("/rfm 12m")
    await manager.press("Message a segment")
    await manager.press("Lost")
    await manager.press("We miss you")
    app = await restart(app, world)  # the choice lives in the button: it survives
    await manager.press("Send")
    assert manager.last().text.startswith("✅ 5 care messages queued for Lost")
    # The care engine's delivery sends them (09:00–21:00 in the customer's zone, within caps).
    await advance(app.jobs, timedelta(minutes=2))
    assert "Hello Once 0! We have not seen you for a while" in world.last(500_006).text
    await app.close()


@pytest.mark.usefixtures("no_charts")
async def test_message_the_churn_list(app: App, world: FakeTelegram, manager: FakeUser) -> None:
    async with app.db.session() as session:
        d = Data(session)
        late = d.customer("Late Lin")
        d.order(late, utc(2026, 1, 21), 3000)
        quiet = d.customer("No consent", consent=False)
        d.order(quiet, utc(2026, 1, 2), 1000)
        await d.commit()
    replies = await manager.send("/churn")
    text = texts_of(replies)
    # Two customers: too few repeat buyers for the model, so the fallback rule ranks them.
    assert ("2 of 2 customers of the last 365 days are more likely than not to place no order in the next "
            "90 days") in text
    assert "ranked by fewest purchase days, then longest silence" in text
    assert "1. Late Lin (#1) — usual order ¥30.00, 1 order, 13 % chance of an order in 90 days" in text
    assert "last order 2026-01-21, expected loss ¥26.11, last contact never" in text
    await manager.press("Message these customers")
    assert manager.last().text.startswith("📨 At risk (likely lost): 2 customers, 1 of them accept")
    await manager.press("Time to restock?")
    await manager.press("Send")
    assert manager.last().text.startswith("✅ 1 care message queued for At risk (likely lost)")
    async with app.db.session() as session:
        [row] = list(await session.scalars(select(OutboxMessage)))
    assert row.customer_id == late and row.dedupe_key == f"seg:churn:overdue:restock:20260302:{late}"


@pytest.mark.usefixtures("no_charts")
async def test_nobody_reachable_in_the_segment(app: App, manager: FakeUser) -> None:
    async with app.db.session() as session:
        d = Data(session)
        d.order(d.customer("Shy", consent=False), utc(2026, 2, 20), 1000)
        await d.commit()
    await manager.send("/rfm 12m")
    await manager.press("Message a segment")
    await manager.press("New")
    await manager.press("Thank you")
    await manager.press("Send")
    assert "Nobody in New can receive care messages right now" in manager.last().text
    async with app.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(OutboxMessage)) == 0
        assert await session.scalar(select(func.count()).select_from(SegmentCampaign)) == 0


# ----- the daily digest ------------------------------------------------------------------------------

@pytest.mark.usefixtures("no_charts")
async def test_daily_digest(app: App, world: FakeTelegram, manager: FakeUser) -> None:
    await build_shop(app.db)
    [status] = await manager.send("/digest")
    assert "Off." in status.text and status.labels[:2] == ["07:00", "08:00"] and "Turn off" in status.labels
    await manager.press("08:00")  # 10:00 in Shanghai now: the first one comes tomorrow
    assert manager.last().text == ("✅ Daily summary on: every day at 08:00 (Asia/Shanghai) in this chat, with "
                                   "yesterday's figures. The first one comes tomorrow.")
    hourly = timedelta(hours=1)
    await advance(app.jobs, timedelta(hours=21), step=hourly)  # 07:00 the next day
    assert not any("Yesterday" in (m.text or "") for m in manager.inbox())
    await advance(app.jobs, timedelta(hours=1, minutes=10), step=timedelta(minutes=35))  # 08:10
    await advance(app.jobs, timedelta(minutes=1))  # the outbox's delivery runs
    digests = [m for m in manager.inbox() if "Yesterday" in (m.text or "")]
    assert len(digests) == 1
    assert digests[0].text.startswith("☀️ Yesterday · 2026-03-02 (beside: the day before)")
    assert "Orders: 0 (was 1, -100%)" in digests[0].text  # 1 March had Bo's order of ¥70
    await advance(app.jobs, timedelta(hours=3), step=hourly)
    assert len([m for m in manager.inbox() if "Yesterday" in (m.text or "")]) == 1  # once a day
    [status] = await manager.send("/digest")
    assert "On: every day at 08:00 (Asia/Shanghai) in this chat" in status.text
    [off] = await manager.send("/digest off")
    assert off.text == "Daily summary off."
    await advance(app.jobs, timedelta(days=1), step=timedelta(hours=2))
    assert len([m for m in manager.inbox() if "Yesterday" in (m.text or "")]) == 1


@pytest.mark.usefixtures("no_charts")
async def test_digest_in_the_staff_group_today_and_bad_hours(app: App, world: FakeTelegram,
                                                            manager: FakeUser) -> None:
    boss = manager.in_chat(STAFF_CHAT_ID)
    [reply] = await boss.send("/digest 25")
    assert "an hour from 0 to 23" in reply.text
    [reply] = await boss.send("/digest 18")
    assert reply.text.endswith("with yesterday's figures.")  # 18:00 is still to come today
    await advance(app.jobs, timedelta(hours=8, minutes=10), step=timedelta(minutes=49))  # 18:10 in Shanghai
    await advance(app.jobs, timedelta(minutes=1))  # the outbox's delivery runs
    [digest] = [m for m in world.sent(STAFF_CHAT_ID) if "Yesterday" in (m.text or "")]
    assert digest.text.startswith("☀️ Yesterday · 2026-03-01")
    async with app.db.session() as session:
        row = await session.scalar(select(ReportDigest))
    assert (row.chat_id, row.hour, row.enabled, row.last_sent_on.isoformat()) == (STAFF_CHAT_ID, 18, True,
                                                                                  "2026-03-02")
    # A stale hour button that never existed.
    message = boss.last()
    assert await boss.press_data("rp:dg:::99:", message) == []
    assert world.alerts[-1][1] == "This button has expired."


@pytest.mark.usefixtures("no_charts")
async def test_digest_stops_for_someone_no_longer_a_manager(app: App, world: FakeTelegram,
                                                           manager: FakeUser) -> None:
    await manager.send("/digest 11")
    app.settings.manager_ids.discard(MANAGER_ID)
    await advance(app.jobs, timedelta(hours=1, minutes=10), step=timedelta(minutes=35))
    assert not any("Yesterday" in (m.text or "") for m in manager.inbox())
    async with app.db.session() as session:
        row = await session.scalar(select(ReportDigest))
    assert row.enabled is False


# ----- long texts ------------------------------------------------------------------------------------

def test_split_text_keeps_lines_whole() -> None:
    lines = [f"<b>{i:04d}</b> " + "x" * 90 for i in range(100)]  # 39 lines fit in 4096
    parts = split_text("\n".join(lines), 4096)
    assert len(parts) == 3 and all(len(p) <= 4096 for p in parts)
    assert "\n".join(parts) == "\n".join(lines)
    assert split_text("short") == ["short"]


async def test_two_managers_pressing_at_once_make_one_campaign(app: App) -> None:
    from storage.repositories import Repos

    async with app.db.session() as session:
        repos = Repos(session)
        values = dict(key="rfm:lost:thanks:20260302", source="rfm", segment="lost", template="thanks", period="",
                      created_by=MANAGER_ID, now=app.clock.now(), members=3, queued=0)
        first = await repos.reports.add_campaign(**values)
        second = await repos.reports.add_campaign(**values)
        await repos.commit()
    assert first is not None and first.key == values["key"] and second is None
