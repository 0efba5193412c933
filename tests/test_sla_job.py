"""``watch_tickets``: reminders at 80 %, escalations on breach, auto-closing —
by moving the injected clock."""

from __future__ import annotations

from datetime import timedelta

from bot.app import App
from bot.fake_telegram import FakeTelegram, FakeUser
from jobs.runner import advance, run_job
from tests.conftest import MANAGER_ID, STAFF_CHAT_ID, register
from tests.helpers import card, deliver, events, file_complaint, outbox, ticket

FIVE = timedelta(minutes=5)


async def test_reminder_to_the_staff_chat_then_escalation(app: App, world: FakeTelegram, customer: FakeUser,
                                                          manager: FakeUser) -> None:
    await register(customer, "Mei")
    await file_complaint(customer, "musty rice", category="Product quality")  # normal: 2 h first response
    await advance(app.jobs, timedelta(minutes=95), step=FIVE)
    assert await outbox(app, "sla:") == []
    await advance(app.jobs, timedelta(minutes=2))  # 97 min > 80 % of 120
    [warn] = await outbox(app, "sla:")
    assert warn.dedupe_key == "sla:1:first:warn" and warn.chat_id == STAFF_CHAT_ID
    assert warn.options == {"reply_to_message_id": card(world).message_id}
    assert "Nobody has taken it yet" in warn.text
    await deliver(app)
    reminder = world.last(STAFF_CHAT_ID)
    assert "⏰" in reminder.text and reminder.reply_to == card(world).message_id
    await advance(app.jobs, timedelta(minutes=30), step=FIVE)
    keys = [r.dedupe_key for r in await outbox(app, "sla:")]
    assert keys == ["sla:1:first:warn", f"sla:1:first:breach:{MANAGER_ID}"]
    saved = await ticket(app)
    assert saved.first_response_breached is True and saved.resolution_breached is None
    await deliver(app)
    escalation = manager.last()
    assert "Escalation: no. 1" in escalation.text and "first response" in escalation.text
    assert "Mei" in escalation.text and "nobody" in escalation.text
    # Once per ticket and target.
    await advance(app.jobs, timedelta(hours=2), step=timedelta(minutes=30))
    assert len(await outbox(app, "sla:1:first")) == 2
    assert [e.detail for e in await events(app) if e.kind.startswith("sla_")] == ["first", "first"]
    # An answer now is stored as late.
    staff = FakeUser(world, 200001, "Sam", chat_id=STAFF_CHAT_ID)
    await staff.send("Sorry for the wait", reply_to=card(world).message_id)
    saved = await ticket(app)
    assert saved.first_response_breached is True and saved.first_response_minutes > 120


async def test_reminder_goes_to_the_assignee(app: App, world: FakeTelegram, customer: FakeUser,
                                             staff: FakeUser) -> None:
    await register(customer, "Mei")
    await file_complaint(customer, "late", category="Delivery")  # high: 30 min
    await staff.press("Take", card(world))
    await advance(app.jobs, timedelta(minutes=25))
    [warn] = await outbox(app, "sla:1:first:warn")
    assert warn.chat_id == staff.id and set(warn.options) == {"fallback"}
    await deliver(app)
    assert any("⏰" in (m.text or "") for m in world.sent(staff.id))
    assert await outbox(app, "sla:1:first:warn:fallback") == []  # delivered: no fallback


async def test_reminder_for_an_assignee_without_a_private_chat_goes_to_the_staff_chat(
        app: App, world: FakeTelegram, customer: FakeUser, staff: FakeUser) -> None:
    await register(customer, "Mei")
    await file_complaint(customer, "late", category="Delivery")  # high: 30 min
    await staff.press("Take", card(world))
    world.fail("cant_initiate", chat_id=staff.id)  # Sam never opened a chat with the bot
    await advance(app.jobs, timedelta(minutes=25))
    await deliver(app)
    warn, fallback = await outbox(app, "sla:1:first:warn")  # the reminder, then its fallback
    assert warn.dedupe_key == "sla:1:first:warn" and fallback.dedupe_key == "sla:1:first:warn:fallback"
    assert warn.status == "failed" and "initiate" in (warn.last_error or "")
    assert fallback.status == "sent" and fallback.chat_id == STAFF_CHAT_ID
    reminder = world.last(STAFF_CHAT_ID)
    assert "⏰" in reminder.text and "For Sam, who could not be reached" in reminder.text
    assert reminder.reply_to == card(world).message_id
    assert not any("⏰" in (m.text or "") for m in world.sent(staff.id))


async def test_waiting_for_the_customer_does_not_count(app: App, world: FakeTelegram, customer: FakeUser,
                                                       staff: FakeUser, manager: FakeUser) -> None:
    await register(customer, "Mei")
    await file_complaint(customer, "late", category="Delivery")  # high: 30 min / 8 h
    await staff.send("Which address?", reply_to=card(world).message_id)
    await advance(app.jobs, timedelta(days=3), step=timedelta(hours=6))  # waiting all along: nothing runs
    assert await outbox(app, "sla:") == []
    await customer.send("12 Rice Street")  # back in progress
    await advance(app.jobs, timedelta(hours=6, minutes=25), step=timedelta(minutes=35))  # 6 h 25 m ≥ 80 % of 8 h
    assert [r.dedupe_key for r in await outbox(app, "sla:")] == ["sla:1:resolution:warn"]
    await advance(app.jobs, timedelta(hours=2), step=timedelta(minutes=30))
    assert f"sla:1:resolution:breach:{MANAGER_ID}" in [r.dedupe_key for r in await outbox(app, "sla:")]
    assert (await ticket(app)).resolution_breached is True


async def test_resolved_in_time_is_not_escalated(app: App, world: FakeTelegram, customer: FakeUser,
                                                 staff: FakeUser) -> None:
    await register(customer, "Mei")
    await file_complaint(customer, "late", category="Other")  # low: 8 h / 72 h
    await staff.press("Resolve", card(world))
    await staff.send("Explained the schedule")
    await advance(app.jobs, timedelta(hours=10), step=timedelta(hours=1))
    assert await outbox(app, "sla:") == []
    saved = await ticket(app)
    assert saved.first_response_breached is False and saved.resolution_breached is False


async def test_auto_close_and_reopen_from_the_notice(app: App, world: FakeTelegram, customer: FakeUser,
                                                     staff: FakeUser) -> None:
    await register(customer, "Mei")
    await file_complaint(customer, "late", category="Other")
    await staff.press("Resolve", card(world))
    await staff.send("Explained the schedule")
    await advance(app.jobs, timedelta(days=2, hours=23), step=timedelta(hours=6))
    assert (await ticket(app)).status == "resolved"
    await advance(app.jobs, timedelta(hours=2), step=timedelta(hours=1))
    saved = await ticket(app)
    assert saved.status == "closed" and saved.closed_at is not None
    assert "Closed" in card(world).text  # the staff-chat card shows it
    [notice] = await outbox(app, "autoclose:1")
    assert notice.chat_id == customer.id
    await deliver(app)
    closed = customer.last()
    assert "is now closed" in closed.text and closed.labels == ["❌ Not solved"]
    await customer.press("Not solved", closed)
    saved = await ticket(app)
    assert saved.status == "in_progress" and saved.reopen_count == 1
    history = [(e.to_status, e.actor_role, e.detail) for e in await events(app) if e.kind == "status"]
    assert ("closed", "system", "no answer") in history and ("in_progress", "customer", "not solved") in history


async def test_job_is_safe_to_run_twice(app: App, world: FakeTelegram, customer: FakeUser) -> None:
    await register(customer, "Mei")
    await file_complaint(customer, "late", category="Delivery")
    app.clock.advance(timedelta(minutes=40))  # type: ignore[attr-defined]
    await run_job(app.jobs, "watch_tickets")
    await run_job(app.jobs, "watch_tickets")
    keys = [r.dedupe_key for r in await outbox(app, "sla:")]
    # Past the target at once: the breach only (no reminder after the fact), once per manager.
    assert keys == [f"sla:1:first:breach:{MANAGER_ID}"]


async def test_escalation_end_to_end_through_the_outbox(app: App, world: FakeTelegram, customer: FakeUser,
                                                        manager: FakeUser) -> None:
    await register(customer, "Mei")
    await file_complaint(customer, "late", category="Delivery")
    await advance(app.jobs, timedelta(minutes=35), step=FIVE)
    assert any("Escalation: no. 1" in (m.text or "") for m in manager.inbox())
