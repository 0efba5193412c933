"""Replicas on one database: leases for singleton work, claims with an expiry, SQLite's one delivering process."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from bot.app import App, create_app
from bot.fake_telegram import FakeTelegram
from jobs import leases
from jobs.delivery import CLAIM_SECONDS, worker_for
from jobs.runner import run_job
from storage.repositories import Repos
from tests.helpers import add_customer, enqueue, outbox_by_key

BASE = 900_000


def _other(app: App, world: FakeTelegram, name: str) -> App:
    """A second instance on the same database, as another replica would be."""
    return create_app(app.settings.model_copy(update={"instance_id": name}), clock=app.clock, session=world.session())


async def test_singleton_jobs_run_on_the_lease_holder_and_move_when_it_dies(app: App, world: FakeTelegram) -> None:
    first = _other(app, world, "first")
    second = _other(app, world, "second")
    try:
        assert await leases.hold(first.jobs) is True
        assert await leases.hold(second.jobs) is False
        assert leases.status(second.jobs)["holder"] == "first"
        await run_job(second.jobs, "watch_tickets")  # not the holder: does not run, renews nothing
        assert leases.status(second.jobs)["held"] is False
        # first dies right after renewing: second takes over within one lease period.
        await leases.hold(first.jobs)
        period = timedelta(seconds=app.settings.lease_seconds)
        app.clock.advance(period * 2 / 3 - timedelta(seconds=1))
        assert await leases.hold(second.jobs) is False
        app.clock.advance(timedelta(seconds=2))
        assert await leases.hold(second.jobs) is True
        assert await leases.hold(first.jobs) is False  # the old holder finds it gone
        # A clean stop gives it up at once.
        await leases.release(second.jobs)
        assert await leases.hold(first.jobs) is True
    finally:
        await first.close()
        await second.close()


async def test_recovery_leaves_claims_that_hold_and_the_sender_finishes_its_row(app: App, world: FakeTelegram) -> None:
    await enqueue(app, "svc:claimed", BASE, category="service")
    now = app.clock.now()
    async with app.db.session() as session:
        row = await Repos(session).outbox.by_key("svc:claimed")
        assert row is not None
        assert await Repos(session).outbox.claim(row.id, now, "busy-replica", now + timedelta(seconds=CLAIM_SECONDS))
        await session.commit()
    await run_job(app.jobs, "outbox_recover")
    assert (await outbox_by_key(app))["svc:claimed"].status == "sending"  # its sender may still be at it
    app.clock.advance(timedelta(seconds=CLAIM_SECONDS + 1))
    await run_job(app.jobs, "outbox_recover")
    assert (await outbox_by_key(app))["svc:claimed"].status == "uncertain"
    # The slow sender comes back with Telegram's answer: the row is sent, with its message id.
    async with app.db.session() as session:
        assert await Repos(session).outbox.mark_sent(row.id, app.clock.now(), 77, worker="busy-replica")
        await session.commit()
    done = (await outbox_by_key(app))["svc:claimed"]
    assert done.status == "sent" and done.telegram_message_id == 77


async def test_care_caps_count_a_row_another_worker_is_sending(app: App, world: FakeTelegram) -> None:
    cid = await add_customer(app, BASE + 1)
    await enqueue(app, "care:a", BASE + 1, customer_id=cid, kind="survey")
    await enqueue(app, "care:b", BASE + 1, customer_id=cid, kind="birthday")
    now = app.clock.now()
    async with app.db.session() as session:
        first = await Repos(session).outbox.by_key("care:a")
        assert first is not None
        assert await Repos(session).outbox.claim(first.id, now, "other-replica", now + timedelta(seconds=CLAIM_SECONDS))
        await session.commit()
    await run_job(app.jobs, "deliver_outbox")
    rows = await outbox_by_key(app)
    assert rows["care:b"].status == "pending" and rows["care:b"].skip_reason == "cap"
    assert rows["care:b"].not_before > now
    assert world.sent(BASE + 1) == []


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_second_process_on_sqlite_refuses_to_deliver_and_says_why(
        app: App, world: FakeTelegram, caplog: pytest.LogCaptureFixture) -> None:
    await enqueue(app, "svc:one", BASE + 2, category="service")
    first = _other(app, world, "process-1")
    second = _other(app, world, "process-2")
    try:
        assert await worker_for(first.jobs).drain() == 1
        await enqueue(app, "svc:two", BASE + 3, category="service")
        with caplog.at_level(logging.WARNING, logger="jobs.delivery"):
            assert await worker_for(second.jobs).drain() == 0
        assert "SQLite supports one delivering process" in (worker_for(second.jobs).refused or "")
        assert any("refused" in r.getMessage() for r in caplog.records)
        assert (await outbox_by_key(app))["svc:two"].status == "pending"
        # The first one stops: the second delivers from then on.
        await worker_for(first.jobs).stop()
        assert await worker_for(second.jobs).drain() == 1
        assert worker_for(second.jobs).refused is None
    finally:
        await first.close()
        await second.close()
