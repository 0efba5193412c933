"""Reorder and win-back planning for many customers at once.

The planners in :mod:`bot.rules.care` decide; this module only finds, for a
batch of customers, the few (customer, product) pairs and lapsed customers
worth asking them about — with numpy, because the hourly pass reads every
eligible customer's purchases of the last year (a million orders must not
mean a million Python loop turns).

Input: rows as the database gives them (``CareRepo.purchase_lists``): the
customer facts, then four comma-separated lists of integers — product ids,
purchase minutes (since 1970, UTC), order ids, quantities. Per pair the
vectorised pass computes the same expected run-out as
:func:`bot.rules.care.expected_next_purchase` (last purchase + median gap,
gaps under a day left out; or the rice-shop rule) and keeps the pairs whose
reminder could fall in the planning window, with a day's slack; for those
the pure planner is asked. Likewise a customer whose last order is old
enough to be due — its usual interval computed here for all customers at
once (:func:`usual_intervals`) — is asked :func:`bot.rules.care.plan_winback`.
Everything else is dropped without a Python-level loop.

:func:`usual_intervals` is also the customer-level rule of ``/churn``
(:mod:`bot.reports.churn`): one definition of a customer's usual interval and
expected next order for the care engine and the report.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from bot.rules import care as rules

MINUTES_PER_DAY = 1440.0
STOP = "stop"


@dataclass(frozen=True)
class BatchTerms:
    """The settings batch planning reads, as plain values."""

    reorder_days_before: int
    winback_min_days: int
    winback_repeat_days: int
    default_timezone: str


@dataclass(frozen=True)
class BatchContext:
    now: datetime
    now_days: float
    horizon: timedelta
    days_before: int
    winback_min_days: int
    winback_repeat_days: int
    default_timezone: str
    # product id → days one unit lasts one person (NaN: unknown), and whether it is sold
    supply: np.ndarray
    active: np.ndarray
    # Win-back targets: the ids (sorted) of the customers the purchase model ranks at risk
    # (``/churn``'s list); None: no model (its fallback), so the lapse rule alone decides.
    at_risk: np.ndarray | None = None

    @classmethod
    def build(cls, now: datetime, horizon: timedelta, terms: BatchTerms,
              products: dict[int, tuple[float | None, bool]], at_risk: np.ndarray | None = None) -> BatchContext:
        size = max(products, default=0) + 1
        supply = np.full(size, np.nan)
        active = np.zeros(size, dtype=bool)
        for product_id, (days, is_active) in products.items():
            supply[product_id] = days if days else np.nan
            active[product_id] = is_active
        return cls(now, rules.to_days(now), horizon, terms.reorder_days_before, terms.winback_min_days,
                   terms.winback_repeat_days, terms.default_timezone, supply, active,
                   None if at_risk is None else np.sort(np.asarray(at_risk, dtype=np.int64)))


def numbers(texts: Sequence[str]) -> np.ndarray:
    """Comma-separated integer lists ("1,2,3", as ``int_list`` gives them) as one flat array."""
    return np.fromstring(",".join(texts), dtype=np.int64, sep=",")  # C speed, no Python loop per number


def group_medians(group: np.ndarray, value: np.ndarray, groups: int) -> np.ndarray:
    """The median of ``value`` per group (``0 <= group < groups``); NaN for a group without values.

    The middle value, or the mean of the two middle ones — the same arithmetic as
    :func:`bot.rules.care.usual_interval`. Groups of the same size are done together, as the
    rows of one matrix (a partition per row, no sort of the whole array).
    """
    if len(group) > 1 and np.any(group[1:] < group[:-1]):
        by_group = np.argsort(group, kind="stable")
        group, value = group[by_group], value[by_group]
    count = np.bincount(group, minlength=groups)
    start = np.concatenate(([0], np.cumsum(count)[:-1]))
    median = np.full(groups, np.nan)
    by_size = np.argsort(count, kind="stable")
    sizes = count[by_size]
    edges = np.flatnonzero(np.diff(sizes)) + 1
    for these in np.split(by_size, edges):
        size = int(count[these[0]]) if len(these) else 0
        if size == 0:
            continue
        lo, hi = (size - 1) // 2, size // 2
        rows = np.partition(value[start[these][:, None] + np.arange(size)], (lo, hi), axis=1)
        median[these] = (rows[:, lo] + rows[:, hi]) / 2
    return median


def usual_intervals(days: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every customer's usual interval and expected next order, for many customers at once.

    ``days``: the customers' order times as days since 1970 (:func:`bot.rules.care.to_days`),
    one entry per order (not per item), customer after customer; ``counts``: how many
    entries each customer has. Each customer's entries should be in time order (if not,
    they are sorted here).

    Returns two arrays, one value per customer: the usual interval — exactly
    :func:`bot.rules.care.usual_interval` of that customer's days: the median gap between
    consecutive orders, gaps under :data:`~bot.rules.care.MIN_INTERVAL_DAYS` (top-ups)
    left out — and the expected next order, last order + usual interval. Both are NaN for
    a customer without such a gap (a single order, or only top-ups).
    """
    days = np.asarray(days, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.int64)
    customers = len(counts)
    owner = np.repeat(np.arange(customers), counts)
    same = owner[1:] == owner[:-1]
    gap = np.diff(days)
    if np.any(same & (gap < 0)):  # not in time order: sort within each customer
        days = days[np.lexsort((days, owner))]
        gap = np.diff(days)
    keep = same & (gap >= rules.MIN_INTERVAL_DAYS)
    usual = group_medians(owner[1:][keep], gap[keep], customers)
    last = np.full(customers, np.nan)
    has = counts > 0
    last[has] = days[np.cumsum(counts)[has] - 1]
    return usual, last + usual


# Memo of pairs (and lapses) whose message is already in the outbox: key → the inputs it came from.
Memo = dict[tuple[Any, ...], tuple[Any, ...]]


@dataclass
class BatchResult:
    # (row index, planned, memo key, inputs); empty when plan_batch was given an ``emit``
    planned: list[tuple[int, rules.Planned, tuple[Any, ...], tuple[Any, ...]]]
    seen: Memo  # memo entries still valid (unchanged inputs, message written)


Emit = Callable[[int, rules.Planned, tuple[Any, ...], tuple[Any, ...]], None]


def plan_batch(rows: Sequence[Sequence[Any]], ctx: BatchContext,
               stops: Callable[[int], dict[int, tuple[str, datetime | None, datetime]]],
               last_winback: Callable[[int], datetime | None], memo: Memo | None = None,
               emit: Emit | None = None) -> BatchResult:
    """Reorder reminders and win-backs due within ``ctx.horizon`` for a batch of customers.

    ``rows[i]``: customer id, telegram id, language, timezone, household size, birthday,
    name, then the four lists. ``memo``: pairs whose message an earlier pass already
    wrote, with the inputs then; unchanged inputs are not planned again (the same
    key would come out). Returns what to write, and which memo entries still hold.

    ``emit(index, planned, key, inputs)`` takes each message as soon as it is planned, instead
    of ``BatchResult.planned`` collecting them: a caller that keeps thousands of them in a form
    of its own (the care job: plain tuples, which Python's collector stops tracking) then never
    holds a partition's thousands of ``Planned`` objects at once, so they are not promoted to
    the oldest generation, whose full collections walk every object of the bot.
    """
    memo = memo or {}
    result = BatchResult([], {})
    if not rows:
        return result
    if emit is None:
        emit = lambda *planned: result.planned.append(planned)  # noqa: E731
    counts = np.fromiter((r[8].count(",") + 1 for r in rows), dtype=np.int64, count=len(rows))
    product = numbers([r[7] for r in rows])
    minute = numbers([r[8] for r in rows])
    order = numbers([r[9] for r in rows])
    quantity = numbers([r[10] for r in rows])
    owner = np.repeat(np.arange(len(rows)), counts)
    household = np.array([r[4] or 0 for r in rows], dtype=np.float64)
    horizon_days = ctx.horizon.total_seconds() / rules.DAY_SECONDS

    # ----- reorder: group by (customer, product), in time order ---------------------------------
    sort = np.lexsort((minute, product, owner))
    o_owner, o_product, o_minute = owner[sort], product[sort], minute[sort]
    o_order, o_quantity = order[sort], quantity[sort]
    n = len(sort)
    starts_mask = np.ones(n, dtype=bool)
    starts_mask[1:] = (o_owner[1:] != o_owner[:-1]) | (o_product[1:] != o_product[:-1])
    pair_of = np.cumsum(starts_mask) - 1
    starts = np.flatnonzero(starts_mask)
    ends = np.append(starts[1:], n)
    pairs = len(starts)
    last = ends - 1
    # Median of the gaps of at least a day, per pair.
    gap = np.diff(o_minute) / MINUTES_PER_DAY
    keep = (~starts_mask[1:]) & (gap >= rules.MIN_INTERVAL_DAYS)
    gap_pair, gap_value = pair_of[1:][keep], gap[keep]
    interval = group_medians(gap_pair, gap_value, pairs)
    has_gap = ~np.isnan(interval)
    # One purchase (no gap): the rice-shop rule, when the facts are known.
    pair_product = o_product[starts]
    pair_owner = o_owner[starts]
    known = pair_product < len(ctx.supply)
    supply = np.full(pairs, np.nan)
    supply[known] = ctx.supply[pair_product[known]]
    people = household[pair_owner]
    rice = o_quantity[last] * supply / np.where(people > 0, people, np.nan)
    interval = np.where(has_gap, interval, rice)
    last_day = o_minute[last] / MINUTES_PER_DAY
    expected = last_day + interval
    sold = np.zeros(pairs, dtype=bool)
    sold[known] = ctx.active[pair_product[known]]
    with np.errstate(invalid="ignore"):
        candidate = (sold & ~np.isnan(expected)
                     & (ctx.now_days <= expected + rules.REORDER_LATE_DAYS)
                     & (expected - ctx.days_before - 1 <= ctx.now_days + horizon_days))
    for p in np.flatnonzero(candidate).tolist():
        index = int(pair_owner[p])
        row = rows[index]
        product_id = int(pair_product[p])
        stop = stops(row[0]).get(product_id)
        if stop is not None and stop[0] == STOP:
            continue
        key = ("reorder", row[0], product_id)
        inputs = (int(o_minute[last[p]]), int(ends[p] - starts[p]), int(o_quantity[last[p]]), row[4], row[3], stop,
                  float(supply[p]) if not np.isnan(supply[p]) else None)
        if memo.get(key) == inputs:
            result.seen[key] = inputs
            continue
        days = (o_minute[starts[p]:ends[p]] / MINUTES_PER_DAY).tolist()
        snoozed_until = stop[1] if stop is not None and stop[2] >= rules.from_days(days[-1]) else None
        planned = rules.plan_reorder(
            row[0], product_id, days, int(o_quantity[last[p]]), None, row[4], ctx.now,
            rules.zone(row[3], ctx.default_timezone), days_before=ctx.days_before,
            last_order_id=int(o_order[last[p]]), snoozed_until=snoozed_until, horizon=ctx.horizon,
            expected=float(expected[p]),
        )
        if planned is not None:
            emit(index, planned, key, inputs)

    # ----- win-back: customers whose last order is old enough -------------------------------------
    # One entry per order (items of an order share its time), each customer's in time order;
    # the last entry is the last order (the highest id among orders at the same minute).
    # The feed lists items in that order already (by time, order id); sorted here if not.
    same_owner, later = owner[1:] == owner[:-1], np.diff(minute)
    if np.any(same_owner & ((later < 0) | ((later == 0) & (order[1:] < order[:-1])))):
        by_time = np.lexsort((order, minute, owner))
        t_owner, t_minute, t_order = owner[by_time], minute[by_time], order[by_time]
    else:
        t_owner, t_minute, t_order = owner, minute, order
    first = np.ones(n, dtype=bool)
    first[1:] = (t_owner[1:] != t_owner[:-1]) | (t_order[1:] != t_order[:-1])
    w_owner, w_minute, w_order = t_owner[first], t_minute[first], t_order[first]
    w_days = w_minute / MINUTES_PER_DAY
    w_counts = np.bincount(w_owner, minlength=len(rows))
    w_start = np.concatenate(([0], np.cumsum(w_counts)[:-1]))
    w_end = w_start + w_counts
    usual, _ = usual_intervals(w_days, w_counts)
    last_minute = w_minute[w_end - 1]
    last_days = last_minute / MINUTES_PER_DAY
    # plan_winback's wait: max(2 × usual interval, min_days) (min_days without an interval);
    # a day's slack for its rounding to microseconds. A later previous win-back only delays.
    wait = np.where(np.isnan(usual), float(ctx.winback_min_days), np.fmax(2 * usual, float(ctx.winback_min_days)))
    lapsed = ((last_days + wait - 1 <= ctx.now_days + horizon_days)
              & (ctx.now_days - last_days <= rules.HISTORY_DAYS))
    if ctx.at_risk is not None:  # the model's targets only: a lapsed customer it expects back is left alone
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        lapsed &= np.isin(ids, ctx.at_risk, assume_unique=False)
    for index in np.flatnonzero(lapsed).tolist():
        row = rows[index]
        key = ("winback", row[0])
        previous = last_winback(row[0])
        inputs = (int(last_minute[index]), int(counts[index]), previous)
        if memo.get(key) == inputs:
            result.seen[key] = inputs
            continue
        begin, end = int(w_start[index]), int(w_end[index])
        planned = rules.plan_winback(row[0], w_days[begin:end].tolist(), ctx.now, min_days=ctx.winback_min_days,
                                     repeat_days=ctx.winback_repeat_days, last_winback_at=previous,
                                     last_order_id=int(w_order[end - 1]), horizon=ctx.horizon)
        if planned is not None:
            emit(index, planned, key, inputs)
    return result
