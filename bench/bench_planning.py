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


async def _plan_once(db_path: Path, trace: bool) -> dict:
    from bench.dataset import NOW
    from bot.app import create_app
    from bot.clock import ManualClock
    from bot.config import Settings
    from jobs.care import plan

    settings = Settings(_env_file=None, database_url=f"sqlite+aiosqlite:///{db_path}", default_timezone="Asia/Shanghai")
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


def run_one(customers: int, orders: int, trace: bool) -> dict:
    from bench.dataset import build

    source = build(customers, orders)
    with tempfile.TemporaryDirectory(prefix="caredesk-bench-") as tmp:
        copy = Path(tmp) / "bench.sqlite3"
        shutil.copy(source, copy)
        result = asyncio.run(_plan_once(copy, trace))
    result.update(customers=customers, orders=orders, tracemalloc=trace)
    return result


def _child(customers: int, orders: int, trace: bool) -> dict:
    cmd = [sys.executable, "-m", "bench.bench_planning", "--one", f"{customers}:{orders}"]
    if trace:
        cmd.append("--trace")
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="care planning benchmark")
    parser.add_argument("--sizes", default="100000:1000000,10000:100000",
                        help="customers:orders pairs, largest first (default: %(default)s)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-trace", action="store_true", help="skip the tracemalloc pass")
    args = parser.parse_args(argv)
    if args.one:
        c, o = (int(x) for x in args.one.split(":"))
        print(json.dumps(run_one(c, o, args.trace)))
        return
    sizes = [tuple(int(x) for x in pair.split(":")) for pair in args.sizes.split(",")]
    from bench.dataset import build

    for customers, orders in sizes:  # build (or find) the data first, outside the timings
        build(customers, orders)
    results = []
    print(f"care planning benchmark on {os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f}")
    for customers, orders in sizes:
        result = _child(customers, orders, trace=False)
        if not args.no_trace:
            traced = _child(customers, orders, trace=True)
            result["python_peak_mb"] = traced["python_peak_mb"]
        results.append(result)
        print(f"{customers:>9,} customers {orders:>10,} orders ({result['purchases_streamed']:,} purchases "
              f"of {result['customers_eligible']:,} eligible customers in the last year):")
        print(f"    hourly pass (all already written): {result['wall_second_s']:.2f} s wall, "
              f"{result['cpu_second_s']:.2f} s CPU, phases {result['phases_second_s']}")
        print(f"    first pass (writes the backlog {result['written']}): {result['wall_first_s']:.2f} s wall, "
              f"{result['cpu_first_s']:.2f} s CPU, phases {result['phases_first_s']}")
        print(f"    peak RSS {result['rss_peak_mb']:.0f} MB (before planning {result['rss_before_mb']:.0f} MB); "
              f"Python allocations peak {result.get('python_peak_mb') or 0:.0f} MB (tracemalloc)")
    if len(results) >= 2:
        big, small = results[0], results[-1]
        data_ratio = big["orders"] / small["orders"]
        for label, wall_key, cpu_key in (("hourly", "wall_second_s", "cpu_second_s"),
                                         ("first", "wall_first_s", "cpu_first_s")):
            print(f"linearity ({label} pass): {data_ratio:.0f}× the data took "
                  f"{big[wall_key] / max(small[wall_key], 1e-6):.1f}× the wall time "
                  f"({big[cpu_key] / max(small[cpu_key], 1e-6):.1f}× the CPU time)")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
