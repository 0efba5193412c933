"""The optional servers tests can use: PostgreSQL and Redis.

Both are optional: a test that needs one calls the helper (or uses the
fixture) and is skipped, with the reason, when the server does not answer.

* ``postgres_url()`` — a SQLAlchemy URL (``postgresql+asyncpg://...``) to a
  new, empty database of its own; ``postgres_url(migrated=True)`` — the same,
  already migrated to head (copied from a template migrated once per test
  session, so it is cheap). Every database made here is dropped when the test
  process exits; the fixtures below drop theirs at teardown already.
* ``redis_url()`` — the test Redis database; ``redis_prefix()`` a key prefix no
  other test (or other test run on the same server) uses.

Where the servers are: ``TEST_POSTGRES_URL`` (default
``postgresql+asyncpg://postgres@127.0.0.1:5432/test``; the database named
there is only used to create and drop the test databases) and
``TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/15``).

Use in a test module::

    from tests.servers import pg_migrated_url  # noqa: F401  (a fixture)

    async def test_x(pg_migrated_url: str) -> None: ...

or call ``postgres_url(migrated=True)`` inside a fixture of your own.
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

# Databases made by this process are named caredesk_t_<pid>_<run>_<n>; one
# whose process is gone is left over from a killed run and may be dropped.
_DB_PREFIX = "caredesk_t_"
_DB_NAME = re.compile(rf"^{_DB_PREFIX}(\d+)_[0-9a-f]+_\w+$")
_RUN = f"{os.getpid()}_{uuid.uuid4().hex[:8]}"
_counter = itertools.count(1)
_lock = threading.Lock()
_created: list[str] = []
_template: str | None = None
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


async def _admin(*statements: str) -> list[Any]:
    import asyncpg

    connection = await asyncpg.connect(_dsn(postgres_server_url()), timeout=CONNECT_TIMEOUT)
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
                url = postgres_server_url()
                _run(_admin("SELECT 1"))
            except Exception as exc:  # noqa: BLE001  (any failure means: not usable)
                where = os.environ.get("TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL
                _reasons["postgres"] = f"PostgreSQL at {where} is not reachable ({type(exc).__name__}: {exc})"
            else:
                _reasons["postgres"] = None
                _drop_leftovers(url)
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


def _drop_leftovers(url: URL) -> None:
    """Drop test databases left by runs that were killed before they could clean up."""
    try:
        (rows,) = _run(_admin(f"SELECT datname FROM pg_database WHERE datname LIKE '{_DB_PREFIX}%'"))
        stale = [r["datname"] for r in rows
                 if (m := _DB_NAME.match(r["datname"])) and not _pid_alive(int(m.group(1)))]
        if stale:
            _run(_admin(*(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in stale)))
    except Exception:  # noqa: BLE001  (cleaning up is best effort)
        pass


def _new_name(kind: str) -> str:
    return f"{_DB_PREFIX}{_RUN}_{kind}{next(_counter)}"


def _create(name: str, template: str | None = None) -> None:
    clause = f' TEMPLATE "{template}"' if template else ""
    _run(_admin(f'CREATE DATABASE "{name}"{clause}'))
    _created.append(name)


def _migrated_template() -> str:
    """A database migrated to head, made once per test session, copied by CREATE DATABASE ... TEMPLATE."""
    global _template
    if _template is None:
        from storage.migrate import upgrade

        name = _new_name("tmpl")
        _create(name)
        _in_thread(upgrade, postgres_server_url().set(database=name).render_as_string(hide_password=False))
        _template = name
    return _template


def postgres_url(*, migrated: bool = False) -> str:
    """A URL to a new PostgreSQL database nobody else uses; skip the test when unreachable."""
    require_postgres()
    with _lock:
        name = _new_name("db")
        _create(name, _migrated_template() if migrated else None)
    return postgres_server_url().set(database=name).render_as_string(hide_password=False)


def drop_postgres(url: str) -> None:
    """Drop a database made by :func:`postgres_url` (connections still open are closed)."""
    name = make_url(url).database
    if name and name in _created:
        _run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        _created.remove(name)


@atexit.register
def _drop_all() -> None:
    if not _created:
        return
    try:
        _run(_admin(*(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in reversed(_created))))
        _created.clear()
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
    """A new, empty PostgreSQL database (dropped after the test)."""
    url = postgres_url()
    yield url
    drop_postgres(url)


@pytest.fixture
def pg_migrated_url() -> Iterator[str]:
    """A new PostgreSQL database migrated to head (dropped after the test)."""
    url = postgres_url(migrated=True)
    yield url
    drop_postgres(url)
