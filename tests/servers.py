"""The optional servers tests can use: PostgreSQL and Redis.

Both are optional: a test that needs one calls the helper (or uses the
fixture) and is skipped, with the reason, when the server does not answer.

* ``postgres_url()`` — a SQLAlchemy URL (``postgresql+asyncpg://...``) to a
  new, empty, isolated place of its own: a schema (and a role whose default
  search_path is that schema) in a database created once per test session.
  ``postgres_url(migrated=True)`` — the same, upgraded to head.
  ``shared_postgres_url()`` — one migrated schema shared by the session (fast;
  keep to your own rows). ``fresh_postgres_url()`` — the suite's migrated
  schema, emptied for the calling test (what ``db_url[postgresql]`` uses).
  ``drop_postgres(url)`` drops one early; everything is dropped when the test
  process exits anyway, and leftovers of killed runs are dropped by the next
  run.
* ``redis_url()`` — the test Redis database; ``redis_prefix()`` a key prefix no
  other test (or other test run on the same server) uses.

Where the servers are: ``TEST_POSTGRES_URL`` (default
``postgresql+asyncpg://postgres@127.0.0.1:5432/test``; a user allowed to
create databases and roles; its database is only used to create and drop the
test database) and ``TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/15``).

Use in a test module::

    from tests.servers import pg_migrated_url  # noqa: F401  (a fixture)

    async def test_x(pg_migrated_url: str) -> None: ...

or call ``postgres_url(migrated=True)`` inside a fixture of your own. The
helpers are synchronous and safe to call from async tests and fixtures.
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
import os
import re
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
from sqlalchemy.engine import URL, make_url

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
CONNECT_TIMEOUT = 3.0

# What this process makes on the PostgreSQL server is named caredesk_t_<pid>_<run>
# (one database per test session) and caredesk_t_<pid>_<run>_<n> (a role and its
# schema per postgres_url() call). Names whose process is gone are left over from
# a killed run and are dropped by the next one.
_PREFIX = "caredesk_t_"
_NAME = re.compile(rf"^{_PREFIX}(\d+)_[0-9a-f]+(_\d+)?$")
_RUN = f"{os.getpid()}_{uuid.uuid4().hex[:8]}"
_counter = itertools.count(1)
_lock = threading.Lock()
_database: str | None = None
_roles: list[str] = []
_shared: str | None = None
_suite: str | None = None
_emptying: str | None = None
_reasons: dict[str, str | None] = {}

T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion in a thread of its own.

    So the helpers work the same from sync code, from fixtures and from inside
    a running event loop (an async test), without touching that loop.
    """
    return _in_thread(asyncio.run, coro)


def _in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Call ``fn`` in a fresh thread (alembic starts its own event loop, too)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn, *args).result()


# ----- PostgreSQL ----------------------------------------------------------------
def postgres_server_url() -> URL:
    """The server's URL from TEST_POSTGRES_URL (SQLAlchemy form)."""
    url = make_url(os.environ.get("TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL)
    if url.get_backend_name() != "postgresql":
        raise ValueError(f"TEST_POSTGRES_URL is not a PostgreSQL URL: {url!r}")
    return url.set(drivername="postgresql+asyncpg")


def _dsn(url: URL, database: str | None = None) -> str:
    """A plain libpq-style DSN for asyncpg."""
    url = url.set(drivername="postgresql")
    if database is not None:
        url = url.set(database=database)
    return url.render_as_string(hide_password=False)


async def _admin(*statements: str, database: str | None = None) -> list[Any]:
    """Run statements as the configured (administrative) user, on its database or ``database``."""
    import asyncpg

    connection = await asyncpg.connect(_dsn(postgres_server_url(), database), timeout=CONNECT_TIMEOUT)
    try:
        results = []
        for statement in statements:
            results.append(await connection.fetch(statement))
        return results
    finally:
        await connection.close()


def postgres_unreachable() -> str | None:
    """Why PostgreSQL cannot be used for tests, or None when it can (cached)."""
    if "postgres" not in _reasons:
        try:
            import asyncpg  # noqa: F401
        except ImportError:
            _reasons["postgres"] = "asyncpg is not installed (pip install -e '.[test]')"
        else:
            try:
                _run(_admin("SELECT 1"))
            except Exception as exc:  # noqa: BLE001  (any failure means: not usable)
                where = os.environ.get("TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL
                _reasons["postgres"] = f"PostgreSQL at {where} is not reachable ({type(exc).__name__}: {exc})"
            else:
                _reasons["postgres"] = None
                _drop_leftovers()
    return _reasons["postgres"]


def require_postgres() -> None:
    reason = postgres_unreachable()
    if reason:
        pytest.skip(reason)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale(name: str) -> bool:
    match = _NAME.match(name)
    return bool(match) and not _pid_alive(int(match.group(1)))


def _drop_leftovers() -> None:
    """Drop test databases and roles left by runs that were killed before they could clean up."""
    try:
        databases, roles = _run(_admin(
            f"SELECT datname AS name FROM pg_database WHERE datname LIKE '{_PREFIX}%'",
            f"SELECT rolname AS name FROM pg_roles WHERE rolname LIKE '{_PREFIX}%'",
        ))
        statements = [f'DROP DATABASE IF EXISTS "{r["name"]}" WITH (FORCE)' for r in databases if _stale(r["name"])]
        statements += [f'DROP ROLE IF EXISTS "{r["name"]}"' for r in roles if _stale(r["name"])]
        if statements:
            _run(_admin(*statements))
    except Exception:  # noqa: BLE001  (cleaning up is best effort)
        pass


def _session_database() -> str:
    """The database this test process works in, created on first use (CREATE DATABASE is slow)."""
    global _database
    if _database is None:
        name = f"{_PREFIX}{_RUN}"
        _run(_admin(f'CREATE DATABASE "{name}"'))
        _database = name
    return _database


def postgres_url(*, migrated: bool = False) -> str:
    """A URL to a new, empty PostgreSQL schema nobody else uses; skip the test when unreachable.

    Isolation is a schema of its own, owned by a role of its own whose default
    ``search_path`` (``"$user"``) puts it first, so plain URLs (alembic,
    ``create_app``) work unchanged. ``migrated=True`` upgrades it to head.
    """
    require_postgres()
    with _lock:
        database = _session_database()
        role = f"{_PREFIX}{_RUN}_{next(_counter)}"
        password = uuid.uuid4().hex  # for servers that ask for one (trust auth ignores it)
        _run(_admin(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}'",
                    f'CREATE SCHEMA "{role}" AUTHORIZATION "{role}"', database=database))
        _roles.append(role)
    url = postgres_server_url().set(username=role, password=password, database=database)
    text = url.render_as_string(hide_password=False)
    if migrated:
        from storage.migrate import upgrade

        _in_thread(upgrade, text)
    return text


def shared_postgres_url() -> str:
    """One migrated schema for the whole test session (cheap after the first call).

    Tests that share it must keep to their own rows (unique ids or keys) or
    clean up after themselves; use :func:`postgres_url` for a private one.
    """
    global _shared
    if _shared is None:
        _shared = postgres_url(migrated=True)
    return _shared


def fresh_postgres_url() -> str:
    """The suite's PostgreSQL database, empty, for one test (the ``[postgresql]`` half of ``db_url``).

    One schema migrated to head once per test session, emptied before each
    test that asks for it: other connections to it are closed, every row is
    deleted (alembic's version row kept) and the sequences restart, so ids
    start at 1 as in a fresh database. Measured here (PostgreSQL 15, 2 cores,
    load ~1): deleting the rows takes ~4 ms, ``CREATE DATABASE … TEMPLATE``
    ~95 ms plus ~140 ms to drop, ``TRUNCATE … RESTART IDENTITY`` ~50 ms, a
    schema migrated per test ~0.3 s. (At load ~10: a new connection ~24 ms and
    ``ALTER SEQUENCE … RESTART`` ~37 ms, so one connection stays open and
    ``setval`` restarts the sequences, ~6 ms.)
    """
    global _suite
    require_postgres()
    if _suite is None:
        _suite = postgres_url(migrated=True)
    _in_background(_empty(_suite))
    return _suite


_background_loop: asyncio.AbstractEventLoop | None = None
_emptier: Any = None  # the asyncpg connection that empties the suite's schema, on the background loop


def _in_background(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on one event loop kept for the session in a thread of its own
    (so a connection opened there can be used again by the next test)."""
    global _background_loop
    with _lock:
        if _background_loop is None:
            _background_loop = asyncio.new_event_loop()
            threading.Thread(target=_background_loop.run_forever, name="tests-postgres", daemon=True).start()
    return asyncio.run_coroutine_threadsafe(coro, _background_loop).result()


async def _empty(url: str, *, again: bool = True) -> None:
    import asyncpg

    from storage.models import Base

    global _emptying, _emptier
    if _emptier is None or _emptier.is_closed():
        _emptier = await asyncpg.connect(_dsn(make_url(url)), timeout=CONNECT_TIMEOUT)
    connection = _emptier
    try:
        if _emptying is None:
            tables = {r["tablename"] for r in await connection.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")} - {"alembic_version"}
            ordered = [t.name for t in reversed(Base.metadata.sorted_tables) if t.name in tables]
            ordered += sorted(tables - set(ordered))  # tables the models do not know (test_migrations tells)
            sequences = [r["name"] for r in await connection.fetch(
                "SELECT sequencename AS name FROM pg_sequences WHERE schemaname = current_schema()")]
            restart = ", ".join(f"setval('\"{name}\"', 1, false)" for name in sequences)
            _emptying = ";".join([f'DELETE FROM "{t}"' for t in ordered] + ([f"SELECT {restart}"] if restart else []))
        # A test that left a connection open (or a transaction) must not see or block the next one.
        await connection.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 "WHERE usename = current_user AND pid <> pg_backend_pid()")
        await connection.execute(_emptying)
    except (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, ConnectionError):
        await connection.close(timeout=CONNECT_TIMEOUT)
        _emptier = None
        if not again:
            raise
        await _empty(url, again=False)  # the kept connection was lost: once more on a new one


def drop_postgres(url: str) -> None:
    """Drop a schema made by :func:`postgres_url` (its open connections are closed)."""
    role = make_url(url).username
    if not role or role not in _roles or url in (_shared, _suite):
        return
    _run(_admin(
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'",
        f'DROP SCHEMA IF EXISTS "{role}" CASCADE',
        database=_database,
    ))
    _run(_admin(f'DROP ROLE IF EXISTS "{role}"'))
    _roles.remove(role)


@atexit.register
def _drop_all() -> None:
    """At exit: drop the session database, then the roles (they own nothing after)."""
    if _database is None and not _roles:
        return
    statements = [f'DROP DATABASE IF EXISTS "{_database}" WITH (FORCE)'] if _database else []
    statements += [f'DROP ROLE IF EXISTS "{role}"' for role in _roles]
    try:
        asyncio.run(_admin(*statements))  # no thread pools at interpreter exit
    except Exception:  # noqa: BLE001  (the next run drops leftovers)
        pass


# ----- Redis -------------------------------------------------------------------------
def redis_url() -> str:
    """The test Redis URL; skip the test when Redis is unreachable."""
    reason = redis_unreachable()
    if reason:
        pytest.skip(reason)
    return os.environ.get("TEST_REDIS_URL") or DEFAULT_REDIS_URL


def redis_unreachable() -> str | None:
    """Why Redis cannot be used for tests, or None when it can (cached)."""
    if "redis" not in _reasons:
        where = os.environ.get("TEST_REDIS_URL") or DEFAULT_REDIS_URL
        try:
            import redis
        except ImportError:
            _reasons["redis"] = "the redis client is not installed (pip install -e '.[test]')"
        else:
            try:
                client = redis.Redis.from_url(where, socket_connect_timeout=CONNECT_TIMEOUT,
                                              socket_timeout=CONNECT_TIMEOUT)
                try:
                    client.ping()
                finally:
                    client.close()
            except Exception as exc:  # noqa: BLE001
                _reasons["redis"] = f"Redis at {where} is not reachable ({type(exc).__name__}: {exc})"
            else:
                _reasons["redis"] = None
    return _reasons["redis"]


def redis_prefix() -> str:
    """A key prefix unique to this call (tests share the Redis database)."""
    return f"caredesk-test-{_RUN}-{next(_counter)}"


def redis_delete_prefix(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(os.environ.get("TEST_REDIS_URL") or DEFAULT_REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


# ----- fixtures ------------------------------------------------------------------------
@pytest.fixture
def pg_url() -> Iterator[str]:
    """A new, empty PostgreSQL schema (dropped after the test)."""
    url = postgres_url()
    yield url
    drop_postgres(url)


@pytest.fixture
def pg_migrated_url() -> Iterator[str]:
    """A new PostgreSQL schema migrated to head (dropped after the test)."""
    url = postgres_url(migrated=True)
    yield url
    drop_postgres(url)
