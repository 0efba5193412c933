"""Privacy and security (issue 12, items 9–17): what /forget erases, CSV cells,
where staff tools answer, search wildcards, forged button ids, spoofing
characters, UTF-16 lengths, secrets and settings."""

from __future__ import annotations

from bot.app import App
from bot.fake_telegram import FakeTelegram, FakeUser
from tests.conftest import STAFF_CHAT_ID, register


# ----- 12. LIKE wildcards ------------------------------------------------------------------

async def test_customer_search_wildcards_match_only_themselves(app: App, world: FakeTelegram,
                                                               staff: FakeUser) -> None:
    await register(FakeUser(world, 100001, "Mei"), "Mei Lin")
    await register(FakeUser(world, 100002, "Wang"), "Wang Fang")
    for query in ("%", "_", "%%", "M_i"):
        await staff.send(f"/customer {query}")
        reply = world.last(STAFF_CHAT_ID)
        assert "Mei Lin" not in reply.text and "Wang Fang" not in reply.text and not reply.labels, query
    await register(FakeUser(world, 100003, "Pct"), "100% Rice_Fan")
    await staff.send("/customer % rice_")
    assert "100% Rice_Fan" in world.last(STAFF_CHAT_ID).text
