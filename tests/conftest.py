"""The test harness: the real Dispatcher, a fake Telegram, a clock that only
moves when told, and a fresh migrated database per test.

Every test that uses the database (``db_url``, and so ``settings`` and ``app``)
runs once per backend: ``test_x[sqlite]`` on a copy of a migrated SQLite file,
``test_x[postgresql]`` on the suite's migrated PostgreSQL schema, emptied first
(``tests.servers.fresh_postgres_url``; skipped with the reason when PostgreSQL
does not answer). Choose with ``--backend sqlite`` / ``--backend postgresql``
(repeatable; ``all`` is the default) or ``TEST_BACKEND=sqlite`` (comma-separated);
``-m sqlite`` / ``-m postgresql`` select by marker as well.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.app import App, create_app
from bot.clock import ManualClock
from bot.config import Settings
from bot.fake_telegram import FakeTelegram, FakeUser
from storage.db import Database
from storage.migrate import upgrade
from tests.servers import fresh_postgres_url, require_postgres

STAFF_CHAT_ID = -1001000000001
STAFF_ID = 200001
STAFF2_ID = 200002
MANAGER_ID = 300001
START = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # a Monday, 10:00 in Shanghai


BACKENDS = ("sqlite", "postgresql")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("caredesk").addoption(
        "--backend", action="append", dest="backends", choices=(*BACKENDS, "all"),
        help="run the database tests on this backend (repeatable; default: $TEST_BACKEND, else all)")


def pytest_configure(config: pytest.Config) -> None:
    for name in BACKENDS:
        config.addinivalue_line("markers", f"{name}: the test runs on the {name} database backend")


def selected_backends(config: pytest.Config) -> list[str]:
    chosen = config.getoption("backends") or [
        name.strip() for name in os.environ.get("TEST_BACKEND", "all").split(",") if name.strip()]
    unknown = set(chosen) - {*BACKENDS, "all"}
    if unknown:
        raise pytest.UsageError(f"TEST_BACKEND: unknown backend {', '.join(sorted(unknown))} "
                                f"(choose from {', '.join(BACKENDS)}, all)")
    return list(BACKENDS) if "all" in chosen or not chosen else [b for b in BACKENDS if b in chosen]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Each test that needs the database runs once per selected backend."""
    if "backend" not in metafunc.fixturenames:
        return
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0] if marker.args else marker.kwargs.get("argnames", "")
        if "backend" in (names.replace(" ", "").split(",") if isinstance(names, str) else names):
            return  # the test chose its backends itself
    metafunc.parametrize("backend", [pytest.param(name, id=name, marks=getattr(pytest.mark, name))
                                     for name in selected_backends(metafunc.config)], indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """``sqlite`` or ``postgresql`` (SQLite for a test that asks for the database only at run time)."""
    name: str = getattr(request, "param", "sqlite")
    if name == "postgresql":
        require_postgres()
    return name


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One database migrated to head; each test gets a copy of it."""
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture
def db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A migrated, empty database of the test's backend, for this test alone."""
    if backend == "postgresql":
        return fresh_postgres_url()
    migrated_db: Path = request.getfixturevalue("migrated_db")
    target = tmp_path / "caredesk.sqlite3"
    shutil.copy(migrated_db, target)
    return f"sqlite+aiosqlite:///{target}"


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    """The test's database without the bot (reports, models): migrated, empty, of the test's backend."""
    database = Database(settings.database_url)
    yield database
    await database.dispose()


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        database_url=db_url,
        staff_chat_id=STAFF_CHAT_ID,
        staff_ids={STAFF_ID, STAFF2_ID},
        manager_ids={MANAGER_ID},
        default_language="en",
        default_timezone="Asia/Shanghai",
        default_region="CN",
        sandbox_files_dir=tmp_path / "files",
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def world(clock: ManualClock) -> FakeTelegram:
    world = FakeTelegram(clock)
    world.group(STAFF_CHAT_ID, "Staff")
    return world


@pytest.fixture
async def app(settings: Settings, clock: ManualClock, world: FakeTelegram) -> AsyncIterator[App]:
    app = create_app(settings, clock=clock, session=world.session())
    world.attach(app.dispatcher, app.bot)
    yield app
    await app.close()


async def restart(app: App, world: FakeTelegram) -> App:
    """Throw the bot away and build a new one from the same database."""
    await app.close()
    new = create_app(app.settings, clock=app.clock, session=world.session())
    world.attach(new.dispatcher, new.bot)
    return new


@pytest.fixture
def customer(world: FakeTelegram, app: App) -> FakeUser:
    return FakeUser(world, 100001, "Mei", language_code="en")


@pytest.fixture
def staff(world: FakeTelegram, app: App) -> FakeUser:
    """A staff member speaking in the staff group."""
    return FakeUser(world, STAFF_ID, "Sam", language_code="en", chat_id=STAFF_CHAT_ID)


@pytest.fixture
def staff2(world: FakeTelegram, app: App) -> FakeUser:
    return FakeUser(world, STAFF2_ID, "Kim", language_code="en", chat_id=STAFF_CHAT_ID)


@pytest.fixture
def manager(world: FakeTelegram, app: App) -> FakeUser:
    """The manager in a private chat with the bot."""
    return FakeUser(world, MANAGER_ID, "Boss", language_code="en")


async def register(user: FakeUser, name: str | None = None, *, consent: bool = True,
                   household: str | None = "3", birthday: str | None = "1990-03-25",
                   address: str | None = "12 Rice Street") -> None:
    """Walk a customer through registration (the happy path)."""
    await user.send("/start")
    if name is None:
        await user.press(1)  # use the Telegram name
    else:
        await user.send(name)
    await user.send_contact()
    for answer in (birthday, address):
        if answer is None:
            await user.press("Skip")
        else:
            await user.send(answer)
    if household is None:
        await user.press("Skip")
    else:
        await user.send(household)
    await user.press("Yes" if consent else "No")
    await user.press("Confirm")


__all__ = ["asyncio", "register", "restart"]
