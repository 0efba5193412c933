"""The issue's sandbox scenario, piped into ``caredesk shell`` on a fresh
database: a customer with two past orders of rice, ``:advance 30d`` — a
reorder reminder arrives in the morning, "Order again" creates an order
credited to it, and the birthday in that window brings a greeting."""

from __future__ import annotations

import asyncio
import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from bot.config import Settings
from bot.sandbox import run_sandbox
from storage.db import Database
from storage.migrate import upgrade
from storage.models import Order, OutboxMessage

ORDER_RICE = """\
/order
:press Rice
:press Jasmine rice, 5 kg
5
:press Checkout
:press 12 Rice Street
:press Skip
:press Confirm order
:as staff
:press Accept
:press Out for delivery
:press Delivered
:as customer 1
"""


def scenario(birthday: str) -> str:
    return f"""\
/start
Mei Lin
:contact
{birthday}
12 Rice Street
3
:press Yes
:press Confirm
{ORDER_RICE}:advance 7d
{ORDER_RICE}:advance 30d
:press Order again
:press Confirm order
:quit
"""


async def test_the_care_sandbox_scenario(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'sandbox.sqlite3'}"
    await asyncio.to_thread(upgrade, url)
    settings = Settings(_env_file=None, database_url=url, sandbox_files_dir=tmp_path / "files")
    # The sandbox clock starts now: a birthday 27 days ahead falls in the 30-day window.
    birthday = (datetime.now(UTC) + timedelta(days=27)).date()
    birthday = birthday.replace(year=1992)  # a leap year: 29 February is fine too
    out = io.StringIO()
    code = await run_sandbox(settings, stdin=io.StringIO(scenario(birthday.isoformat())), out=out)
    output = out.getvalue()
    assert code == 0, output
    assert not [line for line in output.splitlines() if line.startswith("!")], output
    lines = output.splitlines()
    # During :advance each message shows when it arrived (sandbox time zone: UTC).
    reminder = next(line for line in lines if "By our count your Jasmine rice runs out around" in line)
    hour = int(re.match(r"\[\w{3} \d\d \w{3} (\d\d):\d\d\] bot: 🌾", reminder).group(1))  # type: ignore[union-attr]
    assert 9 <= hour < 12, reminder  # in the morning, after the quiet hours
    assert "[1] 🔁 Order again" in output and "[2] Not now  [3] Stop these reminders" in output
    greeting = next(line for line in lines if "Happy birthday, Mei Lin!" in line)
    assert re.match(r"\[\w{3} \d\d \w{3} 1\d:\d\d\] bot: 🎂", greeting), greeting
    assert "How was order no. 1" in output and "How was order no. 2" in output  # the surveys
    assert "bot: 🎉 Order #3 is placed" in output

    db = Database(url)
    try:
        async with db.session() as session:
            orders = list(await session.scalars(select(Order).order_by(Order.id)))
            sent = {row.kind: row for row in await session.scalars(
                select(OutboxMessage).where(OutboxMessage.category == "care", OutboxMessage.status == "sent"))}
    finally:
        await db.dispose()
    assert [o.source for o in orders] == ["dialog", "dialog", "reminder"]
    assert orders[2].attributed_outbox_id == sent["reorder"].id
    assert {"reorder", "birthday", "survey"} <= set(sent)
