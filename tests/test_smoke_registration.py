from bot.app import App
from bot.fake_telegram import FakeTelegram, FakeUser
from tests.conftest import register


async def test_register_happy_path(app: App, world: FakeTelegram, customer: FakeUser) -> None:
    await register(customer, "<b>Li & Co</b> 🍚")
    assert "<b>Li & Co</b> 🍚" in customer.last().text
    await customer.send("/profile")
    assert "<b>Li & Co</b> 🍚" in customer.last().text
