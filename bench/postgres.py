"""The benchmarks' data on PostgreSQL: a cached SQLite file copied into a throwaway schema.

``load(sqlite_path)`` makes a new schema migrated to head (``tests/servers.py``:
``postgres_url(migrated=True)``, dropped again by ``drop(url)``) and copies every
table of the SQLite file into it with ``COPY`` (asyncpg's
``copy_records_to_table``, binary): secondary indexes and foreign keys are
dropped first and made again after the load (one pass each instead of a check
per row), the id sequences continue after the copied ids, and the tables are
vacuumed and analysed, as a database that has been running for a while would be.
Values are converted by the PostgreSQL column's type (SQLite keeps booleans as
0/1 and times as text).

``unreachable()`` says why PostgreSQL cannot be used (None when it can).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from datetime import time as time_of_day
from decimal import Decimal
from pathlib import Path
from typing import Any

BATCH = 50_000


def unreachable() -> str | None:
    from tests import servers

    return servers.postgres_unreachable()


def drop(url: str) -> None:
    from tests import servers

    servers.drop_postgres(url)


def load(sqlite_path: Path, *, quiet: bool = False) -> tuple[str, dict[str, Any]]:
    """A new migrated schema holding the SQLite file's rows: (its URL, what was loaded and how long it took)."""
    from tests import servers

    started = time.perf_counter()
    url = servers.postgres_url(migrated=True)
    try:
        counts = asyncio.run(_copy(sqlite_path, url))
    except BaseException:
        servers.drop_postgres(url)
        raise
    info = {"rows": counts, "seconds": round(time.perf_counter() - started, 1)}
    if not quiet:
        print(f"  loaded {sum(counts.values()):,} rows into PostgreSQL in {info['seconds']} s", flush=True)
    return url, info


def _dsn(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _converter(pg_type: str) -> Callable[[Any], Any] | None:
    """How a SQLite value becomes a value of this PostgreSQL type (None: as it is)."""
    if pg_type == "boolean":
        return lambda v: None if v is None else bool(v)
    if pg_type == "timestamp with time zone":
        return lambda v: None if v is None else datetime.fromisoformat(v).replace(tzinfo=UTC)
    if pg_type == "timestamp without time zone":
        return lambda v: None if v is None else datetime.fromisoformat(v)
    if pg_type == "date":
        return lambda v: None if v is None else date.fromisoformat(v)
    if pg_type.startswith("time"):
        return lambda v: None if v is None else time_of_day.fromisoformat(v)
    if pg_type == "numeric":
        return lambda v: None if v is None else Decimal(str(v))
    if pg_type in ("double precision", "real"):
        return lambda v: None if v is None else float(v)
    if pg_type in ("text", "character varying", "json", "jsonb"):
        return lambda v: v if v is None or isinstance(v, str) else str(v)
    return None


def _rows(source: sqlite3.Connection, table: str, columns: list[str],
          convert: list[Callable[[Any], Any] | None]) -> Iterator[tuple[Any, ...]]:
    names = ", ".join(f'"{c}"' for c in columns)
    cursor = source.execute(f'SELECT {names} FROM "{table}"')
    changed = [(i, f) for i, f in enumerate(convert) if f is not None]
    while batch := cursor.fetchmany(BATCH):
        if not changed:
            yield from batch
            continue
        for row in batch:
            values = list(row)
            for i, f in changed:
                values[i] = f(values[i])
            yield tuple(values)


async def _copy(sqlite_path: Path, url: str) -> dict[str, int]:
    import asyncpg

    from storage.models import Base

    source = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    connection = await asyncpg.connect(_dsn(url))
    counts: dict[str, int] = {}
    try:
        schema = await connection.fetchval("SELECT current_schema()")
        types: dict[str, dict[str, str]] = {}
        for r in await connection.fetch("SELECT table_name, column_name, data_type FROM information_schema.columns "
                                        "WHERE table_schema = $1 ORDER BY ordinal_position", schema):
            types.setdefault(r["table_name"], {})[r["column_name"]] = r["data_type"]
        present = {r[0] for r in source.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        order = [t.name for t in Base.metadata.sorted_tables]
        tables = [t for t in order if t in present and t in types]
        tables += sorted((present & set(types)) - set(tables) - {"alembic_version"})
        # Secondary indexes and foreign keys: dropped for the load, made again after it.
        indexes = [r["indexdef"] for r in await connection.fetch(
            "SELECT indexdef, indexname FROM pg_indexes WHERE schemaname = $1 AND indexname NOT IN "
            "(SELECT conname FROM pg_constraint WHERE connamespace = $1::regnamespace)", schema)]
        foreign = [(r["tbl"], r["conname"], r["def"]) for r in await connection.fetch(
            "SELECT conrelid::regclass::text AS tbl, conname, pg_get_constraintdef(oid) AS def FROM pg_constraint "
            "WHERE connamespace = $1::regnamespace AND contype = 'f'", schema)]
        for table, name, _ in foreign:
            await connection.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        for r in await connection.fetch(
                "SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND indexname NOT IN "
                "(SELECT conname FROM pg_constraint WHERE connamespace = $1::regnamespace)", schema):
            await connection.execute(f'DROP INDEX "{r["indexname"]}"')
        for table in tables:
            if table == "alembic_version":
                continue
            sqlite_columns = [r[1] for r in source.execute(f'PRAGMA table_info("{table}")')]
            columns = [c for c in sqlite_columns if c in types[table]]
            if source.execute(f'SELECT 1 FROM "{table}" LIMIT 1').fetchone() is None:
                continue
            convert = [_converter(types[table][c]) for c in columns]
            await connection.copy_records_to_table(table, records=_rows(source, table, columns, convert),
                                                   columns=columns, schema_name=schema)
            counts[table] = source.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]
        for definition in indexes:
            await connection.execute(definition)
        for table, name, definition in foreign:
            await connection.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        # Sequences go on after the copied ids.
        for r in await connection.fetch(
                "SELECT c.table_name, c.column_name, pg_get_serial_sequence(quote_ident(c.table_name), c.column_name) "
                "AS seq FROM information_schema.columns c WHERE c.table_schema = $1 "
                "AND pg_get_serial_sequence(quote_ident(c.table_name), c.column_name) IS NOT NULL", schema):
            if r["table_name"] in counts:
                await connection.execute(
                    f"SELECT setval('{r['seq']}', COALESCE((SELECT MAX(\"{r['column_name']}\") "
                    f"FROM \"{r['table_name']}\"), 0) + 1, false)")
        if counts:
            await connection.execute("VACUUM ANALYZE " + ", ".join(f'"{t}"' for t in counts))
    finally:
        await connection.close()
        source.close()
    return counts
