"""Benchmark: who buys again, and when — CareDesk's predictions on the CDNOW purchase log.

Run it by hand (it is not part of the test suite; needs the bench extra, ``pip install -e .[bench]``)::

    python -m bench.bench_prediction               # sample and full log, the fallback threshold, 100k on SQLite
    python -m bench.bench_prediction --no-sqlite   # without the 100,000-customer database timing

Data: the CDNOW log (23,570 customers' CD purchases, first purchase in Q1 1997, up to
1998-06-30) and its 1-in-10 sample (2,357 customers), as the ``lifetimes`` package bundles
them (``lifetimes/datasets/CDNOW_master.txt``, ``CDNOW_sample.txt``; read as files, the
package is not imported). Protocol: calibration up to 1997-09-30; purchases counted per
customer-day; holdout 1997-10-01 to 1998-06-30 (273 days); the outcome is "bought again in
the holdout". Every prediction goes through CareDesk's own functions: the log is written as a
``customer,date,amount`` CSV and read by ``caredesk predict``'s reader (``bot.predict``); the
current rule is ``bot.rules.care_batch.usual_intervals`` (``/churn``, win-back).

Printed per log and method: AUC of the churn score (the probability of an order in the
holdout; the rule: overdue ratio, days since the last order over the usual interval),
customers it can score, the forecast total of holdout purchase days against the actual,
the median absolute error of the predicted next-order date over customers who did come back
(and the share within ±14 days), and the fit time. Then the fallback threshold experiment
(random sub-samples of the full log by number of repeat buyers), and the fit and scoring of
the app's own path on the 100,000-customer / 1,000,000-order SQLite benchmark database.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import importlib.util
import io
import os
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot import predict as cli  # noqa: E402
from bot.rules import purchase_model as pm  # noqa: E402
from bot.rules.care_batch import usual_intervals  # noqa: E402

AS_OF = date(1997, 9, 30)
HOLDOUT_END = date(1998, 6, 30)
HORIZON = (HOLDOUT_END - AS_OF).days  # 273
EPOCH = date(1970, 1, 1)


def datasets_dir() -> Path:
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("bench_prediction needs the CDNOW files of the lifetimes package: pip install -e .[bench]")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets"


def load(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(customer id, day number since 1970, amount) per line of a CDNOW file."""
    path = datasets_dir() / name
    raw = np.loadtxt(path, skiprows=1 if name == "CDNOW_master.txt" else 0)
    ids, ymd, amount = (raw[:, 0], raw[:, 1], raw[:, 3]) if raw.shape[1] == 4 else (raw[:, 0], raw[:, 2], raw[:, 4])
    ymd = ymd.astype(np.int64)
    days = np.array([(date(int(v // 10000), int(v // 100 % 100), int(v % 100)) - EPOCH).days for v in ymd])
    return ids.astype(np.int64), days, amount


def as_csv(ids: np.ndarray, days: np.ndarray, amount: np.ndarray) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["customer", "date", "amount"])
    for c, d, a in zip(ids.tolist(), days.tolist(), amount.tolist()):
        day = (EPOCH.toordinal() + d) and date.fromordinal(EPOCH.toordinal() + d).isoformat()
        writer.writerow([c, day, f"{a:.2f}"])
    return out.getvalue()


def auc(score: np.ndarray, positive: np.ndarray) -> float:
    """P(a random positive scores above a random negative), ties half (Mann–Whitney)."""
    from scipy.stats import rankdata

    ranks = rankdata(score)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@dataclass
class Row:
    method: str
    auc: float
    covered: float
    forecast: float
    actual: int
    date_mae: float
    within14: float
    date_mae_repeat: float  # over the customers the current rule can score (2+ purchase days)
    within14_repeat: float
    date_covered: float
    fit_seconds: float


def holdout(ids: np.ndarray, days: np.ndarray, customers: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per customer (in ``customers`` order): came back, holdout purchase days, first holdout day."""
    position = {c: i for i, c in enumerate(customers)}
    start, end = (AS_OF - EPOCH).days + 1, (HOLDOUT_END - EPOCH).days
    came, count, first = np.zeros(len(customers), bool), np.zeros(len(customers), int), np.full(len(customers), 0)
    seen: set[tuple[int, int]] = set()
    for c, d in sorted(zip(ids.tolist(), days.tolist()), key=lambda p: p[1]):
        if start <= d <= end and str(c) in position and (c, d) not in seen:
            seen.add((c, d))
            i = position[str(c)]
            if not came[i]:
                first[i] = d
            came[i] = True
            count[i] += 1
    return came, count, first


def evaluate(name: str, ids: np.ndarray, days: np.ndarray, amount: np.ndarray) -> list[Row]:
    text = as_csv(ids, days, amount)
    log = cli.read_log(io.StringIO(text), AS_OF)
    came, actual_count, first_back = holdout(ids, days, log.customers)
    actual = int(actual_count.sum())
    as_of_end = (AS_OF - EPOCH).days + 1
    rows: list[Row] = []

    repeat = np.ones(len(came), bool)  # set from the model's history below

    def dates(predicted_day: np.ndarray, covered: np.ndarray) -> tuple[float, float, float, float, float]:
        mask = came & covered
        err = np.abs(predicted_day[mask] - first_back[mask])
        sub = np.abs(predicted_day[mask & repeat] - first_back[mask & repeat])
        return (float(np.median(err)), float((err <= 14).mean()), float(np.median(sub)), float((sub <= 14).mean()),
                float(mask.sum() / came.sum()))

    started = time.perf_counter()
    model = cli.predict(log, AS_OF, HORIZON)
    seconds = time.perf_counter() - started
    assert model.scores.method == pm.METHOD_MODEL, model.scores.why
    repeat = model.history.purchase_days > 1
    all_ = np.ones(len(came), bool)
    mae, w14, mae_r, w14_r, dcov = dates(as_of_end + np.floor(model.scores.wait_days), all_)
    rows.append(Row("BG/NBD: expected orders", auc(model.scores.expected, came), 1.0,
                    float(model.scores.expected.sum()), actual, mae, w14, mae_r, w14_r, dcov, seconds))
    rows.append(Row("BG/NBD: P(order) (/churn's risk)", auc(model.scores.p_order, came), 1.0,
                    float(model.scores.p_order.sum()), int(came.sum()), mae, w14, mae_r, w14_r, dcov, seconds))

    started = time.perf_counter()
    fallback = cli.predict(log, AS_OF, HORIZON, min_repeat_customers=10**9)
    seconds = time.perf_counter() - started
    mae, w14, mae_r, w14_r, dcov = dates(as_of_end + np.floor(fallback.scores.wait_days), all_)
    rows.append(Row("fewest days, then silence (fallback)", auc(fallback.scores.p_order, came), 1.0,
                    float(fallback.scores.expected.sum()), actual, mae, w14, mae_r, w14_r, dcov, seconds))

    # The current rule: CareDesk's usual interval (median gap, gaps under a day left out).
    started = time.perf_counter()
    order = np.lexsort((log.day, log.owner))
    counts = np.bincount(log.owner, minlength=len(log.customers))
    usual, expected_next = usual_intervals(log.day[order].astype(float), counts)
    seconds = time.perf_counter() - started
    covered = ~np.isnan(usual)
    last = model.history.last_day.astype(float)
    overdue = (as_of_end - last) / np.where(covered, usual, 1.0)
    next_day = np.maximum(np.where(covered, expected_next, 0.0), as_of_end)
    mae, w14, mae_r, w14_r, dcov = dates(np.floor(next_day), covered)
    # Its forecast: every covered customer keeps their rhythm through the holdout.
    forecast = float(np.where(covered, HORIZON / np.where(covered, usual, 1.0), 0.0).sum())
    rows.append(Row("median gap (current /churn rule)", auc(-overdue[covered], came[covered]),
                    float(covered.mean()), forecast, actual, mae, w14, mae_r, w14_r, dcov, seconds))
    mae, w14, mae_r, w14_r, dcov = dates(np.full(len(came), float(as_of_end)), all_)
    rows.append(Row("\"they come back tomorrow\"", float("nan"), 0.0, float("nan"), actual, mae, w14, mae_r, w14_r,
                    dcov, 0.0))
    # The win-back lapse ratio: days since the last order over max(2 × usual, 45).
    wait = np.fmax(2 * np.where(covered, usual, np.nan), 45.0)
    rows.append(Row("win-back lapse ratio (current)", auc(-((as_of_end - last) / wait)[covered], came[covered]),
                    float(covered.mean()), float("nan"), actual, float("nan"), float("nan"), float("nan"), float("nan"),
                    0.0, seconds))
    print(f"\n{name}: {len(log.customers):,} customers, {len(log.day):,} orders to {AS_OF}, "
          f"{int(came.sum()):,} came back in the holdout ({HORIZON} days), fit: "
          f"r {model.scores.fit.r:.3f}, alpha {model.scores.fit.alpha:.3f}, a {model.scores.fit.a:.3f}, "
          f"b {model.scores.fit.b:.3f}")
    header = ("method", "AUC", "coverage", "forecast", "actual", "vs actual", "next date MAE", "±14 d",
              "MAE, 2+ days", "±14 d, 2+ days", "date cover", "fit s")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        vs = f"{row.forecast / row.actual - 1:+.1%}" if row.forecast == row.forecast else "—"
        fc = f"{row.forecast:,.0f}" if row.forecast == row.forecast else "—"
        mae = f"{row.date_mae:.0f} d" if row.date_mae == row.date_mae else "—"
        w14 = f"{row.within14:.0%}" if row.within14 == row.within14 else "—"
        mae_r = f"{row.date_mae_repeat:.0f} d" if row.date_mae_repeat == row.date_mae_repeat else "—"
        w14_r = f"{row.within14_repeat:.0%}" if row.within14_repeat == row.within14_repeat else "—"
        auc_ = f"{row.auc:.3f}" if row.auc == row.auc else "—"
        print(f"| {row.method} | {auc_} | {row.covered:.0%} | {fc} | {row.actual:,} | {vs} | {mae} | "
              f"{w14} | {mae_r} | {w14_r} | {row.date_covered:.0%} | {row.fit_seconds:.3f} |")
    return rows


def threshold_experiment(ids: np.ndarray, days: np.ndarray, amount: np.ndarray, seed: int = 5) -> None:
    """Sub-samples of the full log with about N repeat buyers: the model against the fallback."""
    rng = np.random.default_rng(seed)
    text = as_csv(ids, days, amount)
    log = cli.read_log(io.StringIO(text), AS_OF)
    came, _, _ = holdout(ids, days, log.customers)
    history = pm.histories(log.owner, log.day, log.amount, len(log.customers))
    share = float((history.purchase_days > 1).mean())
    end = float((AS_OF - EPOCH).days)
    print("\nFallback threshold: random sub-samples of the full log by repeat buyers (20 draws each)")
    print("| repeat buyers | customers | fit fails | model AUC (mean, 10th pct) | fallback AUC | model better | "
          "forecast error (median abs) |")
    print("|---|---|---|---|---|---|---|")
    for repeaters in (25, 50, 100, 200, 400, 800):
        n = round(repeaters / share)
        fails, m_auc, f_auc, better, errors = 0, [], [], 0, []
        for _ in range(20):
            pick = rng.choice(len(log.customers), n, replace=False)
            sub = pm.History(history.purchase_days[pick], history.first_day[pick], history.last_day[pick],
                             history.orders[pick], history.revenue[pick])
            fitted, _ = pm.fit_history(sub, end, min_repeat_customers=1)
            fb = pm.score(sub, end, HORIZON)
            f_auc.append(auc(fb.p_order, came[pick]))
            if fitted is None:
                fails += 1
                continue
            sc = pm.score(sub, end, HORIZON, fitted)
            m_auc.append(auc(sc.p_order, came[pick]))
            better += m_auc[-1] > f_auc[-1]  # (the churn risk, P(order), for both)
            total_back = _holdout_days(pick)
            errors.append(abs(sc.expected.sum() / max(total_back, 1) - 1))
        print(f"| {repeaters} | {n} | {fails} | {np.mean(m_auc):.3f}, {np.percentile(m_auc, 10):.3f} | "
              f"{np.mean(f_auc):.3f} | {better}/{20 - fails} | {np.median(errors):.0%} |")


_HOLDOUT_COUNTS: np.ndarray | None = None


def _holdout_days(pick: np.ndarray) -> int:
    assert _HOLDOUT_COUNTS is not None
    return int(_HOLDOUT_COUNTS[pick].sum())


def sqlite_timing(customers: int, orders: int) -> None:
    """The app's path (SQL summaries, fit, scores) on the benchmark database."""
    from bench import dataset
    from bot.config import Settings
    from bot.prediction import compute
    from storage.db import Database

    path = dataset.build(customers, orders, 1, quiet=True)
    load = os.getloadavg()

    async def run() -> list[float]:
        db = Database(f"sqlite+aiosqlite:///{path}")
        settings = Settings(database_url=f"sqlite+aiosqlite:///{path}")
        times: list[float] = []
        try:
            for _ in range(3):
                async with db.session() as session:
                    started = time.perf_counter()
                    result = await compute(session, settings, dataset.NOW)
                    times.append(time.perf_counter() - started)
                print(f"  method {result.method}, {len(result.customer_id):,} customers scored; phases: "
                      + ", ".join(f"{k} {v:.2f} s" for k, v in result.timings.items()))
        finally:
            await db.dispose()
        return times

    times = asyncio.run(run())
    print(f"\nSQLite, {customers:,} customers / {orders:,} orders (bench.dataset): fit and score "
          f"{times[0]:.2f} s first, best of 3 {min(times):.2f} s (load average {load[0]:.2f} {load[1]:.2f})")


def main(argv: list[str] | None = None) -> None:
    global _HOLDOUT_COUNTS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-sqlite", action="store_true", help="skip the 100,000-customer database timing")
    parser.add_argument("--no-threshold", action="store_true", help="skip the fallback threshold experiment")
    parser.add_argument("--sizes", default="100000:1000000", help="customers:orders of the SQLite timing")
    args = parser.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (others' work shows in the times)")
    evaluate("CDNOW sample", *load("CDNOW_sample.txt"))
    full = load("CDNOW_master.txt")
    evaluate("CDNOW full log", *full)
    if not args.no_threshold:
        log = cli.read_log(io.StringIO(as_csv(*full)), AS_OF)
        _, counts, _ = holdout(full[0], full[1], log.customers)
        _HOLDOUT_COUNTS = counts
        threshold_experiment(*full)
    if not args.no_sqlite:
        customers, orders = (int(v) for v in args.sizes.split(":"))
        sqlite_timing(customers, orders)


if __name__ == "__main__":
    main()
