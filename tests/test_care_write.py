"""How the planner writes its backlog without changing what it writes: the bulk texts are the
renderer's own (TextRenderer.bulk), the outbox rows are stored as SQLAlchemy stores them (JSON
columns given as objects or as their text), one chunk is written while the next is rendered, a
failed chunk stops the pass, and what waits to be written is data the garbage collector leaves alone."""

from __future__ import annotations

import asyncio
import gc
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from jinja2 import nodes
from jinja2.exceptions import UndefinedError
from jinja2.ext import Extension
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import StatementError

import jobs.care
from bot.app import App
from bot.care_messages import CustomerFacts, ProductFacts, render_text
from bot.rules import care as rules
from bot.texts import TextRenderer
from jobs.care import plan
from storage import changes
from storage.models import OutboxMessage
from storage.repositories import Repos
from storage.repositories.outbox import json_text
from tests.helpers import add_customer, add_order, add_product, outbox_by_key

NAMES = ["Mei", None, "<b>Li</b> & \"Wang\" 'x'", "张伟 <i>", ""]


def _cases() -> list[tuple[rules.Planned, ProductFacts | None, datetime | None]]:
    now = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    rice = ProductFacts(7, "Rice <5 kg>", "香米 & 米", "bag <x>", 10.0, True)
    return [
        (rules.Planned(rules.KIND_REORDER, "r", 1, now, now, product_id=7, order_id=3, due=date(2026, 3, 4),
                       quantity=2), rice, None),
        (rules.Planned(rules.KIND_REORDER, "r0", 1, now, now, product_id=7, due=date(2026, 12, 31)), rice, None),
        (rules.Planned(rules.KIND_SURVEY, "s", 1, now, now, order_id=9), None, now - timedelta(days=2, hours=20)),
        (rules.Planned(rules.KIND_SURVEY, "s0", 1, now, now, order_id=10), None, None),
        (rules.Planned(rules.KIND_WINBACK, "w", 1, now, now, order_id=4), None, None),
        (rules.Planned(rules.KIND_BIRTHDAY, "b", 1, now, now), None, None),
    ]


def _expected(renderer: TextRenderer, planned: rules.Planned, customer: CustomerFacts,
              product: ProductFacts | None, delivered_at: datetime | None, tz: Any) -> str:
    """What the renderer itself makes of the same message."""
    lang = customer.language if customer.language in ("en", "zh") else "en"
    context: dict[str, Any] = {"name": customer.name}
    if planned.kind == rules.KIND_REORDER:
        assert product is not None
        context.update(product=product.name(lang), unit=product.unit, quantity=planned.quantity or 1,
                       due=planned.due)
    elif planned.kind == rules.KIND_SURVEY:
        context.update(order_id=planned.order_id,
                       delivered=delivered_at.astimezone(tz).date() if delivered_at is not None else None)
    return renderer.render(lang, f"care/{planned.kind}", **context)


def test_bulk_texts_are_the_renderers_own_in_both_languages_with_names_escaped() -> None:
    renderer = TextRenderer()
    tz = rules.zone("Asia/Shanghai")
    for _ in range(2):  # the second round finds every template looked up already
        for lang in ("en", "zh", "fr"):
            for name in NAMES:
                customer = CustomerFacts(1, 100, lang, "Asia/Shanghai", 3, None, name)
                for planned, product, delivered_at in _cases():
                    text = render_text(renderer, planned, customer, product, delivered_at, tz)
                    assert text == _expected(renderer, planned, customer, product, delivered_at, tz)
    customer = CustomerFacts(1, 100, "en", None, 3, None, "<b>Li</b>")
    planned, product, _ = _cases()[0]
    text = render_text(renderer, planned, customer, product, None, tz)
    assert "&lt;b&gt;Li&lt;/b&gt;" in text and "Rice &lt;5 kg&gt;" in text and "<b>" not in text


class _NoEscape(Extension):
    """``{% noescape %}``: autoescape set to ``not off`` for the rest of the render (an eval context
    change no scope undoes; not a constant, so what follows looks at it when rendered)."""

    tags: ClassVar[set[str]] = {"noescape"}

    def parse(self, parser: Any) -> nodes.Node:
        lineno = next(parser.stream).lineno
        value = nodes.Not(nodes.Name("off", "load"))
        return nodes.EvalContextModifier([nodes.Keyword("autoescape", value)], lineno=lineno)


def test_bulk_renders_as_render_does(tmp_path: Path) -> None:
    """Inheritance, a top-level set, a scoped and an unscoped change of autoescape, every call alike."""
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "base.html").write_text("[{% block body %}base{% endblock %}]")
    (tmp_path / "en" / "child.html").write_text('{% extends "en/base.html" %}{% block body %}{{ name }}{% endblock %}')
    (tmp_path / "en" / "sets.html").write_text(
        "{% if shown is defined %}stale {% endif %}{% set shown = name or 'nobody' %}{{ shown }}/{{ range(2)|list }}")
    (tmp_path / "en" / "scoped.html").write_text(
        "{% autoescape false %}{{ name }}{% endautoescape %}|{{ name }}")
    (tmp_path / "en" / "unscoped.html").write_text("{% if off %}{% noescape %}{% endif %}{{ name }} {{ lang }}")
    renderer = TextRenderer(templates_dir=tmp_path)
    renderer.env.add_extension(_NoEscape)
    for name in ("child", "sets", "scoped", "unscoped"):
        bulk = renderer.bulk("en", name)
        for value, off in [("<a>", True), ("<a>", False), (None, False), ("b", True), ("", False), ("<a>", False)]:
            assert bulk({"name": value, "off": off}) == renderer.render("en", name, name=value, off=off)


def test_a_bulk_render_error_is_jinjas_and_the_next_render_is_clean(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "t.html").write_text("{{ name }}{% if name == 'x' %} {{ missing }}{% endif %}")
    bulk = TextRenderer(templates_dir=tmp_path).bulk("en", "t")
    assert bulk({"name": "a"}) == "a"
    with pytest.raises(UndefinedError, match="missing"):
        bulk({"name": "x"})
    assert bulk({"name": "<b>"}) == "&lt;b&gt;"


def _rows(now: datetime, keys: list[str]) -> list[dict[str, Any]]:
    shanghai = rules.zone("Asia/Shanghai")
    markup = {"inline_keyboard": [[{"text": "🔁 再来一份", "callback_data": "care:again:0"}]]}
    rows = []
    for n, key in enumerate(keys):
        rows.append(dict(
            dedupe_key=key, kind="reorder", category="care", priority=10, chat_id=1000 + n, customer_id=None,
            text=f"<b>text</b> {n} 张", reply_markup=markup if n % 2 else None, ref_order_id=n or None,
            ref_product_id=None,
            expires_at=None if n % 3 == 0 else (now + timedelta(days=n, microseconds=n)).astimezone(shanghai),
            not_before=now.astimezone(shanghai) + timedelta(hours=n), status="pending", attempts=0, created_at=now,
        ))
    return rows


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # the stored text, as SQLite holds it
async def test_bulk_rows_on_sqlite_are_stored_as_sqlalchemy_stores_them(app: App) -> None:
    now = app.clock.now()
    rows = _rows(now, [f"k{n}" for n in range(7)])
    table = OutboxMessage.__table__
    async with app.db.session() as session:
        commits = changes.commits()
        written = await Repos(session).outbox.add_many(rows, chunk=3)  # statements of 3, 3 and 1 rows
        await session.commit()
        assert changes.commits() == commits + 1  # counted as a write
        assert sorted(written) == [f"k{n}" for n in range(7)]
        assert session.bind is not None
        dialect = session.bind.dialect
        columns = list(rows[0])
        connection = await session.connection()
        stored = {r[0]: r for r in (await connection.exec_driver_sql(f"SELECT {', '.join(columns)} FROM outbox")).all()}
    sqlalchemy_datetime = sqlite.DATETIME().bind_processor(dialect)  # SQLAlchemy's own text for SQLite
    for row in rows:
        for name, value in zip(columns, stored[row["dedupe_key"]]):
            if isinstance(row[name], datetime):  # UTC, as SQLAlchemy's SQLite DATETIME writes it
                assert value == sqlalchemy_datetime(row[name].astimezone(UTC).replace(tzinfo=None)), name
                continue
            process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            assert value == (process(row[name]) if process else row[name]), name
    assert stored["k0"][columns.index("reply_markup")] == "null"  # as SQLAlchemy's JSON writes None
    k1 = stored["k1"]
    assert (k1[columns.index("created_at")], k1[columns.index("not_before")], k1[columns.index("expires_at")]) == (
        "2026-03-02 02:00:00.000000", "2026-03-02 03:00:00.000000", "2026-03-03 02:00:00.000001")
    by_key = {r.dedupe_key: r for r in (await outbox_by_key(app)).values()}
    for row in rows:
        read = by_key[row["dedupe_key"]]
        assert read.not_before == row["not_before"] and read.expires_at == row["expires_at"]
        assert read.not_before.tzinfo == UTC and read.reply_markup == row["reply_markup"]
    async with app.db.session() as session:  # a key written before is left alone
        again = await Repos(session).outbox.add_many(_rows(now, ["k1", "k7"]))
        await session.commit()
    assert list(again) == ["k7"]
    async with app.db.session() as session:
        with pytest.raises(StatementError, match="naive"):
            await Repos(session).outbox.add_many([{**rows[0], "dedupe_key": "k8", "created_at": datetime(2026, 3, 2)}])


async def _customers(app: App, count: int) -> None:
    rice = await add_product(app)
    now = app.clock.now()
    for n in range(count):
        cid = await add_customer(app, 100001 + n, name=f"<Mei {n}>", birthday=date(1990, 3, 2) if n % 2 else None,
                                 language="zh" if n % 3 == 0 else "en")
        await add_order(app, cid, rice, now - timedelta(days=19), quantity=2)
        await add_order(app, cid, rice, now - timedelta(days=9), quantity=2)


async def test_chunks_written_while_the_next_is_rendered_write_everything_once(
        app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    await _customers(app, 5)
    monkeypatch.setattr(jobs.care, "WRITE_CHUNK", 2)
    monkeypatch.setattr(jobs.care, "_YIELD_EVERY", 1)
    first = await plan(app.jobs, app.clock.now())
    assert first.written == {"reorder": 5, "survey": 5, "birthday": 2}
    rows = await outbox_by_key(app)
    assert len(rows) == 12 and all("&lt;Mei" in r.text for r in rows.values() if r.kind != "survey")
    assert sum((await plan(app.jobs, app.clock.now())).written.values()) == 0


async def test_a_failed_chunk_stops_the_pass_and_the_next_pass_writes_the_rest(
        app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    await _customers(app, 5)
    monkeypatch.setattr(jobs.care, "WRITE_CHUNK", 3)
    from storage.repositories.outbox import OutboxRepo

    original = OutboxRepo.add_many
    calls = []

    async def failing(self: OutboxRepo, rows: Any, chunk: int = 1000) -> dict[str, int]:
        calls.append(len(rows))
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return await original(self, rows, chunk)

    monkeypatch.setattr(OutboxRepo, "add_many", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        await plan(app.jobs, app.clock.now())
    assert len(await outbox_by_key(app)) == 3  # the first chunk only; nothing left running
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
    monkeypatch.setattr(OutboxRepo, "add_many", original)
    result = await plan(app.jobs, app.clock.now())
    assert sum(result.written.values()) == 9 and len(await outbox_by_key(app)) == 12


async def test_a_pass_leaves_the_garbage_collector_alone(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """The collector's settings are the process's, not the planner's (they were raised during a pass once)."""
    await _customers(app, 2)
    before = (gc.isenabled(), gc.get_threshold())
    seen = []
    original = jobs.care._write

    async def watching(*args: Any) -> set[str]:
        seen.append((gc.isenabled(), gc.get_threshold()))
        return await original(*args)

    monkeypatch.setattr(jobs.care, "_write", watching)
    await plan(app.jobs, app.clock.now())
    assert seen == [before] and (gc.isenabled(), gc.get_threshold()) == before


async def test_bulk_rows_take_json_columns_as_their_text(app: App) -> None:
    """A JSON column given as json_text(value) is stored as the value itself would be (both databases)."""
    now = app.clock.now()
    as_objects = _rows(now, ["o0", "o1"])
    as_text = [{**row, "dedupe_key": f"t{n}", "reply_markup": json_text(row["reply_markup"])}
               for n, row in enumerate(as_objects)]
    mixed = [{**as_objects[1], "dedupe_key": "m0"}, {**as_text[0], "dedupe_key": "m1"}]
    async with app.db.session() as session:
        written = await Repos(session).outbox.add_many([*as_objects, *as_text, *mixed])
        await session.commit()
    assert sorted(written) == ["m0", "m1", "o0", "o1", "t0", "t1"]
    stored = {r.dedupe_key: r.reply_markup for r in (await outbox_by_key(app)).values()}
    assert stored["o0"] is None and stored["o1"] == as_objects[1]["reply_markup"]
    assert (stored["t0"], stored["t1"], stored["m0"], stored["m1"]) == (stored["o0"], stored["o1"], stored["o1"], None)


async def test_the_backlog_waits_as_data_the_collector_does_not_walk(
        app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """The planned messages (plain tuples) and the rows being written (plain values, the buttons as JSON
    text) are not tracked by Python's collector: tens of thousands of them are never promoted to the
    oldest generation, whose full collections walk every object of the bot (two of those made the
    first pass on 100k customers 7 % slower)."""
    await _customers(app, 4)
    from storage.repositories.outbox import OutboxRepo

    write, add_many = jobs.care._write, OutboxRepo.add_many
    held: list[Any] = []
    rows_given: list[dict[str, Any]] = []

    async def watched_write(deps: Any, items: list[Any], *args: Any) -> set[str]:
        gc.collect()
        gc.collect()  # a tuple is untracked by the collection that finds its members untracked
        held.extend(item for item in items if gc.is_tracked(item))
        return await write(deps, items, *args)

    async def watched_add_many(self: OutboxRepo, rows: Any, chunk: int = 1000) -> dict[str, int]:
        rows_given.extend(rows)
        return await add_many(self, rows, chunk)

    monkeypatch.setattr(jobs.care, "_write", watched_write)
    monkeypatch.setattr(OutboxRepo, "add_many", watched_add_many)
    result = await plan(app.jobs, app.clock.now())
    assert result.written == {"reorder": 4, "survey": 4, "birthday": 2}
    assert held == []
    assert len(rows_given) == 10 and not any(gc.is_tracked(row) for row in rows_given)
    assert {row["reply_markup"] for row in rows_given} >= {"null"}  # a birthday greeting has no buttons
