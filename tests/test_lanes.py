"""Order per chat (issue 10, item 2): a chat's updates one at a time and in order; chats concurrently."""

from __future__ import annotations

import asyncio

from bot.pipeline import Lanes


async def test_one_chat_in_order_and_chats_side_by_side() -> None:
    events: list[tuple[str, int, int]] = []
    running: dict[int, int] = {}
    most_at_once = 0

    async def run(item: tuple[int, int]) -> None:
        nonlocal most_at_once
        chat, n = item
        assert running.get(chat, 0) == 0, f"chat {chat} handled two updates at once"
        running[chat] = 1
        most_at_once = max(most_at_once, sum(running.values()))
        events.append(("start", chat, n))
        await asyncio.sleep(0.01 * (3 - n % 3))  # later updates finish faster: order must still hold
        events.append(("end", chat, n))
        running[chat] = 0

    lanes = Lanes(run)
    for n in range(6):
        for chat in (1, 2, 3):
            lanes.submit(chat, (chat, n))
    await lanes.wait_idle()
    for chat in (1, 2, 3):
        started = [n for kind, c, n in events if kind == "start" and c == chat]
        assert started == list(range(6))
    assert most_at_once == 3  # the three chats ran concurrently
    assert lanes.in_hand == 0


async def test_a_failing_update_does_not_stop_its_chat() -> None:
    handled: list[int] = []

    async def run(n: int) -> None:
        if n == 1:
            raise RuntimeError("handler failed (already logged by the pipeline)")
        handled.append(n)

    lanes = Lanes(run)
    for n in range(3):
        lanes.submit(7, n)
    await lanes.wait_idle()
    assert handled == [0, 2]
