"""The issue's sandbox scenario, piped into ``caredesk shell`` on a fresh
database: a customer orders two products, staff marks the order Delivered,
the customer sees each status change, and "Order again" from /orders makes a
second order with the same items."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from bot.config import Settings
from bot.sandbox import run_sandbox
from storage.db import Database
from storage.migrate import upgrade
from storage.models import Order, OrderItem
from tests.helpers import items_of

SCENARIO = """\
/start
Mei Lin
:contact
1990-03-25
12 Rice Street, Building 3
3
:press Yes
:press Confirm
:press Order
:press Rice
:press Jasmine rice, 5 kg
2
:press Add more
:press Cooking oil
:press Peanut
:press 1
:press Checkout
:press 12 Rice Street
:press Skip
:press Confirm order
:as staff
:press Accept
:press Out for delivery
:press Delivered
:as customer 1
/orders
:press again
:press Confirm order
:quit
"""


async def test_the_sandbox_scenario(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'sandbox.sqlite3'}"
    await asyncio.to_thread(upgrade, url)
    settings = Settings(_env_file=None, database_url=url, sandbox_files_dir=tmp_path / "files")
    out = io.StringIO()
    code = await run_sandbox(settings, stdin=io.StringIO(SCENARIO), out=out)
    output = out.getvalue()
    assert code == 0, output
    assert not [line for line in output.splitlines() if line.startswith("!")]
    # The sample catalog was loaded into the empty database.
    assert "[1] 🍚 Rice  [2] 🍜 Noodles & flour" in output
    assert "bot: 🎉 Order #1 is placed (¥275.00)." in output
    assert "[staff chat]: 🧾 Order #1 · New" in output
    for status in ("Accepted", "Out for delivery", "Delivered"):
        assert f"[staff chat] (edited #1): 🧾 Order #1 · {status}" in output
    # The customer saw each change, as it happened.
    told = [line for line in output.splitlines() if line.startswith("[to customer 1]:")]
    assert told == [
        "[to customer 1]: ✅ Your order #1 is accepted. We are getting it ready.",
        "[to customer 1]: 🚚 Your order #1 is on its way.",
        "[to customer 1]: 📦 Your order #1 is delivered. Enjoy! /orders lets you order the same again in one tap.",
    ]
    assert "#1 · " in output and " · Delivered · ¥275.00" in output
    assert "bot: 🎉 Order #2 is placed (¥275.00)." in output
    assert "    Source: one-tap reorder" in output

    db = Database(url)
    try:
        async with db.session() as session:
            stmt = (select(Order).options(selectinload(Order.items).joinedload(OrderItem.product))
                    .order_by(Order.id))
            first, second = list(await session.scalars(stmt))
    finally:
        await db.dispose()
    assert first.status == "delivered" and second.status == "new"
    assert items_of(first) == items_of(second) == [("RICE-JAS-5", 2, 6800), ("OIL-PEA-5", 1, 13900)]
    assert (second.source, second.reorder_of_id) == ("reorder", first.id)
