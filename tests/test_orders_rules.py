"""Order rules: status transitions, totals, what customers may type."""

from __future__ import annotations

import pytest

from bot.rules import orders as rules
from bot.rules.customer_file import Invalid


@pytest.mark.parametrize(("text", "value"), [("1", 1), (" 12 ", 12), ("999", 999), ("+3", 3), ("007", 7)])
def test_good_quantities(text: str, value: int) -> None:
    assert rules.parse_quantity(text) == value


@pytest.mark.parametrize(("text", "code"), [
    ("0", "qty_too_small"), ("-1", "qty_too_small"), ("1000", "qty_too_large"), ("abc", "qty_not_a_number"),
    ("2.5", "qty_not_whole"), ("2,5", "qty_not_whole"), ("", "qty_not_a_number"), ("two", "qty_not_a_number"),
    ("1e3", "qty_not_a_number"),
])
def test_bad_quantities(text: str, code: str) -> None:
    with pytest.raises(Invalid) as caught:
        rules.parse_quantity(text)
    assert caught.value.code == code
    assert caught.value.params == {"low": 1, "high": 999}


def test_staff_move_forward_and_may_skip_steps() -> None:
    assert rules.next_steps("new") == ["accepted", "out_for_delivery", "delivered", "cancelled"]
    assert rules.next_steps("accepted") == ["out_for_delivery", "delivered", "cancelled"]
    assert rules.next_steps("out_for_delivery") == ["delivered", "cancelled"]
    assert rules.next_steps("delivered") == []
    assert rules.next_steps("cancelled") == []
    assert not rules.can_change("accepted", "new")
    assert not rules.can_change("delivered", "cancelled")
    assert not rules.can_change("new", "new")
    assert not rules.can_change("new", "lost")


def test_customers_cancel_only_new_orders() -> None:
    assert rules.can_change("new", "cancelled", by_customer=True)
    assert not rules.can_change("accepted", "cancelled", by_customer=True)
    assert not rules.can_change("new", "accepted", by_customer=True)


def test_totals_in_minor_units() -> None:
    assert rules.line_total(3, 6800) == 20400
    assert rules.order_total([(2, 6800), (1, 13900)]) == 27500
    assert rules.order_total([]) == 0


def test_cart_adds_up_and_has_limits() -> None:
    cart = rules.add_to_cart([], 1, 2)
    cart = rules.add_to_cart(cart, 2, 1)
    assert rules.add_to_cart(cart, 1, 3) == [[1, 5], [2, 1]]
    assert cart == [[1, 2], [2, 1]]  # not changed in place
    with pytest.raises(Invalid) as caught:
        rules.add_to_cart([[1, 990]], 1, 10)
    assert (caught.value.code, caught.value.params) == ("qty_cart_limit", {"have": 990, "high": 999})
    full = [[n, 1] for n in range(rules.MAX_CART_LINES)]
    with pytest.raises(Invalid) as caught:
        rules.add_to_cart(full, 999, 1)
    assert caught.value.code == "cart_full"


def test_notes_and_reasons() -> None:
    assert rules.parse_note("  ring twice  ") == "ring twice"
    for bad, code in (("   ", "note_empty"), ("x" * 301, "note_too_long")):
        with pytest.raises(Invalid) as caught:
            rules.parse_note(bad)
        assert caught.value.code == code
    assert rules.parse_reason(" out of\nstock ") == "out of stock"
    for bad, code in (("x", "reason_too_short"), ("x" * 301, "reason_too_long")):
        with pytest.raises(Invalid) as caught:
            rules.parse_reason(bad)
        assert caught.value.code == code
