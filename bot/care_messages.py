"""What care messages say and which buttons they carry.

Used by the planner (``jobs.care``), which writes them to the outbox, and by
the care buttons (``handlers.care``). The buttons name their outbox row, so a
press finds the message it answers (and checks it belongs to the presser).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NamedTuple

from aiogram.filters.callback_data import CallbackData

from bot.rules import care as rules
from bot.texts import TextRenderer


class CareCallback(CallbackData, prefix="care"):
    a: str  # again | later | stop | rate | skip | menu
    o: int  # the outbox row of the message
    v: int = 0  # rate: 1–5


class CustomerFacts(NamedTuple):
    """The columns of a customer the planner reads (no ORM object; a row of the query as it is)."""

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
    """The buttons of a care message whose outbox row is ``row_id`` (JSON, for the outbox).

    Built as plain dicts (the planner makes thousands): the same JSON an
    ``InlineKeyboardMarkup`` dumps to, with the labels rendered once per language.
    """
    def button(label: str, action: str, number: int = 0) -> dict[str, str]:
        return {"text": _label(renderer, lang, label, number),
                "callback_data": CareCallback(a=action, o=row_id, v=number).pack()}

    if kind == rules.KIND_REORDER:
        rows = [[button("care_order_again", "again")],
                [button("care_not_now", "later"), button("care_stop_product", "stop")]]
    elif kind == rules.KIND_WINBACK:
        rows = [([button("care_order_again", "again")] if can_reorder else []) + [button("care_menu", "menu")]]
    elif kind == rules.KIND_SURVEY:
        rows = [[button("care_rating", "rate", value) for value in range(1, 6)]]
    else:
        return None
    return {"inline_keyboard": rows}


_LABELS: dict[tuple[int, str, str, int], str] = {}


def _label(renderer: TextRenderer, lang: str, label: str, number: int) -> str:
    key = (id(renderer), lang, label, number)
    text = _LABELS.get(key)
    if text is None:
        text = _LABELS[key] = renderer.render(lang, f"buttons/{label}", value=number)
    return text
