"""Outbox delivery: order, pacing and every scripted fault of the fake Telegram."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from itertools import pairwise

import pytest

from bot.app import App
from bot.fake_telegram import FakeTelegram
from jobs.delivery import OutboxWorker, Pacer, TokenBucket, backoff, worker_for
from jobs.runner import advance, run_job
from tests.conftest import restart
from tests.helpers import add_customer, customer_row, enqueue, outbox_by_key

BASE = 500_000


async def _customers(app: App, count: int) -> list[tuple[int, int]]:
    """(customer id, chat id) for ``count`` consenting customers."""
    return [(await add_customer(app, BASE + n, name=f"C{n}"), BASE + n) for n in range(count)]


def _events(app: App) -> list[tuple[float, str, int]]:
    return worker_for(app.jobs).stats.events


def _track(app: App) -> OutboxWorker:
    worker = worker_for(app.jobs)
    worker.stats.keep_events = True
    return worker


# ----- the pieces ---------------------------------------------------------------------------------

def test_token_bucket_refills_at_its_rate() -> None:
    bucket = TokenBucket(rate=2.0, capacity=1.0, now=0.0)
    assert bucket.wait(0.0) == 0
    bucket.take(0.0)
    assert bucket.wait(0.0) == pytest.approx(0.5)
    assert bucket.wait(0.25) == pytest.approx(0.25)
    assert bucket.wait(0.5) == 0


def test_pacer_limits_chats_and_groups_separately() -> None:
    pacer = Pacer(global_per_second=25, chat_per_second=1, group_per_minute=18, now=0.0)
    pacer.take(1, 0.0)
    assert pacer.chat_wait(1, 0.0) == pytest.approx(1.0)
    assert pacer.chat_wait(2, 0.0) == 0
    pacer.take(-100, 0.0)
    pacer.take(-100, 0.0)  # a group may have a burst of two
    assert pacer.chat_wait(-100, 0.0) == pytest.approx(60 / 18)
    assert pacer.busy_chats(0.0) == {1, -100}


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff(n, 5).total_seconds() for n in (1, 2, 3)] == [5, 10, 20]
    assert backoff(30, 5) == timedelta(hours=1)


# ----- order and pacing -----------------------------------------------------------------------------

async def test_service_rows_go_before_care_rows(app: App, world: FakeTelegram) -> None:
    people = await _customers(app, 3)
    for cid, chat in people:
        await enqueue(app, f"care:{cid}", chat, text=f"care {cid}", customer_id=cid)
    await enqueue(app, "svc:1", people[2][1], text="Your order is on its way", category="service")
    await run_job(app.jobs, "deliver_outbox")
    sends = [c for c in world.calls if c.method == "sendMessage"]
    assert sends[0].params["text"] == "Your order is on its way"
    assert len(sends) == 4
    rows = await outbox_by_key(app)
    assert {r.status for r in rows.values()} == {"sent"}
    assert all(r.telegram_message_id for r in rows.values())


async def test_one_chat_gets_at_most_one_message_per_second(app: App, world: FakeTelegram) -> None:
    worker = _track(app)
    for n in range(5):
        await enqueue(app, f"svc:{n}", 4242, text=f"notice {n}", category="service")
    start = app.clock.now()
    await run_job(app.jobs, "deliver_outbox")
    sent_at = [t for t, outcome, _ in worker.stats.events if outcome == "sent"]
    assert len(sent_at) == 5
    gaps = [b - a for a, b in pairwise(sent_at)]
    assert min(gaps) >= 1.0 - 1e-6
    assert app.clock.now() - start >= timedelta(seconds=4)  # the pacing moved the manual clock, no real sleep
    assert [m.text for m in world.sent(4242)] == [f"notice {n}" for n in range(5)]


async def test_global_rate_is_respected(app: App, world: FakeTelegram) -> None:
    worker = _track(app)
    for n in range(60):
        await enqueue(app, f"svc:{n}", BASE + n, category="service")
    await run_job(app.jobs, "deliver_outbox")
    sent_at = sorted(t for t, outcome, _ in worker.stats.events if outcome == "sent")
    assert len(sent_at) == 60
    # No one-second window holds more than the cap plus the small saved-up allowance.
    cap = app.settings.rate_global_per_second
    worst = max(sum(1 for t in sent_at if s <= t < s + 1.0) for s in sent_at)
    assert worst <= cap + cap * 0.2
    assert (sent_at[-1] - sent_at[0]) >= (60 - cap * 0.2 - 1) / cap


async def test_options_reply_markup_and_photo_are_rebuilt(app: App, world: FakeTelegram) -> None:
    markup = {"inline_keyboard": [[{"text": "Order again", "callback_data": "x:1"}]]}
    await enqueue(app, "svc:markup", 777, text="<b>Hi</b>", category="service", reply_markup=markup)
    await enqueue(app, "svc:photo", 778, text="A photo", category="service", options={"photo": "file-abc"})
    await enqueue(app, "svc:thread", -100200, text="In a topic", category="service",
                  options={"message_thread_id": 7, "reply_to_message_id": 99})
    await run_job(app.jobs, "deliver_outbox")
    assert world.last(777).labels == ["Order again"] and world.last(777).text == "Hi"
    assert world.last(778).kind == "photo" and world.last(778).text == "A photo"
    assert world.last(-100200).thread_id == 7  # the missing reply target does not stop it


# ----- faults ------------------------------------------------------------------------------------------

async def test_429_on_the_third_of_fifty_pauses_everything_then_sends_each_once(app: App, world: FakeTelegram) -> None:
    worker = _track(app)
    for n in range(50):
        await enqueue(app, f"svc:{n}", BASE + n, text=f"notice {n}", category="service")
    world.fail("retry_after", chat_id=BASE + 2, retry_after=5)
    await run_job(app.jobs, "deliver_outbox")
    events = worker.stats.events
    limited = [t for t, outcome, _ in events if outcome == "retry"]
    assert len(limited) == 1 and worker.stats.rate_limited == 1
    after = [t for t, outcome, _ in events if outcome == "sent" and t > limited[0]]
    assert len(after) == 48
    assert min(after) - limited[0] >= 5.0  # nothing at all went during the pause
    for n in range(50):
        assert [m.text for m in world.sent(BASE + n)] == [f"notice {n}"]
    rows = await outbox_by_key(app)
    assert all(r.status == "sent" for r in rows.values())
    assert rows["svc:2"].attempts == 1  # the 429 does not count as an attempt


@pytest.mark.parametrize("kind", ["blocked", "deactivated", "chat_not_found"])
async def test_403_or_chat_not_found_marks_the_customer_unreachable(app: App, world: FakeTelegram, kind: str) -> None:
    people = await _customers(app, 3)
    for cid, chat in people:
        await enqueue(app, f"care:{cid}", chat, customer_id=cid)
    lost_id, lost_chat = people[1]
    await enqueue(app, f"care:{lost_id}:later", lost_chat, customer_id=lost_id, kind="survey",
                  not_before=app.clock.now() + timedelta(days=2))
    world.fail(kind, chat_id=lost_chat)
    await run_job(app.jobs, "deliver_outbox")
    rows = await outbox_by_key(app)
    assert rows[f"care:{lost_id}"].status == "failed"
    assert rows[f"care:{lost_id}"].last_error
    assert rows[f"care:{lost_id}:later"].status == "skipped"
    assert rows[f"care:{lost_id}:later"].skip_reason == "unreachable"
    assert not (await customer_row(app, lost_chat)).reachable
    for cid, chat in (people[0], people[2]):
        assert rows[f"care:{cid}"].status == "sent"
        assert (await customer_row(app, chat)).reachable
    await advance(app.jobs, timedelta(days=3))
    assert len([c for c in world.calls if c.params.get("chat_id") == lost_chat]) == 1  # never retried


async def test_blocked_user_in_a_service_row_is_found_by_chat(app: App, world: FakeTelegram) -> None:
    await add_customer(app, BASE)
    world.block(BASE)
    await enqueue(app, "svc:blocked", BASE, category="service")
    await run_job(app.jobs, "deliver_outbox")
    assert (await outbox_by_key(app))["svc:blocked"].status == "failed"
    assert not (await customer_row(app, BASE)).reachable


async def test_network_errors_are_retried_and_each_message_sent_once(app: App, world: FakeTelegram) -> None:
    for n in range(4):
        await enqueue(app, f"svc:{n}", BASE + n, text=f"notice {n}", category="service")
    world.fail("network", chat_id=BASE + 1, times=2)
    world.fail("server", chat_id=BASE + 3, times=1)
    await run_job(app.jobs, "deliver_outbox")
    rows = await outbox_by_key(app)
    assert rows["svc:1"].status == "pending" and "ClientConnectorError" in (rows["svc:1"].last_error or "")
    assert rows["svc:1"].not_before > app.clock.now()
    await advance(app.jobs, timedelta(minutes=5))
    rows = await outbox_by_key(app)
    assert all(r.status == "sent" for r in rows.values())
    assert rows["svc:1"].attempts == 3 and rows["svc:3"].attempts == 2
    for n in range(4):
        assert [m.text for m in world.sent(BASE + n)] == [f"notice {n}"]


async def test_after_the_retry_limit_the_row_fails_with_the_error_kept(app: App, world: FakeTelegram) -> None:
    await enqueue(app, "svc:down", BASE, category="service")
    world.fail("network", chat_id=BASE, times=100)
    await advance(app.jobs, timedelta(hours=3))
    row = (await outbox_by_key(app))["svc:down"]
    assert row.status == "failed"
    assert row.attempts == app.settings.outbox_max_attempts
    assert "Cannot connect" in (row.last_error or "")
    assert world.sent(BASE) == []


async def test_timeout_after_send_makes_a_care_row_uncertain_and_it_is_not_resent(
    app: App, world: FakeTelegram,
) -> None:
    (cid, chat), = await _customers(app, 1)
    await enqueue(app, "care:t", chat, text="Running low on rice?", customer_id=cid)
    world.fail("timeout_after_send", chat_id=chat)
    await run_job(app.jobs, "deliver_outbox")
    await advance(app.jobs, timedelta(hours=2))
    row = (await outbox_by_key(app))["care:t"]
    assert row.status == "uncertain" and "may have been sent" in (row.last_error or "")
    assert [m.text for m in world.sent(chat)] == ["Running low on rice?"]  # it did arrive, once


async def test_timeout_after_send_resends_a_service_row(app: App, world: FakeTelegram) -> None:
    await enqueue(app, "svc:t", BASE, text="Ticket answered", category="service")
    world.fail("timeout_after_send", chat_id=BASE)
    await advance(app.jobs, timedelta(minutes=5))
    assert (await outbox_by_key(app))["svc:t"].status == "sent"
    assert len(world.sent(BASE)) == 2  # at least once for service notices


async def test_a_crash_mid_send_then_restart_sends_nothing_twice(app: App, world: FakeTelegram) -> None:
    for n in range(3):
        await enqueue(app, f"svc:{n}", BASE + n, text=f"notice {n}", category="service")

    def crash(message, edited) -> None:  # type: ignore[no-untyped-def]
        if message.chat_id == BASE + 1:
            raise asyncio.CancelledError  # the process dies right after the request went out

    world.on_bot_message = crash
    task = asyncio.create_task(run_job(app.jobs, "deliver_outbox"))
    with pytest.raises(asyncio.CancelledError):
        await task
    world.on_bot_message = None
    rows = await outbox_by_key(app)
    assert [rows[f"svc:{n}"].status for n in range(3)] == ["sent", "sending", "pending"]
    app = await restart(app, world)
    await run_job(app.jobs, "deliver_outbox")
    rows = await outbox_by_key(app)
    assert [rows[f"svc:{n}"].status for n in range(3)] == ["sent", "uncertain", "sent"]
    for n in range(3):
        assert len(world.sent(BASE + n)) == 1
    await app.close()


async def test_the_live_loop_sends_and_stops_cleanly(app: App, world: FakeTelegram) -> None:
    await enqueue(app, "svc:0", BASE, category="service")
    worker = worker_for(app.jobs)
    worker.start()
    worker.start()  # idempotent
    await asyncio.wait_for(worker.idle.wait(), 10)
    assert (await outbox_by_key(app))["svc:0"].status == "sent"
    await worker.stop()
    assert not worker.live
