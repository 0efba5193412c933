"""The parsers behind the customer file dialog (bot/rules/customer_file.py)."""

from __future__ import annotations

from datetime import date

import pytest

from bot.rules import customer_file as rules

TODAY = date(2026, 3, 2)


def code_of(fn, *args: object) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(rules.Invalid) as caught:
        fn(*args)
    return caught.value.code


# ----- name --------------------------------------------------------------------------

@pytest.mark.parametrize(("typed", "clean"), [
    ("Mei", "Mei"),
    ("  Mei \n  Lin  ", "Mei Lin"),
    ("<b>Li & Co</b> 🍚", "<b>Li & Co</b> 🍚"),
    ("李美", "李美"),
    ("R2", "R2"),
    ("x" * 64, "x" * 64),
])
def test_names_accepted(typed: str, clean: str) -> None:
    assert rules.parse_name(typed) == clean


@pytest.mark.parametrize(("typed", "code"), [
    ("", "name_empty"),
    ("  \n\t ", "name_empty"),
    ("x" * 65, "name_too_long"),
    ("!!! ...", "name_no_letters"),
    ("🍚🍚", "name_no_letters"),
])
def test_names_refused(typed: str, code: str) -> None:
    assert code_of(rules.parse_name, typed) == code


def test_name_limit_is_a_parameter_of_the_message() -> None:
    with pytest.raises(rules.Invalid) as caught:
        rules.parse_name("y" * 100)
    assert caught.value.params == {"limit": rules.NAME_MAX}


def test_name_length_counts_after_collapsing_spaces() -> None:
    assert rules.parse_name(" ".join(["ab"] * 21)) == " ".join(["ab"] * 21)  # 62 characters


# ----- phone ---------------------------------------------------------------------------

@pytest.mark.parametrize(("typed", "region", "e164"), [
    ("13800138000", "CN", "+8613800138000"),
    ("138 0013 8000", "CN", "+8613800138000"),
    ("+86 (138) 0013-8000", "CN", "+8613800138000"),
    ("0086 138 0013 8000", "CN", "+8613800138000"),
    ("010 1234 5678", "CN", "+861012345678"),
    ("+44 20 7946 0958", "CN", "+442079460958"),
    ("(650) 253-0000", "US", "+16502530000"),
    ("１３８００１３８０００", "CN", "+8613800138000"),
])
def test_phones_normalised(typed: str, region: str, e164: str) -> None:
    assert rules.parse_phone(typed, region) == e164


@pytest.mark.parametrize(("typed", "code"), [
    ("", "phone_not_a_phone"),
    ("call me", "phone_not_a_phone"),
    ("+", "phone_not_a_phone"),
    ("12345", "phone_too_short"),
    ("1-2-3", "phone_too_short"),
    ("1380013800", "phone_invalid"),
    ("12345678901", "phone_invalid"),
    ("+999 1234 5678", "phone_invalid"),
])
def test_phones_refused(typed: str, code: str) -> None:
    assert code_of(rules.parse_phone, typed, "CN") == code


@pytest.mark.parametrize("shared", ["8613800138000", "+8613800138000", " 8613800138000 "])
def test_contact_phone_with_or_without_plus(shared: str) -> None:
    assert rules.contact_phone(shared, "CN") == "+8613800138000"


def test_contact_phone_of_another_country() -> None:
    assert rules.contact_phone("16502530000", "CN") == "+16502530000"


# ----- birthday --------------------------------------------------------------------------

@pytest.mark.parametrize("typed", [
    "1990-03-05", "1990-3-5", "1990/03/05", "1990.3.5", "05.03.1990", "5.3.1990", "05/03/1990", "5-3-1990",
    "1990年3月5日", "1990年03月05号", "1990 年 3 月 5 日", "1990年3月5", "19900305", "  1990-03-05  ",
])
def test_birthday_forms(typed: str) -> None:
    assert rules.parse_birthday(typed, TODAY) == date(1990, 3, 5)


def test_birthday_edges() -> None:
    assert rules.parse_birthday("2026-03-02", TODAY) == TODAY
    assert rules.parse_birthday("1900-01-01", TODAY) == date(1900, 1, 1)
    assert rules.parse_birthday("2000-02-29", TODAY) == date(2000, 2, 29)


@pytest.mark.parametrize(("typed", "code"), [
    ("", "birthday_not_a_date"),
    ("March 5", "birthday_not_a_date"),
    ("1990-13-01", "birthday_not_a_date"),
    ("1990-02-30", "birthday_not_a_date"),
    ("2001-02-29", "birthday_not_a_date"),
    ("32.01.1990", "birthday_not_a_date"),
    ("90-03-05", "birthday_not_a_date"),
    ("2026-03-03", "birthday_future"),
    ("3000-01-01", "birthday_future"),
    ("1899-12-31", "birthday_too_old"),
    ("0001-01-01", "birthday_too_old"),
])
def test_birthdays_refused(typed: str, code: str) -> None:
    assert code_of(rules.parse_birthday, typed, TODAY) == code


# ----- address and household ----------------------------------------------------------------

def test_address() -> None:
    assert rules.parse_address("  12  Rice\nStreet ") == "12 Rice Street"
    assert rules.parse_address("北京市") == "北京市"
    assert rules.parse_address("x" * 300) == "x" * 300
    assert code_of(rules.parse_address, "ab") == "address_too_short"
    assert code_of(rules.parse_address, "---") == "address_too_short"
    assert code_of(rules.parse_address, "x" * 301) == "address_too_long"


@pytest.mark.parametrize(("typed", "size"), [("1", 1), (" 20 ", 20), ("+3", 3), ("07", 7), ("４", 4)])
def test_household_accepted(typed: str, size: int) -> None:
    assert rules.parse_household(typed) == size


@pytest.mark.parametrize(("typed", "code"), [
    ("0", "household_out_of_range"),
    ("21", "household_out_of_range"),
    ("-2", "household_out_of_range"),
    ("two", "household_not_a_number"),
    ("2.5", "household_not_a_number"),
    ("", "household_not_a_number"),
    ("3 people", "household_not_a_number"),
])
def test_household_refused(typed: str, code: str) -> None:
    assert code_of(rules.parse_household, typed) == code


def test_household_messages_carry_the_range() -> None:
    with pytest.raises(rules.Invalid) as caught:
        rules.parse_household("99")
    assert caught.value.params == {"low": 1, "high": 20}


# ----- language -------------------------------------------------------------------------------

@pytest.mark.parametrize(("code", "default", "lang"), [
    ("zh-hans", "en", "zh"), ("zh-TW", "en", "zh"), ("ZH", "en", "zh"),
    ("en-GB", "zh", "en"), ("en", "en", "en"),
    ("fr", "en", "en"), ("fr", "zh", "zh"), (None, "zh", "zh"), ("", "en", "en"),
])
def test_language_for(code: str | None, default: str, lang: str) -> None:
    assert rules.language_for(code, default) == lang
