"""The reports and the demo history on the command line.

``caredesk report NAME [--period P] [--format text|csv|png] [--out FILE] [--lang en|zh]``
prints a report (or writes its CSV or chart) from the configured database;
``caredesk demo-data --customers N --months M --seed S [--end YYYY-MM-DD]``
fills it with a demo history. ``bot.cli`` adds both subcommands.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.config import LANGUAGES, Settings
from bot.private_files import write_private


def add_commands(sub: Any, migrate: Any, migrate_existing: Any = None) -> None:
    """Register ``report`` and ``demo-data`` on the main parser's subparsers.

    ``migrate`` creates the database if need be (demo-data); ``report`` only reads, so it gets
    ``migrate_existing``, which refuses a database that does not exist yet.
    """
    from bot.reports import REPORT_NAMES

    report = sub.add_parser("report", help="print a manager report (text), or write it as CSV or a PNG chart")
    report.add_argument("name", choices=REPORT_NAMES, metavar="NAME", help=", ".join(REPORT_NAMES))
    report.add_argument("--period", default=None,
                        help="today, week, month, year, 30d, 12m, 2026, 2026-03, 2026-03-02 or A..B "
                             "(default: the report's own, e.g. this month)")
    report.add_argument("--format", choices=("text", "csv", "png"), default="text")
    report.add_argument("--out", default=None, help="write to this file (png: default caredesk-NAME-PERIOD.png)")
    report.add_argument("--lang", choices=LANGUAGES, default=None, help="language (default: DEFAULT_LANGUAGE)")
    report.set_defaults(func=lambda args, settings: cmd_report(args, settings, migrate_existing or migrate))

    demo = sub.add_parser("demo-data", help="fill the database with a realistic, reproducible demo history")
    demo.add_argument("--customers", type=int, default=300, help="households to add (default 300)")
    demo.add_argument("--months", type=int, default=24, help="months of history (default 24)")
    demo.add_argument("--seed", type=int, default=1, help="the same seed gives the same history (default 1)")
    demo.add_argument("--end", default=None, help="the history's last day, YYYY-MM-DD (default: now)")
    demo.set_defaults(func=lambda args, settings: cmd_demo_data(args, settings, migrate))


def cmd_report(args: argparse.Namespace, settings: Settings, migrate: Any) -> int:
    from bot.clock import SystemClock
    from bot.reports import PeriodError, output, report_period, run_report
    from bot.telegram_html import to_plain
    from bot.texts import TextRenderer
    from storage.db import Database

    migrate(settings)
    now = SystemClock().now()
    try:
        period = report_period(args.name, args.period, settings, now)
    except PeriodError as exc:
        print(f"caredesk: {exc}", file=sys.stderr)
        return 2
    texts = TextRenderer(currency=settings.currency).for_language(args.lang or settings.default_language)

    async def run() -> tuple[Any, bytes | None, str | None]:
        db = Database(settings.database_url)
        try:
            async with db.session() as session:
                result = await run_report(args.name, session, settings, period, now)
                if args.format == "csv":
                    return result, await output.render_csv(args.name, result, texts, session, settings, period,
                                                           now), None
        finally:
            await db.dispose()
        if args.format == "png":
            return result, output.render_chart(args.name, result, texts, settings), None
        text = output.render_text(args.name, result, texts, settings)
        return result, None, to_plain(text)

    _, data, text = asyncio.run(run())
    if args.format == "text":
        assert text is not None
        if args.out:
            write_private(Path(args.out), text + "\n")
            print(f"caredesk: report written to {args.out}")
        else:
            print(text)
        return 0
    if data is None:
        print(f"caredesk: /{args.name} has no chart for this period (nothing to draw)", file=sys.stderr)
        return 1
    if args.format == "csv" and not args.out:
        sys.stdout.write(data.decode("utf-8-sig"))
        return 0
    target = Path(args.out or output.file_name(args.name, period, now, args.format))
    write_private(target, data)
    print(f"caredesk: {args.format} written to {target}")
    return 0


def cmd_demo_data(args: argparse.Namespace, settings: Settings, migrate: Any) -> int:
    from bot.demo_data import generate
    from storage.db import Database

    if args.customers < 0 or args.months < 1:
        print("caredesk: --customers must be 0 or more and --months 1 or more", file=sys.stderr)
        return 2
    if args.end:
        try:
            day = datetime.strptime(args.end, "%Y-%m-%d").date()
        except ValueError:
            print(f"caredesk: --end: not a date: {args.end!r} (YYYY-MM-DD)", file=sys.stderr)
            return 2
        end = datetime.combine(day, datetime.max.time().replace(microsecond=0), tzinfo=settings.tz)
        end = end.astimezone(UTC)
    else:
        from bot.clock import SystemClock

        end = SystemClock().now().replace(second=0, microsecond=0)
    migrate(settings)
    started = time.perf_counter()

    async def run() -> Any:
        db = Database(settings.database_url)
        try:
            return await generate(db, settings, customers=args.customers, months=args.months, seed=args.seed, end=end)
        finally:
            await db.dispose()

    summary = asyncio.run(run())
    took = time.perf_counter() - started
    if summary.products_loaded:
        print(f"caredesk: the catalog was empty; loaded {summary.products_loaded} sample products")
    print(f"caredesk: demo history {summary.start} – {summary.end}: {summary.customers:,} customers, "
          f"{summary.orders:,} orders ({summary.items:,} items), {summary.tickets:,} complaints, "
          f"{summary.outbox:,} care messages, in {took:.1f} s")
    return 0
