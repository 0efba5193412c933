"""Read once, write once: the SQL statements one update costs (issue 10, item 5).

Counted with SQLAlchemy's ``before_cursor_execute`` on every engine of the
app's database (the async one handlers use through their repositories, and
on SQLite the plain one the unit of work loads and writes with). A failure
prints the statements.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from bot.app import App
from bot.fake_telegram import FakeUser
from tests.helpers import SMALL_CATALOG, add_customer, load_catalog, orders, quick_order, to_summary


def counted(app: App) -> AbstractContextManager[list[str]]:
    return app.db.counting_statements()


def within(statements: list[str], budget: int, what: str) -> None:
    listing = "\n".join(f"  {n}. {s}" for n, s in enumerate(statements, 1))
    assert len(statements) <= budget, f"{what}: {len(statements)} statements, budget {budget}:\n{listing}"


async def test_a_registration_step(app: App, customer: FakeUser) -> None:
    await customer.send("/start")
    await customer.send("Mei Lin")
    with counted(app) as statements:
        replies = await customer.send("+86 138 0013 8000")
    assert replies, "the phone step answered nothing"
    within(statements, 3, "typing the phone number during registration")


async def test_each_registration_step(app: App, customer: FakeUser) -> None:
    await customer.send("/start")
    for answer in ("Mei Lin", "+86 138 0013 8000", "1990-03-25", "12 Rice Street", "3"):
        with counted(app) as statements:
            await customer.send(answer)
        within(statements, 3, f"answering {answer!r}")


async def test_a_menu_command_of_a_registered_customer(app: App, customer: FakeUser) -> None:
    await add_customer(app, customer.id, name="Mei Lin")
    for command in ("/help", "/start"):
        with counted(app) as statements:
            replies = await customer.send(command)
        assert replies
        within(statements, 2, command)


# Confirming an order: 1 the customer and dialog state (one SELECT), 2 the cart's products at today's
# prices (the quote must still hold; the card shows their names), 3 the order, credited to the care
# message it answered inside the same INSERT, 4 its items (one multi-row INSERT), 5 the dialog state
# (ended, keeping the placed order's key and number), 6 the staff card's message id, known only once
# Telegram answered (the short follow-up transaction). The placing is the order row itself: no
# history row is written for it.
ORDER_CONFIRM_BUDGET = 6


async def test_the_order_confirm(app: App, customer: FakeUser) -> None:
    await load_catalog(app, SMALL_CATALOG)
    await add_customer(app, customer.id, name="Mei Lin")
    await to_summary(customer)
    with counted(app) as statements:
        await customer.press("Confirm order")
    assert len(await orders(app)) == 1
    within(statements, ORDER_CONFIRM_BUDGET, "confirming an order")


async def test_confirm_pressed_again(app: App, customer: FakeUser) -> None:
    """The second press is answered from the dialog state the update loads anyway."""
    await load_catalog(app, SMALL_CATALOG)
    await add_customer(app, customer.id, name="Mei Lin")
    [summary] = await to_summary(customer)
    _, confirm = customer.find_button("Confirm order", summary)
    await customer.press_data(confirm["callback_data"], summary)
    with counted(app) as statements:
        await customer.press_data(confirm["callback_data"], summary)
    assert customer.alerts()[-1] == "Order #1 is already placed."
    within(statements, 1, "pressing Confirm again")


async def test_a_staff_card_button(app: App, customer: FakeUser, staff: FakeUser) -> None:
    """Accept on an order's card: the staff member and their dialog state, the order with its items and
    history (one statement), its customer, the compare-and-set, the history row. The card is redrawn
    from what was loaded and written, not read again."""
    await load_catalog(app, SMALL_CATALOG)
    await add_customer(app, customer.id, name="Mei Lin")
    await quick_order(app, customer)
    with counted(app) as statements:
        await staff.press("Accept")
    assert "order #1 is accepted" in customer.last().text
    within(statements, 5, "pressing Accept on an order's card")
