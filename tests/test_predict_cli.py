"""``caredesk predict --orders FILE.csv --as-of YYYY-MM-DD [--horizon-days N] --out FILE.csv``."""

from __future__ import annotations

import csv
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

from bot.cli import main
from bot.predict import OUT_COLUMNS


def _shop_log(path: Path, customers: int = 600, seed: int = 3) -> None:
    """A year of orders from customers with their own rhythm; some stop, many buy once."""
    rng = np.random.default_rng(seed)
    start = date(2025, 1, 1)
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["customer", "date", "amount", "note"])
        for c in range(customers):
            day = float(rng.integers(0, 200))
            gap = float(rng.choice([7, 14, 30, 60, 400]))
            stop = rng.random() < 0.3
            while day < 365:
                out.writerow([f"c{c}", (start + timedelta(days=int(day))).isoformat(), f"{rng.integers(5, 90)}.50",
                              "x"])
                if stop and rng.random() < 0.3:
                    break
                day += gap * rng.uniform(0.6, 1.4)


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_predict_writes_one_row_per_customer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    orders, out = tmp_path / "orders.csv", tmp_path / "out.csv"
    _shop_log(orders)
    with orders.open("a", newline="") as handle:
        csv.writer(handle).writerows([
            ["weekly", "2025-09-02", "10"], ["weekly", "2025-09-09", "10"], ["weekly", "2025-09-16 18:30", "10"],
            ["weekly", "2025-09-16", "4"],  # the same day: one purchase day, two orders
            ["weekly", "2025-09-23", "10"], ["weekly", "2025-09-26", "-10"],  # a refund: left out
            ["once", "2025-01-10", "99"],
            ["later", "2025-10-05", "5"],  # after the as-of day: not known yet
            ["weekly", "2025-10-01", "10"],  # nor is this
        ])
    assert main(["predict", "--orders", str(orders), "--as-of", "2025-09-30", "--horizon-days", "30",
                 "--out", str(out)]) == 0
    assert "BG/NBD fitted on" in capsys.readouterr().out
    rows = _read(out)
    assert list(rows[0]) == list(OUT_COLUMNS)
    by = {row["customer"]: row for row in rows}
    assert "later" not in by and len(by) == len(rows)
    weekly, once = by["weekly"], by["once"]
    assert (weekly["orders"], weekly["last_order"], weekly["method"]) == ("5", "2025-09-23", "bgnbd")
    assert (once["orders"], once["last_order"]) == ("1", "2025-01-10")
    assert float(once["p_order_within_horizon"]) < 0.2 < 0.5 < float(weekly["p_order_within_horizon"])
    assert float(weekly["expected_orders_within_horizon"]) > 1 > float(once["expected_orders_within_horizon"])
    assert "2025-10-01" <= weekly["predicted_next_order"] <= "2025-10-15"
    # The date is the likeliest one if they order within the 30 days: sooner for the weekly customer.
    assert weekly["predicted_next_order"] < once["predicted_next_order"] <= "2025-10-30"


def test_predict_falls_back_with_few_repeat_buyers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    orders, out = tmp_path / "orders.csv", tmp_path / "out.csv"
    orders.write_text("customer,date,amount\na,2025-03-01,10\na,2025-03-08,10\nb,2025-01-01,10\n")
    assert main(["predict", "--orders", str(orders), "--as-of", "2025-03-10", "--out", str(out)]) == 0
    assert "fallback rule (fewest purchase days, then longest silence)" in capsys.readouterr().out
    a, b = _read(out)
    assert a["method"] == b["method"] == "fallback"
    assert float(b["p_order_within_horizon"]) < float(a["p_order_within_horizon"])


def test_predict_names_the_bad_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    orders, out = tmp_path / "orders.csv", tmp_path / "out.csv"
    orders.write_text("customer,date,amount\na,2025-03-01,10\nb,03/02/2025,10\nc,2025-03-02,ten\n,2025-03-02,1\n"
                      "d,2025-03-02\n")
    assert main(["predict", "--orders", str(orders), "--as-of", "2025-03-10", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "4 problem(s), nothing was written" in err
    assert "line 3: date '03/02/2025' is not YYYY-MM-DD" in err
    assert "line 4: amount 'ten' is not a number" in err
    assert "line 5: the customer is empty" in err
    assert "line 6: 2 field(s), expected 3" in err
    assert not out.exists()
    orders.write_text("client,day,total\na,2025-03-01,10\n")
    assert main(["predict", "--orders", str(orders), "--as-of", "2025-03-10", "--out", str(out)]) == 2
    assert "line 1: the header lacks customer, date, amount" in capsys.readouterr().err
    assert main(["predict", "--orders", str(orders), "--as-of", "10/03/2025", "--out", str(out)]) == 2
    assert main(["predict", "--orders", str(tmp_path / "missing.csv"), "--as-of", "2025-03-10",
                 "--out", str(out)]) == 2
