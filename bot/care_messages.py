"""What care messages say and which buttons they carry.

Used by the planner (``jobs.care``), which writes them to the outbox, and by
the care buttons (``handlers.care``). The buttons name their outbox row, so a
press finds the message it answers (and checks it belongs to the presser).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from aiogram.filters.callback_data import CallbackData
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.rules import care as rules
from bot.texts import TextRenderer


class CareCallback(CallbackData, prefix="care"):
    a: str  # again | later | stop | rate | skip | menu
    o: int  # the outbox row of the message
    v: int = 0  # rate: 1–5


@dataclass(frozen=True)
class CustomerFacts:
    """The columns of a customer the planner reads (no ORM object)."""

    id: int
    telegram_id: int
    language: str
    timezone: str | None
    household_size: int | None
    birthday: date | None
    name: str | None


@dataclass(frozen=True)
class ProductFacts:
    id: int
    name_en: str
    name_zh: str
    unit: str
    days_per_unit_per_person: float | None
    active: bool

    def name(self, lang: str) -> str:
        return self.name_zh if lang == "zh" else self.name_en


def render_text(renderer: TextRenderer, planned: rules.Planned, customer: CustomerFacts,
                product: ProductFacts | None = None, delivered_at: datetime | None = None,
                tz: Any = None) -> str:
    lang = customer.language
    context: dict[str, Any] = {"name": customer.name}
    if planned.kind == rules.KIND_REORDER:
        assert product is not None
        context.update(product=product.name(lang), unit=product.unit, quantity=planned.quantity or 1,
                       due=planned.due)
    elif planned.kind == rules.KIND_SURVEY:
        local = delivered_at.astimezone(tz) if delivered_at is not None and tz is not None else delivered_at
        context.update(order_id=planned.order_id, delivered=local.date() if local else None)
    return renderer.render(lang, f"care/{planned.kind}.html", **context)


def markup(renderer: TextRenderer, kind: str, lang: str, row_id: int, *, can_reorder: bool = True) -> dict[str, Any] | None:
    """The buttons of a care message whose outbox row is ``row_id`` (JSON, for the outbox)."""
    builder = InlineKeyboardBuilder()

    def button(label: str, action: str, number: int = 0, **ctx: Any) -> None:
        builder.button(text=renderer.render(lang, f"buttons/{label}", **ctx),
                       callback_data=CareCallback(a=action, o=row_id, v=number))

    if kind == rules.KIND_REORDER:
        button("care_order_again", "again")
        button("care_not_now", "later")
        button("care_stop_product", "stop")
        builder.adjust(1, 2)
    elif kind == rules.KIND_WINBACK:
        if can_reorder:
            button("care_order_again", "again")
        button("care_menu", "menu")
        builder.adjust(2)
    elif kind == rules.KIND_SURVEY:
        for value in range(1, 6):
            button("care_rating", "rate", value, value=value)
        builder.adjust(5)
    else:
        return None
    return builder.as_markup().model_dump(exclude_none=True)
