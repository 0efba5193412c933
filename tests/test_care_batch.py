"""The vectorised batch planner agrees with the pure planners, and its memo only skips what is unchanged."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from bot.rules import care as rules
from bot.rules.care_batch import BatchContext, BatchTerms, group_medians, plan_batch, usual_intervals

NOW = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
SETTINGS = dict(reorder_days_before=2, winback_min_days=45, winback_repeat_days=60)
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
    ctx = BatchContext.build(NOW, horizon, BatchTerms(**SETTINGS, default_timezone="Asia/Shanghai"),
                             PRODUCTS)
    result = plan_batch(rows, ctx, lambda c: {}, lambda c: None)
    batch = {(p.key, p.send_at) for _, p, _, _ in result.planned}
    expected = _brute_force(rows, horizon)
    assert batch == expected
    assert len(batch) > 20  # the data does make messages


def test_items_out_of_time_order_plan_the_same() -> None:
    """The feed lists items by time; should it not, the batch sorts them (the same plans come out)."""
    rows = _history(random.Random(4), 400)
    rng = random.Random(40)
    shuffled = []
    for row in rows:
        items = list(zip(*(row[i].split(",") for i in (7, 8, 9, 10))))
        rng.shuffle(items)
        shuffled.append(row[:7] + tuple(",".join(column) for column in zip(*items)))
    ctx = BatchContext.build(NOW, rules.LOOKAHEAD, BatchTerms(**SETTINGS, default_timezone="UTC"),
                             PRODUCTS)
    ordered = plan_batch(rows, ctx, lambda c: {}, lambda c: None)
    mixed = plan_batch(shuffled, ctx, lambda c: {}, lambda c: None)
    assert sorted(p[1] for p in mixed.planned) == sorted(p[1] for p in ordered.planned)
    assert any(p[1].kind == rules.KIND_WINBACK for p in ordered.planned)


def test_the_memo_skips_only_unchanged_pairs() -> None:
    rows = _history(random.Random(5), 300)
    ctx = BatchContext.build(NOW, rules.LOOKAHEAD, BatchTerms(**SETTINGS, default_timezone="UTC"),
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


# ----- the customer-level rule, vectorised (win-back and /churn) --------------------------------------

def _order_days(rng: random.Random) -> list[float]:
    """One customer's order times (days), oldest first: single orders, top-ups, ties, exact days."""
    in_minutes = rng.random() < 0.5  # as the SQL feed gives them: whole minutes / 1440
    at = rng.uniform(19_000, 20_500)
    if in_minutes:
        at = round(at * 1440) / 1440
    days = [at]
    for _ in range(rng.choice([0, 0, 1, 1, 2, 3, rng.randint(4, 15)])):
        pick = rng.random()
        if pick < 0.2:
            step = rng.uniform(0, 1)  # a top-up under a day: not an interval
        elif pick < 0.3:
            step = 0.0  # two orders at the same moment
        elif pick < 0.55:
            step = rng.choice([1.0, 7.0, 14.0, 30.0])  # exactly a day, and repeated gaps (ties)
        else:
            step = rng.uniform(1, 60)
        if in_minutes:
            step = round(step * 1440) / 1440
        days.append(days[-1] + step)
    return days


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_usual_intervals_equal_the_pure_rule(seed: int) -> None:
    rng = random.Random(seed)
    customers = [_order_days(rng) for _ in range(3000)]
    flat = np.array([d for days in customers for d in days])
    counts = np.array([len(days) for days in customers])
    usual, expected = usual_intervals(flat, counts)
    for days, got, next_order in zip(customers, usual.tolist(), expected.tolist()):
        want = rules.usual_interval(days)
        if want is None:
            assert np.isnan(got) and np.isnan(next_order), days
        else:
            assert got == want and next_order == days[-1] + want, days  # the same arithmetic: equal, not close
    # The data does cover every case.
    kinds = [rules.usual_interval(days) for days in customers]
    assert sum(len(days) == 1 for days in customers) > 100
    assert sum(k is None and len(days) > 1 for k, days in zip(kinds, customers)) > 20  # only top-ups
    assert sum(len(rules.intervals(days)) % 2 == 0 and k is not None for k, days in zip(kinds, customers)) > 100
    assert sum(len(rules.intervals(days)) < len(days) - 1 and k is not None for k, days in zip(kinds, customers)) > 100
    # Order within a customer does not matter (sorted when it is not by time).
    shuffled = [rng.sample(days, len(days)) for days in customers]
    again, again_expected = usual_intervals(np.array([d for days in shuffled for d in days]), counts)
    assert np.array_equal(again, usual, equal_nan=True) and np.array_equal(again_expected, expected, equal_nan=True)


def test_usual_intervals_by_hand() -> None:
    days = [0.0, 10.0, 10.5, 30.0,  # gaps 10, (0.5: a top-up), 19.5 → median 14.75; next 44.75
            5.0,  # one order: none
            1.0, 1.2,  # a top-up only: none
            0.0, 7.0, 14.0, 21.0, 50.0]  # gaps 7, 7, 7, 29 → 7; next 57
    usual, expected = usual_intervals(np.array(days), np.array([4, 1, 2, 5]))
    assert np.array_equal(usual, [14.75, np.nan, np.nan, 7.0], equal_nan=True)
    assert np.array_equal(expected, [44.75, np.nan, np.nan, 57.0], equal_nan=True)
    empty_usual, empty_expected = usual_intervals(np.array([]), np.array([], dtype=np.int64))
    assert len(empty_usual) == len(empty_expected) == 0
    # Groups need not come in order.
    medians = group_medians(np.array([2, 0, 2, 2, 4, 4]), np.array([5.0, 1.0, 3.0, 4.0, 2.0, 9.0]), 5)
    assert np.array_equal(medians, [1.0, np.nan, 4.0, np.nan, 5.5], equal_nan=True)


def test_winbacks_go_only_to_the_customers_the_model_ranks_at_risk() -> None:
    """With the purchase model's targets (``/churn``'s list) a lapsed customer outside it gets no win-back."""
    rows = _history(random.Random(5), 400)
    settings = BatchTerms(**SETTINGS, default_timezone="UTC")
    free = plan_batch(rows, BatchContext.build(NOW, rules.LOOKAHEAD, settings, PRODUCTS), lambda c: {}, lambda c: None)
    lapsed = sorted(p.customer_id for _, p, _, _ in free.planned if p.kind == rules.KIND_WINBACK)
    assert len(lapsed) > 10
    targets = np.array([*lapsed[::2], 100_000])  # half of them, and someone not in this batch
    gated = plan_batch(rows, BatchContext.build(NOW, rules.LOOKAHEAD, settings, PRODUCTS, targets[::-1]),
                       lambda c: {}, lambda c: None)
    assert sorted(p.customer_id for _, p, _, _ in gated.planned if p.kind == rules.KIND_WINBACK) == lapsed[::2]
    # Reminders do not depend on it.
    reminders = sorted(p.key for _, p, _, _ in free.planned if p.kind == rules.KIND_REORDER)
    assert sorted(p.key for _, p, _, _ in gated.planned if p.kind == rules.KIND_REORDER) == reminders
    nobody = plan_batch(rows, BatchContext.build(NOW, rules.LOOKAHEAD, settings, PRODUCTS, np.array([], dtype=int)),
                        lambda c: {}, lambda c: None)
    assert not [p for _, p, _, _ in nobody.planned if p.kind == rules.KIND_WINBACK]


def test_an_emit_takes_each_message_as_it_is_planned() -> None:
    """Given an emit, the batch hands over every message (the same as it collects without one) and keeps none."""
    rows = _history(random.Random(6), 300)
    ctx = BatchContext.build(NOW, rules.LOOKAHEAD, BatchTerms(**SETTINGS, default_timezone="UTC"), PRODUCTS)
    collected = plan_batch(rows, ctx, lambda c: {}, lambda c: None)
    emitted: list[tuple[Any, ...]] = []
    handed = plan_batch(rows, ctx, lambda c: {}, lambda c: None, emit=lambda *planned: emitted.append(planned))
    assert emitted == collected.planned and len(emitted) > 20
    assert handed.planned == [] and handed.seen == collected.seen
