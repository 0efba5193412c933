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
enough is asked :func:`bot.rules.care.plan_winback`. Everything else is
dropped without a Python-level loop.
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

    @classmethod
    def build(cls, now: datetime, horizon: timedelta, settings: Any,
              products: dict[int, tuple[float | None, bool]]) -> "BatchContext":
        size = max(products, default=0) + 1
        supply = np.full(size, np.nan)
        active = np.zeros(size, dtype=bool)
        for product_id, (days, is_active) in products.items():
            supply[product_id] = days if days else np.nan
            active[product_id] = is_active
        return cls(now, rules.to_days(now), horizon, settings.reorder_days_before, settings.winback_min_days,
                   settings.winback_repeat_days, settings.default_timezone, supply, active)


def _numbers(texts: Sequence[str]) -> np.ndarray:
    return np.fromstring(",".join(texts), dtype=np.int64, sep=",")  # C speed, no Python loop per number


# Memo of pairs (and lapses) whose message is already in the outbox: key → the inputs it came from.
Memo = dict[tuple[Any, ...], tuple[Any, ...]]


@dataclass
class BatchResult:
    planned: list[tuple[int, rules.Planned, tuple[Any, ...], tuple[Any, ...]]]  # (row index, planned, memo key, inputs)
    seen: Memo  # memo entries still valid (unchanged inputs, message written)


def plan_batch(rows: Sequence[Sequence[Any]], ctx: BatchContext,
               stops: Callable[[int], dict[int, tuple[str, datetime | None, datetime]]],
               last_winback: Callable[[int], datetime | None], memo: Memo | None = None) -> BatchResult:
    """Reorder reminders and win-backs due within ``ctx.horizon`` for a batch of customers.

    ``rows[i]``: customer id, telegram id, language, timezone, household size, birthday,
    name, then the four lists. ``memo``: pairs whose message an earlier pass already
    wrote, with the inputs then; unchanged inputs are not planned again (the same
    key would come out). Returns what to write, and which memo entries still hold.
    """
    memo = memo or {}
    result = BatchResult([], {})
    if not rows:
        return result
    counts = np.fromiter((r[8].count(",") + 1 for r in rows), dtype=np.int64, count=len(rows))
    product = _numbers([r[7] for r in rows])
    minute = _numbers([r[8] for r in rows])
    order = _numbers([r[9] for r in rows])
    quantity = _numbers([r[10] for r in rows])
    owner = np.repeat(np.arange(len(rows)), counts)
    household = np.array([r[4] or 0 for r in rows], dtype=np.float64)
    out = result.planned
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
    by_value = np.lexsort((gap_value, gap_pair))
    gap_pair, gap_value = gap_pair[by_value], gap_value[by_value]
    gap_count = np.bincount(gap_pair, minlength=pairs)
    gap_start = np.concatenate(([0], np.cumsum(gap_count)[:-1]))
    has_gap = gap_count > 0
    interval = np.full(pairs, np.nan)
    lo = gap_start[has_gap] + (gap_count[has_gap] - 1) // 2
    hi = gap_start[has_gap] + gap_count[has_gap] // 2
    interval[has_gap] = (gap_value[lo] + gap_value[hi]) / 2
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
            out.append((index, planned, key, inputs))

    # ----- win-back: customers whose last order is old enough -------------------------------------
    segment = np.concatenate(([0], np.cumsum(counts)[:-1]))
    last_minute = np.maximum.reduceat(minute, segment)
    last_days = last_minute / MINUTES_PER_DAY
    lapsed = ((last_days + ctx.winback_min_days <= ctx.now_days + horizon_days)
              & (ctx.now_days - last_days <= rules.HISTORY_DAYS))
    for index in np.flatnonzero(lapsed).tolist():
        row = rows[index]
        begin, end = int(segment[index]), int(segment[index] + counts[index])
        key = ("winback", row[0])
        previous = last_winback(row[0])
        inputs = (int(last_minute[index]), end - begin, previous)
        if memo.get(key) == inputs:
            result.seen[key] = inputs
            continue
        by_order: dict[int, int] = {}
        for order_id, at in sorted(zip(order[begin:end].tolist(), minute[begin:end].tolist()), key=lambda x: x[1]):
            by_order[order_id] = at
        order_days = [at / MINUTES_PER_DAY for at in by_order.values()]
        last_order_id = max(by_order, key=lambda k: (by_order[k], k))
        planned = rules.plan_winback(row[0], order_days, ctx.now, min_days=ctx.winback_min_days,
                                     repeat_days=ctx.winback_repeat_days, last_winback_at=previous,
                                     last_order_id=last_order_id, horizon=ctx.horizon)
        if planned is not None:
            out.append((index, planned, key, inputs))
    return result
