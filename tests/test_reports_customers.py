"""/abc and /rfm against classes and scores worked out by hand,
on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from itertools import product

import pytest
from sqlalchemy import select

from bot.config import Settings
from bot.reports import abc, rfm
from bot.reports.periods import Period
from storage.db import Database
from storage.models import Customer
from tests.conftest import START
from tests.helpers import Data, utc

NOW = START  # 2026-03-02 02:00 UTC, 10:00 in Shanghai
FEB = Period(date(2026, 2, 1), date(2026, 2, 28), "month")
YEAR = Period(date(2025, 3, 3), date(2026, 3, 2), "range")


async def _classes(db: Database, settings: Settings, revenues: list[int], period: Period = FEB) -> abc.AbcReport:
    async with db.session() as session:
        d = Data(session)
        for index, revenue in enumerate(revenues):
            customer = d.customer(f"C{index + 1}")
            d.order(customer, utc(2026, 2, 10 + index % 10, 4), revenue)
        await d.commit()
        return await abc.compute(session, settings, period, NOW)


def _summary(report: abc.AbcReport) -> dict[str, tuple[int, int]]:
    return {c.name: (c.customers, c.revenue) for c in report.classes}


# ----- ABC ----------------------------------------------------------------------------------

async def test_abc_classes_by_cumulative_revenue(db: Database, settings: Settings) -> None:
    async with db.session() as session:
        d = Data(session)
        c1, c2, c3, c4, c5 = (d.customer(n) for n in ("Ann", "Bo", "Cy", "Di", "Ed"))
        d.order(c1, utc(2026, 2, 3), 300)
        d.order(c1, utc(2026, 2, 13), 200)
        d.order(c2, utc(2026, 2, 4), 300)
        d.order(c3, utc(2026, 2, 5), 100)
        d.order(c4, utc(2026, 2, 6), 60)
        d.order(c5, utc(2026, 2, 7), 40)
        d.order(c5, utc(2026, 2, 8), 1000, status="cancelled")  # not revenue
        d.order(c4, utc(2026, 3, 1), 5000)  # March: outside the period
        await d.commit()
        report = await abc.compute(session, settings, FEB, NOW)
        detail = await abc.csv_detail(session, settings, FEB)
    # Sorted: 500, 300 | 100, 60 | 40; revenue above each: 0, 500 | 800, 900 | 960 (of 1000).
    assert _summary(report) == {"A": (2, 800), "B": (2, 160), "C": (1, 40)}
    assert (report.total_customers, report.total_revenue) == (5, 1000)
    assert [c.revenue_share for c in report.classes] == [pytest.approx(0.8), pytest.approx(0.16), pytest.approx(0.04)]
    assert report.classes[0].customer_share == pytest.approx(0.4)
    assert [(c.name, c.revenue, c.orders, c.klass) for c in report.top] == [("Ann", 500, 2, "A"), ("Bo", 300, 1, "A")]
    assert [row[4] for row in detail] == ["A", "A", "B", "B", "C"]
    assert detail[0][:4] == [c1, "Ann", 2, 500]


async def test_abc_ties_never_straddle_a_boundary(db: Database, settings: Settings) -> None:
    # 600 | 150, 150 (600 above each: A) | 50 (900 above: B) | 25, 25 (950 above: not under 95 %, C)
    report = await _classes(db, settings, [600, 150, 150, 50, 25, 25])
    assert _summary(report) == {"A": (3, 900), "B": (1, 50), "C": (2, 50)}


async def test_abc_tied_group_crossing_the_line(db: Database, settings: Settings) -> None:
    # 400 | 200, 200, 200: one by one the third would be B (800 above it); tied, all have 400 above: A.
    report = await _classes(db, settings, [400, 200, 200, 200])
    assert _summary(report) == {"A": (4, 1000), "B": (0, 0), "C": (0, 0)}
    assert [c.revenue for c in report.top] == [400, 200, 200, 200]


async def test_abc_one_customer_and_no_orders(db: Database, settings: Settings) -> None:
    async with db.session() as session:
        empty = await abc.compute(session, settings, FEB, NOW)
    assert empty.total_customers == 0 and empty.top == []
    assert _summary(empty) == {"A": (0, 0), "B": (0, 0), "C": (0, 0)}
    assert all(c.revenue_share is None for c in empty.classes)
    report = await _classes(db, settings, [1234])
    assert _summary(report) == {"A": (1, 1234), "B": (0, 0), "C": (0, 0)}


async def test_abc_thresholds_are_settings(db: Database, settings: Settings) -> None:
    strict = settings.model_copy(update={"abc_a_share": 0.5, "abc_b_share": 0.3})
    async with db.session() as session:
        d = Data(session)
        for revenue in (500, 300, 100, 60, 40):
            d.order(d.customer(), utc(2026, 2, 10), revenue)
        await d.commit()
        report = await abc.compute(session, strict, FEB, NOW)
    # above: 0 (<500: A), 500 (<800: B), 800, 900, 960 (C)
    assert _summary(report) == {"A": (1, 500), "B": (1, 300), "C": (3, 200)}


# ----- RFM ----------------------------------------------------------------------------------

async def _customer_with(d: Data, name: str, last: datetime, orders: int, revenue: int) -> int:
    customer = d.customer(name)
    each = revenue // orders
    for i in range(orders):
        amount = revenue - each * (orders - 1) if i == orders - 1 else each
        d.order(customer, last - timedelta(days=orders - 1 - i), amount)
    return customer


async def test_rfm_scores_and_segments(db: Database, settings: Settings) -> None:
    async with db.session() as session:
        d = Data(session)
        await _customer_with(d, "Ann", utc(2026, 3, 1, 3), 5, 5000)  # R5 F5 M5: champion
        await _customer_with(d, "Bo", utc(2026, 2, 1, 3), 4, 4000)  # R4 F4 M4: champion
        await _customer_with(d, "Cy", utc(2025, 12, 1, 3), 3, 3000)  # R3 F3 M3: loyal
        await _customer_with(d, "Di", utc(2025, 9, 1, 3), 2, 2000)  # R2 F2 M2: hibernating
        await _customer_with(d, "Ed", utc(2025, 5, 1, 3), 1, 1000)  # R1 F1 M1: lost
        await d.commit()
        report = await rfm.compute(session, settings, YEAR, NOW)
        rows = await rfm.csv_detail(session, settings, YEAR)
    sizes = {s.code: (s.customers, s.orders, s.revenue) for s in report.segments if s.customers}
    assert sizes == {"champions": (2, 9, 9000), "loyal": (1, 3, 3000), "hibernating": (1, 2, 2000),
                     "lost": (1, 1, 1000)}
    assert report.segment("champions").revenue_share == pytest.approx(0.6)
    assert report.segment("champions").customer_share == pytest.approx(0.4)
    assert [(row[4], row[5], row[6], row[7]) for row in rows] == [
        (5, 5, 5, "champions"), (4, 4, 4, "champions"), (3, 3, 3, "loyal"), (2, 2, 2, "hibernating"),
        (1, 1, 1, "lost")]
    assert rows[0][1] == "2026-03-01"  # the shop's day of the last order


async def test_rfm_cant_lose_new_potential_at_risk(db: Database, settings: Settings) -> None:
    async with db.session() as session:
        d = Data(session)
        await _customer_with(d, "Ann", utc(2025, 4, 1, 3), 5, 5000)  # R1 F5 M5: can't lose
        await _customer_with(d, "Bo", utc(2026, 3, 1, 3), 1, 100)  # R5 F1 M1: new
        await _customer_with(d, "Cy", utc(2026, 2, 1, 3), 2, 200)  # R4 F2 M2: potential loyalist
        await _customer_with(d, "Di", utc(2025, 10, 1, 3), 4, 300)  # R2 F4 M3: at risk
        await _customer_with(d, "Ed", utc(2025, 12, 1, 3), 3, 400)  # R3 F3 M4: loyal
        await d.commit()
        report = await rfm.compute(session, settings, YEAR, NOW)
        at_risk = await rfm.members(session, settings, YEAR, "at_risk")
    sizes = {s.code: s.customers for s in report.segments if s.customers}
    assert sizes == {"cant_lose": 1, "new": 1, "potential": 1, "at_risk": 1, "loyal": 1}
    assert [(row.r, row.f, row.m) for row in at_risk] == [(2, 4, 3)]
    assert report.grid == {(1, 5): 1, (5, 1): 1, (4, 2): 1, (2, 4): 1, (3, 3): 1}


async def test_rfm_ties_and_the_business_day(db: Database, settings: Settings) -> None:
    async with db.session() as session:
        d = Data(session)
        ann, bo, cy = d.customer("Ann"), d.customer("Bo"), d.customer("Cy")
        d.order(ann, utc(2026, 3, 1, 3), 1000)  # 1 March in Shanghai
        d.order(bo, utc(2026, 2, 28, 16, 30), 1000)  # also 1 March in Shanghai (28 Feb in UTC)
        d.order(cy, utc(2026, 1, 1, 3), 1000)
        await d.commit()
        rows = {row.customer_id: row for row in await rfm.members(session, settings, YEAR)}
    # Everyone ordered once for the same amount: F = M = 1 (ties score low).
    # Ann and Bo share the most recent day: R = ceil(5 × 3/3) = 5; Cy: ceil(5 × 1/3) = 2.
    assert {cid: (row.r, row.f, row.m, row.segment) for cid, row in rows.items()} == {
        ann: (5, 1, 1, "new"), bo: (5, 1, 1, "new"), cy: (2, 1, 1, "hibernating")}


async def test_rfm_one_customer_is_new(db: Database, settings: Settings) -> None:
    async with db.session() as session:
        d = Data(session)
        d.order(d.customer("Ann"), utc(2026, 2, 20), 5000)
        await d.commit()
        report = await rfm.compute(session, settings, YEAR, NOW)
        empty = await rfm.compute(session, settings, Period(date(2024, 1, 1), date(2024, 1, 31)), NOW)
    assert {s.code: s.customers for s in report.segments if s.customers} == {"new": 1}
    assert empty.total_customers == 0 and all(s.customers == 0 for s in empty.segments)


def test_every_score_has_exactly_one_segment() -> None:
    for r, f, m in product(range(1, 6), repeat=3):
        matching = [rule.code for rule in rfm.RULES if rule.matches(r, f, m)]
        assert matching, (r, f, m)
        assert rfm.segment_of(r, f, m) == matching[0]
    assert rfm.segment_of(1, 5, 5) == "cant_lose" and rfm.segment_of(1, 5, 3) == "at_risk"
    assert rfm.segment_of(3, 1, 1) == "potential" and rfm.segment_of(2, 1, 5) == "hibernating"


async def test_sql_segments_match_the_rule_table(db: Database, settings: Settings) -> None:
    async with db.session() as session:
        d = Data(session)
        for i in range(25):
            await _customer_with(d, f"C{i}", utc(2025, 4, 1, 3) + timedelta(days=13 * i), 1 + (i * 7) % 6,
                                 100 * (1 + (i * 11) % 17))
        await d.commit()
        rows = await rfm.members(session, settings, YEAR)
    assert len(rows) == 25
    assert all(row.segment == rfm.segment_of(row.r, row.f, row.m) for row in rows)


# ----- churn: tests/test_churn_model.py ------------------------------------------------------------


async def test_forgotten_customers_stay_counted_without_a_name(db: Database, settings: Settings) -> None:
    async with db.session() as session:
        d = Data(session)
        gone = d.customer(forgotten=True)
        d.order(gone, utc(2026, 2, 3), 700)
        await d.commit()
        report = await abc.compute(session, settings, FEB, NOW)
        names = list(await session.scalars(select(Customer.name)))
    assert [(c.customer_id, c.name, c.revenue) for c in report.top] == [(gone, None, 700)]
    assert names == [None]


async def test_rfm_thresholds_match_the_rank_formulas(db: Database, settings: Settings) -> None:
    """The scores come from thresholds; they must equal the quintile formulas of the module doc."""
    import math
    import random

    rng = random.Random(11)
    expected_input = {}
    async with db.session() as session:
        d = Data(session)
        for i in range(73):
            customer = d.customer(f"C{i}")
            orders = rng.choice((1, 1, 1, 2, 2, 3, 5, 8))
            last = utc(2025, 4, 1, 3) + timedelta(days=rng.choice((0, 30, 30, 90, 200, 300, 330)))
            amount = rng.choice((500, 500, 800, 1200, 3000))
            for k in range(orders):
                d.order(customer, last - timedelta(days=k), amount)
            expected_input[customer] = (last.date(), orders, amount * orders)  # 03:00 UTC: the same day in Shanghai
        await d.commit()
        rows = await rfm.members(session, settings, YEAR)
        report = await rfm.compute(session, settings, YEAR, NOW)
    n = len(expected_input)
    days = sorted(v[0] for v in expected_input.values())
    counts = sorted(v[1] for v in expected_input.values())
    revenues = sorted(v[2] for v in expected_input.values())
    for row in rows:
        day, orders, revenue = expected_input[row.customer_id]
        r = math.ceil(5 * sum(1 for x in days if x <= day) / n)
        f = 5 * sum(1 for x in counts if x < orders) // n + 1
        m = 5 * sum(1 for x in revenues if x < revenue) // n + 1
        assert (row.r, row.f, row.m) == (r, f, m), row.customer_id
    assert len(rows) == n == report.total_customers
    assert sum(s.customers for s in report.segments) == n
