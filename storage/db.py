"""Engine and session factory.

SQLite is the embedded default: every connection gets WAL, foreign keys and
a busy timeout. PostgreSQL (asyncpg) is the scale-out option; the models and
repositories are dialect-neutral.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

SQLITE_BUSY_TIMEOUT_MS = 10_000

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
    engine = create_async_engine(url, **kwargs)  # type: ignore[arg-type]
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


class Database:
    """One engine and its session factory."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self.sessionmaker: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.engine, expire_on_commit=False
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def session(self) -> AsyncSession:
        return self.sessionmaker()

    async def dispose(self) -> None:
        await self.engine.dispose()
