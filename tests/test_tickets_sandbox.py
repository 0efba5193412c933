"""The full complaint cycle typed into ``caredesk shell`` on a fresh database."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

from sqlalchemy import select

from bot.config import Settings
from bot.sandbox import run_sandbox
from storage.db import Database
from storage.migrate import upgrade
from storage.models import Ticket

SCRIPT = """\
/start
:press 1
:contact
:press Skip
:press Skip
:press Skip
:press Yes
:press Confirm
/complaint
:press Delivery
The rice came two days late & the bag was torn
:press Submit
:as staff
:press Take
:reply So sorry! A new bag comes today.
:as customer 1
Thank you, before 6 pm please.
:reply Sure, before 6 pm.
:as staff
:press Resolve
New bag delivered, delivery fee refunded.
:as customer 1
:press 4
Kind staff
# a second complaint that nobody answers
/complaint
:press Delivery
Still no receipt
:press Submit
:advance 7m
:quit
"""


async def test_full_cycle_in_the_sandbox(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'sandbox.sqlite3'}"
    await asyncio.to_thread(upgrade, url)
    # A short first-response target for high priority keeps the time travel short.
    settings = Settings(_env_file=None, database_url=url, sandbox_files_dir=tmp_path / "files",
                        sla_first_response_high=5)
    out = io.StringIO()
    code = await run_sandbox(settings, stdin=io.StringIO(SCRIPT), out=out)
    text = out.getvalue()
    assert code == 0, text
    assert "\n! " not in text, text
    for expected in (
        "[staff chat]: 🎫 Complaint no. 1",
        "[to customer 1]: Sam (staff) from our team is now looking after your complaint no. 1",
        "[to customer 1]: 💬 Sam (staff) about your complaint no. 1:",
        "[staff chat]: 📩 Customer 1 · no. 1:",
        "bot: 💬 Sam (staff) about your complaint no. 1:",
        "how was no. 1 resolved?",
        "[to customer 1]: ✅ Your complaint no. 1 is resolved.",  # at once, right after the staff's note
        "Thank you for your feedback on complaint no. 1.",
        "[staff chat]: ⏰ No. 2",
        "[to manager, private]: 🚨 Escalation: no. 2 missed its first response target of 5m",
    ):
        assert expected in text, f"{expected!r} not in the sandbox output:\n{text}"
    db = Database(url)
    try:
        async with db.session() as session:
            first, second = list(await session.scalars(select(Ticket).order_by(Ticket.id)))
    finally:
        await db.dispose()
    assert (first.status, first.rating, first.rating_comment) == ("closed", 4, "Kind staff")
    assert first.first_response_minutes is not None and first.resolution_minutes is not None
    assert second.first_response_breached is True
