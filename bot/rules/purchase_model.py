"""Who buys again, and when: the BG/NBD model of repeat buying (pure functions over numpy arrays).

BG/NBD (Fader, Hardie & Lee, "Counting your customers the easy way", Marketing Science 2005):
while "alive" a customer buys at a Poisson rate λ (gamma-distributed over customers, shape
``r``, rate ``alpha``); after each purchase they drop out with probability ``p``
(beta-distributed, ``a``, ``b``). Per customer the model needs three numbers, in one time
unit (the app uses weeks; ``alpha`` is in that unit, ``r``, ``a``, ``b`` have none):

- ``x`` *frequency*: repeat purchases — purchase days after the first (a customer-day with
  several orders is one purchase);
- ``t_x`` *recency*: time from the first purchase to the last;
- ``T`` *age*: time from the first purchase to the as-of moment.

:func:`fit` maximises the likelihood over the unique (x, t_x, T) rows with their counts
(:func:`compress`), with the analytic gradient, so 100,000 customers fit in well under a
second. :func:`p_order_within`, :func:`expected_orders` and :func:`next_order_wait` score
customers, one-time buyers (x = 0) included. :func:`p_alive` is here for completeness:
it is *not* a churn score — every one-time buyer gets 1.0 (AUC 0.32 on CDNOW).

The fallback when a fit is not possible or not trustworthy (:func:`fallback_scores`)
ranks customers by "fewest purchase days, then longest silence".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln, digamma, gammaln, hyp2f1

METHOD_MODEL = "bgnbd"
METHOD_FALLBACK = "fallback"

# Below this many customers with a repeat purchase the fit falls back. Decided on CDNOW
# (bench/bench_prediction.py, 20 random sub-samples of the full log per size, 39-week
# calibration): the worst tenth of the fits ranks customers (AUC of P(order) in the holdout)
# at 0.55 with 25 repeat buyers, 0.67 with 50, 0.69 with 100, and 0.71 from 200 on (0.73 from
# 400, the full log's own level being 0.75); the forecast total's median error is 16–21 %
# below 200 and 15–17 % from there. So from about 200 repeat buyers (≈ 500 customers) a fit is
# about as good as it gets. (The rank rule's AUC is as good or better at every size on CDNOW;
# what the fit adds is calibrated probabilities, the expected number of orders and
# next-order dates — worth it once the parameters are stable.)
MIN_REPEAT_CUSTOMERS = 200


@dataclass(frozen=True)
class Fit:
    r: float
    alpha: float
    a: float
    b: float
    customers: int  # how many customers it was fitted on
    log_likelihood: float

    @property
    def params(self) -> tuple[float, float, float, float]:
        return self.r, self.alpha, self.a, self.b


class FitError(ValueError):
    """The data cannot support a fit (too few repeat buyers) or the optimiser did not converge."""


def compress(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The unique (x, t_x, T) rows and how many customers share each."""
    x = np.asarray(x, dtype=np.float64)
    t_x = np.asarray(t_x, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    if not len(x):
        return x, t_x, T, np.array([], dtype=np.float64)
    order = np.lexsort((T, t_x, x))
    x, t_x, T = x[order], t_x[order], T[order]
    new = np.ones(len(x), dtype=bool)
    new[1:] = (x[1:] != x[:-1]) | (t_x[1:] != t_x[:-1]) | (T[1:] != T[:-1])
    starts = np.flatnonzero(new)
    counts = np.diff(np.append(starts, len(x))).astype(np.float64)
    return x[starts], t_x[starts], T[starts], counts


def _terms(params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray,
           distinct: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: the log-likelihood, and the pieces its gradient needs.

    ``distinct``: ``np.unique(x, return_inverse=True)``, when the caller has it already.
    """
    r, alpha, a, b = params
    repeat = x > 0
    ux, at = distinct if distinct is not None else np.unique(x, return_inverse=True)
    # The terms in x alone, once per distinct frequency.
    a12 = (gammaln(r + ux) - gammaln(r) + r * np.log(alpha) + betaln(a, b + ux) - betaln(a, b))[at]
    a3 = -(r + x) * np.log(alpha + T)
    a4 = np.full_like(a3, -np.inf)
    a4[repeat] = (np.log(a) - np.log(b + x[repeat] - 1) - (r + x[repeat]) * np.log(alpha + t_x[repeat]))
    top = np.maximum(a3, a4)
    rest = np.exp(-np.abs(a3 - a4))  # (no logaddexp: it is several times slower)
    tail = top + np.log1p(rest)
    w = np.where(a4 >= a3, 1.0, rest) / (1.0 + rest)  # the share of the "dropped out after the last purchase" branch
    return a12 + tail, w, repeat


def log_likelihood(params: tuple[float, float, float, float], x: np.ndarray, t_x: np.ndarray, T: np.ndarray,
                   counts: np.ndarray | None = None) -> float:
    """The BG/NBD log-likelihood of the data (rows weighted by ``counts``)."""
    ll, _, _ = _terms(np.asarray(params, dtype=np.float64), np.asarray(x, dtype=np.float64),
                      np.asarray(t_x, dtype=np.float64), np.asarray(T, dtype=np.float64))
    return float(ll.sum() if counts is None else (ll * counts).sum())


def _objective(log_params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray,
               counts: np.ndarray, total: float, ux: np.ndarray, at: np.ndarray) -> tuple[float, np.ndarray]:
    """Minus the mean log-likelihood and its gradient, over log-parameters.

    Sums are ``(values * counts).sum()``, not ``@``: a BLAS dot on a busy machine with several
    threads took 20 ms where this takes a fraction of one.
    """
    params = np.exp(log_params)
    r, alpha, a, b = params
    ll, w, repeat = _terms(params, x, t_x, T, (ux, at))
    v = 1.0 - w
    log_at = np.log(alpha + T)
    log_atx = np.log(alpha + t_x)
    psi_rx = digamma(r + ux)[at]
    d_r = psi_rx - digamma(r) + np.log(alpha) - v * log_at - w * log_atx
    d_alpha = r / alpha - (r + x) * (v / (alpha + T) + w / (alpha + t_x))
    psi_ab, psi_abx = digamma(a + b), digamma(a + b + ux)[at]
    d_a = psi_ab - psi_abx + w / a
    d_b = psi_ab + digamma(b + ux)[at] - digamma(b) - psi_abx
    d_b[repeat] -= w[repeat] / (b + x[repeat] - 1)
    grad = np.array([(d_r * counts).sum(), (d_alpha * counts).sum(), (d_a * counts).sum(),
                     (d_b * counts).sum()]) * params
    value = float((ll * counts).sum())
    if not np.isfinite(value):
        return 1e300, np.zeros(4)
    return -value / total, -grad / total


def fit(x: np.ndarray, t_x: np.ndarray, T: np.ndarray, counts: np.ndarray | None = None, *,
        min_repeat_customers: int = MIN_REPEAT_CUSTOMERS) -> Fit:
    """The maximum-likelihood BG/NBD parameters.

    ``x``, ``t_x``, ``T`` per customer (or per unique row, with ``counts``). Raises
    :class:`FitError` with fewer than ``min_repeat_customers`` repeat buyers, or when the
    optimiser fails.
    """
    x = np.asarray(x, dtype=np.float64)
    t_x = np.asarray(t_x, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    if counts is None:
        x, t_x, T, counts = compress(x, t_x, T)
    counts = np.asarray(counts, dtype=np.float64)
    repeaters = float(counts[x > 0].sum())
    if repeaters < max(min_repeat_customers, 1):
        raise FitError(f"{repeaters:.0f} customers with a repeat purchase, {min_repeat_customers} needed")
    if np.any(t_x > T) or np.any(x < 0) or np.any(T <= 0):
        raise FitError("recency must lie between 0 and the age, and the age be positive")
    total = float(counts.sum())
    ux, at = np.unique(x, return_inverse=True)
    # Start: r = 1, alpha = the mean age, a = b = 1 (a neutral start).
    scale = max(float((T * counts).sum()) / total, 1e-6)
    start = np.log([1.0, scale, 1.0, 1.0])
    # a and b may run off together along a flat ridge (a / (a + b) fixed, see below): bounded,
    # and a line search that stalls there is accepted once the gradient is flat.
    best = minimize(_objective, start, args=(x, t_x, T, counts, total, ux, at), jac=True, method="L-BFGS-B",
                    bounds=[(-12.0, 12.0), (np.log(scale) - 20, np.log(scale) + 20), (-12.0, 16.0), (-12.0, 16.0)],
                    options={"maxiter": 500})
    if not np.all(np.isfinite(best.x)) or not np.isfinite(best.fun) or best.fun >= 1e299 or (
            not best.success and float(np.max(np.abs(best.jac[:2]))) > 1e-3):
        raise FitError(f"the optimiser did not converge ({best.message})")
    r, alpha, a, b = (float(v) for v in np.exp(best.x))
    # a and b may run to the bound together: a beta concentrated at p = a / (a + b) (everyone drops
    # out with about the same small chance; the likelihood is flat along a / (a + b)). Fine.
    if not (1e-5 < r < 1e5 and a > 1e-5 and b > 1e-5) or abs(a - 1.0) < 1e-9:
        raise FitError("degenerate parameters")
    return Fit(r, alpha, a, b, int(total), -float(best.fun) * total)


def p_alive(fitted: Fit, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """P(still buying at T | history). Not a churn score: 1.0 for every one-time buyer."""
    r, alpha, a, b = fitted.params
    x = np.asarray(x, dtype=np.float64)
    odds = np.zeros_like(x)
    repeat = x > 0
    xr = x[repeat]
    odds[repeat] = a / (b + xr - 1) * np.exp((r + xr) * (np.log(alpha + np.asarray(T, dtype=np.float64)[repeat])
                                                         - np.log(alpha + np.asarray(t_x, dtype=np.float64)[repeat])))
    return 1.0 / (1.0 + odds)


def p_order_within(fitted: Fit, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, horizon: float) -> np.ndarray:
    """P(at least one purchase in (T, T + horizon] | history).

    Alive at T, the next purchase comes after an exponential wait (drop-out only happens
    right after a purchase); over the posterior of λ, Gamma(r + x, alpha + T), that wait is
    within ``horizon`` with probability 1 − ((alpha + T) / (alpha + T + horizon))^(r + x).
    """
    r, alpha, _, _ = fitted.params
    x = np.asarray(x, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    within = -np.expm1((r + x) * (np.log(alpha + T) - np.log(alpha + T + horizon)))
    return p_alive(fitted, x, t_x, T) * within


def expected_orders(fitted: Fit, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, horizon: float) -> np.ndarray:
    """E[purchases in (T, T + horizon] | history] (Fader, Hardie & Lee 2005, eq. 10)."""
    r, alpha, a, b = fitted.params
    x = np.asarray(x, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    t_x = np.asarray(t_x, dtype=np.float64)
    z = horizon / (alpha + T + horizon)
    ratio = np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + horizon)))
    head = (a + b + x - 1) / (a - 1) * (1.0 - ratio * hyp2f1(r + x, b + x, a + b + x - 1, z))
    odds = np.zeros_like(x)
    repeat = x > 0
    odds[repeat] = a / (b + x[repeat] - 1) * np.exp((r + x[repeat]) * (np.log(alpha + T[repeat])
                                                                        - np.log(alpha + t_x[repeat])))
    return np.clip(head / (1.0 + odds), 0.0, None)


def next_order_wait(fitted: Fit, x: np.ndarray, T: np.ndarray, horizon: float) -> np.ndarray:
    """When the next purchase comes, if one comes within ``horizon``: the median of that wait.

    The next-order date the model predicts (its conditional estimate). While alive the wait
    is exponential given λ; over λ's posterior Gamma(r + x, alpha + T) it is within m with
    probability F(m) = 1 − ((alpha + T) / (alpha + T + m))^(r + x). Given a purchase within
    the horizon H, the median m solves F(m) = F(H) / 2:
    m = (alpha + T)((1 − F(H) / 2)^(−1 / (r + x)) − 1). (Drop-out only happens right after a
    purchase, so it does not enter.) The unconditional median is years away for a one-time
    buyer; this one answers "when, if at all soon".
    """
    r, alpha, _, _ = fitted.params
    x = np.asarray(x, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    within = -np.expm1((r + x) * (np.log(alpha + T) - np.log(alpha + T + horizon)))
    return (alpha + T) * np.expm1(-np.log1p(-within / 2) / (r + x))


# ----- the fallback: fewest purchase days, then longest silence ------------------------------------

def fallback_risk(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """A risk score in (0, 1) ordering customers by fewest purchase days, then longest silence.

    ``1 / (x + 1 + s / (1 + s))`` with s = T − t_x (the silence, ≥ 0): fewer purchase days
    always mean more risk, and among the same number of days a longer silence does.
    """
    x = np.asarray(x, dtype=np.float64)
    silence = np.clip(np.asarray(T, dtype=np.float64) - np.asarray(t_x, dtype=np.float64), 0.0, None)
    return 1.0 / (x + 2.0 - silence / (1.0 + silence))


def fallback_scores(x: np.ndarray, t_x: np.ndarray, T: np.ndarray, horizon: float
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(P(order within horizon), expected orders, predicted wait) without a fitted model.

    The probability is 1 − :func:`fallback_risk`, so it ranks customers exactly as the rule
    (fewest purchase days, then longest silence); the expected orders are each customer's own
    rate of purchase days over their life with the shop (``(x + 1) / (T + horizon)``, the
    horizon added so that a first-day customer is not credited with a daily habit) times the
    horizon, weighted by that probability; the wait is the customer's mean gap between purchase
    days counted from the last one (one purchase day: the age), never before now.
    """
    x = np.asarray(x, dtype=np.float64)
    t_x = np.asarray(t_x, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    p = 1.0 - fallback_risk(x, t_x, T)
    rate = (x + 1.0) / (T + horizon)
    expected = p * rate * horizon
    gap = np.where(x > 0, t_x / np.maximum(x, 1.0), T)
    wait = np.clip(t_x + gap - T, 0.0, None)
    return p, expected, wait


# ----- from an order log to scores -----------------------------------------------------------------

# The model works in weeks (the unit of the published parameters; it keeps alpha near 1–100).
DAYS_PER_UNIT = 7.0


@dataclass
class History:
    """Per customer (one entry each, in the order of ``owner``'s groups): the model's inputs, in days."""

    purchase_days: np.ndarray  # distinct days with an order (x = purchase_days − 1)
    first_day: np.ndarray  # day numbers (any epoch; days since 1970 in the app)
    last_day: np.ndarray
    orders: np.ndarray
    revenue: np.ndarray

    def inputs(self, as_of: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x, t_x, T) in the model's unit (weeks) at ``as_of`` (a day number; fractional: a moment).

        T is counted from the first purchase day to ``as_of`` (for a date, its day number: the
        convention of the published CDNOW summary, where a first purchase on 1 January gives
        T = 38.86 weeks on 30 September), never less than t_x.
        """
        x = self.purchase_days - 1.0
        t_x = (self.last_day - self.first_day) / DAYS_PER_UNIT
        T = np.maximum(as_of - self.first_day, self.last_day - self.first_day) / DAYS_PER_UNIT
        return x.astype(np.float64), t_x.astype(np.float64), np.maximum(T, 1.0 / 1440 / DAYS_PER_UNIT)


def histories(owner: np.ndarray, day: np.ndarray, amount: np.ndarray | None, customers: int) -> History:
    """Per customer ``0 <= owner < customers``: purchase days, first and last day, orders, revenue.

    ``owner`` and ``day`` (whole day numbers) have one entry per order, in any order;
    several orders on one day are one purchase day.
    """
    owner = np.asarray(owner, dtype=np.int64)
    day = np.asarray(day, dtype=np.int64)
    orders = np.bincount(owner, minlength=customers)
    revenue = (np.bincount(owner, weights=np.asarray(amount, dtype=np.float64), minlength=customers)
               if amount is not None else np.zeros(customers))
    order = np.lexsort((day, owner))
    o_owner, o_day = owner[order], day[order]
    new = np.ones(len(order), dtype=bool)
    new[1:] = (o_owner[1:] != o_owner[:-1]) | (o_day[1:] != o_day[:-1])
    purchase_days = np.bincount(o_owner[new], minlength=customers)
    first = np.full(customers, -1, dtype=np.int64)
    last = np.full(customers, -1, dtype=np.int64)
    first[o_owner[::-1]] = o_day[::-1]  # the last assignment wins: the earliest day
    last[o_owner] = o_day
    return History(purchase_days, first, last, orders, revenue)


@dataclass
class Scores:
    """The model's (or the fallback's) answer for each customer of a :class:`History`."""

    method: str  # METHOD_MODEL or METHOD_FALLBACK
    fit: Fit | None
    horizon_days: float
    p_order: np.ndarray  # P(at least one order within the horizon)
    expected: np.ndarray  # expected orders (purchase days) within the horizon
    wait_days: np.ndarray  # predicted next order (if one within the horizon): as-of + this many days
    why: str = ""  # the fallback's reason


def score(history: History, as_of: float, horizon_days: float, fitted: Fit | None = None,
          why: str = "") -> Scores:
    """Scores at ``as_of`` (a day number) for ``horizon_days``, with ``fitted`` or the fallback."""
    x, t_x, T = history.inputs(as_of)
    horizon = horizon_days / DAYS_PER_UNIT
    if fitted is None:
        p, expected, wait = fallback_scores(x, t_x, T, horizon)
        return Scores(METHOD_FALLBACK, None, horizon_days, p, expected, wait * DAYS_PER_UNIT, why)
    return Scores(METHOD_MODEL, fitted, horizon_days, p_order_within(fitted, x, t_x, T, horizon),
                  expected_orders(fitted, x, t_x, T, horizon),
                  next_order_wait(fitted, x, T, horizon) * DAYS_PER_UNIT)


def fit_history(history: History, as_of: float, *,
                min_repeat_customers: int = MIN_REPEAT_CUSTOMERS) -> tuple[Fit | None, str]:
    """The fit on these customers at ``as_of``, or (None, why) when the fallback must do."""
    x, t_x, T = history.inputs(as_of)
    try:
        return fit(*compress(x, t_x, T), min_repeat_customers=min_repeat_customers), ""
    except FitError as error:
        return None, str(error)
