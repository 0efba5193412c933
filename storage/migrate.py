"""Run alembic migrations from code (``caredesk migrate``, start-up, tests).

These functions are synchronous and start their own event loop (alembic's
env.py runs the async engine with ``asyncio.run``). Call them before the bot's
loop starts, or through ``asyncio.to_thread`` from async code; called from
inside a running loop anyway, they do their work in a worker thread (blocking
that loop until done) instead of failing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["url"] = url
    return cfg


def _outside_loop(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return fn(*args)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn, *args).result()


def upgrade(url: str, revision: str = "head") -> None:
    _outside_loop(command.upgrade, alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    _outside_loop(command.downgrade, alembic_config(url), revision)


def revisions(url: str) -> list[str]:
    """Revision ids from base to head."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(url))
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]
