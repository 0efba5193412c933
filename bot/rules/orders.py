"""Order rules: which status may follow which, totals, and what customers type.

Parsers return the clean value or raise :class:`bot.rules.customer_file.Invalid`
with the template that explains the problem (``orders/errors/<code>``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from bot.rules.customer_file import Invalid
from bot.rules.text_units import utf16_len

NEW = "new"
ACCEPTED = "accepted"
OUT_FOR_DELIVERY = "out_for_delivery"
DELIVERED = "delivered"
CANCELLED = "cancelled"

# The way forward; staff may skip steps (a shop that delivers at once).
FORWARD = (NEW, ACCEPTED, OUT_FOR_DELIVERY, DELIVERED)
FINAL = frozenset({DELIVERED, CANCELLED})
STATUSES = (*FORWARD, CANCELLED)

SOURCES = ("dialog", "reorder", "reminder", "winback")

QTY_MIN, QTY_MAX = 1, 999
QTY_QUICK = (1, 2, 3, 5, 10)
PAGE_SIZE = 8  # products per page of the inline keyboard
# Keeps the summary and the staff card under Telegram's 4096 characters:
# https://core.telegram.org/bots/api#sendmessage
MAX_CART_LINES = 12
NOTE_MAX = 300
REASON_MAX = 300
HISTORY_LIMIT = 10  # orders shown by /orders


def can_change(current: str, new: str, *, by_customer: bool = False) -> bool:
    """Whether an order may go from ``current`` to ``new``.

    Staff move an order forward (skipping steps is fine) or cancel it while it
    is open; a customer may only cancel an order nobody has accepted yet.
    """
    if current in FINAL or current == new or new not in STATUSES:
        return False
    if by_customer:
        return current == NEW and new == CANCELLED
    if new == CANCELLED:
        return True
    return current in FORWARD and FORWARD.index(new) > FORWARD.index(current)


def next_steps(current: str) -> list[str]:
    """The statuses staff can press next, in button order (Cancel last)."""
    return [s for s in (ACCEPTED, OUT_FOR_DELIVERY, DELIVERED, CANCELLED) if can_change(current, s)]


def line_total(quantity: int, unit_price: int) -> int:
    return quantity * unit_price


def order_total(lines: Iterable[tuple[int, int]]) -> int:
    """Sum of ``(quantity, unit_price)`` lines, in minor units."""
    return sum(line_total(q, p) for q, p in lines)


_INTEGER = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?\d*[.,]\d+")


def parse_quantity(text: str) -> int:
    raw = text.strip()
    if _DECIMAL.fullmatch(raw):
        raise Invalid("qty_not_whole", low=QTY_MIN, high=QTY_MAX)
    if not _INTEGER.fullmatch(raw):
        raise Invalid("qty_not_a_number", low=QTY_MIN, high=QTY_MAX)
    value = int(raw)
    if value < QTY_MIN:
        raise Invalid("qty_too_small", low=QTY_MIN, high=QTY_MAX)
    if value > QTY_MAX:
        raise Invalid("qty_too_large", low=QTY_MIN, high=QTY_MAX)
    return value


def add_to_cart(cart: list[list[int]], product_id: int, quantity: int) -> list[list[int]]:
    """A new cart with ``quantity`` more of a product; raises Invalid past the limits."""
    new = [list(line) for line in cart]
    for line in new:
        if line[0] == product_id:
            if line[1] + quantity > QTY_MAX:
                raise Invalid("qty_cart_limit", have=line[1], high=QTY_MAX)
            line[1] += quantity
            return new
    if len(new) >= MAX_CART_LINES:
        raise Invalid("cart_full", limit=MAX_CART_LINES)
    new.append([product_id, quantity])
    return new


def parse_note(text: str) -> str:
    note = text.strip()
    if not note:
        raise Invalid("note_empty")
    if utf16_len(note) > NOTE_MAX:  # as Telegram counts (an emoji is 2)
        raise Invalid("note_too_long", limit=NOTE_MAX)
    return note


def parse_reason(text: str) -> str:
    reason = " ".join(text.split())
    if len(reason) < 2:
        raise Invalid("reason_too_short")
    if utf16_len(reason) > REASON_MAX:
        raise Invalid("reason_too_long", limit=REASON_MAX)
    return reason
