"""``caredesk predict``: who buys again, and when, for any order log in a CSV file.

Input: a CSV file with a header naming (at least) the columns ``customer``, ``date``
(``YYYY-MM-DD``; a time after it is ignored) and ``amount`` (a number; a negative
amount is a refund and is left out). Only orders up to and including ``--as-of``
count. Output, one row per customer with an order by then:
``customer,orders,last_order,p_order_within_horizon,expected_orders_within_horizon,
predicted_next_order,method`` (the date is the most likely one *if* the customer orders
within the horizon; the probability says how likely that is), from the BG/NBD model fitted on the file
(:mod:`bot.rules.purchase_model`) or, when it cannot be fitted, the fallback rule.

A bad row stops the command with exit status 2 and names its line (every bad line,
up to :data:`MAX_PROBLEMS`); nothing is written then.
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any

import numpy as np

from bot import csv_safe
from bot.rules import purchase_model as pm

COLUMNS = ("customer", "date", "amount")
OUT_COLUMNS = ("customer", "orders", "last_order", "p_order_within_horizon", "expected_orders_within_horizon",
               "predicted_next_order", "method")
MAX_PROBLEMS = 20
DEFAULT_HORIZON_DAYS = 90
EPOCH = date(1970, 1, 1)


class LogError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class OrderLog:
    customers: list[str]  # in the order of their first row
    owner: np.ndarray  # per order: index into customers
    day: np.ndarray  # per order: days since 1970
    amount: np.ndarray


def _day(text: str) -> int:
    value = date.fromisoformat(text.strip()[:10])
    if len(text.strip()) > 10 and text.strip()[10] not in " T":
        raise ValueError(text)
    return (value - EPOCH).days


def read_log(handle: IO[str], as_of: date) -> OrderLog:
    """The orders up to and including ``as_of``; :class:`LogError` lists the bad lines."""
    reader = csv.reader(handle)
    header = next(reader, None)
    if header is None:
        raise LogError(["line 1: the file is empty; expected a header: customer,date,amount"])
    names = [name.strip().lower().lstrip("\ufeff") for name in header]
    missing = [name for name in COLUMNS if name not in names]
    if missing:
        raise LogError([f"line 1: the header lacks {', '.join(missing)} (expected customer,date,amount)"])
    at = [names.index(name) for name in COLUMNS]
    last = (as_of - EPOCH).days
    index: dict[str, int] = {}
    owner: list[int] = []
    days: list[int] = []
    amounts: list[float] = []
    problems: list[str] = []
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(at):
            problems.append(f"line {line}: {len(row)} field(s), expected {len(names)}")
        else:
            customer, when, amount = (row[i].strip() for i in at)
            try:
                day = _day(when)
            except ValueError:
                problems.append(f"line {line}: date {when!r} is not YYYY-MM-DD")
                day = None
            try:
                value = Decimal(amount)
                if not value.is_finite():
                    raise InvalidOperation
            except InvalidOperation:
                problems.append(f"line {line}: amount {amount!r} is not a number")
                value = None
            if not customer:
                problems.append(f"line {line}: the customer is empty")
            if day is not None and value is not None and customer and day <= last and value >= 0:
                owner.append(index.setdefault(customer, len(index)))
                days.append(day)
                amounts.append(float(value))
        if len(problems) >= MAX_PROBLEMS:
            problems.append("(stopped here)")
            break
    if problems:
        raise LogError(problems)
    return OrderLog(list(index), np.array(owner, dtype=np.int64), np.array(days, dtype=np.int64),
                    np.array(amounts, dtype=np.float64))


@dataclass
class Prediction:
    log: OrderLog
    history: pm.History
    scores: pm.Scores
    as_of: date


def predict(log: OrderLog, as_of: date, horizon_days: int = DEFAULT_HORIZON_DAYS, *,
            min_repeat_customers: int = pm.MIN_REPEAT_CUSTOMERS) -> Prediction:
    """Fit on the log (as of the end of ``as_of``) and score every customer in it."""
    history = pm.histories(log.owner, log.day, log.amount, len(log.customers))
    end = float((as_of - EPOCH).days)  # T in whole days to the as-of day, as in the published CDNOW summary
    fitted, why = pm.fit_history(history, end, min_repeat_customers=min_repeat_customers)
    return Prediction(log, history, pm.score(history, end, horizon_days, fitted, why), as_of)


def rows(prediction: Prediction) -> list[list[Any]]:
    scores, history = prediction.scores, prediction.history
    end = (prediction.as_of - EPOCH).days + 1  # never the as-of day itself: its orders are known
    out: list[list[Any]] = []
    for i, customer in enumerate(prediction.log.customers):
        wait = scores.wait_days[i]
        next_day = (EPOCH + timedelta(days=end + int(min(wait, 3_650_000)))).isoformat() if np.isfinite(wait) else ""
        out.append([customer, int(history.orders[i]), (EPOCH + timedelta(days=int(history.last_day[i]))).isoformat(),
                    f"{scores.p_order[i]:.4f}", f"{scores.expected[i]:.4f}", next_day, scores.method])
    return out


def write_csv(prediction: Prediction, handle: IO[str]) -> None:
    writer = csv_safe.writer(handle, lineterminator="\n")  # customer ids from the file stay text
    writer.writerow(OUT_COLUMNS)
    writer.writerows(rows(prediction))


def cmd_predict(args: argparse.Namespace, settings: Any = None) -> int:
    path = Path(args.orders)
    try:
        as_of = date.fromisoformat(args.as_of)
    except ValueError:
        print(f"caredesk: --as-of {args.as_of!r} is not a date (YYYY-MM-DD)", file=sys.stderr)
        return 2
    if args.horizon_days <= 0:
        print("caredesk: --horizon-days must be positive", file=sys.stderr)
        return 2
    if not path.is_file():
        print(f"caredesk: no such file: {path}", file=sys.stderr)
        return 2
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            log = read_log(handle, as_of)
    except LogError as exc:
        print(f"caredesk: {path}: {len(exc.problems)} problem(s), nothing was written:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    except UnicodeDecodeError as exc:
        print(f"caredesk: {path}: not UTF-8 text ({exc.reason})", file=sys.stderr)
        return 2
    prediction = predict(log, as_of, args.horizon_days)
    out = Path(args.out)
    with out.open("w", newline="", encoding="utf-8") as handle:
        write_csv(prediction, handle)
    scores = prediction.scores
    if scores.fit is not None:
        f = scores.fit
        how = (f"BG/NBD fitted on {f.customers} customers "
               f"(r {f.r:.3f}, alpha {f.alpha:.3f} weeks, a {f.a:.3f}, b {f.b:.3f})")
    else:
        how = f"fallback rule (fewest purchase days, then longest silence): {scores.why or 'no orders'}"
    print(f"caredesk: {len(log.customers)} customers as of {as_of}, horizon {args.horizon_days} days, {how}; "
          f"written to {out}")
    return 0


def add_command(sub: Any) -> None:
    parser = sub.add_parser("predict", help="who buys again and when, from an order log (CSV)")
    parser.add_argument("--orders", required=True, metavar="FILE.csv", help="columns customer,date,amount (header)")
    parser.add_argument("--as-of", required=True, metavar="YYYY-MM-DD", help="use orders up to this day")
    parser.add_argument("--horizon-days", type=int, default=DEFAULT_HORIZON_DAYS, metavar="N",
                        help="the probability and expected orders are for the next N days "
                             f"(default {DEFAULT_HORIZON_DAYS})")
    parser.add_argument("--out", required=True, metavar="FILE.csv", help="where to write one row per customer")
    parser.set_defaults(func=cmd_predict)
