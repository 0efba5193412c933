"""The one place that tells SQLite from PostgreSQL.

Everything in ``storage/`` that must be written differently for the two
databases asks here: which database a session, engine or :class:`~storage.db.Database`
talks to (:func:`name_of`, :func:`is_postgres`, :func:`is_sqlite`), the
``INSERT`` that speaks ``ON CONFLICT`` (:func:`insert_for`), and the SQL
expressions whose text differs (:class:`epoch_minutes`, :class:`int_list`,
compiled per dialect). Outside ``storage/`` only a behaviour that depends on
the database asks here (the delivery worker: several replicas need
PostgreSQL's row locks); SQL text is never written per dialect there.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, String
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

POSTGRESQL = "postgresql"
SQLITE = "sqlite"


def name_of(target: Any) -> str:
    """The dialect name of a session, connection, engine, ``Database``, dialect, or a name itself.

    A session not bound to anything counts as SQLite (the embedded default).
    """
    if isinstance(target, str):
        return target
    if isinstance(target, Dialect):
        return target.name
    if hasattr(target, "bind") and not hasattr(target, "dialect"):  # a session
        target = target.bind
        if target is None:
            return SQLITE
    dialect = getattr(target, "dialect", None)
    if isinstance(dialect, str):  # storage.db.Database
        return dialect
    return dialect.name if dialect is not None else SQLITE


def is_postgres(target: Any) -> bool:
    return name_of(target) == POSTGRESQL


def is_sqlite(target: Any) -> bool:
    return name_of(target) == SQLITE


def insert_for(target: Any) -> Any:
    """The dialect's ``insert`` (both have ``on_conflict_do_nothing`` / ``on_conflict_do_update``)."""
    return postgresql.insert if is_postgres(target) else sqlite.insert


# ----- expressions written differently per dialect ----------------------------------------------

class epoch_minutes(FunctionElement[int]):
    """A UTC timestamp column as whole minutes since 1970-01-01 (an integer: cheap to list and parse)."""

    type = Integer()
    inherit_cache = True
    name = "epoch_minutes"


@compiles(epoch_minutes, "sqlite")
def _epoch_minutes_sqlite(element: epoch_minutes, compiler: Any, **kw: Any) -> str:
    return f"CAST(round((julianday({compiler.process(element.clauses, **kw)}) - 2440587.5) * 1440) AS INTEGER)"


@compiles(epoch_minutes, "postgresql")
def _epoch_minutes_postgresql(element: epoch_minutes, compiler: Any, **kw: Any) -> str:
    return f"CAST(round(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)}) / 60) AS BIGINT)"


class int_list(FunctionElement[str]):
    """Aggregate: the group's integers as "1,2,3", in the order of the trailing ORDER BY columns.

    SQLite's group_concat takes the rows in the order the query visits them (here:
    the index order, already by time); PostgreSQL's string_agg is told the order.
    """

    type = String()
    inherit_cache = True
    name = "int_list"


@compiles(int_list, "sqlite")
def _int_list_sqlite(element: int_list, compiler: Any, **kw: Any) -> str:
    value = next(iter(element.clauses))
    return f"group_concat({compiler.process(value, **kw)}, ',')"


@compiles(int_list, "postgresql")
def _int_list_postgresql(element: int_list, compiler: Any, **kw: Any) -> str:
    value, *order = list(element.clauses)
    by = ", ".join(compiler.process(c, **kw) for c in order)
    return f"string_agg(CAST({compiler.process(value, **kw)} AS TEXT), ',' ORDER BY {by})"
