"""SQL building blocks the reports share; every one works on SQLite and PostgreSQL.

* Which orders count as sales (``counted_orders``): everything but cancelled
  (and refunded, should such a status appear).
* The business's day or month of a stored UTC instant, computed in SQL
  (``local_bucket``): PostgreSQL converts with its time-zone database; SQLite
  has none, so the zone's UTC offsets over the queried range are computed
  here and applied with a ``CASE`` on the instants where the offset changes
  (none at all for zones without daylight saving, such as Asia/Shanghai).
* Percentiles (``grouped_percentiles``): the same linear interpolation as
  PostgreSQL's ``percentile_cont``, done with ``row_number`` so SQLite can do
  it too; only the two values around each percentile leave the database.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, case, func, literal, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.schema import DropTable

from storage.dialect import is_postgres, is_sqlite
from storage.models import Order, Ticket

# Orders with these statuses are not sales.
REVENUE_EXCLUDED = ("cancelled", "refunded")
# Ids per ``IN (...)`` list: short enough for every database.
ID_CHUNK = 1_000


def counted_orders(start: datetime | None = None, end: datetime | None = None) -> ColumnElement[bool]:
    """Orders that are sales, created in ``[start, end)``."""
    conditions: list[ColumnElement[bool]] = [Order.status.notin_(REVENUE_EXCLUDED)]
    if start is not None:
        conditions.append(Order.created_at >= start)
    if end is not None:
        conditions.append(Order.created_at < end)
    return and_(*conditions)


def in_range(column: Any, start: datetime, end: datetime) -> ColumnElement[bool]:
    return and_(column >= start, column < end)


# What the complaint reports group tickets by.
TICKET_GROUPS = {"staff": Ticket.assignee_name, "category": Ticket.category, "priority": Ticket.priority}


def ticket_group(name: str | None) -> Any:
    """The ticket column of a group name (:data:`TICKET_GROUPS`), None for no grouping."""
    return TICKET_GROUPS[name] if name is not None else None


def id_chunks(ids: list[int], size: int = ID_CHUNK) -> list[list[int]]:
    """``ids`` in lists short enough for ``IN (...)`` on every database."""
    return [ids[start:start + size] for start in range(0, len(ids), size)]


def as_utc(value: Any) -> datetime:
    """An instant from an aggregate (``max``), which may bypass the column type on SQLite: parsed, marked UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


# ----- reading orders fast ---------------------------------------------------------

# The covering indexes of migration 0005 (storage.models.reports) let a period
# be read by time, or a per-customer aggregate by customer, from the index
# alone. A per-customer aggregate over more days than this reads the
# customer-ordered one from end to end (no sorting, no table).
BY_CUSTOMER_DAYS = 62


def counted_orders_by_customer(session: AsyncSession, start: datetime | None, end: datetime | None,
                               days: int | None = None) -> ColumnElement[bool]:
    """:func:`counted_orders`, for a per-customer aggregate (``GROUP BY customer_id``).

    Over a long period (or all of history) reading the customer-ordered
    covering index from end to end is faster than a range by time then a sort,
    but SQLite's planner takes the range whenever there is one. On SQLite the
    time bounds are written so they cannot use an index; PostgreSQL chooses on
    its own.
    """
    if not is_sqlite(session) or (days is not None and days <= BY_CUSTOMER_DAYS):
        return counted_orders(start, end)
    created = func.coalesce(Order.created_at, Order.created_at)  # the same value, not an index term
    conditions: list[ColumnElement[bool]] = [Order.status.notin_(REVENUE_EXCLUDED)]
    if start is not None:
        conditions.append(created >= start)
    if end is not None:
        conditions.append(created < end)
    return and_(*conditions)


async def prepare(session: AsyncSession) -> None:
    """Per-connection settings for large reads: SQLite maps the file instead of copying pages,
    and keeps temporary tables (:func:`scratch`) in memory."""
    if is_sqlite(session):
        await session.execute(text("PRAGMA mmap_size=268435456"))
        await session.execute(text("PRAGMA temp_store=MEMORY"))


@asynccontextmanager
async def scratch(session: AsyncSession, stmt: Any, prefix: str) -> AsyncIterator[Any]:
    """The rows of ``stmt`` as a temporary table for the block (``CREATE TEMPORARY TABLE .. AS``).

    For a per-customer aggregate that several queries read: the orders are read
    once. The table is the connection's own and is dropped at the end. With
    SQLAlchemy before 2.1 (no ``Select.into``) the block gets a subquery instead.
    """
    if not hasattr(stmt, "into"):  # pragma: no cover - SQLAlchemy 2.0
        yield stmt.subquery(prefix)
        return
    create = stmt.into(f"tmp_{prefix}_{uuid.uuid4().hex[:12]}", temporary=True)
    await session.execute(create)
    try:
        yield create.table
    finally:
        await session.execute(DropTable(create.table))


# ----- the business's day ----------------------------------------------------

def _offset_minutes(tz: ZoneInfo, moment: datetime) -> int:
    offset = moment.astimezone(tz).utcoffset() or timedelta(0)
    return int(offset.total_seconds() // 60)


def offset_segments(tz: ZoneInfo, start: datetime, end: datetime) -> list[tuple[datetime | None, int]]:
    """The zone's UTC offset over ``[start, end)`` as ``[(until, minutes), ...]``.

    ``until`` is the instant the offset stops applying (None for the last
    segment). Transitions are found by scanning days and bisecting to the
    second.
    """
    start = start.astimezone(UTC)
    end = end.astimezone(UTC)
    segments: list[tuple[datetime | None, int]] = []
    current = _offset_minutes(tz, start)
    cursor = start
    step = timedelta(days=1)
    while cursor < end:
        probe = min(cursor + step, end)
        offset = _offset_minutes(tz, probe)
        if offset != current:
            low, high = cursor, probe  # offset(low) == current, offset(high) != current
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                if _offset_minutes(tz, middle) == current:
                    low = middle
                else:
                    high = middle
            segments.append((high.replace(microsecond=0), current))
            current = offset
        cursor = probe
    segments.append((None, current))
    return segments


def local_bucket(session: AsyncSession, column: Any, tz: ZoneInfo, start: datetime, end: datetime,
                 unit: str = "day") -> ColumnElement[str]:
    """The local day (``YYYY-MM-DD``) or month (``YYYY-MM``) of ``column``, as text.

    ``start``/``end`` bound the rows the query reads (the offsets are computed
    for that range only). Group by the label of this expression, not by the
    expression itself: PostgreSQL does not see two bound copies as equal.
    """
    if unit not in ("day", "month"):
        raise ValueError(unit)
    if is_postgres(session):
        pattern = "YYYY-MM-DD" if unit == "day" else "YYYY-MM"
        return func.to_char(func.timezone(tz.key, column), pattern)
    segments = offset_segments(tz, start, end)
    modifiers = [(until, f"{minutes:+d} minutes") for until, minutes in segments]
    if len(modifiers) == 1:
        modifier: Any = literal(modifiers[0][1])
    else:
        modifier = case(*[(column < until, text) for until, text in modifiers[:-1]], else_=modifiers[-1][1])
    if unit == "day":
        return func.date(column, modifier)
    return func.strftime("%Y-%m", column, modifier)


async def local_totals(session: AsyncSession, tz: ZoneInfo, start: datetime, end: datetime,
                       unit: str) -> dict[str, tuple[int, int]]:
    """Revenue and orders (counted ones) per local day or month of ``[start, end)``: ``{label: (revenue, orders)}``.

    On SQLite, in a zone whose offsets are whole hours (nearly all), orders
    are summed per UTC hour — a cut of the stored text, much cheaper than
    converting a million instants — and the few thousand hours are put in
    their local day or month here. Otherwise the conversion runs in SQL.
    """
    where = counted_orders(start, end)
    totals: dict[str, tuple[int, int]] = {}
    segments = offset_segments(tz, start, end)
    if is_sqlite(session) and all(minutes % 60 == 0 for _, minutes in segments):
        hour = func.substr(Order.created_at, 1, 13).label("hour")  # "YYYY-MM-DD HH" in UTC
        stmt = (select(hour, func.coalesce(func.sum(Order.total), 0).label("revenue"), func.count().label("orders"))
                .where(where).group_by("hour"))
        limits = [(until.replace(tzinfo=None) if until else None, timedelta(minutes=minutes))
                  for until, minutes in segments]
        for text_hour, revenue, orders in (await session.execute(stmt)).all():
            moment = datetime(int(text_hour[:4]), int(text_hour[5:7]), int(text_hour[8:10]), int(text_hour[11:13]))
            offset = next(delta for until, delta in limits if until is None or moment < until)
            local = moment + offset
            label = (f"{local.year:04d}-{local.month:02d}-{local.day:02d}" if unit == "day"
                     else f"{local.year:04d}-{local.month:02d}")
            before = totals.get(label)
            totals[label] = (int(revenue), int(orders)) if before is None else (
                before[0] + int(revenue), before[1] + int(orders))
        return totals
    bucket = local_bucket(session, Order.created_at, tz, start, end, unit).label("bucket")
    stmt = (select(bucket, func.coalesce(func.sum(Order.total), 0).label("revenue"), func.count().label("orders"))
            .where(where).group_by("bucket"))
    return {str(row.bucket): (int(row.revenue), int(row.orders)) for row in (await session.execute(stmt)).all()}


# ----- percentiles --------------------------------------------------------------

async def grouped_percentiles(session: AsyncSession, value: Any, where: ColumnElement[bool] | None,
                              group_by: tuple[Any, ...] = (), qs: tuple[float, ...] = (0.5, 0.9),
                              ) -> dict[tuple[Any, ...], list[float | None]]:
    """Percentiles of ``value`` per group, one query.

    Numbers each group's values in order (``row_number``) and fetches only
    the one or two rows around each percentile's position; the interpolation
    (PostgreSQL's ``percentile_cont``) happens here. NULL values are left out.
    """
    partition = list(group_by) or None
    conditions = [value.is_not(None)]
    if where is not None:
        conditions.append(where)
    inner = (
        select(
            *[g.label(f"g{i}") for i, g in enumerate(group_by)],
            value.label("v"),
            func.row_number().over(partition_by=partition, order_by=value).label("rn"),
            func.count().over(partition_by=partition).label("n"),
        )
        .where(and_(*conditions))
        .subquery()
    )
    wanted = []
    for q in qs:
        low = ((inner.c.n - 1) * round(q * 100)) // 100
        wanted += [inner.c.rn == low + 1, inner.c.rn == low + 2]
    keys = [inner.c[f"g{i}"] for i in range(len(group_by))]
    rows = (await session.execute(select(*keys, inner.c.v, inner.c.rn, inner.c.n).where(or_(*wanted)))).all()
    found: dict[tuple[Any, ...], tuple[int, dict[int, float]]] = {}
    for row in rows:
        key = tuple(row[: len(keys)])
        count, values = found.setdefault(key, (int(row.n), {}))
        values[int(row.rn)] = float(row.v)
    out: dict[tuple[Any, ...], list[float | None]] = {}
    for key, (count, values) in found.items():
        result: list[float | None] = []
        for q in qs:
            position = (count - 1) * q
            low = (count - 1) * round(q * 100) // 100
            fraction = position - low
            value_at = values.get(low + 1)
            if value_at is None:
                result.append(None)
                continue
            above = values.get(low + 2)
            if fraction > 1e-12 and above is not None:
                value_at += fraction * (above - value_at)
            result.append(value_at)
        out[key] = result
    return out
