"""Benchmark: one care-planning pass over a large database.

Builds (or reuses, see ``bench/dataset.py``) a SQLite database of N customers
and M orders, copies it, and runs ``jobs.care.plan`` on it at the dataset's
"now": the first pass writes every care message due (the heavy one), the
second finds them all written. Each size runs in its own process so peak
memory is that run's alone. Prints wall time, CPU time, peak memory (RSS of
the process, and Python's own allocations by tracemalloc in a separate
pass), messages written, and — with two sizes — how time grows with data.

    python -m bench.bench_planning                      # 100k / 1M and 10k / 100k
    python -m bench.bench_planning --sizes 100000:1000000
    python -m bench.bench_planning --postgres           # the same on PostgreSQL too: both columns

``--postgres`` copies the same data into a throwaway PostgreSQL schema
(``bench/postgres.py``: COPY, outside the timings; a fresh copy per run, since
the first pass writes) and runs the same passes there; without a reachable
PostgreSQL it says why and prints SQLite only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


async def _plan_once(database_url: str, trace: bool) -> dict:
    from bench.dataset import NOW
    from bot.app import create_app
    from bot.clock import ManualClock
    from bot.config import Settings
    from jobs.care import plan

    settings = Settings(_env_file=None, database_url=database_url, default_timezone="Asia/Shanghai")
    app = create_app(settings, clock=ManualClock(NOW))
    try:
        rss_before = _rss_mb()
        if trace:
            tracemalloc.start()
        cpu, wall = time.process_time(), time.perf_counter()
        first = await plan(app.jobs, NOW)
        wall_first, cpu_first = time.perf_counter() - wall, time.process_time() - cpu
        peak_py = tracemalloc.get_traced_memory()[1] / 2**20 if trace else None
        if trace:
            tracemalloc.stop()
        rss_peak = _rss_mb()
        cpu, wall = time.process_time(), time.perf_counter()
        second = await plan(app.jobs, NOW)
        wall_second, cpu_second = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        await app.close()
    return {
        "customers_eligible": first.customers, "purchases_streamed": first.purchases,
        "written": dict(first.written), "written_second_pass": sum(second.written.values()),
        "cpu_second_s": round(cpu_second, 2),
        "wall_first_s": round(wall_first, 2), "cpu_first_s": round(cpu_first, 2),
        "wall_second_s": round(wall_second, 2),
        "phases_first_s": {k: round(v, 2) for k, v in first.timings.items()},
        "phases_second_s": {k: round(v, 2) for k, v in second.timings.items()},
        "rss_before_mb": round(rss_before, 1), "rss_peak_mb": round(rss_peak, 1),
        "python_peak_mb": round(peak_py, 1) if peak_py is not None else None,
    }


def run_one(customers: int, orders: int, trace: bool, url: str | None = None) -> dict:
    """One run in this process: on a copy of the cached SQLite file, or on ``url`` (loaded by the parent)."""
    from bench.dataset import build

    if url is not None:
        result = asyncio.run(_plan_once(url, trace))
    else:
        source = build(customers, orders)
        with tempfile.TemporaryDirectory(prefix="caredesk-bench-") as tmp:
            copy = Path(tmp) / "bench.sqlite3"
            shutil.copy(source, copy)
            result = asyncio.run(_plan_once(f"sqlite+aiosqlite:///{copy}", trace))
    result.update(customers=customers, orders=orders, tracemalloc=trace)
    return result


def _child(customers: int, orders: int, trace: bool, url: str | None = None) -> dict:
    cmd = [sys.executable, "-m", "bench.bench_planning", "--one", f"{customers}:{orders}"]
    if trace:
        cmd.append("--trace")
    if url is not None:
        cmd += ["--url", url]
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def _measure(customers: int, orders: int, trace: bool, backend: str) -> dict:
    """The untraced run and (``trace``) the tracemalloc run of one size on one backend, each in its own process
    (PostgreSQL: each on a fresh copy of the data, loaded before the child starts)."""
    from bench import postgres
    from bench.dataset import build

    def one(traced: bool) -> dict:
        if backend == "sqlite":
            return _child(customers, orders, traced)
        url, info = postgres.load(build(customers, orders, quiet=True), quiet=True)
        try:
            result = _child(customers, orders, traced, url)
        finally:
            postgres.drop(url)
        result["load_s"] = info["seconds"]
        result["rows_loaded"] = sum(info["rows"].values())
        return result

    result = one(False)
    if trace:
        result["python_peak_mb"] = one(True)["python_peak_mb"]
    return result


def _cells(r: dict) -> list[str]:
    """One column of the table."""
    written = sum(r["written"].values())
    phases = lambda d: " / ".join(f"{v:.2f}" for v in d.values())  # noqa: E731
    return [
        f"{r['wall_second_s']:.2f} / {r['cpu_second_s']:.2f}",
        phases(r["phases_second_s"]),
        f"{r['wall_first_s']:.2f} / {r['cpu_first_s']:.2f}",
        phases(r["phases_first_s"]),
        f"{written:,} ({', '.join(f'{k} {v:,}' for k, v in sorted(r['written'].items()))})",
        f"{r['written_second_pass']:,}",
        f"{r['rss_peak_mb']:.0f} ({r['rss_before_mb']:.0f})",
        f"{r['python_peak_mb']:.0f}" if r.get("python_peak_mb") is not None else "(--no-trace)",
        f"{r['rows_loaded']:,} rows, {r['load_s']:.1f} s" if "load_s" in r else "(a file copy)",
    ]


ROWS = ("hourly pass: wall / CPU s", "  phases s (feeds / purchases / writing)", "first pass: wall / CPU s",
        "  phases s (feeds / purchases / writing)", "care messages written (first pass)",
        "written by the hourly pass", "peak RSS MB (before planning)", "Python allocations peak MB",
        "data loaded (not timed)")


def _table(customers: int, orders: int, results: dict[str, dict]) -> str:
    any_result = next(iter(results.values()))
    head = (f"{customers:,} customers / {orders:,} orders ({any_result['purchases_streamed']:,} purchases "
            f"of {any_result['customers_eligible']:,} eligible customers in the last year)")
    columns = [(name, _cells(results[key])) for key, name in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL"))
               if key in results]
    lines = [f"| {head} | " + " | ".join(name for name, _ in columns) + " |",
             "| --- | " + " | ".join("---:" for _ in columns) + " |"]
    for i, label in enumerate(ROWS):
        lines.append(f"| {label} | " + " | ".join(cells[i] for _, cells in columns) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="care planning benchmark")
    parser.add_argument("--sizes", default="100000:1000000,10000:100000",
                        help="customers:orders pairs, largest first (default: %(default)s)")
    parser.add_argument("--postgres", action="store_true",
                        help="run the same on PostgreSQL too (tests/servers.py; the data copied with COPY)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-trace", action="store_true", help="skip the tracemalloc pass")
    args = parser.parse_args(argv)
    if args.one:
        c, o = (int(x) for x in args.one.split(":"))
        print(json.dumps(run_one(c, o, args.trace, args.url)))
        return
    sizes = [tuple(int(x) for x in pair.split(":")) for pair in args.sizes.split(",")]
    from bench import postgres
    from bench.dataset import build

    for customers, orders in sizes:  # build (or find) the data first, outside the timings
        build(customers, orders)
    backends = ["sqlite"]
    if args.postgres:
        reason = postgres.unreachable()
        if reason:
            print(f"PostgreSQL skipped: {reason}")
        else:
            backends.append("postgresql")
    print(f"care planning benchmark on {os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f}; "
          f"{' and '.join(backends)}")
    results: list[dict[str, dict]] = []
    for customers, orders in sizes:
        by_backend: dict[str, dict] = {}
        for backend in backends:
            started = time.perf_counter()
            by_backend[backend] = _measure(customers, orders, not args.no_trace, backend)
            by_backend[backend]["backend"] = backend
            print(f"  {customers:,} / {orders:,} on {backend}: done in {time.perf_counter() - started:.0f} s, "
                  f"load average {os.getloadavg()[0]:.1f}", flush=True)
        results.append(by_backend)
        print()
        print(_table(customers, orders, by_backend))
        print()
    if len(results) >= 2:
        for backend in backends:
            big, small = results[0][backend], results[-1][backend]
            data_ratio = big["orders"] / small["orders"]
            for label, wall_key, cpu_key in (("hourly", "wall_second_s", "cpu_second_s"),
                                             ("first", "wall_first_s", "cpu_first_s")):
                print(f"linearity on {backend} ({label} pass): {data_ratio:.0f}× the data took "
                      f"{big[wall_key] / max(small[wall_key], 1e-6):.1f}× the wall time "
                      f"({big[cpu_key] / max(small[cpu_key], 1e-6):.1f}× the CPU time)")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
