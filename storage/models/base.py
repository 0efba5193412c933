from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import DateTime, MetaData, TypeDecorator
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeEngine, UserDefinedType

from storage.dialect import is_sqlite

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _utc_text(value: datetime | None) -> str | None:
    """A UTC datetime as SQLite holds it: "2026-03-02 02:00:00.000000" (SQLAlchemy's storage format for
    SQLite's DATETIME, made by ``datetime.isoformat`` in C: the planner writes thousands of rows at once)."""
    return None if value is None else value.isoformat(" ", "microseconds")[:26]  # UTC: without "+00:00"


@lru_cache(maxsize=4096)
def sqlite_utc_text(value: datetime | None) -> str | None:
    """What a :class:`UTCDateTime` column stores on SQLite for ``value`` (the same checks, the same text).

    Cached: a planning pass writes the same few times (its "now", the hours messages may go at) to
    thousands of rows. Equal aware datetimes are the same instant, so they have the same text.
    """
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTCDateTime column")
    return _utc_text(value.astimezone(UTC))


class _SQLiteDateTime(sqlite.DATETIME):
    """SQLite's DATETIME, its text made by :func:`_utc_text` (the value is UTC already: UTCDateTime)."""

    def bind_processor(self, dialect: Dialect) -> Callable[[datetime | None], str | None]:
        return _utc_text


class SQLiteUTCText(UserDefinedType[datetime]):
    """A :class:`UTCDateTime` column for a bulk INSERT on SQLite (``OutboxRepo.add_many``): the same text,
    made in one call per value instead of the decorator's two (its check and zone, then the text)."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "DATETIME"

    def bind_processor(self, dialect: Dialect) -> Callable[[datetime | None], str | None]:
        return sqlite_utc_text


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC, always returns timezone-aware UTC (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if is_sqlite(dialect):
            return dialect.type_descriptor(_SQLiteDateTime())
        return dialect.type_descriptor(self.impl)

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
