"""``caredesk demo-data`` and ``caredesk report`` on the command line."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.cli import main
from bot.config import Settings
from bot.demo_data import TELEGRAM_ID_BASE, generate
from storage.db import Database
from storage.models import Customer, Order, OutboxMessage, Product, Ticket

END = datetime(2026, 2, 28, 12, tzinfo=UTC)


async def _fingerprint(db: Database | Database) -> tuple[int, int, int, int, int]:
    async with db.session() as session:
        return (
            int(await session.scalar(select(func.count()).select_from(Customer))),
            int(await session.scalar(select(func.count()).select_from(Order))),
            int(await session.scalar(select(func.coalesce(func.sum(Order.total), 0)))),
            int(await session.scalar(select(func.count()).select_from(Ticket))),
            int(await session.scalar(select(func.count()).select_from(OutboxMessage))),
        )


async def test_demo_history_is_realistic(db: Database, settings: Settings) -> None:
    summary = await generate(db, settings, customers=60, months=12, seed=7, end=END)  # type: ignore[arg-type]
    assert summary.customers == 60 and summary.products_loaded > 0
    assert summary.orders > 60 * 6 and summary.items >= summary.orders
    assert (summary.start.isoformat(), summary.end.isoformat()) == ("2025-02-28", "2026-02-28")
    async with db.session() as session:
        statuses = dict((await session.execute(select(Order.status, func.count()).group_by(Order.status))).all())
        first, last = (await session.execute(select(func.min(Order.created_at), func.max(Order.created_at)))).one()
        kinds = set(await session.scalars(select(OutboxMessage.kind).distinct()))
        attributed = await session.scalar(select(func.count()).where(Order.attributed_outbox_id.is_not(None)))
        rated = await session.scalar(select(func.count()).where(Ticket.rating.is_not(None)))
        telegram_ids = list(await session.scalars(select(Customer.telegram_id)))
    assert statuses["delivered"] > 0.85 * summary.orders and statuses.get("cancelled", 0) > 0
    assert first >= datetime(2025, 2, 27, 16, tzinfo=UTC) and last <= END
    assert {"reorder", "survey"} <= kinds
    assert attributed and rated is not None
    assert min(telegram_ids) > TELEGRAM_ID_BASE
    assert summary.orders == (await _fingerprint(db))[1]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # it makes SQLite files of its own
async def test_demo_history_is_reproducible(settings: Settings, tmp_path: Path) -> None:
    prints = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        path = tmp_path / f"{name}.sqlite3"
        url = f"sqlite+aiosqlite:///{path}"
        await asyncio.to_thread(_migrate, url)
        db = Database(url)
        try:
            await generate(db, settings, customers=40, months=6, seed=seed, end=END)
            prints.append(await _fingerprint(db))
        finally:
            await db.dispose()
    assert prints[0] == prints[1]
    assert prints[0] != prints[2]


async def test_demo_data_adds_to_what_is_there(settings: Settings) -> None:
    db = Database(settings.database_url)
    try:
        async with db.session() as session:
            session.add(Product(sku="OWN-RICE", name_en="Our rice", name_zh="本店米", category="rice", unit="bag",
                                price=5000, active=True, days_per_unit_per_person=10))
            await session.commit()
        first = await generate(db, settings, customers=10, months=3, seed=1, end=END)
        second = await generate(db, settings, customers=10, months=3, seed=2, end=END)
        async with db.session() as session:
            products = list(await session.scalars(select(Product.sku)))
            customers = await session.scalar(select(func.count()).select_from(Customer))
    finally:
        await db.dispose()
    assert products == ["OWN-RICE"] and first.products_loaded == 0 == second.products_loaded
    assert customers == 20


def _migrate(url: str) -> None:
    from storage.migrate import upgrade

    upgrade(url)


# ----- the command line ------------------------------------------------------------------------------

@pytest.fixture
def shop_env(monkeypatch: pytest.MonkeyPatch, settings: Settings, tmp_path: Path) -> Path:
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("DEFAULT_TIMEZONE", "Asia/Shanghai")
    monkeypatch.setenv("DEFAULT_LANGUAGE", "en")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_cli_demo_data_then_reports(shop_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo-data", "--customers", "40", "--months", "12", "--seed", "1", "--end", "2026-02-28"]) == 0
    out = capsys.readouterr().out
    assert "loaded 20 sample products" in out and "demo history 2025-02-28 – 2026-02-28: 40 customers" in out

    assert main(["report", "abc", "--period", "2025-03..2026-02-28"]) == 2  # a range needs two days
    assert "not a date: '2025-03'" in capsys.readouterr().err
    assert main(["report", "abc", "--period", "2025-03-01..2026-02-28"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("🅰️ ABC classes · 2025-03-01 – 2026-02-28\n40 customers bought for ¥")
    assert "<b>" not in text and "Top A customers" in text

    assert main(["report", "rfm", "--period", "2025-03-01..2026-02-28", "--lang", "zh"]) == 0
    assert "RFM 客户分群" in capsys.readouterr().out

    assert main(["report", "seasonal", "--period", "2026-02"]) == 0
    text = capsys.readouterr().out
    assert "Seasonal index · 2025-03 – 2026-02" in text and "Feb: " in text

    assert main(["report", "report", "--period", "2026-02"]) == 0
    text = capsys.readouterr().out
    assert "Report · 2026-02-01 – 2026-02-28" in text and "Revenue: ¥" in text

    assert main(["report", "seasonal", "--period", "2026-02", "--format", "png"]) == 0
    assert "png written to caredesk-seasonal-2026-02-01_2026-02-28.png" in capsys.readouterr().out
    assert (shop_env / "caredesk-seasonal-2026-02-01_2026-02-28.png").read_bytes().startswith(b"\x89PNG")

    assert main(["report", "abc", "--period", "2026-02", "--format", "csv"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0] == ["customer_id", "name", "orders", "revenue", "class"] and len(rows) > 10

    assert main(["report", "sla", "--period", "2026-02", "--format", "csv", "--out", "sla.csv"]) == 0
    assert (shop_env / "sla.csv").read_text(encoding="utf-8-sig").startswith("scope,group,responded")


def test_cli_report_errors(shop_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "abc", "--period", "someday"]) == 2
    assert "not a period: 'someday'" in capsys.readouterr().err
    assert main(["report", "churn", "--period", "2026-02"]) == 2
    assert main(["report", "care", "--period", "2026-02", "--format", "png"]) == 1  # /care has no chart
    assert "has no chart" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["report", "profits"])
    assert main(["demo-data", "--customers", "5", "--end", "28.02.2026"]) == 2
    assert "not a date" in capsys.readouterr().err


def test_demo_win_backs_bring_customers_back(shop_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The demo shows the care engine working: some lapsed customers come back after a "we miss you"."""
    assert main(["demo-data", "--customers", "300", "--months", "24", "--seed", "1", "--end", "2026-02-28"]) == 0
    capsys.readouterr()
    assert main(["report", "care", "--period", "2024-03-01..2026-02-28"]) == 0
    text = capsys.readouterr().out
    (line,) = [row for row in text.splitlines() if row.startswith("• We miss you")]
    sent, orders = (int(n.replace(",", "")) for n in line.split(": ")[1].split(" (")[0].split(" → "))
    assert sent > 10 and 0 < orders <= sent
