"""The BG/NBD purchase model (bot/rules/purchase_model.py): the published fit, hand-checked scores."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from bot.rules import purchase_model as pm

CDNOW = Path(__file__).parent / "data" / "cdnow_sample_summary.csv"


def cdnow() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    data = np.loadtxt(CDNOW, delimiter=",", comments="#", skiprows=1 + sum(
        1 for line in CDNOW.read_text().splitlines() if line.startswith("#")))
    return data[:, 1], data[:, 2], data[:, 3]


def test_reproduces_the_published_cdnow_parameters() -> None:
    """Fader, Hardie & Lee (2005): r 0.243, alpha 4.414, a 0.793, b 2.426 (weeks), each within 1 %."""
    x, t_x, T = cdnow()
    assert len(x) == 2357
    fitted = pm.fit(x, t_x, T)
    for got, published in zip(fitted.params, (0.243, 4.414, 0.793, 2.426)):
        assert got == pytest.approx(published, rel=0.01)
    assert fitted.log_likelihood == pytest.approx(-9582.4, abs=0.5)  # the paper's LL
    assert fitted.customers == 2357


def test_unique_rows_with_counts_fit_as_the_customers_do() -> None:
    x, t_x, T = cdnow()
    ux, ut, uT, counts = pm.compress(x, t_x, T)
    assert len(ux) < len(x) and counts.sum() == len(x)
    one = pm.fit(ux, ut, uT, counts)
    many = pm.fit(x, t_x, T)
    assert one.params == pytest.approx(many.params, rel=1e-4)


def test_scores_by_hand() -> None:
    """Parameters 1, 1, 1, 2 make the formulas small enough to check by hand (weeks)."""
    fitted = pm.Fit(r=1.0, alpha=1.0, a=1.5, b=2.0, customers=1, log_likelihood=0.0)
    # One-time buyer, 3 weeks ago: alive for sure (BG/NBD drops out only after a repeat purchase);
    # P(order within 4 weeks) = 1 − ((1 + 3) / (1 + 3 + 4))^1 = 0.5.
    p = pm.p_order_within(fitted, np.array([0.0]), np.array([0.0]), np.array([3.0]), 4.0)
    assert p[0] == pytest.approx(0.5)
    assert pm.p_alive(fitted, np.array([0.0]), np.array([0.0]), np.array([3.0]))[0] == 1.0
    # x = 1, t_x = 1, T = 3: odds of having dropped out = a / (b + x − 1) · ((α + T) / (α + t_x))^(r + x)
    # = 1.5 / 2 · (4 / 2)^2 = 3 → P(alive) = 1/4; P(order in 4) = 1/4 · (1 − (4 / 8)^2) = 3/16.
    x, t_x, T = np.array([1.0]), np.array([1.0]), np.array([3.0])
    assert pm.p_alive(fitted, x, t_x, T)[0] == pytest.approx(0.25)
    assert pm.p_order_within(fitted, x, t_x, T, 4.0)[0] == pytest.approx(3 / 16)
    # Given an order within 4 weeks (F(4) = 1 − (4/8)^2 = 3/4), its median wait m solves
    # 1 − (4 / (4 + m))^2 = 3/8: m = 4 · (√(8/5) − 1).
    assert pm.next_order_wait(fitted, x, T, 4.0)[0] == pytest.approx(4 * (math.sqrt(8 / 5) - 1))


def test_expected_orders_match_a_simulation() -> None:
    """E[orders in the next t] (eq. 10) against customers simulated from the model itself."""
    rng = np.random.default_rng(7)
    r, alpha, a, b = 0.8, 5.0, 0.9, 3.0
    n, T, horizon = 40_000, 30.0, 20.0
    lam = rng.gamma(r, 1 / alpha, n)
    p = rng.beta(a, b, n)
    x = np.zeros(n)
    t_x = np.zeros(n)
    future = np.zeros(n)
    for i in range(n):
        t, alive = 0.0, True
        while alive:
            t += rng.exponential(1 / lam[i])
            if t > T + horizon:
                break
            if t <= T:
                x[i] += 1
                t_x[i] = t
            else:
                future[i] += 1
            alive = rng.random() >= p[i]
    fitted = pm.fit(x, t_x, np.full(n, T))
    assert fitted.params == pytest.approx((r, alpha, a, b), rel=0.15)
    expected = pm.expected_orders(fitted, x, t_x, np.full(n, T), horizon)
    assert expected.sum() == pytest.approx(future.sum(), rel=0.05)
    ordered = pm.p_order_within(fitted, x, t_x, np.full(n, T), horizon)
    assert ordered.sum() == pytest.approx((future > 0).sum(), rel=0.05)


def test_one_purchase_long_ago_is_likelier_lost_than_a_weekly_customer_seen_last_week() -> None:
    x, t_x, T = cdnow()
    fitted = pm.fit(x, t_x, T)
    # weeks: one purchase 30 weeks ago; a weekly customer for 20 weeks whose last purchase was a week ago
    once = np.array([0.0]), np.array([0.0]), np.array([30.0])
    weekly = np.array([19.0]), np.array([19.0]), np.array([20.0])
    assert pm.p_order_within(fitted, *once, 13.0)[0] < 0.2 < 0.9 < pm.p_order_within(fitted, *weekly, 13.0)[0]
    assert pm.expected_orders(fitted, *once, 13.0)[0] < 0.3 < 5 < pm.expected_orders(fitted, *weekly, 13.0)[0]
    # A one-time buyer is never "lost" by P(alive) — why it is not the churn score.
    assert pm.p_alive(fitted, *once)[0] == 1.0
    # The fallback ranks them the same way round.
    p_once, _, _ = pm.fallback_scores(*once, 13.0)
    p_weekly, _, _ = pm.fallback_scores(*weekly, 13.0)
    assert p_once[0] < p_weekly[0]


def test_fallback_ranks_fewest_purchase_days_then_longest_silence() -> None:
    x = np.array([0.0, 0.0, 1.0, 1.0, 5.0])
    t_x = np.array([0.0, 0.0, 10.0, 2.0, 30.0])
    T = np.array([5.0, 50.0, 12.0, 40.0, 31.0])
    p, expected, wait = pm.fallback_scores(x, t_x, T, 13.0)
    # risk order: one day silent 50, one day silent 5, two days silent 38, two days silent 2, six days
    assert np.argsort(p).tolist() == [1, 0, 3, 2, 4]
    assert np.all((p > 0) & (p < 1)) and np.all(expected >= 0) and np.all(wait >= 0)


def test_too_few_repeat_buyers_do_not_fit() -> None:
    x, t_x, T = cdnow()
    with pytest.raises(pm.FitError):
        pm.fit(x[:300], t_x[:300], T[:300])  # about 120 repeat buyers
    with pytest.raises(pm.FitError):
        pm.fit(np.zeros(500), np.zeros(500), np.full(500, 10.0))  # nobody came back
