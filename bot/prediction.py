"""Who buys again, and when, for the shop's own customers (the service over the purchase model).

Every customer with a counted order (all but cancelled and refunded) is scored with the
BG/NBD model of :mod:`bot.rules.purchase_model`, fitted on the shop's whole order history:
purchases counted per customer-day (the business's days, ``DEFAULT_TIMEZONE``), age and
recency in weeks. With too few repeat buyers to fit (or a fit that fails) the scores come
from the fallback rule, fewest purchase days then longest silence, and ``method`` says so.

The fit is cached with its business date: refitted at most once a day per database (the
hourly care planning pass, ``/churn``, ``/report`` and ``/customer`` share it). The
scores themselves are computed from the orders as they are now.

SQL (``storage.queries.purchases``): every customer's counted orders as lists of integers,
read by customer from the customer-ordered covering index.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.rules import purchase_model as pm
from bot.rules.care_batch import numbers
from storage.queries import purchases

CHURN_HORIZON_DAYS = 90  # /churn and win-back: the probability of no order in the next 90 days
CARD_HORIZON_DAYS = 30  # /customer and /report: the next 30 days
DATE_HORIZON_DAYS = 365  # the predicted next order date: the likeliest one if they order within a year
MINUTES_PER_DAY = 1440

# (engine, database) → (business date, fit or None, why not); weakly tied to the engine.
_FITS: dict[tuple[int, str], tuple[Any, date, pm.Fit | None, str]] = {}


@dataclass
class CustomerScores:
    """One entry per customer with a counted order, in customer id order."""

    as_of: datetime
    method: str
    fit: pm.Fit | None
    why: str
    customer_id: np.ndarray
    orders: np.ndarray
    revenue: np.ndarray
    purchase_days: np.ndarray
    last_day: np.ndarray  # the last purchase day (business days since 1970)
    p_order_90: np.ndarray
    p_order_30: np.ndarray
    expected_30: np.ndarray
    next_order_day: np.ndarray  # business day number of the predicted next order (if within a year)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def value(self) -> np.ndarray:
        """The usual order value: revenue over counted orders."""
        return self.revenue / np.maximum(self.orders, 1)

    @property
    def expected_loss(self) -> np.ndarray:
        """The usual order value × the probability of no order in the next 90 days."""
        return self.value * (1.0 - self.p_order_90)

    def index_of(self, customer_id: int) -> int | None:
        at = int(np.searchsorted(self.customer_id, customer_id))
        return at if at < len(self.customer_id) and self.customer_id[at] == customer_id else None


def day_number(moment: datetime, settings: Settings) -> float:
    """The business's local day number (days since 1970), fractional: the moment within the day."""
    offset = moment.astimezone(settings.tz).utcoffset() or timedelta(0)
    return (moment.timestamp() + offset.total_seconds()) / 86400.0


def day_of(number: float) -> date:
    return date(1970, 1, 1) + timedelta(days=int(np.floor(number)))


async def histories(session: AsyncSession, settings: Settings, now: datetime, customer_id: int | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, pm.History]:
    """(customer ids, orders, revenue, model history) of every customer with a counted order before now.

    Per customer: the count and revenue of counted orders and their times in whole minutes
    (``storage.queries.purchases``, a block of customers per row); numpy reads each list in one
    call, turns the minutes into business days and counts the distinct ones (faster on SQLite
    than a DISTINCT per group).
    """
    rows = await purchases.blocks(session, now, customer_id)
    if rows:
        ids, orders, revenue, minutes = (numbers([row[i] for row in rows]) for i in range(4))
    else:
        ids = orders = revenue = minutes = np.array([], dtype=np.int64)
    if len(ids) > 1 and np.any(ids[1:] < ids[:-1]):  # blocks come in order; within one, SQLite's visiting order
        by_id = np.argsort(ids, kind="stable")
        starts = np.concatenate(([0], np.cumsum(orders)[:-1]))
        minutes = np.concatenate([minutes[starts[i]:starts[i] + orders[i]] for i in by_id]) if len(by_id) else minutes
        ids, orders, revenue = ids[by_id], orders[by_id], revenue[by_id]
    offset = int(((now.astimezone(settings.tz).utcoffset() or timedelta(0)).total_seconds()) // 60)
    owner = np.repeat(np.arange(len(ids)), orders)
    days = (minutes + offset) // MINUTES_PER_DAY
    return ids, orders, revenue, pm.histories(owner, days, None, len(ids))


def _cached_fit(session: AsyncSession, today: date) -> tuple[bool, pm.Fit | None, str]:
    bind = session.bind
    key = (id(bind), str(getattr(bind, "url", "")))
    entry = _FITS.get(key)
    if entry is not None and entry[0]() is bind and entry[1] == today:
        return True, entry[2], entry[3]
    return False, None, ""


def _remember_fit(session: AsyncSession, today: date, fitted: pm.Fit | None, why: str) -> None:
    bind = session.bind
    try:
        ref = weakref.ref(bind)
    except TypeError:
        return
    _FITS[(id(bind), str(getattr(bind, "url", "")))] = (ref, today, fitted, why)


def forget_fits() -> None:
    """Drop every cached fit (tests that change the history within a day)."""
    _FITS.clear()


async def compute(session: AsyncSession, settings: Settings, now: datetime) -> CustomerScores:
    """Every customer's scores at ``now``, with today's fit (fitted now if there is none yet)."""
    started = time.perf_counter()
    ids, orders, revenue, history = await histories(session, settings, now)
    timings = {"sql": time.perf_counter() - started}
    moment = day_number(now, settings)
    as_of = float(np.floor(moment))  # T in whole days to today, as ``caredesk predict`` counts it
    today = day_of(as_of)
    hit, fitted, why = _cached_fit(session, today)
    if not hit:
        fitted, why = pm.fit_history(history, as_of) if len(ids) else (None, "no orders yet")
        _remember_fit(session, today, fitted, why)
    timings["fit"] = time.perf_counter() - started - timings["sql"]
    churn = pm.score(history, as_of, CHURN_HORIZON_DAYS, fitted, why)
    card = pm.score(history, as_of, CARD_HORIZON_DAYS, fitted, why)
    dated = pm.score(history, as_of, DATE_HORIZON_DAYS, fitted, why)
    timings["score"] = time.perf_counter() - started - timings["sql"] - timings["fit"]
    return CustomerScores(
        as_of=now, method=churn.method, fit=fitted, why=why, customer_id=ids, orders=orders, revenue=revenue,
        purchase_days=history.purchase_days, last_day=history.last_day, p_order_90=churn.p_order,
        p_order_30=card.p_order, expected_30=card.expected,
        next_order_day=np.floor(as_of) + 1 + np.floor(dated.wait_days), timings=timings,
    )


@dataclass
class Outlook:
    """One customer's figures for their card."""

    method: str
    p_order_30: float
    next_order: date  # the likeliest day of the next order, if one comes within a year
    next_within_year: float  # P(an order within a year)


async def for_customer(session: AsyncSession, settings: Settings, now: datetime, customer_id: int) -> Outlook | None:
    """The card's outlook for one customer (None without a counted order); today's fit, fitted if needed."""
    _, _, _, history = await histories(session, settings, now, customer_id)
    if not len(history.orders):
        return None
    as_of = float(np.floor(day_number(now, settings)))
    hit, fitted, why = _cached_fit(session, day_of(as_of))
    if not hit:
        return_all = await compute(session, settings, now)  # fits (and caches) on every customer
        fitted, why = return_all.fit, return_all.why
    card = pm.score(history, as_of, CARD_HORIZON_DAYS, fitted, why)
    dated = pm.score(history, as_of, DATE_HORIZON_DAYS, fitted, why)
    return Outlook(method=card.method, p_order_30=float(card.p_order[0]),
                   next_order=day_of(as_of + 1 + np.floor(dated.wait_days[0])),
                   next_within_year=float(dated.p_order[0]))
