"""/mydata includes the customer's complaints; /forget anonymises them."""

from __future__ import annotations

import json

from bot.app import App
from bot.fake_telegram import FakeTelegram, FakeUser
from tests.conftest import register
from tests.helpers import card, events, file_complaint, messages, outbox, ticket


async def test_mydata_and_forget(app: App, world: FakeTelegram, customer: FakeUser, staff: FakeUser) -> None:
    await register(customer, "Mei")
    await file_complaint(customer, "My neighbour Li Wei at 12 Rice St got my bag")
    await staff.send("We will fetch it from Li Wei", reply_to=card(world).message_id)
    await customer.send("Thanks, call me at 138 0000 0000")
    await file_complaint(customer, "second one", category="Other")
    await staff.press("Resolve", card(world, 2))
    await staff.send("Explained")
    await customer.send("/mydata")
    document = json.loads(customer.last().file)
    complaints = document["complaints"]
    assert [c["number"] for c in complaints] == [1, 2]
    assert complaints[0]["description"].startswith("My neighbour")
    assert [m["text"] for m in complaints[0]["messages"]] == [
        "We will fetch it from Li Wei", "Thanks, call me at 138 0000 0000"]

    await customer.send("/forget")
    await customer.press("Yes")
    first, second = await ticket(app, 1), await ticket(app, 2)
    assert first.description == "" and first.status == "closed" and first.resolution_note is None
    assert second.description == "" and second.resolution_note is None
    assert all(m.text is None and m.photo_file_id is None for m in await messages(app))
    assert all(m.author_name is None for m in await messages(app) if m.direction == "in")
    assert all(e.actor_name is None for e in await events(app) if e.actor_role == "customer")
    # The survey of ticket 2 was still waiting in the outbox: it does not go out.
    assert [r.status for r in await outbox(app, "csat:2")] == ["skipped"]
    # Timings stay for the reports.
    assert second.resolution_minutes is not None
    await staff.send("/ticket 1")
    assert "erased at the customer's request" in world.sent(-1001000000001)[-1].text  # the history
