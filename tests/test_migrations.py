"""Migrations: every revision goes up, down and up again (the "stairway"), and
the models match what the migrations build — on SQLite, and on PostgreSQL
when it is reachable.

The tests walk whatever revisions exist, so new ones are covered as they come.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

import storage.models
from storage.db import create_engine
from storage.migrate import alembic_config, downgrade, upgrade
from storage.models import Base
from tests.servers import drop_postgres, postgres_url


def _import_all_models() -> None:
    """Every module under storage/models, wired into storage.models or not yet."""
    for module in pkgutil.iter_modules(storage.models.__path__):
        importlib.import_module(f"storage.models.{module.name}")


def _revisions() -> list[tuple[str, str]]:
    """(revision, the revision below it or "base"), from the first to head."""
    script = ScriptDirectory.from_config(alembic_config("sqlite+aiosqlite://"))
    heads = script.get_heads()
    assert len(heads) == 1, f"migrations must form one line, found heads {heads}"
    ordered = list(reversed(list(script.walk_revisions())))
    out = []
    for rev in ordered:
        down = rev.down_revision
        assert not isinstance(down, (tuple, list)), f"revision {rev.revision} merges {down}; keep one line"
        out.append((rev.revision, down or "base"))
    return out


@pytest.fixture(params=["sqlite", "postgres"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'stairway.sqlite3'}"
        return
    url = postgres_url()
    yield url
    drop_postgres(url)


async def _inspect(url: str, fn: Any) -> Any:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(fn)
    finally:
        await engine.dispose()


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names()) - {"alembic_version"}


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def test_revisions_form_one_line_with_unique_numbered_files() -> None:
    revisions = _revisions()
    assert revisions[0][1] == "base"
    versions = Path(storage.models.__file__).resolve().parent.parent / "migrations" / "versions"
    for revision, _ in revisions:
        files = list(versions.glob(f"{revision}_*.py"))
        assert len(files) == 1, f"revision {revision} should live in one file named {revision}_<what>.py: {files}"


async def test_stairway_up_down_up(empty_db: str) -> None:
    """Every revision: upgrade to it, downgrade one step, upgrade again."""
    for revision, below in _revisions():
        upgrade(empty_db, revision)
        tables_up = await _inspect(empty_db, _tables)
        downgrade(empty_db, below)
        assert await _inspect(empty_db, _current) == (None if below == "base" else below)
        upgrade(empty_db, revision)
        assert await _inspect(empty_db, _current) == revision
        assert await _inspect(empty_db, _tables) == tables_up, f"{revision}: downgrade+upgrade changed the tables"
    downgrade(empty_db, "base")
    assert await _inspect(empty_db, _tables) == set(), "downgrade to base must remove every table"


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "render_as_batch": True, "target_metadata": Base.metadata}
    )
    return compare_metadata(context, Base.metadata)


async def test_models_match_migrations(empty_db: str) -> None:
    """What alembic autogenerate would write after head: nothing."""
    _import_all_models()
    upgrade(empty_db)
    diff = await _inspect(empty_db, _diff)
    assert diff == [], "models and migrations differ (write a migration, or fix the model):\n" + "\n".join(
        map(repr, diff))
