"""The care engine end to end: planning into the outbox, policy at delivery,
the buttons of care messages, the survey dialog and order attribution."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select, update

from bot.app import App
from bot.care_messages import CareCallback
from bot.fake_telegram import FakeTelegram, FakeUser
from bot.rules import care as rules
from jobs.care import plan
from jobs.runner import advance, run_job
from storage.models import CareStop, Customer, Order, OutboxMessage, SurveyAnswer
from storage.repositories import Repos
from tests.conftest import START, restart
from tests.helpers import add_customer, add_order, add_product, customer_row, enqueue, outbox_by_key

UTC = UTC
SHANGHAI = rules.zone("Asia/Shanghai")
TG = 100001  # the ``customer`` fixture's Telegram id


def local(message_date: int) -> datetime:
    return datetime.fromtimestamp(message_date, UTC).astimezone(SHANGHAI)


async def rice_customer(app: App, *, interval_days: int = 10, last_days_ago: int = 10, telegram_id: int = TG,
                        **kw: object) -> tuple[int, int]:
    """A customer who bought rice twice, ``interval_days`` apart, the last ``last_days_ago`` days ago."""
    cid = await add_customer(app, telegram_id, **kw)  # type: ignore[arg-type]
    rice = await add_product(app)
    last = app.clock.now() - timedelta(days=last_days_ago)
    await add_order(app, cid, rice, last - timedelta(days=interval_days), quantity=2)
    await add_order(app, cid, rice, last, quantity=2)
    return cid, rice


async def care_rows(app: App, kind: str | None = None) -> list[OutboxMessage]:
    return [r for r in (await outbox_by_key(app)).values() if r.category == "care" and (kind is None or r.kind == kind)]


# ----- planning ---------------------------------------------------------------------------------------

async def test_reorder_reminder_is_planned_and_arrives_in_the_morning(app: App, world: FakeTelegram,
                                                                     customer: FakeUser) -> None:
    app.clock.set(datetime(2026, 3, 2, 14, 0, tzinfo=UTC))  # 22:00 in Shanghai: quiet hours
    cid, rice = await rice_customer(app, interval_days=10, last_days_ago=9)  # runs out in a day
    await run_job(app.jobs, "plan_care")
    (row,) = await care_rows(app, "reorder")
    assert row.dedupe_key.startswith(f"reorder:{cid}:{rice}:")
    assert row.not_before == datetime(2026, 3, 3, 1, 0, tzinfo=UTC)  # 09:00 local
    assert row.ref_product_id == rice and row.priority == rules.CARE_PRIORITY["reorder"]
    await advance(app.jobs, timedelta(hours=2))
    assert customer.inbox() == []  # not at night
    await advance(app.jobs, timedelta(hours=10))
    message = customer.last()
    assert "Jasmine rice 5 kg runs out around" in (message.text or "")
    assert message.labels == ["🔁 Order again", "Not now", "Stop these reminders"]
    assert local(message.raw["date"]).hour == 9
    assert (await care_rows(app, "reorder"))[0].status == "sent"


async def test_planning_twice_and_two_planners_at_once_write_each_message_once(app: App) -> None:
    await rice_customer(app, last_days_ago=9, birthday=date(1990, 3, 2))
    for n in range(3):
        await rice_customer(app, last_days_ago=9, telegram_id=TG + 1 + n)
    first = await plan(app.jobs, app.clock.now())
    # Four reminders, four surveys of the last deliveries and a birthday greeting.
    assert first.written == {"reorder": 4, "survey": 4, "birthday": 1}
    again = await plan(app.jobs, app.clock.now())
    assert sum(again.written.values()) == 0
    # Two planners at the same moment on a new day, on the same database.
    app.clock.advance(timedelta(days=20))
    for n in range(4):
        cid = (await customer_row_by_tg(app, TG + n)).id
        await add_order(app, cid, await add_product(app), app.clock.now() - timedelta(days=9), quantity=2)
    results = await asyncio.gather(plan(app.jobs, app.clock.now()), plan(app.jobs, app.clock.now()))
    keys = [r.dedupe_key for r in await care_rows(app)]
    assert len(keys) == len(set(keys))
    assert sum(sum(r.written.values()) for r in results) == len(keys) - 9 > 0


async def customer_row_by_tg(app: App, telegram_id: int) -> Customer:
    async with app.db.session() as session:
        found = await session.scalar(select(Customer).where(Customer.telegram_id == telegram_id))
        assert found is not None
        return found


async def test_nothing_is_planned_without_consent_reachability_or_for_the_forgotten(app: App) -> None:
    await rice_customer(app, last_days_ago=9, consent=False, telegram_id=TG)
    await rice_customer(app, last_days_ago=9, reachable=False, telegram_id=TG + 1)
    cid, _ = await rice_customer(app, last_days_ago=9, telegram_id=TG + 2)
    async with app.db.session() as session:
        repos = Repos(session)
        row = await repos.customers.get(cid)
        assert row is not None
        await repos.customers.forget(row, app.clock.now())
        await session.commit()
    result = await plan(app.jobs, app.clock.now())
    assert result.customers == 0 and not result.written


async def test_birthday_greeting_at_ten_local_time_once(app: App, customer: FakeUser) -> None:
    await add_customer(app, TG, birthday=date(1985, 3, 3))
    await advance(app.jobs, timedelta(hours=23))  # to 09:00 on the birthday
    assert customer.inbox() == []
    await advance(app.jobs, timedelta(hours=2))
    (greeting,) = customer.inbox()
    assert "Happy birthday, Mei" in (greeting.text or "")
    assert local(greeting.raw["date"]).hour == 10 and local(greeting.raw["date"]).day == 3
    await plan(app.jobs, app.clock.now())
    assert len(await care_rows(app, "birthday")) == 1


async def test_survey_after_delivery_with_rating_buttons(app: App, customer: FakeUser) -> None:
    cid = await add_customer(app, TG)
    tea = await add_product(app, "tea", name="Green tea", days_per_unit_per_person=None)  # no reminder for it
    order_id = await add_order(app, cid, tea, START - timedelta(days=3), delivered_at=START - timedelta(days=2))
    await run_job(app.jobs, "plan_care")
    await run_job(app.jobs, "deliver_outbox")
    survey = customer.last()
    assert f"How was order no. {order_id}" in (survey.text or "")
    assert survey.labels == [f"{n} ⭐" for n in range(1, 6)]
    assert (await care_rows(app, "survey"))[0].dedupe_key == f"survey:{order_id}"


async def test_winback_after_a_lapse_then_not_again(app: App, customer: FakeUser) -> None:
    cid, rice = await rice_customer(app, interval_days=10, last_days_ago=50)
    await run_job(app.jobs, "plan_care")
    await run_job(app.jobs, "deliver_outbox")
    message = customer.last()
    assert "we miss you" in (message.text or "")
    assert message.labels == ["🔁 Order again", "📋 Menu"]
    await customer.press("Menu")
    assert "What can we do for you?" in (customer.last().text or "")
    app.clock.advance(timedelta(days=20))
    await plan(app.jobs, app.clock.now())
    assert len(await care_rows(app, "winback")) == 1  # one per lapse


async def test_stale_history_is_left_to_the_winback(app: App) -> None:
    await rice_customer(app, interval_days=10, last_days_ago=30)  # ran out 20 days ago, lapse not yet 45 days
    result = await plan(app.jobs, app.clock.now())
    assert not result.written


# ----- policy at delivery -------------------------------------------------------------------------------------

async def test_a_message_due_at_23_goes_at_09(app: App, customer: FakeUser) -> None:
    cid = await add_customer(app, TG)
    due = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # 23:00 in Shanghai
    await enqueue(app, "care:late", TG, customer_id=cid, kind="survey", not_before=due, text="How was it?")
    await advance(app.jobs, timedelta(hours=13, minutes=30))  # to 23:30
    assert customer.inbox() == []
    row = (await outbox_by_key(app))["care:late"]
    assert row.status == "pending" and row.skip_reason == "quiet hours"
    assert row.not_before == datetime(2026, 3, 3, 1, 0, tzinfo=UTC)
    await advance(app.jobs, timedelta(hours=10))
    (message,) = customer.inbox()
    assert local(message.raw["date"]).strftime("%H") == "09"


async def test_a_fourth_care_message_in_seven_days_is_not_sent(app: App, customer: FakeUser) -> None:
    cid = await add_customer(app, TG)
    for day in range(4):
        due = START + timedelta(days=day)
        await enqueue(app, f"care:{day}", TG, customer_id=cid, kind="reorder", not_before=due, text=f"care {day}",
                      expires_at=due + timedelta(days=2))
    await advance(app.jobs, timedelta(days=7))
    assert [m.text for m in customer.inbox()] == ["care 0", "care 1", "care 2"]
    row = (await outbox_by_key(app))["care:3"]
    assert row.status == "skipped" and row.skip_reason == "cap"


async def test_one_care_message_a_day_the_most_valuable_first(app: App, customer: FakeUser) -> None:
    cid = await add_customer(app, TG)
    await enqueue(app, "care:winback", TG, customer_id=cid, kind="winback", priority=13, text="We miss you")
    await enqueue(app, "care:reorder", TG, customer_id=cid, kind="reorder", priority=11, text="Rice?")
    await enqueue(app, "care:survey", TG, customer_id=cid, kind="survey", priority=12, text="Rate us")
    await enqueue(app, "svc:order", TG, category="service", text="Your order is on its way")
    await run_job(app.jobs, "deliver_outbox")
    assert [m.text for m in customer.inbox()] == ["Your order is on its way", "Rice?"]  # service is never capped
    rows = await outbox_by_key(app)
    tomorrow_9 = datetime(2026, 3, 3, 1, 0, tzinfo=UTC)
    assert rows["care:survey"].not_before == tomorrow_9 and rows["care:survey"].skip_reason == "cap"
    await advance(app.jobs, timedelta(days=2))
    assert [m.text for m in customer.inbox()][2:] == ["Rate us", "We miss you"]


async def test_a_birthday_and_a_reminder_due_the_same_day_arrive_on_two_days_birthday_first(
        app: App, customer: FakeUser) -> None:
    # Rice runs out on Friday 6 March: the reminder is due on Wednesday the 4th at 09:00, the birthday's 10:00.
    await rice_customer(app, last_days_ago=6, birthday=date(1985, 3, 4))
    await advance(app.jobs, timedelta(days=3, hours=2))  # to Thursday 5 March, 12:00
    texts = [(local(m.raw["date"]), m.text or "") for m in customer.inbox()]
    greeting = [(at.strftime("%d %H:%M"), text) for at, text in texts if "Happy birthday" in text]
    reminder = [(at.strftime("%d %H:%M"), text) for at, text in texts if "runs out around" in text]
    assert [at for at, _ in greeting] == ["04 10:00"]
    assert [at for at, _ in reminder] == ["05 09:00"]
    rows = {r.kind: r for r in await care_rows(app)}
    assert rows["birthday"].status == "sent" and rows["reorder"].status == "sent"


async def test_stop_takes_effect_at_once(app: App, world: FakeTelegram, customer: FakeUser) -> None:
    from tests.conftest import register

    await register(customer, "Mei")
    cid = (await customer_row_by_tg(app, TG)).id
    rice = await add_product(app)
    await add_order(app, cid, rice, START - timedelta(days=19), quantity=2)
    await add_order(app, cid, rice, START - timedelta(days=9), quantity=2)
    app.clock.set(datetime(2026, 3, 2, 14, 0, tzinfo=UTC))  # evening: planned for tomorrow morning
    await run_job(app.jobs, "plan_care")
    planned = await care_rows(app)
    assert {r.kind for r in planned} == {"reorder", "survey"} and {r.status for r in planned} == {"pending"}
    before = len(customer.inbox())
    await customer.send("/stop")
    assert {(r.status, r.skip_reason) for r in await care_rows(app)} == {("skipped", "stopped by customer")}
    await advance(app.jobs, timedelta(days=3))
    assert len(customer.inbox()) == before + 1  # only the /stop answer
    assert len(await care_rows(app)) == len(planned)  # nothing new planned either


async def test_consent_withdrawn_after_planning_skips_at_delivery(app: App, customer: FakeUser) -> None:
    cid = await add_customer(app, TG)
    await enqueue(app, "care:x", TG, customer_id=cid, text="Hello")
    async with app.db.session() as session:
        await session.execute(update(Customer).where(Customer.id == cid).values(care_consent=False))
        await session.commit()
    await run_job(app.jobs, "deliver_outbox")
    assert customer.inbox() == []
    assert (await outbox_by_key(app))["care:x"].skip_reason == "no consent"


async def test_a_reminder_is_dropped_when_the_customer_already_reordered(app: App, customer: FakeUser) -> None:
    app.clock.set(datetime(2026, 3, 2, 14, 0, tzinfo=UTC))
    cid, rice = await rice_customer(app, last_days_ago=9)
    await run_job(app.jobs, "plan_care")
    await add_order(app, cid, rice, app.clock.now() + timedelta(minutes=5), status="new")
    await advance(app.jobs, timedelta(hours=12))
    assert not any("runs out" in (m.text or "") for m in customer.inbox())
    (row,) = await care_rows(app, "reorder")
    assert row.status == "skipped" and row.skip_reason == "already ordered"


async def test_care_daily_skips_expired_rows(app: App) -> None:
    cid = await add_customer(app, TG, consent=True)
    await enqueue(app, "care:old", TG, customer_id=cid, not_before=START + timedelta(days=5),
                  expires_at=START + timedelta(hours=3))
    await advance(app.jobs, timedelta(hours=20))  # past 03:00 local
    row = (await outbox_by_key(app))["care:old"]
    assert row.status == "skipped" and row.skip_reason == "expired"


# ----- buttons -------------------------------------------------------------------------------------------------

async def _reminded(app: App, customer: FakeUser) -> tuple[int, int, OutboxMessage]:
    cid, rice = await rice_customer(app, last_days_ago=9)
    await run_job(app.jobs, "plan_care")
    await run_job(app.jobs, "deliver_outbox")
    (row,) = await care_rows(app, "reorder")
    assert row.status == "sent"
    return cid, rice, row


async def _orders(app: App) -> list[Order]:
    async with app.db.session() as session:
        return list(await session.scalars(select(Order).order_by(Order.id)))


async def test_order_again_creates_a_reminder_order(app: App, customer: FakeUser) -> None:
    cid, rice, row = await _reminded(app, customer)
    await customer.press("Order again")
    assert customer.last().labels[0] == "✅ Confirm order"
    assert "2 × Jasmine rice 5 kg" in (customer.last().text or "")
    await customer.press("Confirm order")
    order = (await _orders(app))[-1]
    assert order.source == "reminder" and order.attributed_outbox_id == row.id
    assert len(await _orders(app)) == 3


async def test_not_now_asks_again_in_a_few_days(app: App, customer: FakeUser) -> None:
    cid, rice, row = await _reminded(app, customer)
    await customer.press("Not now")
    assert customer.last().text == f"All right — we will ask again in {rules.SNOOZE_DAYS} days."
    assert customer.inbox()[-2].buttons == []  # the reminder lost its buttons
    await advance(app.jobs, timedelta(days=2, hours=12))
    assert sum("runs out" in (m.text or "") for m in customer.inbox()) == 1
    await advance(app.jobs, timedelta(days=1))
    reminders = await care_rows(app, "reorder")
    assert len(reminders) == 2 and ":s" in reminders[1].dedupe_key and reminders[1].status == "sent"
    # The rice ran out (by our count) on 3 March, before the reminder came again on the 5th.
    assert "should have run out by now" in (customer.last().text or "")


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_a_reminder_asked_again_after_the_run_out_day_names_no_past_date(app: App, customer: FakeUser,
                                                                                lang: str) -> None:
    cid, rice = await rice_customer(app, last_days_ago=9, language=lang)  # runs out on 3 March
    await run_job(app.jobs, "plan_care")
    await run_job(app.jobs, "deliver_outbox")
    first = customer.last().text or ""
    assert ("3 March" in first) if lang == "en" else ("3月3日" in first)
    await customer.press("Not now" if lang == "en" else "以后再说")
    await advance(app.jobs, timedelta(days=3, hours=12))
    again = customer.last().text or ""
    assert again != first and "3 March" not in again and "3月3日" not in again
    assert ("should have run out by now" in again) if lang == "en" else ("现在应该已经用完了" in again)


async def test_a_reminder_asked_again_before_the_run_out_day_still_names_it(app: App, customer: FakeUser) -> None:
    app.settings.reorder_days_before = 5
    cid, rice = await rice_customer(app, interval_days=20, last_days_ago=15)  # runs out on 7 March
    await run_job(app.jobs, "plan_care")
    await run_job(app.jobs, "deliver_outbox")
    await customer.press("Not now")
    await advance(app.jobs, timedelta(days=3, hours=1))
    assert "runs out around Saturday, 7 March" in (customer.last().text or "")


async def test_stop_these_reminders_is_per_product(app: App, customer: FakeUser) -> None:
    cid, rice, row = await _reminded(app, customer)
    await customer.press("Stop these reminders")
    assert "no more reminders about Jasmine rice 5 kg" in (customer.last().text or "")
    async with app.db.session() as session:
        stops = list(await session.scalars(select(CareStop)))
    assert [(s.customer_id, s.product_id, s.kind) for s in stops] == [(cid, rice, "stop")]
    await add_order(app, cid, rice, app.clock.now())
    app.clock.advance(timedelta(days=9))
    await plan(app.jobs, app.clock.now())
    assert len(await care_rows(app, "reorder")) == 1
    assert (await customer_row(app, customer.id)).care_consent  # other care messages stay on


async def test_care_buttons_of_someone_else_or_stale_are_refused(app: App, world: FakeTelegram,
                                                                 customer: FakeUser) -> None:
    cid, rice, row = await _reminded(app, customer)
    other = FakeUser(world, TG + 50, "Bo")
    await add_customer(app, TG + 50, name="Bo")
    await other.press_data(CareCallback(a="again").pack(), customer.last())  # someone else's reminder
    await customer.press("Not now")
    await customer.press_data(CareCallback(a="later").pack(), customer.last())  # not on a care message
    await customer.press_data(CareCallback(a="rate", v=5).pack(), customer.inbox()[-2])  # a survey action on a reminder
    assert other.alerts()[-3:] == ["This button has expired."] * 3
    async with app.db.session() as session:
        assert [s.kind for s in await session.scalars(select(CareStop))] == ["snooze"]  # only the real press


async def test_double_press_of_not_now_is_harmless(app: App, customer: FakeUser) -> None:
    cid, rice, row = await _reminded(app, customer)
    reminder = customer.last()
    await customer.press("Not now", reminder)
    await customer.press_data(CareCallback(a="later").pack(), reminder)
    async with app.db.session() as session:
        assert len(list(await session.scalars(select(CareStop)))) == 1


# ----- the survey -------------------------------------------------------------------------------------------------

async def _surveyed(app: App, customer: FakeUser) -> int:
    cid = await add_customer(app, TG)
    tea = await add_product(app, "tea", name="Green tea", days_per_unit_per_person=None)  # no reminder for it
    order_id = await add_order(app, cid, tea, START - timedelta(days=3), delivered_at=START - timedelta(days=2))
    await run_job(app.jobs, "plan_care")
    await run_job(app.jobs, "deliver_outbox")
    return order_id


async def _answer(app: App, order_id: int) -> SurveyAnswer | None:
    async with app.db.session() as session:
        return await Repos(session).care.answer(order_id)


async def test_survey_rating_then_comment(app: App, world: FakeTelegram, customer: FakeUser) -> None:
    order_id = await _surveyed(app, customer)
    await customer.press("4 ⭐")
    assert "Thank you for rating order no." in (customer.last().text or "")
    await customer.send("Rice was great, <b>driver</b> was late")
    assert (customer.last().text or "").startswith("Thank you — your comment")
    answer = await _answer(app, order_id)
    assert answer is not None and answer.rating == 4 and answer.comment == "Rice was great, <b>driver</b> was late"
    await run_job(app.jobs, "deliver_outbox")
    notice = world.last(app.settings.staff_chat_id)
    assert "<b>driver</b>" in (notice.text or "")  # escaped: shown as typed


async def test_survey_skip_comment_and_low_rating_tells_staff(app: App, world: FakeTelegram,
                                                              customer: FakeUser) -> None:
    order_id = await _surveyed(app, customer)
    await customer.press("1 ⭐")
    await customer.press("Skip")
    assert customer.last().text == "Thank you for your rating!"
    await run_job(app.jobs, "deliver_outbox")
    assert "Low rating" in (world.last(app.settings.staff_chat_id).text or "")
    answer = await _answer(app, order_id)
    assert answer is not None and answer.rating == 1 and answer.comment is None


async def test_survey_comment_wrong_input_cancel_and_restart(app: App, world: FakeTelegram,
                                                             customer: FakeUser) -> None:
    order_id = await _surveyed(app, customer)
    await customer.press("5 ⭐")
    await customer.send_sticker()
    assert "Type your comment about order no." in (customer.last().text or "")
    await customer.send("/orders")
    assert "Type your comment" in (customer.last().text or "")
    await customer.send("x" * 1001)
    assert "under 1000 characters" in (customer.inbox()[-2].text or "")
    app = await restart(app, world)
    await customer.send("Lovely")
    answer = await _answer(app, order_id)
    assert answer is not None and answer.comment == "Lovely"
    await app.close()


async def test_survey_cancel_and_double_press(app: App, customer: FakeUser) -> None:
    order_id = await _surveyed(app, customer)
    survey = customer.last_with_buttons()
    await customer.press("3 ⭐", survey)
    await customer.send("/cancel")
    await customer.press_data(CareCallback(a="rate", v=5).pack(), survey)
    assert customer.alerts()[-1] == "You already rated this order. Thank you!"
    answer = await _answer(app, order_id)
    assert answer is not None and answer.rating == 3 and answer.comment is None
    await customer.send("A later message is not a comment")
    assert (await _answer(app, order_id)).comment is None  # type: ignore[union-attr]


# ----- attribution --------------------------------------------------------------------------------------------------

async def _create_order(app: App, cid: int, product_id: int, source: str = "dialog") -> Order:
    async with app.db.session() as session:
        repos = Repos(session)
        product = await repos.products.get(product_id)
        assert product is not None
        order, _ = await repos.orders.create(customer_id=cid, lines=[(product, 1)], currency="CNY",
                                             now=app.clock.now(), source=source)
        await session.commit()
        return order


async def test_an_order_within_seven_days_of_a_reminder_is_credited_to_it(app: App, customer: FakeUser) -> None:
    cid, rice, row = await _reminded(app, customer)
    other = await add_product(app, "oil-5l", name="Peanut oil")
    app.clock.advance(timedelta(days=3))
    unrelated = await _create_order(app, cid, other)
    assert unrelated.attributed_outbox_id is None  # a reminder is about its product
    order = await _create_order(app, cid, rice)
    assert order.attributed_outbox_id == row.id and order.source == "dialog"


async def test_an_order_after_the_window_is_not_credited(app: App, customer: FakeUser) -> None:
    cid, rice, row = await _reminded(app, customer)
    app.clock.advance(timedelta(days=app.settings.attribution_days, minutes=1))
    order = await _create_order(app, cid, rice)
    assert order.attributed_outbox_id is None


async def test_an_order_after_a_winback_is_marked_winback(app: App, customer: FakeUser) -> None:
    cid, rice = await rice_customer(app, interval_days=10, last_days_ago=50)
    await run_job(app.jobs, "plan_care")
    await run_job(app.jobs, "deliver_outbox")
    (row,) = await care_rows(app, "winback")
    app.clock.advance(timedelta(days=2))
    order = await _create_order(app, cid, rice)
    assert order.source == "winback" and order.attributed_outbox_id == row.id


async def test_winback_order_again_button(app: App, customer: FakeUser) -> None:
    cid, rice = await rice_customer(app, interval_days=10, last_days_ago=50)
    await run_job(app.jobs, "plan_care")
    await run_job(app.jobs, "deliver_outbox")
    await customer.press("Order again")
    await customer.press("Confirm order")
    order = (await _orders(app))[-1]
    (row,) = await care_rows(app, "winback")
    assert order.source == "winback" and order.attributed_outbox_id == row.id


# ----- privacy --------------------------------------------------------------------------------------------------------

async def test_mydata_and_forget_cover_care_records(app: App, customer: FakeUser) -> None:
    import json

    from tests.conftest import register

    await register(customer, "Mei")
    cid = (await customer_row_by_tg(app, TG)).id
    tea = await add_product(app, "tea", name="Green tea", days_per_unit_per_person=None)  # no reminder for it
    order_id = await add_order(app, cid, tea, START - timedelta(days=3), delivered_at=START - timedelta(days=2))
    async with app.db.session() as session:
        repos = Repos(session)
        await repos.care.stop_product(cid, tea, None, START)
        await repos.care.rate(order_id, cid, None, 2, START)
        await repos.care.add_comment(order_id, cid, "late again", START)
        await session.commit()
    await customer.send("/mydata")
    document = json.loads(customer.last().file or b"{}")
    assert document["care_reminders"][0]["choice"] == "stop"
    assert document["order_ratings"][0]["comment"] == "late again"
    await customer.send("/forget")
    await customer.press(1)
    async with app.db.session() as session:
        assert list(await session.scalars(select(CareStop))) == []
        answer = await session.scalar(select(SurveyAnswer))
        assert answer is not None and answer.rating == 2 and answer.comment is None


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_care_messages_render_in_both_languages(app: App, customer: FakeUser, lang: str) -> None:
    await rice_customer(app, last_days_ago=9, language=lang, birthday=date(1990, 3, 2))
    cid = (await customer_row_by_tg(app, TG)).id
    tea = await add_product(app, "tea", name="Green tea", days_per_unit_per_person=None)
    await add_order(app, cid, tea, START - timedelta(days=3), delivered_at=START - timedelta(days=2))
    app.settings.care_cap_per_day = 5
    app.settings.care_cap_per_week = 5
    await run_job(app.jobs, "plan_care")
    await run_job(app.jobs, "deliver_outbox")
    texts = [m.text or "" for m in customer.inbox()]
    assert len(texts) == 4  # a greeting, a reminder and two surveys
    if lang == "zh":
        assert any("生日快乐" in t for t in texts) and any("泰国香米" in t for t in texts)


# ----- the jobs themselves ------------------------------------------------------------------------------------

async def test_plan_care_replans_only_when_something_changed(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    import jobs.care

    calls: list[datetime] = []
    original = jobs.care.plan

    async def counting(app: App, now: datetime) -> jobs.care.PlanResult:
        calls.append(now)
        return await original(app, now)

    monkeypatch.setattr(jobs.care, "plan", counting)
    cid, rice = await rice_customer(app, interval_days=20, last_days_ago=2)  # nothing due for weeks
    await run_job(app.jobs, "plan_care")
    await run_job(app.jobs, "plan_care")
    assert len(calls) == 1
    app.clock.advance(timedelta(hours=1))
    await add_order(app, cid, rice, app.clock.now())  # a new order: plan again
    await run_job(app.jobs, "plan_care")
    assert len(calls) == 2
    app.clock.advance(rules.REPLAN_EVERY)  # and in full at least this often
    await run_job(app.jobs, "plan_care")
    assert len(calls) == 3


def test_daily_jobs_run_when_their_local_time_passes() -> None:
    from datetime import time

    from jobs.runner import _passes

    start = datetime(2026, 3, 1, 18, 0, tzinfo=UTC)  # 02:00 in Shanghai
    assert _passes(time(3, 0), SHANGHAI, start, start + timedelta(hours=1))
    assert not _passes(time(3, 0), SHANGHAI, start + timedelta(hours=1), start + timedelta(hours=2))
    assert _passes(time(3, 0), SHANGHAI, start + timedelta(hours=1), start + timedelta(days=1, hours=1))


async def test_the_scheduler_registers_the_jobs_and_runs_the_delivery_loop(app: App) -> None:
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    from jobs.delivery import worker_for
    from jobs.scheduler import start_scheduler, stop_scheduler

    scheduler = start_scheduler(app.jobs)
    try:
        assert isinstance(scheduler.get_job("care_daily").trigger, CronTrigger)
        plan_job = scheduler.get_job("plan_care")
        assert isinstance(plan_job.trigger, IntervalTrigger) and plan_job.max_instances == 1 and plan_job.coalesce
        assert worker_for(app.jobs).live
    finally:
        await stop_scheduler(app.jobs)
    assert not worker_for(app.jobs).live


async def test_winback_targets_come_from_the_purchase_model_once_a_day(app: App, monkeypatch: pytest.MonkeyPatch
                                                                       ) -> None:
    """Planning asks /churn's ranking for its win-back targets at most once per business day."""
    from bot.reports import churn

    calls: list[datetime] = []
    real = churn.ranking

    async def counted(session, settings, now):  # type: ignore[no-untyped-def]
        calls.append(now)
        return await real(session, settings, now)

    monkeypatch.setattr(churn, "ranking", counted)
    await rice_customer(app, interval_days=10, last_days_ago=50)
    await plan(app.jobs, app.clock.now())
    await plan(app.jobs, app.clock.now() + timedelta(hours=1))
    assert len(calls) == 1
    # One customer: too few repeat buyers to fit, so the lapse rule alone decides (no targets).
    assert app.jobs.care.winback_targets[1] is None
    assert len(await care_rows(app, "winback")) == 1
    await plan(app.jobs, app.clock.now() + timedelta(days=1))
    assert len(calls) == 2
