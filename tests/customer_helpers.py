"""Helpers for the customer-file conversations: registration, /profile, privacy.

Expected texts come from the templates themselves, rendered the way a reader
sees them, so a test checks that the right message came at the right moment.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from bot.app import App
from bot.fake_telegram import FakeUser, SentMessage
from bot.rules import customer_file as rules
from bot.telegram_html import check
from bot.texts import TextRenderer
from storage.models import Customer

RENDERER = TextRenderer()

# The order registration asks its questions in, and a good answer to each.
STEP_ORDER = ("name", "phone", "birthday", "address", "household", "consent", "confirm")


def shown(template: str, lang: str = "en", /, **context: Any) -> str:
    """A message template as the reader sees it (also proves it is valid HTML)."""
    return check(RENDERER.render(lang, template, **context))


def label(name: str, lang: str = "en", /, **context: Any) -> str:
    return RENDERER.render(lang, f"buttons/{name}", **context)


def question(step: str, lang: str = "en", /, **context: Any) -> str:
    """The question registration asks at ``step`` (without a current value)."""
    if step == "confirm":
        raise ValueError("the summary depends on the answers; build it with summary()")
    if step == "household":
        context = {"low": rules.HOUSEHOLD_MIN, "high": rules.HOUSEHOLD_MAX, **context}
    if step == "name":
        context = {"suggested": None, **context}
    return shown(f"registration/ask_{step}", lang, **context)


def error(code: str, lang: str = "en", /, **params: Any) -> str:
    return shown(f"errors/{code}", lang, **params)


def texts_of(messages: list[SentMessage]) -> list[str]:
    return [m.text or "" for m in messages]


async def customer_row(app: App, telegram_id: int) -> Customer | None:
    async with app.db.session() as session:
        return await session.scalar(select(Customer).where(Customer.telegram_id == telegram_id))


async def customer_count(app: App) -> int:
    async with app.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(Customer)) or 0)


async def walk_to(user: FakeUser, step: str, name: str = "Mei Lin") -> list[SentMessage]:
    """Start registration and answer every question before ``step``; return the last replies."""
    replies = await user.send("/start")
    answers = {
        "name": lambda: user.send(name),
        "phone": lambda: user.send_contact(),
        "birthday": lambda: user.send("1990-03-25"),
        "address": lambda: user.send("12 Rice Street"),
        "household": lambda: user.send("3"),
        "consent": lambda: user.press(label("yes")),
    }
    for current in STEP_ORDER[: STEP_ORDER.index(step)]:
        replies = await answers[current]()
    return replies


async def finish_from(user: FakeUser, step: str) -> None:
    """From ``step`` on: skip the optional questions, say yes, confirm."""
    for current in STEP_ORDER[STEP_ORDER.index(step):]:
        if current == "name":
            await user.send("Mei Lin")
        elif current == "phone":
            await user.send_contact()
        elif current in ("birthday", "address", "household"):
            await user.press(label("skip"))
        elif current == "consent":
            await user.press(label("yes"))
        else:
            await user.press(label("confirm"))
