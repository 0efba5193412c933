"""Benchmark: every manager report on 100,000 customers and 1,000,000 orders (SQLite, and PostgreSQL).

Run it by hand (it is not part of the test suite)::

    python -m bench.bench_reports                 # 100,000 customers, 1,000,000 orders
    python -m bench.bench_reports 20000 200000    # smaller
    python -m bench.bench_reports --postgres      # the same data on PostgreSQL too: both columns

The customers, orders and items come from ``bench.dataset`` (cached under
``bench/.cache/``). On a copy of that file this adds what the reports read
besides orders: complaints (3 % of deliveries, with handling times and
ratings), care messages in the outbox (reminders before a third of the orders
of consenting customers, half of them answered by that order; surveys after a
tenth of deliveries, 40 % answered; birthday greetings; skipped ones) — also
cached. The clock is ``bench.dataset.NOW``.

For each report it prints the wall time of the SQL and rendering the text
(first run, and the best of three), the CPU time of this process in the first
run (PostgreSQL's own work is in its server, not counted), the same with the
chart, and the peak memory the report allocated in Python (``tracemalloc``, a
separate run), and the process's maximum resident size at the end. Each
backend runs in a process of its own.

``--postgres`` copies the same file into a throwaway PostgreSQL schema
(``bench/postgres.py``: COPY, not timed) and measures the reports there too;
without a reachable PostgreSQL it says why and prints SQLite only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import dataset  # noqa: E402

EXTRA_VERSION = 2  # bump when the added rows (or the migrations they need) change


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=dataset.NOW.tzinfo)


def build(customers: int, orders: int, seed: int = 1, fresh: bool = False) -> Path:
    """The dataset plus complaints, care messages and survey answers (cached)."""
    base = dataset.build(customers, orders, seed, fresh=fresh)
    path = dataset.CACHE / f"reports-c{customers}-o{orders}-s{seed}-v{dataset.VERSION}.{EXTRA_VERSION}.sqlite3"
    if path.exists() and not fresh:
        _upgrade(path)
        return path
    started = time.perf_counter()
    tmp = path.with_suffix(".tmp")
    for stale in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        stale.unlink(missing_ok=True)
    source = sqlite3.connect(base)
    source.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    source.close()
    shutil.copyfile(base, tmp)
    _upgrade(tmp)
    db = sqlite3.connect(tmp)
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    rng = random.Random(seed * 7919)
    consenting = {row[0] for row in db.execute("SELECT id FROM customers WHERE care_consent = 1")}
    telegram = dict(db.execute("SELECT id, telegram_id FROM customers"))
    birthdays = db.execute("SELECT id, birthday FROM customers WHERE care_consent = 1 AND birthday IS NOT NULL")
    outbox: list[tuple[Any, ...]] = []
    attributions: list[tuple[int, int]] = []
    tickets: list[tuple[Any, ...]] = []
    answers: list[tuple[Any, ...]] = []
    next_outbox = 1
    staff = ("Sam", "Kim", "Lee", "Wang Fang")
    targets = {"high": (30, 480), "normal": (120, 1440), "low": (480, 4320)}

    def add_outbox(kind: str, customer: int, sent: datetime, status: str = "sent", reason: str | None = None,
                   ref_order: int | None = None) -> int:
        nonlocal next_outbox
        row_id = next_outbox
        next_outbox += 1
        outbox.append((row_id, f"bench:{kind}:{row_id}", kind, "care", 10, telegram[customer], customer, "(bench)",
                       ref_order, _ts(sent), status, reason, 1 if status == "sent" else 0, _ts(sent),
                       _ts(sent) if status == "sent" else None))
        return row_id

    for order_id, customer, created, status, delivered in db.execute(
            "SELECT id, customer_id, created_at, status, delivered_at FROM orders ORDER BY id"):
        created_at = _parse(created)
        if customer in consenting and rng.random() < 0.33:
            reminder = add_outbox("reorder", customer, created_at - timedelta(hours=rng.uniform(6, 60)))
            if rng.random() < 0.5 and status != "cancelled":
                attributions.append((reminder, order_id))
        if delivered is None:
            continue
        delivered_at = _parse(delivered)
        if customer in consenting and rng.random() < 0.1:
            survey_at = delivered_at + timedelta(days=2)
            if survey_at < dataset.NOW:
                if rng.random() < 0.9:
                    add_outbox("survey", customer, survey_at, ref_order=order_id)
                    if rng.random() < 0.4:
                        answered = _ts(survey_at + timedelta(hours=3))
                        answers.append((order_id, customer, rng.choices((1, 2, 3, 4, 5), (3, 4, 10, 35, 48))[0],
                                        answered, answered))
                else:
                    add_outbox("survey", customer, survey_at, status="skipped", reason="weekly cap",
                               ref_order=order_id)
        if rng.random() < 0.03:
            opened = delivered_at + timedelta(hours=rng.uniform(1, 48))
            if opened >= dataset.NOW:
                continue
            priority = rng.choices(("high", "normal", "low"), (15, 70, 15))[0]
            first_target, resolution_target = targets[priority]
            first = rng.lognormvariate(0, 0.7) * first_target * 0.35
            resolution = max(first + 5, rng.lognormvariate(0, 0.75) * resolution_target * 0.3)
            resolved = opened + timedelta(minutes=resolution)
            done = resolved < dataset.NOW
            rating = rng.choices((1, 2, 3, 4, 5), (4, 5, 10, 35, 46))[0] if done and rng.random() < 0.6 else None
            tickets.append((
                customer, order_id, rng.choice(("quality", "delivery", "staff", "billing", "other")), priority,
                "closed" if done else "in_progress", "(bench)", rng.choice(staff), _ts(opened),
                _ts(resolved if done else opened), _ts(opened + timedelta(minutes=first)), round(first, 1),
                int(first > first_target), _ts(resolved) if done else None, round(resolution, 1) if done else None,
                int(resolution > resolution_target) if done else None, rating,
                _ts(resolved + timedelta(hours=2)) if rating else None,
                _ts(opened + timedelta(minutes=first_target)), _ts(opened + timedelta(minutes=resolution_target)),
            ))
    for customer, birthday in birthdays:
        month_day = birthday[5:10]
        for year in (2024, 2025, 2026):
            try:
                moment = datetime.fromisoformat(f"{year}-{month_day}T02:00:00").replace(tzinfo=dataset.NOW.tzinfo)
            except ValueError:
                continue
            if dataset.NOW - timedelta(days=730) < moment < dataset.NOW:
                add_outbox("birthday", customer, moment)
    db.executemany(
        "INSERT INTO outbox (id, dedupe_key, kind, category, priority, chat_id, customer_id, text, ref_order_id, "
        "not_before, status, skip_reason, attempts, created_at, sent_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        outbox)
    db.executemany("UPDATE orders SET attributed_outbox_id = ?, source = 'reminder' WHERE id = ?", attributions)
    db.executemany(
        "INSERT INTO tickets (customer_id, order_id, category, priority, status, description, assignee_name, "
        "created_at, updated_at, first_response_at, first_response_minutes, first_response_breached, resolved_at, "
        "resolution_minutes, resolution_breached, rating, rated_at, first_response_due_at, resolution_due_at, "
        "waiting_minutes, reopen_count) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,0,0)", tickets)
    db.executemany("INSERT INTO care_survey_answers (order_id, customer_id, rating, created_at, updated_at) "
                   "VALUES (?,?,?,?,?)", answers)
    db.execute("ANALYZE")
    db.commit()
    db.execute("PRAGMA journal_mode=WAL")
    db.close()
    tmp.replace(path)
    print(f"built {path.name}: +{len(tickets):,} complaints, +{len(outbox):,} care messages "
          f"({len(attributions):,} answered by an order), +{len(answers):,} survey answers "
          f"in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return path


def _upgrade(path: Path) -> None:
    """Migrate to head, and create any index of the models that is missing.

    A cached file may have been migrated while a revision that has not shipped
    yet was still changing (an index added to it later).
    """
    from sqlalchemy import create_engine

    from storage.migrate import upgrade
    from storage.models import Base

    upgrade(f"sqlite+aiosqlite:///{path}")
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as connection:
            for table in Base.metadata.sorted_tables:
                for index in table.indexes:
                    index.create(connection, checkfirst=True)
            connection.exec_driver_sql("ANALYZE")
    finally:
        engine.dispose()


# ----- measuring ---------------------------------------------------------------------------------

@dataclass
class Case:
    label: str
    name: str
    period: str | None


CASES = (
    Case("report (this month: 2 days)", "report", None),
    Case("report 2026-02", "report", "2026-02"),
    Case("abc (12 months)", "abc", None),
    Case("rfm (12 months)", "rfm", None),
    Case("churn", "churn", None),
    Case("seasonal (36 months)", "seasonal", None),
    Case("sla 2026-02", "sla", "2026-02"),
    Case("csat 2026-02", "csat", "2026-02"),
    Case("care 2026-02", "care", "2026-02"),
)


async def _run(db: Any, settings: Any, texts: Any, case: Case, chart: bool) -> None:
    from bot.reports import output, report_period, run_report

    period = report_period(case.name, case.period, settings, dataset.NOW)
    async with db.session() as session:
        result = await run_report(case.name, session, settings, period, dataset.NOW)
    output.render_text(case.name, result, texts, settings)
    if chart:
        output.render_chart(case.name, result, texts, settings)


async def _timed(db: Any, settings: Any, texts: Any, case: Case, chart: bool) -> float:
    started = time.perf_counter()
    await _run(db, settings, texts, case, chart)
    return time.perf_counter() - started


async def measure(database_url: str, repeat: int) -> list[tuple[str, float, float, float, float, float, float]]:
    """(label, first s, best s, best with the chart s, Python peak MiB, with the chart, CPU s of the first run)."""
    from bot.config import Settings
    from bot.reports import charts
    from bot.texts import TextRenderer
    from storage.db import Database

    settings = Settings(_env_file=None, database_url=database_url, default_timezone="Asia/Shanghai")
    texts = TextRenderer(currency=settings.currency).for_language("en")
    db = Database(settings.database_url)
    results = []
    try:
        charts.seasonal_index([str(i) for i in range(12)], [100.0] * 12, title="warm-up", baseline_label="100")
        for case in CASES:
            cpu = time.process_time()
            first = await _timed(db, settings, texts, case, chart=False)
            cpu = time.process_time() - cpu
            best = min([first] + [await _timed(db, settings, texts, case, chart=False) for _ in range(repeat - 1)])
            with_chart = min([await _timed(db, settings, texts, case, chart=True) for _ in range(repeat)])
            tracemalloc.start()
            await _run(db, settings, texts, case, chart=False)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            await _run(db, settings, texts, case, chart=True)
            _, peak_chart = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            results.append((case.label, first, best, with_chart, peak / 2**20, peak_chart / 2**20, cpu))
            print(f"  {case.label:<30} {first:7.3f} s {cpu:7.3f} s {best:7.3f} s {with_chart:7.3f} s "
                  f"{peak / 2**20:8.1f} MiB {peak_chart / 2**20:8.1f} MiB", flush=True)
    finally:
        await db.dispose()
    return results


HEADER = f"  {'report':<30} {'first':>9} {'CPU':>9} {'best':>9} {'+chart':>9} {'peak mem':>12} {'+chart':>12}"


def _child(database_url: str, repeat: int) -> dict[str, Any]:
    """Measure in a process of its own (its resident size is this backend's alone); echo its lines."""
    cmd = [sys.executable, "-m", "bench.bench_reports", "--url", database_url, "--repeat", str(repeat)]
    with subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}) as child:
        assert child.stdout is not None
        lines = []
        for line in child.stdout:
            lines.append(line)
            if not line.startswith("{"):
                print(line, end="", flush=True)
    if child.returncode:
        raise SystemExit(f"the {database_url.split(':')[0]} run failed ({child.returncode})")
    return json.loads(lines[-1])


def _one(database_url: str, repeat: int) -> None:
    """The child: measure every report on ``database_url``, then one JSON line."""
    results = asyncio.run(measure(database_url, repeat))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  max resident size of the process: {rss:,.0f} MiB", flush=True)
    print(json.dumps({"results": results, "rss_mb": rss}))


def _table(by_backend: dict[str, dict[str, Any]]) -> str:
    names = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
    head = "| report | " + " | ".join(
        f"{names[b]}: first / best s | CPU s | +chart s | peak MiB" for b in by_backend) + " |"
    lines = [head, "| --- |" + " ---: | ---: | ---: | ---: |" * len(by_backend)]
    rows = {b: {r[0]: r for r in data["results"]} for b, data in by_backend.items()}
    for case in CASES:
        cells = []
        for b in by_backend:
            _, first, best, chart, peak, peak_chart, cpu = rows[b][case.label]
            cells += [f"{first:.3f} / {best:.3f}", f"{cpu:.3f}", f"{chart:.3f}", f"{peak:.1f} / {peak_chart:.1f}"]
        lines.append(f"| {case.label} | " + " | ".join(cells) + " |")
    lines.append("| max resident size (MiB) | " + " | ".join(
        f"| | | {data['rss_mb']:,.0f}" for data in by_backend.values()) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Time every manager report on a large database.")
    parser.add_argument("customers", type=int, nargs="?", default=100_000)
    parser.add_argument("orders", type=int, nargs="?", default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--fresh", action="store_true", help="rebuild the cached databases")
    parser.add_argument("--postgres", action="store_true",
                        help="the same data on PostgreSQL too (tests/servers.py; copied with COPY)")
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.url:
        _one(args.url, args.repeat)
        return
    from bench import postgres

    path = build(args.customers, args.orders, args.seed, fresh=args.fresh)
    with sqlite3.connect(path) as db:
        counts = {table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                  for table in ("customers", "orders", "order_items", "tickets", "outbox", "care_survey_answers")}
    print(f"reports benchmark on {os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f}")
    print(f"database: {path.name} ({path.stat().st_size / 2**20:,.0f} MiB)")
    print("  " + ", ".join(f"{table} {count:,}" for table, count in counts.items()))
    print(f"  clock: {dataset.NOW.isoformat()}, business time zone Asia/Shanghai")
    reason = postgres.unreachable() if args.postgres else None
    if reason:
        print(f"PostgreSQL skipped: {reason}")
    by_backend: dict[str, dict[str, Any]] = {}
    print("SQLite (file, WAL):")
    print(HEADER)
    by_backend["sqlite"] = _child(f"sqlite+aiosqlite:///{path}", args.repeat)
    if args.postgres and not reason:
        print(f"PostgreSQL (asyncpg), load average {os.getloadavg()[0]:.1f}:")
        url, info = postgres.load(path)
        try:
            print(HEADER)
            by_backend["postgresql"] = _child(url, args.repeat)
        finally:
            postgres.drop(url)
    print()
    print(_table(by_backend))
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
