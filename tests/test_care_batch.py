"""The vectorised batch planner agrees with the pure planners, and its memo only skips what is unchanged."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from bot.rules import care as rules
from bot.rules.care_batch import BatchContext, plan_batch

NOW = datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)
SETTINGS = SimpleNamespace(reorder_days_before=2, winback_min_days=45, winback_repeat_days=60)
PRODUCTS = {1: (10.0, True), 2: (None, True), 3: (30.0, True), 4: (5.0, False), 5: (60.0, True)}


def _history(rng: random.Random, customers: int) -> list[tuple]:
    rows = []
    order_id = 0
    for cid in range(1, customers + 1):
        items = []
        at = NOW - timedelta(days=rng.uniform(0, 360))
        staples = rng.sample(sorted(PRODUCTS), k=rng.randint(1, 3))
        for _ in range(rng.randint(1, 12)):
            order_id += 1
            for pid in rng.sample(staples, k=rng.randint(1, len(staples))):
                items.append((int(rules.to_days(at) * 1440), order_id, pid, rng.randint(1, 3)))
            if rng.random() < 0.1:  # a top-up the same day
                order_id += 1
                items.append((int(rules.to_days(at + timedelta(hours=3)) * 1440), order_id, staples[0], 1))
            at += timedelta(days=rng.uniform(3, 40))
            if at > NOW:
                break
        items.sort()
        rows.append((cid, 10_000 + cid, "en", rng.choice([None, "Europe/London", "Asia/Shanghai"]),
                     rng.choice([None, 1, 3, 5]), date(1990, 1, 1), f"C{cid}",
                     ",".join(str(i[2]) for i in items), ",".join(str(i[0]) for i in items),
                     ",".join(str(i[1]) for i in items), ",".join(str(i[3]) for i in items)))
    return rows


def _brute_force(rows: list[tuple], horizon: timedelta) -> set[tuple[str, datetime]]:
    """Every planner on every pair, no shortcuts."""
    out = set()
    for row in rows:
        minutes = [int(x) for x in row[8].split(",")]
        products = [int(x) for x in row[7].split(",")]
        orders = [int(x) for x in row[9].split(",")]
        quantities = [int(x) for x in row[10].split(",")]
        tz = rules.zone(row[3], "Asia/Shanghai")
        for pid in set(products):
            mine = [(m, o, q) for m, p, o, q in zip(minutes, products, orders, quantities) if p == pid]
            supply, active = PRODUCTS[pid]
            if not active:
                continue
            planned = rules.plan_reorder(row[0], pid, [m / 1440 for m, _, _ in mine], mine[-1][2], supply, row[4],
                                         NOW, tz, days_before=2, last_order_id=mine[-1][1], horizon=horizon)
            if planned:
                out.add((planned.key, planned.send_at))
        by_order = {}
        for m, o in sorted(zip(minutes, orders)):
            by_order[o] = m
        planned = rules.plan_winback(row[0], [m / 1440 for m in by_order.values()], NOW, min_days=45,
                                     repeat_days=60, horizon=horizon)
        if planned:
            out.add((planned.key, planned.send_at))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_batch_plans_exactly_what_the_pure_planners_plan(seed: int) -> None:
    rows = _history(random.Random(seed), 400)
    horizon = rules.LOOKAHEAD
    ctx = BatchContext.build(NOW, horizon, SimpleNamespace(**vars(SETTINGS), default_timezone="Asia/Shanghai"),
                             PRODUCTS)
    result = plan_batch(rows, ctx, lambda c: {}, lambda c: None)
    batch = {(p.key, p.send_at) for _, p, _, _ in result.planned}
    expected = _brute_force(rows, horizon)
    assert batch == expected
    assert len(batch) > 20  # the data does make messages


def test_the_memo_skips_only_unchanged_pairs() -> None:
    rows = _history(random.Random(5), 300)
    ctx = BatchContext.build(NOW, rules.LOOKAHEAD, SimpleNamespace(**vars(SETTINGS), default_timezone="UTC"),
                             PRODUCTS)
    first = plan_batch(rows, ctx, lambda c: {}, lambda c: None)
    memo = {key: inputs for _, _, key, inputs in first.planned}
    again = plan_batch(rows, ctx, lambda c: {}, lambda c: None, memo)
    assert again.planned == [] and again.seen == memo
    # A stop for one product changes that pair's inputs: it is planned again (and stopped).
    index, planned, key, _ = next(p for p in first.planned if p[2][0] == "reorder")
    stopped = plan_batch(rows, ctx, lambda c: {planned.product_id: ("stop", None, NOW)} if c == planned.customer_id
                         else {}, lambda c: None, memo)
    assert key not in stopped.seen and all(p[2] != key for p in stopped.planned)
    # A later win-back changes the lapse's inputs too.
    winback = next(p for p in first.planned if p[2][0] == "winback")
    later = plan_batch(rows, ctx, lambda c: {}, lambda c: NOW - timedelta(days=1) if c == winback[1].customer_id
                       else None, memo)
    assert winback[2] not in later.seen
