"""A large, realistic CareDesk database for the benchmarks, generated fast.

``build(customers, orders, seed)`` returns the path of a migrated SQLite file
holding that many customers and orders (1–3 items each, from the sample
catalog), written with ``executemany`` and raw SQL. Files are cached under
``bench/.cache/`` by their parameters, so a second run starts at once; pass
``fresh=True`` (or delete the folder) to rebuild.

Shape of the data, as of :data:`NOW` (2026-03-02 02:00 UTC):

* every customer has 1–4 staple products and a personal rhythm (a 7–60 day
  interval, with noise); orders go back at most two years;
* about 15 % of customers have lapsed (last order 2–10 months ago);
* 80 % consented to care messages, 97 % are reachable; 90 % gave a
  birthday and 80 % a household size; 10 % speak Chinese;
* 3 % of orders are cancelled; orders of the last two days are still open;
  the rest were delivered a day after they were placed.

Usage: ``python -m bench.dataset 100000 1000000`` (prints the path and timing).
"""

from __future__ import annotations

import argparse
import csv
import random
import sqlite3
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(__file__).resolve().parent / ".cache"
CATALOG = ROOT / "bot" / "data" / "sample_catalog.csv"
NOW = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
VERSION = 1  # bump when the shape of the data changes
TELEGRAM_BASE = 1_000_000_000


def _ts(moment: datetime) -> str:
    """How SQLAlchemy stores a UTCDateTime on SQLite."""
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def path_for(customers: int, orders: int, seed: int) -> Path:
    return CACHE / f"caredesk-c{customers}-o{orders}-s{seed}-v{VERSION}.sqlite3"


def _products() -> list[tuple]:
    rows = []
    with CATALOG.open(encoding="utf-8") as fh:
        for number, row in enumerate(csv.DictReader(fh), start=1):
            days = float(row["days_per_unit_per_person"]) if row.get("days_per_unit_per_person") else None
            price = round(float(row["price"]) * 100)
            rows.append((number, row["sku"], row["name_en"], row["name_zh"], row["category"], row["unit"],
                         price, 1, days))
    return rows


def _order_counts(rng: random.Random, customers: int, orders: int) -> list[int]:
    """How many orders each customer has: at least one, ``orders`` in all."""
    if orders < customers:
        counts = [1 if i < orders else 0 for i in range(customers)]
        return counts
    average = orders / customers
    counts = [max(1, int(rng.uniform(1, 2 * average - 1) + 0.5)) for _ in range(customers)]
    diff = orders - sum(counts)
    i = 0
    while diff != 0:
        j = i % customers
        if diff > 0:
            counts[j] += 1
            diff -= 1
        elif counts[j] > 1:
            counts[j] -= 1
            diff += 1
        i += 1
    return counts


def build(customers: int, orders: int, seed: int = 1, fresh: bool = False, quiet: bool = False) -> Path:
    path = path_for(customers, orders, seed)
    if path.exists() and not fresh:
        # A file cached before a newer migration is brought up to date (adding columns and tables is quick).
        sys.path.insert(0, str(ROOT))
        from storage.migrate import upgrade

        upgrade(f"sqlite+aiosqlite:///{path}")
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    for stale in (tmp, Path(str(tmp) + "-wal"), Path(str(tmp) + "-shm")):
        stale.unlink(missing_ok=True)
    started = time.perf_counter()
    sys.path.insert(0, str(ROOT))
    from storage.migrate import upgrade

    upgrade(f"sqlite+aiosqlite:///{tmp}")
    db = sqlite3.connect(tmp)
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    # Load without indexes, then build them once.
    indexes = db.execute(
        "SELECT name, sql FROM sqlite_master WHERE type='index' AND sql IS NOT NULL "
        "AND tbl_name IN ('customers','orders','order_items')"
    ).fetchall()
    for name, _ in indexes:
        db.execute(f"DROP INDEX {name}")

    rng = random.Random(seed)
    products = _products()
    db.executemany("INSERT INTO products (id, sku, name_en, name_zh, category, unit, price, active, "
                   "days_per_unit_per_person) VALUES (?,?,?,?,?,?,?,?,?)", products)
    staples = [p for p in products if p[8] is not None] or products
    prices = {p[0]: p[6] for p in products}

    customer_rows = []
    now_ts = _ts(NOW)
    for cid in range(1, customers + 1):
        birthday = ((date(1950, 1, 1) + timedelta(days=rng.randrange(20_000))).isoformat()
                    if rng.random() < 0.9 else None)
        household = rng.randint(1, 6) if rng.random() < 0.8 else None
        lang = "zh" if rng.random() < 0.1 else "en"
        consent = 1 if rng.random() < 0.8 else 0
        reachable = 1 if rng.random() < 0.97 else 0
        registered = _ts(NOW - timedelta(days=730 + rng.randrange(100)))
        customer_rows.append((cid, TELEGRAM_BASE + cid, f"Customer {cid}", f"+86138{cid:08d}", birthday,
                              f"{cid} Rice Street", household, lang, None, consent, registered, reachable,
                              registered, now_ts))
    db.executemany(
        "INSERT INTO customers (id, telegram_id, name, phone, birthday, address, household_size, language, "
        "timezone, care_consent, care_consent_changed_at, reachable, registered_at, updated_at) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", customer_rows)
    del customer_rows

    counts = _order_counts(rng, customers, orders)
    order_rows: list[tuple] = []
    item_rows: list[tuple] = []
    oid = 0
    iid = 0
    horizon = timedelta(days=729)

    def flush() -> None:
        db.executemany(
            "INSERT INTO orders (id, customer_id, status, source, total, currency, created_at, updated_at, "
            "delivered_at, cancelled_at) VALUES (?,?,?,?,?,?,?,?,?,?)", order_rows)
        db.executemany("INSERT INTO order_items (id, order_id, product_id, quantity, unit_price) VALUES (?,?,?,?,?)",
                       item_rows)
        order_rows.clear()
        item_rows.clear()

    for cid, count in enumerate(counts, start=1):
        if count == 0:
            continue
        mine = rng.sample(staples, k=min(len(staples), rng.randint(1, 4)))
        interval = rng.uniform(7, 60)
        if interval * count > horizon.days:
            interval = horizon.days / (count + 1)
        lapsed = rng.random() < 0.15
        last = NOW - timedelta(days=rng.uniform(60, 300) if lapsed else rng.uniform(0, interval * 1.2),
                               hours=rng.uniform(0, 12))
        if NOW - last > horizon:
            last = NOW - timedelta(days=rng.uniform(0, 30))
        times = []
        at = last
        for _ in range(count):
            times.append(at)
            at -= timedelta(days=interval * rng.uniform(0.8, 1.2))
            if NOW - at > horizon:
                at = NOW - horizon + timedelta(hours=rng.uniform(0, 48))
        times.reverse()
        for created in times:
            oid += 1
            n_items = 1 if rng.random() < 0.5 else rng.randint(2, 3)
            picked = rng.sample(mine, k=min(len(mine), n_items))
            total = 0
            for product in picked:
                iid += 1
                quantity = rng.randint(1, 3)
                item_rows.append((iid, oid, product[0], quantity, prices[product[0]]))
                total += prices[product[0]] * quantity
            age = NOW - created
            if rng.random() < 0.03:
                status, delivered, cancelled = "cancelled", None, _ts(created + timedelta(hours=2))
            elif age < timedelta(days=2):
                status, delivered, cancelled = ("new" if age < timedelta(days=1) else "accepted"), None, None
            else:
                status, delivered, cancelled = "delivered", _ts(created + timedelta(days=1)), None
            stamp = _ts(created)
            order_rows.append((oid, cid, status, "dialog", total, "CNY", stamp, stamp, delivered, cancelled))
        if len(order_rows) >= 50_000:
            flush()
    flush()
    for _, sql in indexes:
        db.execute(sql)
    db.execute("ANALYZE")
    db.commit()
    db.execute("PRAGMA journal_mode=WAL")
    db.close()
    tmp.replace(path)
    if not quiet:
        print(f"built {path.name}: {customers} customers, {oid} orders, {iid} items "
              f"in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("customers", type=int, nargs="?", default=100_000)
    parser.add_argument("orders", type=int, nargs="?", default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fresh", action="store_true", help="rebuild even if cached")
    args = parser.parse_args(argv)
    print(build(args.customers, args.orders, args.seed, fresh=args.fresh))


if __name__ == "__main__":
    main()
