"""A handler that fails (issue 10, item 6): the person is told in their language, a pressed
button stops spinning, one log record per failed update with its id and one traceback, and
no personal data in any log line (SQL parameters are never logged)."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from bot.app import App
from bot.fake_telegram import FakeTelegram, FakeUser
from bot.rules import customer_file
from storage.repositories.customers import CustomerRepo
from tests.conftest import register
from tests.helpers import shown

PHONE = "+86 138 0013 8000"


def log_text(caplog: pytest.LogCaptureFixture) -> str:
    """Every record as a handler would write it: message, arguments and traceback."""
    formatter = logging.Formatter("%(levelname)s %(name)s %(message)s")
    return "\n".join(formatter.format(record) for record in caplog.records)


async def test_a_failing_step_tells_the_person_and_logs_once(
    app: App, customer: FakeUser, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    await customer.send("/start")
    await customer.send("Mei Lin Secretname")

    def broken(text: str, region: str) -> str:
        raise RuntimeError("the phone rules broke")

    monkeypatch.setattr(customer_file, "parse_phone", broken)
    with caplog.at_level(logging.INFO), pytest.raises(RuntimeError):
        await customer.send(PHONE)
    assert customer.last().text == shown("errors/internal")
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(failures) == 1
    assert "update " in failures[0].getMessage() and "handler process_phone" in failures[0].getMessage()
    assert log_text(caplog).count("Traceback") == 1
    logged = log_text(caplog)
    for secret in ("Secretname", "138 0013 8000", "+8613800138000"):
        assert secret not in logged


async def test_a_chinese_speaker_is_told_in_chinese(app: App, world: FakeTelegram,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    person = FakeUser(world, 100_002, "美玲", language_code="zh-hans")
    await person.send("/start")
    monkeypatch.setattr(customer_file, "parse_name", lambda text: (_ for _ in ()).throw(RuntimeError("x")))
    with pytest.raises(RuntimeError):
        await person.send("李美玲")
    assert person.last().text == shown("errors/internal", "zh")


async def test_a_failing_button_stops_spinning(app: App, customer: FakeUser, world: FakeTelegram,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    await register(customer)
    await customer.send("/profile")

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the profile broke")

    monkeypatch.setattr(CustomerRepo, "update_field", broken)
    await customer.press("Household")
    with pytest.raises(RuntimeError):
        await customer.press("5")
    answers = world.calls_of("answerCallbackQuery")
    assert answers and answers[-1].ok and answers[-1].params.get("text")
    assert customer.last().text == shown("errors/internal")


async def test_sql_parameters_never_reach_the_log(app: App, customer: FakeUser, monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """A database error names the statement, not the values (names, phones, addresses)."""
    await customer.send("/start")

    async def failing_register(self: CustomerRepo, telegram_id: int, fields: dict, language: str, now: object) -> None:
        await self.session.execute(text("INSERT INTO no_such_table (name, phone) VALUES (:name, :phone)"),
                                   {"name": fields.get("name"), "phone": fields.get("phone")})

    monkeypatch.setattr(CustomerRepo, "register", failing_register)
    for answer in ("Mei Lin Secretname", PHONE, "1990-03-25", "12 Hidden Lane", "3"):
        await customer.send(answer)
    await customer.press("Yes")
    # OperationalError on SQLite, ProgrammingError on PostgreSQL
    with caplog.at_level(logging.INFO), pytest.raises(DatabaseError):
        await customer.press("Confirm")
    logged = log_text(caplog)
    assert "no_such_table" in logged  # the statement is there to debug with
    for secret in ("Secretname", "Hidden Lane", "+8613800138000"):
        assert secret not in logged
    assert customer.last().text == shown("errors/internal")


async def test_a_failure_after_a_message_went_out_says_so(app: App, customer: FakeUser, staff: FakeUser,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The customer already got the staff reply when the handler failed: staff must not hear "nothing was saved"."""
    from storage.repositories.tickets import TicketRepo
    from tests.helpers import card, file_complaint, messages

    await register(customer)
    await file_complaint(customer)
    world = staff.world

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("could not store the message")

    monkeypatch.setattr(TicketRepo, "add_message", broken)
    with pytest.raises(RuntimeError):
        await staff.send("So sorry, a new bag comes today", reply_to=card(world).message_id)
    assert "new bag comes today" in (customer.last().text or "")
    assert staff.last().text == shown("errors/internal_after_save")
    assert [m for m in await messages(app) if m.direction == "out"] == []
