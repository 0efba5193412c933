"""Validation of what customers type into their file.

Each parser returns the clean value or raises :class:`Invalid` with the name
of the template that explains what is wrong (``errors/<code>``).
"""

from __future__ import annotations

import re
from datetime import date

import phonenumbers

from bot.rules.text_units import strip_hidden, utf16_len

NAME_MAX = 64
ADDRESS_MAX = 300
HOUSEHOLD_MIN, HOUSEHOLD_MAX = 1, 20
BIRTHDAY_MIN_YEAR = 1900


class Invalid(ValueError):
    def __init__(self, code: str, **params: object) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


def parse_name(text: str) -> str:
    # Bidi controls and invisible characters could make a name read as another one: they go.
    name = " ".join(strip_hidden(text).split())
    if not name:
        raise Invalid("name_empty")
    if utf16_len(name) > NAME_MAX:
        raise Invalid("name_too_long", limit=NAME_MAX)
    if not any(ch.isalnum() for ch in name):
        raise Invalid("name_no_letters")
    return name


# Chinese extension words, read as phonenumbers reads "ext": 转12, 分机 12, 分机号：12.
_CHINESE_EXTENSION = re.compile(r"\s*(?:分机号?|转)\s*[:：]?\s*(?=\d)")
EXTENSION_MARK = ";ext="  # RFC 3966's parameter: "+861088889999;ext=12"


def parse_phone(text: str, region: str) -> str:
    """E.164, with the extension when one was given ("+861088889999;ext=12")."""
    raw = _CHINESE_EXTENSION.sub(" ext. ", text.strip())
    digits = re.sub(r"\D", "", raw)
    if not digits:
        raise Invalid("phone_not_a_phone")
    if len(digits) < 6:
        raise Invalid("phone_too_short")
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        raise Invalid("phone_invalid") from None
    if not phonenumbers.is_valid_number(number) or len(number.extension or "") > 10:
        raise Invalid("phone_invalid")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return f"{e164}{EXTENSION_MARK}{number.extension}" if number.extension else e164


def split_phone(phone: str) -> tuple[str, str | None]:
    """A stored phone as (E.164, extension or None)."""
    number, mark, extension = phone.partition(EXTENSION_MARK)
    return number, (extension if mark else None)


def contact_phone(phone_number: str, region: str) -> str:
    """Telegram sends shared contacts without the leading '+' sometimes.

    ``phone_number`` of https://core.telegram.org/bots/api#contact
    """
    raw = phone_number.strip()
    if raw and raw[0].isdigit():
        raw = "+" + raw
    return parse_phone(raw, region)


_DATE_PATTERNS = (
    (re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})$"), ("y", "m", "d")),
    (re.compile(r"^(\d{1,2})[./-](\d{1,2})[./-](\d{4})$"), ("d", "m", "y")),
    (re.compile(r"^(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]?$"), ("y", "m", "d")),
    (re.compile(r"^(\d{4})(\d{2})(\d{2})$"), ("y", "m", "d")),
)


def parse_birthday(text: str, today: date) -> date:
    """``YYYY-MM-DD`` and a few common forms (``DD.MM.YYYY``, ``YYYY年M月D日``)."""
    raw = text.strip()
    for pattern, order in _DATE_PATTERNS:
        match = pattern.match(raw)
        if match:
            parts = dict(zip(order, (int(g) for g in match.groups()), strict=True))
            try:
                value = date(parts["y"], parts["m"], parts["d"])
            except ValueError:
                raise Invalid("birthday_not_a_date") from None
            break
    else:
        raise Invalid("birthday_not_a_date")
    if value > today:
        raise Invalid("birthday_future")
    if value.year < BIRTHDAY_MIN_YEAR:
        raise Invalid("birthday_too_old", year=BIRTHDAY_MIN_YEAR)
    return value


def parse_address(text: str) -> str:
    address = " ".join(text.split())
    if len(address) < 3 or not any(ch.isalnum() for ch in address):
        raise Invalid("address_too_short")
    if utf16_len(address) > ADDRESS_MAX:  # as Telegram counts (an emoji is 2)
        raise Invalid("address_too_long", limit=ADDRESS_MAX)
    return address


def parse_household(text: str) -> int:
    raw = text.strip()
    if not re.fullmatch(r"[+-]?\d+", raw):
        raise Invalid("household_not_a_number", low=HOUSEHOLD_MIN, high=HOUSEHOLD_MAX)
    value = int(raw)
    if not HOUSEHOLD_MIN <= value <= HOUSEHOLD_MAX:
        raise Invalid("household_out_of_range", low=HOUSEHOLD_MIN, high=HOUSEHOLD_MAX)
    return value


def language_for(language_code: str | None, default: str) -> str:
    """Telegram's ``language_code``: zh* → zh, otherwise the default.

    An IETF language tag ("zh-hans", "en-US"), sometimes absent: https://core.telegram.org/bots/api#user
    """
    if language_code and language_code.lower().startswith("zh"):
        return "zh"
    if language_code and language_code.lower().startswith("en"):
        return "en"
    return default
