"""``/churn``: customers likely lost, ranked by what losing them costs.

Every customer with a counted order in the last ``churn_lookback_days`` (365 by default;
an older customer is lost already and shows up in ``/rfm``) is scored by the purchase model
(:mod:`bot.prediction`: BG/NBD fitted on the shop's own orders, one-time buyers included, or
the fallback rule "fewest purchase days, then longest silence" when the shop has too few
repeat buyers to fit). A customer is *at risk* when the chance of no order in the next
90 days is at least :data:`AT_RISK` (more likely lost than not). At-risk customers are
ranked by their *expected loss*: their usual order value (revenue over counted orders) ×
the probability of no order in the next 90 days — not by revenue alone, so a big spender
who orders every week is not on top just for being big. Win-back planning
(:mod:`jobs.care`) takes the same ranking.

The segment action under the report ("message these customers") takes exactly the at-risk
customers of the report (:func:`overdue_customers`). Last contact is the last message the
bot sent the customer (any outbox message) up to now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from bot import prediction
from bot.config import Settings
from bot.reports.periods import Period
from storage.queries import churn as queries

# At risk: P(no order in the next 90 days) at least this.
AT_RISK = 0.5


@dataclass
class ChurnCustomer:
    customer_id: int
    name: str | None
    orders: int
    revenue: int
    value: float  # usual order value (minor units)
    p_order: float  # P(an order in the next 90 days)
    expected_loss: float  # value × (1 − p_order)
    last_order: datetime
    last_contact: datetime | None = None


@dataclass
class ChurnReport:
    as_of: date
    considered: int  # customers with a counted order in the lookback window
    overdue: int  # at risk
    overdue_revenue: int  # the expected loss of all at-risk customers (minor units)
    top: list[ChurnCustomer]
    lookback_days: int
    method: str  # bgnbd | fallback
    horizon_days: int = 90  # prediction.CHURN_HORIZON_DAYS (not imported at class time: import order)


@dataclass
class Ranking:
    scores: prediction.CustomerScores
    considered: np.ndarray  # indexes into scores
    ranked: np.ndarray  # at-risk indexes, highest expected loss first


async def ranking(session: AsyncSession, settings: Settings, now: datetime) -> Ranking:
    scores = await prediction.compute(session, settings, now)
    today = np.floor(prediction.day_number(now, settings))
    considered = np.flatnonzero(scores.last_day >= today - settings.churn_lookback_days)
    risky = considered[(1.0 - scores.p_order_90[considered]) >= AT_RISK]
    loss = scores.expected_loss[risky]
    ranked = risky[np.lexsort((scores.customer_id[risky], -loss))]
    return Ranking(scores, considered, ranked)


async def overdue_customers(session: AsyncSession, settings: Settings, now: datetime) -> list[int]:
    """The at-risk customers' ids, in the report's order (highest expected loss first)."""
    every = await ranking(session, settings, now)
    return every.scores.customer_id[every.ranked].tolist()


async def _listed(session: AsyncSession, settings: Settings, now: datetime, every: Ranking,
                  indexes: list[int]) -> list[ChurnCustomer]:
    s = every.scores
    ids = [int(s.customer_id[i]) for i in indexes]
    names = await queries.names(session, ids)
    last = await queries.last_orders(session, ids, now)
    return [ChurnCustomer(customer_id=cid, name=names.get(cid), orders=int(s.orders[i]), revenue=int(s.revenue[i]),
                          value=float(s.value[i]), p_order=float(s.p_order_90[i]),
                          expected_loss=float(s.expected_loss[i]), last_order=last[cid])
            for cid, i in zip(ids, indexes)]


async def compute(session: AsyncSession, settings: Settings, period: Period | None, now: datetime) -> ChurnReport:
    every = await ranking(session, settings, now)
    top = await _listed(session, settings, now, every, every.ranked[:settings.report_top_n].tolist())
    contacts = await queries.last_contacts(session, [c.customer_id for c in top], now)
    for item in top:
        item.last_contact = contacts.get(item.customer_id)
    return ChurnReport(
        as_of=now.astimezone(settings.tz).date(),
        considered=len(every.considered),
        overdue=len(every.ranked),
        overdue_revenue=round(float(every.scores.expected_loss[every.ranked].sum())),
        top=top,
        lookback_days=settings.churn_lookback_days,
        method=every.scores.method,
    )


async def csv_detail(session: AsyncSession, settings: Settings, now: datetime) -> list[list[Any]]:
    """Every at-risk customer: id, name, orders, revenue, last order, usual order value,
    P(order in 90 days), expected loss, method."""
    every = await ranking(session, settings, now)
    listed = await _listed(session, settings, now, every, every.ranked.tolist())
    return [[c.customer_id, c.name or "", c.orders, c.revenue, c.last_order.isoformat(), f"{c.value:.0f}",
             f"{c.p_order:.3f}", f"{c.expected_loss:.0f}", every.scores.method]
            for c in listed]
