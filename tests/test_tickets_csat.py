"""After a resolution: the survey, ratings, comments, "not solved", reopening."""

from __future__ import annotations

from datetime import timedelta

from bot.app import App
from bot.fake_telegram import FakeTelegram, FakeUser
from bot.services.tickets import CsatCallback
from tests.conftest import MANAGER_ID, STAFF_CHAT_ID, register
from tests.helpers import card, deliver, events, file_complaint, outbox, ticket


async def _resolved(customer: FakeUser, staff: FakeUser, world: FakeTelegram, app: App, ticket_id: int = 1,
                    text: str = "torn bag", register_first: bool = True) -> None:
    if register_first:
        await register(customer, "Mei")
    await file_complaint(customer, text)
    await staff.press("Resolve", card(world, ticket_id))
    await staff.send("New bag delivered.")
    await deliver(app)


def _survey(customer: FakeUser, ticket_id: int = 1):  # type: ignore[no-untyped-def]
    for message in reversed(customer.inbox()):
        if f"complaint no. {ticket_id} is resolved" in (message.text or ""):
            return message
    raise AssertionError("no survey")


async def test_rating_closes_and_asks_for_a_comment(app: App, world: FakeTelegram, customer: FakeUser,
                                                    staff: FakeUser) -> None:
    await _resolved(customer, staff, world, app)
    survey = _survey(customer)
    assert "New bag delivered." in survey.text
    assert survey.labels == ["1 ⭐", "2 ⭐", "3 ⭐", "4 ⭐", "5 ⭐", "❌ Not solved"]
    await customer.press("5 ⭐", survey)
    assert survey.labels == ["❌ Not solved"]  # the rating buttons are gone
    assert "Anything you would like to add?" in customer.last().text
    saved = await ticket(app)
    assert (saved.rating, saved.status) == (5, "closed") and saved.rated_at is not None
    await customer.send("Fast and <kind> & polite")
    assert "Thank you for your feedback" in customer.last().text
    assert (await ticket(app)).rating_comment == "Fast and <kind> & polite"
    assert await outbox(app, "csat:1:low") == []
    assert "Closed" in card(world).text


async def test_rating_twice_and_from_another_ticket(app: App, world: FakeTelegram, customer: FakeUser,
                                                    staff: FakeUser) -> None:
    await _resolved(customer, staff, world, app)
    await _resolved(customer, staff, world, app, ticket_id=2, text="late", register_first=False)
    first, second = _survey(customer, 1), _survey(customer, 2)
    four = CsatCallback(action="rate", ticket=1, value=4).pack()
    # The first survey's button, pressed after the second survey came: rates ticket 1.
    await customer.press_data(four, first)
    await customer.press_data(four, first)
    await customer.press_data(CsatCallback(action="rate", ticket=1, value=1).pack(), first)
    assert "already rated no. 1" in customer.alerts()[-1]
    assert ((await ticket(app, 1)).rating, (await ticket(app, 2)).rating) == (4, None)
    assert [e.detail for e in await events(app, 1) if e.kind == "rating"] == ["4"]
    await customer.press("Skip")
    await customer.press("3 ⭐", second)
    assert ((await ticket(app, 1)).rating, (await ticket(app, 2)).rating) == (4, 3)
    # Someone else's ticket: refused.
    other = FakeUser(world, 100002, "Li")
    await register(other, "Li")
    await other.press_data(CsatCallback(action="rate", ticket=2, value=1).pack())
    assert "expired" in other.alerts()[-1] and (await ticket(app, 2)).rating == 3


async def test_low_rating_alerts_managers_and_offers_reopen(app: App, world: FakeTelegram, customer: FakeUser,
                                                            staff: FakeUser, manager: FakeUser) -> None:
    await _resolved(customer, staff, world, app)
    await customer.press("1 ⭐", _survey(customer))
    assert "We are sorry" in customer.last().text
    question = customer.last()
    assert question.labels == ["🔁 Reopen my complaint", "Skip"]
    saved = await ticket(app)
    assert (saved.rating, saved.status) == (1, "resolved")  # not confirmed
    alert = await outbox(app, "csat:1:low")
    assert [r.chat_id for r in alert] == [MANAGER_ID] and "1/5" in alert[0].text
    await customer.send("Nobody called me back")
    assert question.labels == ["🔁 Reopen my complaint"]  # Skip is done with; reopening is still possible
    assert "Nobody called me back" in (await outbox(app, "csat:1:comment"))[0].text
    await deliver(app)
    assert any("Low rating: 1/5" in (m.text or "") for m in manager.inbox())
    assert any("Nobody called me back" in (m.text or "") for m in manager.inbox())


async def test_reopen_after_a_low_rating(app: App, world: FakeTelegram, customer: FakeUser, staff: FakeUser) -> None:
    await _resolved(customer, staff, world, app)
    await customer.press("2 ⭐", _survey(customer))
    await customer.press("Reopen")
    assert "is open again" in customer.last().text
    saved = await ticket(app)
    assert saved.status == "in_progress" and saved.reopen_count == 1 and saved.resolved_at is None
    assert "not solved" in world.last(STAFF_CHAT_ID).text and "Mei" in world.last(STAFF_CHAT_ID).text
    assert "Resolve" in " ".join(card(world).labels)
    # Resolved again: the customer is told again, with "not solved" but no second rating.
    await staff.press("Resolve", card(world))
    await staff.send("Refund sent.")
    await deliver(app)
    again = _survey(customer)
    assert "Refund sent." in again.text and again.labels == ["❌ Not solved"]
    assert [r.dedupe_key for r in await outbox(app, "csat:1") if r.kind == "csat"] == ["csat:1", "csat:1:r1"]


async def test_not_solved_within_the_window_and_after(app: App, world: FakeTelegram, customer: FakeUser,
                                                      staff: FakeUser) -> None:
    await _resolved(customer, staff, world, app)
    survey = _survey(customer)
    not_solved = CsatCallback(action="notsolved", ticket=1).pack()
    await customer.press("Not solved", survey)
    assert (await ticket(app)).status == "in_progress"
    await customer.press_data(not_solved, survey)  # a double press
    assert "our staff are on it" in customer.alerts()[-1]
    assert (await ticket(app)).reopen_count == 1
    # A rating on a reopened ticket is refused until it is resolved again.
    await customer.press_data(CsatCallback(action="rate", ticket=1, value=5).pack(), survey)
    assert "was reopened" in customer.alerts()[-1]
    await staff.press("Resolve", card(world))
    await staff.send("Done properly now.")
    app.clock.advance(timedelta(days=8))  # type: ignore[attr-defined]
    await customer.press_data(not_solved, survey)
    assert "can no longer be reopened" in customer.last().text
    assert (await ticket(app)).status in ("resolved", "closed")


async def test_comment_wrong_input(app: App, world: FakeTelegram, customer: FakeUser, staff: FakeUser) -> None:
    await _resolved(customer, staff, world, app)
    await customer.press("4 ⭐", _survey(customer))
    answers = await customer.send_sticker()
    assert "Anything you would like to add?" in answers[-1].text
    answers = await customer.send("y" * 1200)
    assert "the limit is 1000" in answers[0].text
    await customer.send("/cancel")
    assert (await ticket(app)).rating == 4 and (await ticket(app)).rating_comment is None


async def test_restart_while_the_customer_writes_a_comment(app: App, world: FakeTelegram, customer: FakeUser,
                                                           staff: FakeUser) -> None:
    from tests.conftest import restart

    await _resolved(customer, staff, world, app)
    await customer.press("3 ⭐", _survey(customer))
    app = await restart(app, world)
    await customer.send("OK in the end")
    assert (await ticket(app)).rating_comment == "OK in the end"
    await app.close()
