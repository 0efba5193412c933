"""What care messages say and which buttons they carry.

Used by the planner (``jobs.care``), which writes them to the outbox, and by
the care buttons (``handlers.care``). A press finds the care message it
answers by the message it is on (the outbox row keeps the Telegram message
id), so the buttons of all reminders in one language are the same and a
forged press on any other message finds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NamedTuple

from aiogram.filters.callback_data import CallbackData

from bot.callback_ids import RowId
from bot.config import LANGUAGES
from bot.rules import care as rules
from bot.texts import TextRenderer


class CareCallback(CallbackData, prefix="care"):
    a: str  # again | later | stop | rate | skip | menu
    v: RowId = 0  # rate: 1–5; skip: the order whose comment is skipped


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
    unit_zh: str | None = None

    def name(self, lang: str) -> str:
        return self.name_zh if lang == "zh" else self.name_en

    def unit_for(self, lang: str) -> str:
        return self.unit_zh if lang == "zh" and self.unit_zh else self.unit


def render_text(renderer: TextRenderer, planned: rules.Planned, customer: CustomerFacts,
                product: ProductFacts | None = None, delivered_at: datetime | None = None,
                tz: Any = None, on: date | None = None) -> str:
    """The message (same as ``renderer.render(lang, "care/<kind>", ...)``, through :meth:`TextRenderer.bulk`).

    ``on``: the customer's local day the message first may go. A reminder whose run-out day is
    already past by then (asked again after "Not now") says so instead of naming a past date.
    """
    lang = customer.language if customer.language in LANGUAGES else LANGUAGES[0]
    kind = planned.kind
    if kind == rules.KIND_REORDER:
        assert product is not None
        variables = {"lang": lang, "name": customer.name, "product": product.name(lang), "unit": product.unit_for(lang),
                     "quantity": planned.quantity or 1, "due": planned.due,
                     "overdue": on is not None and planned.due is not None and planned.due < on}
    elif kind == rules.KIND_SURVEY:
        local = delivered_at.astimezone(tz) if delivered_at is not None and tz is not None else delivered_at
        variables = {"lang": lang, "name": customer.name, "order_id": planned.order_id,
                     "delivered": local.date() if local else None}
    else:
        variables = {"lang": lang, "name": customer.name}
    return renderer.bulk(lang, f"care/{kind}")(variables)


def markup(renderer: TextRenderer, kind: str, lang: str, *, can_reorder: bool = True) -> dict[str, Any] | None:
    """The buttons of a care message of this kind (JSON, for the outbox); the same for every row of a kind
    and language (the planner makes them once per pass)."""
    def button(label: str, action: str, number: int = 0) -> dict[str, str]:
        return {"text": renderer.render(lang, f"buttons/{label}", value=number),
                "callback_data": CareCallback(a=action, v=number).pack()}

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
