"""Engine and session factory.

SQLite is the embedded default: every connection gets WAL, foreign keys and
a busy timeout. PostgreSQL (asyncpg) is the scale-out option; the models and
repositories are dialect-neutral.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, event, text
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session

from storage.dialect import is_sqlite

SQLITE_BUSY_TIMEOUT_MS = 10_000

T = TypeVar("T")

# The session of the update being handled (set by DatabaseMiddleware), so the
# dialog-state storage writes in the update's own transaction: state and data
# commit or roll back together, and SQLite never waits on itself.
current_session: ContextVar[AsyncSession | None] = ContextVar("current_session", default=None)


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Deleted and overwritten content is zeroed, so /forget leaves nothing in the file's free pages.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def _sqlite_pragmas_no_wait(dbapi_connection, record) -> None:  # type: ignore[no-untyped-def]
    _sqlite_pragmas(dbapi_connection, record)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=0")
    cursor.close()


def _busy(exc: OperationalError) -> bool:
    text = str(exc.orig).lower()
    return "locked" in text or "busy" in text


def ensure_sqlite_dir(url: str) -> None:
    """Make the SQLite file's folder (0700) and the file itself (0600) if they are missing.

    SQLite gives its -wal and -shm files the database file's permissions.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        path = Path(parsed.database).expanduser()
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not path.exists() and not parsed.database.startswith("file:"):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


def create_engine(url: str, **kwargs: object) -> AsyncEngine:
    ensure_sqlite_dir(url)
    # SQL parameters never reach an exception text or a log line: they carry names, phones, addresses.
    kwargs.setdefault("hide_parameters", True)
    engine = create_async_engine(url, **kwargs)  # type: ignore[arg-type]
    if is_sqlite(engine):
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


class UpdateSession(Session):
    """The sessions of the app: they note in ``info["began"]`` when they first talk to the database.

    (So the unit of work of an update knows whether the handler used the
    session, without a statement of its own.)
    """


@event.listens_for(UpdateSession, "after_begin")
def _note_begin(session: Session, _transaction: object, _connection: object) -> None:
    session.info["began"] = True


class Database:
    """One engine and its session factory.

    On SQLite there is also a synchronous engine on the plain ``sqlite3``
    driver (:meth:`run_sync`): aiosqlite hands every cursor operation to its
    thread and back (four hand-offs a statement, each waiting for the GIL),
    so the unit of work of an update does its loading and its final write as
    one plain function each. Such a function runs on the event loop itself
    when it can do so at once — readers never wait in WAL mode, and a writer
    only when another connection holds the write lock — with a busy timeout
    of zero; when SQLite answers "busy" it runs again in the database thread,
    which may wait (the loop never does). PostgreSQL (asyncpg) needs none of this.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self.sessionmaker: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.engine, expire_on_commit=False, sync_session_class=UpdateSession
        )
        self.sync_engine: Engine | None = None  # waits when busy (used in the database thread)
        self._inline_engine: Engine | None = None  # never waits (used on the event loop)
        self._thread: ThreadPoolExecutor | None = None
        if is_sqlite(self.engine) and self.engine.url.database not in (None, "", ":memory:"):
            sync_url = self.engine.url.set(drivername="sqlite")
            self.sync_engine = create_sync_engine(sync_url, connect_args={"check_same_thread": False},
                                                  hide_parameters=True)
            event.listen(self.sync_engine, "connect", _sqlite_pragmas)
            self._inline_engine = create_sync_engine(sync_url, hide_parameters=True)
            event.listen(self._inline_engine, "connect", _sqlite_pragmas_no_wait)
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="caredesk-db")

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def session(self) -> AsyncSession:
        return self.sessionmaker()

    async def ping(self) -> None:
        """One round trip to the database (``SELECT 1``); raises when it cannot answer."""
        async with self.session() as session:
            await session.execute(text("SELECT 1"))

    async def run_sync(self, fn: Callable[[Engine], T]) -> T:
        """Run ``fn(engine)`` (SQLite only; one transaction at most, safe to run twice): inline, else in the thread."""
        assert self.sync_engine is not None and self._inline_engine is not None and self._thread is not None
        try:
            return fn(self._inline_engine)
        except OperationalError as exc:
            if not _busy(exc):
                raise
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, fn, self.sync_engine)

    @contextmanager
    def counting_statements(self) -> Iterator[list[str]]:
        """Every SQL statement any engine of this database runs meanwhile (tests and benchmarks count work)."""
        statements: list[str] = []

        def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            statements.append(" ".join(statement.split()))

        engines = [e for e in (self.engine.sync_engine, self.sync_engine, self._inline_engine) if e is not None]
        for engine in engines:
            event.listen(engine, "before_cursor_execute", note)
        try:
            yield statements
        finally:
            for engine in engines:
                event.remove(engine, "before_cursor_execute", note)

    async def dispose(self) -> None:
        await self.engine.dispose()
        for engine in (self.sync_engine, self._inline_engine):
            if engine is not None:
                engine.dispose()
        if self._thread is not None:
            self._thread.shutdown(wait=True)
