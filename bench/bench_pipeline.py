"""Benchmark: the update pipeline (issue 10, "Performance").

**Sequential mode** (default): in one run, a bare aiogram echo bot (one router,
``message.answer(message.text)``) and CareDesk (``create_app`` on a migrated
SQLite file in WAL mode, in a temporary folder) are fed updates one after the
other through the same fake session (:class:`bot.fake_telegram.FakeSession`)
with ``dispatcher.feed_update``. Only the ``feed_update`` of the measured update
is timed; each customer is prepared first, untimed:

* ``registration`` — typing the phone number (each customer at the phone step);
* ``order`` — typing the quantity in the /order dialog (sample catalog loaded,
  each customer registered and at the quantity question);
* ``menu`` — ``/help`` of a registered customer.

It prints updates/s, p50 and p99 per kind, the ratio to the echo bot's rate
measured in the same run, and the SQL statements per update (SQLAlchemy's
``before_cursor_execute`` on every engine of the app's database). The app runs
on a :class:`~bot.clock.ManualClock`, as in the tests: the send path does not
wait for the pacer's turn, so the figures are the pipeline's own cost.
``--profile [KIND]`` adds a cProfile of one kind (default: registration).

**Latency mode** (``--latency``): ``caredesk run`` in webhook mode as a
subprocess against the local Bot API stand-in (tests/botapi_standin.py)
answering every call after 100 ms and 300 ms; 50 and 200 new customers each
post ``/start`` at once. Handled = the name question arrived; failed = the
error text was sent, the webhook did not answer 200, or no answer within the
wait. The reply time is from posting to the moment the bot's ``sendMessage``
reached the stand-in. ``RATE_GLOBAL_PER_SECOND`` is 1000 by default (the
stand-in does not rate limit); ``--rate 25`` shows how pacing shapes the p99.

``--postgres`` runs the chosen modes on PostgreSQL too (a throwaway schema via
tests/servers.py) and prints both columns. ``--adjacent`` also runs the outbox
drain of 50 chats × 4 adjacent rows from ``bench.bench_delivery``.

    python -m bench.bench_pipeline                      # sequential, SQLite
    python -m bench.bench_pipeline --latency --postgres # both modes, both backends
    python -m bench.bench_pipeline -n 200 --profile
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aiogram import Bot, Dispatcher, Router  # noqa: E402
from aiogram.types import Message, Update  # noqa: E402

from bot.app import App, create_app  # noqa: E402
from bot.clock import ManualClock  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.fake_telegram import FakeTelegram, FakeUser  # noqa: E402
from storage.migrate import upgrade  # noqa: E402

START = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # a Monday, 10:00 in Shanghai
STAFF_CHAT_ID = -1001000000001
STAFF_ID = 200001
TOKEN = "123456:" + "A" * 35
KINDS = ("registration", "order", "menu")


# ----- helpers ---------------------------------------------------------------------------------------------------
def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def load() -> str:
    return "{:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def update_for(bot: Bot, world: FakeTelegram, user: FakeUser, text: str) -> Update:
    """The update Telegram would post for ``text`` typed by ``user`` (built untimed)."""
    content: dict[str, Any] = {"text": text}
    if text.startswith("/"):
        content["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    raw = user._message(**content)
    return Update.model_validate({"update_id": world.next_update_id(), "message": raw}, context={"bot": bot})


async def timed_feed(dispatcher: Dispatcher, bot: Bot, update: Update) -> tuple[float, float]:
    """Wall time and CPU time of the process (all its threads) for one update."""
    began, cpu = time.perf_counter(), time.process_time()
    await dispatcher.feed_update(bot, update)
    return time.perf_counter() - began, time.process_time() - cpu


def counted(app: App) -> AbstractContextManager[list[str]]:
    """SQL statements on every engine of the app's database (as tests/test_statement_budget.py counts them)."""
    return app.db.counting_statements()


def sqlite_template(folder: Path) -> Path:
    path = folder / "template.sqlite3"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


# ----- sequential mode -------------------------------------------------------------------------------------------
async def echo_run(n: int, warmup: int) -> list[tuple[float, float]]:
    world = FakeTelegram(ManualClock(START))
    bot = Bot(TOKEN, session=world.session())
    dispatcher = Dispatcher()
    router = Router()

    @router.message()
    async def echo(message: Message) -> None:
        await message.answer(message.text or "")

    dispatcher.include_router(router)
    world.attach(dispatcher, bot)
    users = [FakeUser(world, 900_000 + i, "Mei") for i in range(n + warmup)]
    times = []
    for i, user in enumerate(users):
        seconds = await timed_feed(dispatcher, bot, update_for(bot, world, user, "+86 138 0013 8000"))
        if i >= warmup:
            times.append(seconds)
    await bot.session.close()
    return times


def settings_for(url: str, folder: Path) -> Settings:
    return Settings(_env_file=None, database_url=url, staff_chat_id=STAFF_CHAT_ID, staff_ids={STAFF_ID},
                    manager_ids=set(), default_language="en", default_timezone="Asia/Shanghai",
                    default_region="CN", sandbox_files_dir=folder / "files")


async def register_directly(app: App, user: FakeUser) -> None:
    from storage.repositories import Repos

    async with app.db.session() as session:
        repos = Repos(session)
        await repos.customers.register(user.id, {"name": "Mei Lin", "phone": user.phone, "address": "12 Rice Street",
                                                 "household_size": 3, "care_consent": True}, "en", app.clock.now())
        await repos.commit()


async def caredesk_run(
    url: str, folder: Path, n: int, warmup: int, profile: str | None = None,
) -> tuple[dict[str, list[tuple[float, float]]], dict[str, list[int]], str | None]:
    """CareDesk: ``n`` measured updates of each kind. Returns times, statements per update, the profile text."""
    from bot.catalog import SAMPLE_CATALOG, import_rows, parse_catalog

    clock = ManualClock(START)
    world = FakeTelegram(clock)
    world.group(STAFF_CHAT_ID, "Staff")
    settings = settings_for(url, folder)
    app = create_app(settings, clock=clock, session=world.session())
    world.attach(app.dispatcher, app.bot)
    await import_rows(app.db, parse_catalog(SAMPLE_CATALOG.read_bytes(), "csv", settings.currency))
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in KINDS}
    statements: dict[str, list[int]] = {k: [] for k in KINDS}
    profile_text = None
    base = {"registration": 100_000_000, "order": 110_000_000, "menu": 120_000_000}
    try:
        for kind in KINDS:
            users = [FakeUser(world, base[kind] + i, "Mei") for i in range(n + warmup)]
            prepare = {"registration": prepare_registration, "order": prepare_order, "menu": prepare_menu}[kind]
            for user in users:
                await prepare(app, user)
                clock.advance(timedelta(seconds=1))
            text = {"registration": None, "order": "2", "menu": "/help"}[kind]
            profiler = cProfile.Profile() if profile == kind else None
            for i, user in enumerate(users):
                update = update_for(app.bot, world, user, text or "+86 138 0013 8000")
                with counted(app) as seen:
                    if profiler is not None and i >= warmup:
                        profiler.enable()
                    seconds = await timed_feed(app.dispatcher, app.bot, update)
                    if profiler is not None:
                        profiler.disable()
                if i >= warmup:
                    times[kind].append(seconds)
                    statements[kind].append(len(seen))
                check(world, user, kind)
            if profiler is not None:
                out = io.StringIO()
                stats = pstats.Stats(profiler, stream=out)
                stats.sort_stats("tottime").print_stats(25)
                stats.sort_stats("cumulative").print_stats(40)
                stats.print_callers("to_thread")  # aiogram runs a plain-function filter or handler in a thread
                profile_text = by_package(stats, len(times[kind])) + out.getvalue()
    finally:
        await app.close()
    return times, statements, profile_text


def by_package(stats: pstats.Stats, updates: int) -> str:
    """Own time (tottime) per package, per update: where the time goes."""
    totals: dict[str, float] = {}
    for (path, _line, name), (_cc, _nc, own, _cum, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if "site-packages/" in path:
            package = path.split("site-packages/", 1)[1].split("/", 1)[0].split(".")[0]
        elif path.startswith(str(ROOT)):
            package = "caredesk " + Path(path).relative_to(ROOT).parts[0] + "/"
        elif path == "~":
            package = "built-ins: " + name.split("'")[1] if "'" in name else "built-ins"
        else:
            package = "stdlib " + Path(path).stem
        totals[package] = totals.get(package, 0.0) + own
    whole = sum(totals.values())
    lines = [f"own time per update by package (profiled, {whole / updates * 1000:.2f} ms in all):"]
    for package, own in sorted(totals.items(), key=lambda kv: -kv[1])[:15]:
        lines.append(f"  {package:<40} {own / updates * 1000:7.3f} ms  {own / whole * 100:5.1f} %")
    return "\n".join(lines) + "\n\n"


async def prepare_registration(app: App, user: FakeUser) -> None:
    await user.send("/start")
    await user.send("Mei Lin")  # now at the phone question


async def prepare_order(app: App, user: FakeUser) -> None:
    await register_directly(app, user)
    await user.send("/order")
    await user.press("Rice")
    await user.press("Jasmine rice")  # now at the quantity question (typed)


async def prepare_menu(app: App, user: FakeUser) -> None:
    await register_directly(app, user)


EXPECTED = {"registration": "birthday", "order": "", "menu": ""}


def check(world: FakeTelegram, user: FakeUser, kind: str) -> None:
    """The measured update got an answer (and not the error text): the numbers are of real work."""
    last = world.last(user.chat_id)
    text = (last.text or "").lower()
    if "went wrong" in text or (EXPECTED[kind] and EXPECTED[kind] not in text):
        raise SystemExit(f"{kind}: unexpected answer {last.text!r}")


def row(kind: str, measured: list[tuple[float, float]], echo: dict[str, float] | None,
        sql: list[int] | None) -> dict[str, Any]:
    wall = [w for w, _ in measured]
    cpu = sum(c for _, c in measured) / len(measured)
    rate = len(wall) / sum(wall)
    return {"kind": kind, "rate": rate, "p50": pct(wall, 0.5), "p99": pct(wall, 0.99), "cpu": cpu,
            "ratio": rate / echo["rate"] if echo else 1.0, "cpu_ratio": echo["cpu"] / cpu if echo else 1.0,
            "sql": (statistics.mean(sql), max(sql)) if sql else None}


def sequential_rows(echo: list[tuple[float, float]], times: dict[str, list[tuple[float, float]]],
                    statements: dict[str, list[int]]) -> list[dict[str, Any]]:
    base = row("echo (bare aiogram)", echo, None, None)
    return [base, *(row(kind, times[kind], base, statements[kind]) for kind in KINDS)]


def print_sequential(backend: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n{backend}: sequential feed_update, same FakeSession")
    print("| update | updates/s | p50 ms | p99 ms | × echo | CPU ms/update | × echo (CPU) | SQL/update (mean, max) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        sql = "" if r["sql"] is None else f"{r['sql'][0]:.1f}, {r['sql'][1]}"
        print(f"| {r['kind']} | {r['rate']:.0f} | {r['p50'] * 1000:.2f} | {r['p99'] * 1000:.2f} "
              f"| {r['ratio']:.2f} | {r['cpu'] * 1000:.2f} | {r['cpu_ratio']:.2f} | {sql} |")


async def sequential(backend: str, url: str, folder: Path, n: int, warmup: int,
                     profile: str | None) -> list[dict[str, Any]]:
    echo = await echo_run(n, warmup)
    times, statements, profile_text = await caredesk_run(url, folder, n, warmup, profile)
    echo_after = await echo_run(n, warmup)  # the echo rate again: how much the load moved during the run
    rows = sequential_rows(echo + echo_after, times, statements)
    print_sequential(backend, rows)
    print(f"(echo alone: {row('', echo, None, None)['rate']:.0f}/s before, "
          f"{row('', echo_after, None, None)['rate']:.0f}/s after; "
          f"load average {load()})")
    if profile_text:
        print(f"\ncProfile of the {profile} updates ({backend}):\n{profile_text}")
    return rows


# ----- latency mode ----------------------------------------------------------------------------------------------
def start_update(update_id: int, user_id: int) -> dict[str, Any]:
    user = {"id": user_id, "is_bot": False, "first_name": "Mei", "language_code": "en"}
    chat = {"id": user_id, "type": "private", "first_name": "Mei"}
    message = {"message_id": 1, "date": int(time.time()), "chat": chat,
               "from": user, "text": "/start", "entities": [{"type": "bot_command", "offset": 0, "length": 6}]}
    return {"update_id": update_id, "message": message}


async def latency(backend: str, url: str, folder: Path, rate: float, latencies: list[float],
                  crowds: list[int], wait: float) -> list[dict[str, Any]]:
    import aiohttp

    from tests.botapi_standin import BotAPIStandIn, post_update
    from tests.test_real_process import SECRET, BotProcess

    standin = BotAPIStandIn()
    standin.world.group(STAFF_CHAT_ID, "Staff")
    await standin.start()
    bot = BotProcess(url, standin.url, folder, RATE_GLOBAL_PER_SECOND=f"{rate:g}", STAFF_IDS=str(STAFF_ID))
    rows = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=wait)) as http:
        await bot.start(http)
        try:
            update_id = 1
            # Warm-up: the first update builds aiogram's models.
            await post_update(http, bot.url + "/telegram/webhook", SECRET, start_update(update_id, 799_999))
            await replies_for(standin, [799_999], {799_999: time.monotonic()}, 30)
            user_base = 800_000
            for delay in latencies:
                for crowd in crowds:
                    standin.latency["*"] = delay
                    users = [user_base + i for i in range(crowd)]
                    user_base += crowd
                    posted: dict[int, float] = {}
                    acked: list[float] = []

                    async def post(user_id: int, uid: int, posted: dict[int, float], acked: list[float]) -> int:
                        posted[user_id] = time.monotonic()
                        status = await post_update(http, bot.url + "/telegram/webhook", SECRET,
                                                   start_update(uid, user_id))
                        acked.append(time.monotonic() - posted[user_id])
                        return status

                    statuses = await asyncio.gather(*[post(u, update_id + 1 + i, posted, acked)
                                                      for i, u in enumerate(users)])
                    update_id += crowd
                    got = await replies_for(standin, users, posted, wait)
                    errors = {c.params.get("chat_id") for c in standin.calls_of("sendMessage")
                              if "went wrong" in str(c.params.get("text", ""))}
                    ok_times = [got[u] - posted[u] for u in users
                                if u in got and u not in errors and statuses[users.index(u)] == 200]
                    rows.append({"latency": delay, "customers": crowd, "handled": len(ok_times),
                                 "failed": crowd - len(ok_times), "not_200": sum(1 for s in statuses if s != 200),
                                 "p50": pct(ok_times, 0.5), "p99": pct(ok_times, 0.99), "ack_p99": pct(acked, 0.99),
                                 "max": max(ok_times) if ok_times else float("nan")})
                    await asyncio.sleep(1.0)  # the stragglers' other calls
            log = bot.log()
        finally:
            await bot.terminate()
            bot.stop()
            await standin.stop()
    print(f"\n{backend}: latency mode, `caredesk run` (webhook) against the stand-in, "
          f"RATE_GLOBAL_PER_SECOND={rate:g}, load average {load()}")
    print("| Telegram answers after | customers posting /start at once | handled | failed | webhook 200 p99 s "
          "| reply p50 s | reply p99 s | reply max s |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        not_200 = f" ({r['not_200']} not 200)" if r["not_200"] else ""
        print(f"| {r['latency'] * 1000:.0f} ms | {r['customers']} | {r['handled']} | {r['failed']}{not_200} "
              f"| {r['ack_p99']:.2f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['max']:.2f} |")
    if "database is locked" in log:
        print("(the bot's log says: database is locked)")
    return rows


async def replies_for(standin: Any, users: list[int], posted: dict[int, float], wait: float) -> dict[int, float]:
    """When each user's first sendMessage reached the stand-in (monotonic), waiting up to ``wait`` s."""
    want = set(users)
    got: dict[int, float] = {}
    seen = 0
    deadline = time.monotonic() + wait
    while want - set(got) and time.monotonic() < deadline:
        calls = standin.calls
        for call in calls[seen:]:
            chat = call.params.get("chat_id")
            if call.method == "sendMessage" and chat in want and chat not in got:
                got[chat] = call.at
        seen = len(calls)
        await asyncio.sleep(0.05)
    return got


# ----- main ------------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="update pipeline benchmark (issue 10)")
    parser.add_argument("-n", type=int, default=500, help="measured updates of each kind (default %(default)s)")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured updates of each kind first")
    parser.add_argument("--profile", nargs="?", const="registration", choices=KINDS, default=None,
                        help="cProfile one kind of update (default: the registration step; SQLite)")
    parser.add_argument("--latency", action="store_true", help="also run the latency mode (a real process)")
    parser.add_argument("--latency-only", action="store_true", help="only the latency mode")
    parser.add_argument("--latencies", default="0.1,0.3", help="the stand-in's answer delays, s (default %(default)s)")
    parser.add_argument("--customers", default="50,200", help="customers posting at once (default %(default)s)")
    parser.add_argument("--rate", type=float, default=1000.0, help="RATE_GLOBAL_PER_SECOND in latency mode")
    parser.add_argument("--wait", type=float, default=90.0, help="latency mode: seconds to wait for the replies")
    parser.add_argument("--postgres", action="store_true", help="run on PostgreSQL too (tests/servers.py)")
    parser.add_argument("--adjacent", action="store_true", help="also the adjacent-rows drain of bench_delivery")
    args = parser.parse_args(argv)
    print(f"pipeline benchmark on {os.cpu_count()} CPU(s), load average {load()}; "
          f"Python {sys.version.split()[0]}")
    folder = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    backends: list[tuple[str, Callable[[], str], Callable[[str], None]]] = []
    template = sqlite_template(folder)
    counter = iter(range(1_000_000))

    def sqlite_url() -> str:
        path = folder / f"caredesk-{next(counter)}.sqlite3"
        shutil.copy(template, path)
        return f"sqlite+aiosqlite:///{path}"

    backends.append(("SQLite (file, WAL)", sqlite_url, lambda url: None))
    if args.postgres:
        from tests import servers

        reason = servers.postgres_unreachable()
        if reason:
            print(f"PostgreSQL skipped: {reason}")
        else:
            backends.append(("PostgreSQL (asyncpg)", lambda: servers.postgres_url(migrated=True),
                             servers.drop_postgres))
    summary: dict[str, Any] = {}
    try:
        for name, make, drop in backends:
            if not args.latency_only:
                url = make()
                try:
                    rows = asyncio.run(sequential(name, url, folder, args.n, args.warmup,
                                                  args.profile if name.startswith("SQLite") else None))
                finally:
                    drop(url)
                summary[f"{name} sequential"] = rows
            if args.latency or args.latency_only:
                url = make()
                work = folder / f"latency-{next(counter)}"
                work.mkdir()
                try:
                    summary[f"{name} latency"] = asyncio.run(latency(
                        name, url, work, args.rate, [float(x) for x in args.latencies.split(",")],
                        [int(x) for x in args.customers.split(",")], args.wait))
                finally:
                    drop(url)
        if args.adjacent:
            from bench.bench_delivery import _adjacent

            r = asyncio.run(_adjacent(50, 4, 7))
            print(f"\nadjacent rows (bench.bench_delivery --adjacent), load average {load()}: "
                  f"{r['sent']} of {r['rows']} rows for 50 chats in {r['seconds']} s = {r['rate']} msg/s "
                  f"({r['share_of_cap'] * 100:.1f} % of the {r['cap']:g}/s cap); 429s {r['rate_limited_429']}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\nload average at the end {load()}")


if __name__ == "__main__":
    main()
