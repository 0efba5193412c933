"""/report, /sla, /csat and /care against figures worked out by hand.

The business is in Asia/Shanghai (UTC+8): an order at 2026-01-31 17:00 UTC
is on 1 February for the shop, one at 2026-02-28 16:30 UTC on 1 March.
Every test runs on SQLite and on PostgreSQL (the ``db`` fixture, tests/conftest.py).
"""

from __future__ import annotations

import pytest

from bot.config import Settings
from bot.reports import care, csat, sales, sla
from bot.reports.periods import Period
from storage.db import Database
from tests.conftest import START
from tests.helpers import Data, utc

FEB = Period(utc(2026, 2, 1).date(), utc(2026, 2, 28).date(), "month")


async def build_shop(db: Database) -> None:
    async with db.session() as session:
        d = Data(session)
        ann = d.customer("Ann", registered=utc(2025, 12, 10))
        bo = d.customer("Bo", registered=utc(2026, 1, 20))
        cy = d.customer("Cy", registered=utc(2026, 2, 5))
        d.customer("Di", registered=utc(2026, 2, 28, 17))  # 1 March, 01:00 in Shanghai
        rice, oil, salt = d.product("Rice", 4000), d.product("Oil", 2000), d.product("Salt", 500)
        await session.flush()
        m1 = d.outbox("reorder", ann, sent=utc(2026, 2, 1, 5))
        m2 = d.outbox("reorder", bo, sent=utc(2026, 2, 12, 3))
        m3 = d.outbox("winback", cy, sent=utc(2026, 2, 18, 3))
        d.outbox("birthday", ann, status="skipped", created=utc(2026, 2, 20, 3), skip_reason="weekly cap")
        m5 = d.outbox("reorder", bo, sent=utc(2026, 1, 20, 3))
        d.outbox("order_update", ann, sent=utc(2026, 2, 3, 3), category="service")
        await session.flush()
        # February (the shop's days)
        o1 = d.order(ann, utc(2026, 2, 3, 2), 10000, items=[(rice, 2, 4000), (oil, 1, 2000)])
        o2 = d.order(ann, utc(2026, 2, 10, 2), 5000, items=[(rice, 1, 4000), (salt, 2, 500)], attributed=m1)
        o3 = d.order(bo, utc(2026, 2, 15, 2), 8000, items=[(oil, 4, 2000)], attributed=m2)
        d.order(cy, utc(2026, 2, 20, 2), 3000, status="cancelled", items=[(rice, 1, 3000)], attributed=m3)
        d.order(cy, utc(2026, 1, 31, 17), 2000, items=[(salt, 4, 500)])  # 1 February locally
        d.order(bo, utc(2026, 2, 28, 16, 30), 7000, items=[(rice, 1, 7000)])  # 1 March locally
        # January
        d.order(ann, utc(2026, 1, 5, 2), 6000, items=[(rice, 1, 4000), (oil, 1, 2000)])
        d.order(bo, utc(2026, 1, 25, 2), 4000, items=[(rice, 1, 4000)], attributed=m5)
        d.order(bo, utc(2026, 1, 31, 15, 59), 1000, items=[(salt, 2, 500)])  # 31 January, 23:59 locally
        # Surveys after delivery: three sent in February, two answered (5 and 3).
        await session.flush()
        for order in (o1, o2, o3):
            d.outbox("survey", ann, sent=utc(2026, 2, 20, 3), dedupe_key=f"survey:{order}")
        d.survey_answer(o1, ann, 5, utc(2026, 2, 21, 3))
        d.survey_answer(o2, ann, 3, utc(2026, 2, 22, 3))
        # Complaints
        d.ticket(ann, utc(2026, 2, 2, 2), first_response_at=utc(2026, 2, 2, 3), first_response_minutes=10,
                 first_response_breached=False, resolved_at=utc(2026, 2, 3, 2), resolution_minutes=100,
                 resolution_breached=False, rating=5, status="closed", assignee_name="Sam")
        d.ticket(bo, utc(2026, 2, 4, 2), first_response_at=utc(2026, 2, 4, 3), first_response_minutes=20,
                 first_response_breached=False, resolved_at=utc(2026, 2, 5, 2), resolution_minutes=200,
                 resolution_breached=False, rating=4, status="closed", assignee_name="Sam")
        d.ticket(cy, utc(2026, 2, 6, 2), first_response_at=utc(2026, 2, 6, 3), first_response_minutes=30,
                 first_response_breached=False, resolved_at=utc(2026, 2, 8, 2), resolution_minutes=300,
                 resolution_breached=True, rating=2, status="closed", assignee_name="Kim", category="delivery")
        d.ticket(cy, utc(2026, 2, 9, 2), first_response_at=utc(2026, 2, 9, 6), first_response_minutes=200,
                 first_response_breached=True, status="in_progress", assignee_name="Kim", category="delivery",
                 resolution_due_at=utc(2026, 2, 10, 2))
        d.ticket(ann, utc(2026, 1, 30, 2), first_response_at=utc(2026, 1, 30, 3), first_response_minutes=40,
                 first_response_breached=False, resolved_at=utc(2026, 1, 31, 16, 30), resolution_minutes=400,
                 resolution_breached=False, status="resolved", assignee_name="Sam")
        await d.commit()


NOW = START  # 2026-03-02 10:00 in Shanghai


async def test_sales_figures_february(db: Database, settings: Settings) -> None:
    await build_shop(db)
    async with db.session() as session:
        report = await sales.compute(session, settings, FEB, NOW)
    c, b = report.current, report.before
    assert report.previous == Period(utc(2026, 1, 1).date(), utc(2026, 1, 31).date(), "month")
    assert (c.orders, c.revenue, c.active_customers, c.cancelled, c.new_customers) == (4, 25000, 3, 1, 1)
    assert c.average_order == 6250
    assert (b.orders, b.revenue, b.active_customers, b.cancelled, b.new_customers) == (3, 11000, 2, 0, 1)
    assert b.average_order == 3667
    assert [(p.name_en, p.quantity, p.revenue) for p in report.top_products] == [
        ("Rice", 3, 12000), ("Oil", 5, 10000), ("Salt", 6, 3000)]
    assert report.top_products[0].revenue_share == pytest.approx(0.48)
    trend = {p.label: p.revenue for p in report.trend if p.revenue}
    assert trend == {"2026-02-01": 2000, "2026-02-03": 10000, "2026-02-10": 5000, "2026-02-15": 8000}
    assert len(report.trend) == 28 and report.trend_unit == "day"
    assert {p.label: p.revenue for p in report.trend_before if p.revenue} == {
        "2026-01-05": 6000, "2026-01-25": 4000, "2026-01-31": 1000}


async def test_service_figures_february(db: Database, settings: Settings) -> None:
    await build_shop(db)
    async with db.session() as session:
        report = await sales.compute(session, settings, FEB, NOW)
    s = report.sla
    assert (s.opened, s.resolved) == (4, 4)
    assert (s.first_response.count, s.first_response.median, s.first_response.p90) == (4, 25, pytest.approx(149))
    assert s.first_response.within_share == 0.75
    assert (s.resolution.count, s.resolution.median, s.resolution.p90) == (4, 250, pytest.approx(370))
    assert s.resolution.within_share == 0.75
    before = report.sla_before
    assert (before.opened, before.resolved, before.first_response.median, before.resolution.count) == (1, 0, 40, 0)
    q = report.csat
    assert (q.resolved, q.rated, q.good) == (4, 3, 2)
    assert q.average == pytest.approx(11 / 3)
    assert q.response_rate == 0.75 and q.good_share == pytest.approx(2 / 3)
    assert report.csat_before.resolved == 0 and report.csat_before.average is None
    survey = report.survey
    assert (survey.sent, survey.answered, survey.average, survey.good_share) == (3, 2, 4.0, 0.5)
    assert survey.response_rate == pytest.approx(2 / 3)
    assert report.survey_before.sent == 0 and report.survey_before.response_rate is None


async def test_care_figures_february(db: Database, settings: Settings) -> None:
    await build_shop(db)
    async with db.session() as session:
        report = await care.compute(session, settings, FEB, NOW)
    current = {line.kind: (line.sent, line.orders, line.revenue, line.skipped) for line in report.current.lines}
    assert current == {"reorder": (2, 2, 13000, 0), "winback": (1, 0, 0, 0), "birthday": (0, 0, 0, 1),
                       "survey": (3, 0, 0, 0)}
    assert (report.current.sent, report.current.orders, report.current.revenue) == (6, 2, 13000)
    # Orders per message counts the kinds that ask for an order: 2 reminders + 1 win-back.
    assert report.current.conversion == pytest.approx(2 / 3)
    assert [line.kind for line in report.current.lines if line.attributed] == ["reorder", "winback"]
    assert report.current.line("survey").conversion is None
    assert [(line.kind, line.sent, line.orders, line.revenue) for line in report.before.lines] == [
        ("reorder", 1, 1, 4000)]
    assert report.skip_reasons == [("weekly cap", 1)]


async def test_sla_and_csat_by_staff(db: Database, settings: Settings) -> None:
    await build_shop(db)
    async with db.session() as session:
        report = await sla.compute(session, settings, FEB, NOW)
        satisfaction = await csat.compute(session, settings, FEB, NOW)
    staff = {row.key: row for row in report.by_staff}
    assert set(staff) == {"Sam", "Kim"}
    assert (staff["Sam"].first_response.count, staff["Sam"].first_response.median) == (2, 15)
    assert (staff["Sam"].resolution.count, staff["Sam"].resolution.median) == (3, 200)
    assert (staff["Kim"].first_response.median, staff["Kim"].first_response.within_share) == (115, 0.5)
    assert (staff["Kim"].resolution.median, staff["Kim"].resolution.within_share) == (300, 0.0)
    categories = {row.key: row.first_response.count for row in report.by_category}
    assert categories == {"quality": 2, "delivery": 2}
    # Ticket 4 is still open at the end of February and its resolution target passed on 10 Feb.
    assert report.overdue_open == 1
    by_staff = {row.key: row.summary for row in satisfaction.by_staff}
    assert (by_staff["Sam"].resolved, by_staff["Sam"].rated, by_staff["Sam"].average) == (3, 2, 4.5)
    assert (by_staff["Kim"].rated, by_staff["Kim"].good) == (1, 0)
    assert satisfaction.current.distribution == {1: 0, 2: 1, 3: 0, 4: 1, 5: 1}


async def test_a_day_is_the_business_day(db: Database, settings: Settings) -> None:
    await build_shop(db)
    day = Period(utc(2026, 3, 1).date(), utc(2026, 3, 1).date(), "day")
    async with db.session() as session:
        report = await sales.compute(session, settings, day, NOW)
        utc_settings = settings.model_copy(update={"default_timezone": "UTC"})
        in_utc = await sales.compute(session, utc_settings, day, NOW)
    # 2026-02-28 16:30 UTC is 1 March in Shanghai, 28 February in UTC.
    assert (report.current.orders, report.current.revenue, report.current.new_customers) == (1, 7000, 1)
    assert (in_utc.current.orders, in_utc.current.new_customers) == (0, 0)
    assert report.previous.start.isoformat() == "2026-02-28"
    assert report.before.orders == 0


async def test_no_orders_and_no_tickets(db: Database, settings: Settings) -> None:
    async with db.session() as session:
        report = await sales.compute(session, settings, FEB, NOW)
        service = await sla.compute(session, settings, FEB, NOW)
        satisfaction = await csat.compute(session, settings, FEB, NOW)
        results = await care.compute(session, settings, FEB, NOW)
    assert (report.current.orders, report.current.revenue, report.current.average_order) == (0, 0, None)
    assert report.top_products == [] and all(p.revenue == 0 for p in report.trend)
    assert report.sla.first_response.median is None and report.sla.first_response.within_share is None
    assert service.by_staff == [] and service.overdue_open == 0
    assert satisfaction.current.average is None and satisfaction.current.response_rate is None
    assert results.current.lines == [] and results.current.conversion is None


async def test_long_periods_trend_by_month(db: Database, settings: Settings) -> None:
    await build_shop(db)
    period = Period(utc(2025, 9, 1).date(), utc(2026, 2, 28).date(), "range")
    async with db.session() as session:
        report = await sales.compute(session, settings, period, NOW)
    assert report.trend_unit == "month"
    assert [(p.label, p.revenue) for p in report.trend][-2:] == [("2026-01", 11000), ("2026-02", 25000)]
    assert len(report.trend) == 6

