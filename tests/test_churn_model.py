"""/churn by the purchase model: expected loss, every customer scored, the segment = the listed customers."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot import prediction
from bot.config import Settings
from bot.reports import churn, segments
from storage.db import Database
from tests.conftest import START
from tests.helpers import Data, utc

NOW = START  # 2026-03-02 02:00 UTC


def _regulars(d: Data, count: int) -> None:
    """A shop's background: customers buying every 7–28 days for a while; a third stopped some time ago."""
    for i in range(count):
        c = d.customer(f"R{i}")
        gap = 7 + (i % 4) * 7
        start = NOW - timedelta(days=300 - (i % 50))
        stop = NOW - timedelta(days=20 + 3 * (i % 60)) if i % 3 == 0 else NOW
        moment = start
        while moment < stop:
            d.order(c, moment, 1000)
            moment += timedelta(days=gap)
    for i in range(count // 2):  # and many who bought once
        d.order(d.customer(f"O{i}"), NOW - timedelta(days=3 + (i * 7) % 300), 500)


async def test_churn_ranks_by_expected_loss_with_one_time_buyers(db: Database, settings: Settings) -> None:
    async with db.session() as session:
        d = Data(session)
        _regulars(d, 330)
        weekly = d.customer("Weekly Wu")  # every week, last seen 5 days ago: not at risk
        for week in range(20):
            d.order(weekly, NOW - timedelta(days=5 + 7 * week), 3000)
        big = d.customer("Big Bo")  # the largest orders, every week: not at risk, not on top for revenue
        for week in range(20):
            d.order(big, NOW - timedelta(days=2 + 7 * week), 90000)
        once = d.customer("Once Ou")  # one order 200 days ago: at risk (never listed by the old rule)
        d.order(once, NOW - timedelta(days=200), 8000)
        gone = d.customer("Gone Gu")  # weekly for ten weeks, silent for 150 days
        for week in range(10):
            d.order(gone, NOW - timedelta(days=150 + 7 * week), 6000)
        d.order(gone, NOW - timedelta(days=20), 6000, status="cancelled")  # does not count
        lost = d.customer("Lost Lu")  # last order over a year ago: lost, not considered
        d.order(lost, NOW - timedelta(days=400), 50000)
        await d.commit()
        report = await churn.compute(session, settings, None, NOW)
        listed = await churn.overdue_customers(session, settings, NOW)
        detail = await churn.csv_detail(session, settings, NOW)
        members = await segments.audience(session, settings, "churn", segments.CHURN_SEGMENT, None, NOW)
        recipients = await segments.recipients(session, settings, "churn", segments.CHURN_SEGMENT, None, NOW)
        scores = await prediction.compute(session, settings, NOW)
    assert report.method == "bgnbd"
    assert report.considered == 330 + 165 + 4  # everyone with an order in the last 365 days
    names = [c.name for c in report.top]
    assert set(names[:2]) == {"Gone Gu", "Once Ou"}  # the largest expected losses
    assert "Weekly Wu" not in [row[1] for row in detail] and "Big Bo" not in [row[1] for row in detail]
    assert "Lost Lu" not in [row[1] for row in detail]
    gone_row, once_row = sorted(report.top[:2], key=lambda c: c.name != "Gone Gu")
    assert gone_row.value == pytest.approx(6000) and gone_row.orders == 10
    assert gone_row.expected_loss == pytest.approx(6000 * (1 - gone_row.p_order))
    assert once_row.p_order < 0.5 and once_row.last_order == NOW - timedelta(days=200)
    # Hand check: a weekly customer seen last week is far likelier to order than a one-time buyer of long ago.
    p = {cid: scores.p_order_90[scores.index_of(cid)] for cid in (weekly, once)}
    assert p[once] < 0.3 < 0.9 < p[weekly]
    # Ranked by expected loss, each listed customer more likely lost than not.
    losses = [float(row[7]) for row in detail]
    assert losses == sorted(losses, reverse=True) and all(float(row[6]) <= 0.5 for row in detail)
    assert [row[0] for row in detail] == listed and report.overdue == len(listed)
    # "Message these customers" reaches exactly the listed customers.
    assert members == (len(listed), len(listed))
    assert sorted(r.customer_id for r in recipients) == sorted(listed)


async def test_churn_falls_back_with_few_repeat_customers(db: Database, settings: Settings) -> None:
    async with db.session() as session:
        d = Data(session)
        a = d.customer("Ann")  # two purchase days, quiet for 30 days
        d.order(a, utc(2026, 1, 20), 1000)
        d.order(a, utc(2026, 1, 30), 1000)
        b = d.customer("Bo")  # one purchase day, 40 days ago
        d.order(b, utc(2026, 1, 21), 1000)
        c = d.customer("Cy")  # one purchase day, 10 days ago
        d.order(c, utc(2026, 2, 20), 1000)
        await d.commit()
        report = await churn.compute(session, settings, None, NOW)
    assert report.method == "fallback"
    # Fewest purchase days, then longest silence (all orders of the same value).
    assert [x.name for x in report.top] == ["Bo", "Cy"] and report.considered == 3


async def test_churn_with_no_orders(db: Database, settings: Settings) -> None:
    async with db.session() as session:
        report = await churn.compute(session, settings, None, NOW)
    assert (report.considered, report.overdue, report.top) == (0, 0, [])
