"""Every user-visible text is a Jinja2 template in ``templates/<lang>/``.

* ``<area>/<name>.html`` — a message in Telegram HTML, autoescaped, so
  whatever a customer typed is shown safely.
* ``buttons/<name>.txt`` — a button label or other plain text (Telegram shows
  labels as plain text, so these are not escaped).

Handlers get a :class:`Texts` bound to the person's language (``texts``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Undefined, select_autoescape

from bot.config import LANGUAGES
from bot.rules.text_units import has_hidden, strip_hidden

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"

# Minor units per major unit; currencies not listed have 2 decimals.
_MINOR_DIGITS = {"JPY": 0, "KRW": 0, "VND": 0}
_SYMBOLS = {"CNY": "¥", "USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "HKD": "HK$"}


def minor_digits(currency: str) -> int:
    return _MINOR_DIGITS.get(currency.upper(), 2)


def format_money(minor: int | None, currency: str) -> str:
    if minor is None:
        return "—"
    digits = minor_digits(currency)
    amount = Decimal(minor).scaleb(-digits)
    symbol = _SYMBOLS.get(currency.upper())
    body = f"{amount:,.{digits}f}"
    return f"{symbol}{body}" if symbol else f"{body} {currency.upper()}"


def _date(value: date | datetime | None, tz: str | None = None) -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        if tz:
            value = value.astimezone(ZoneInfo(tz))
        return value.strftime("%Y-%m-%d %H:%M")
    return value.isoformat()


def _duration(minutes: float | int | None) -> str:
    if minutes is None:
        return "—"
    minutes = int(round(minutes))
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    if hours:
        parts.append(f"{hours}h")
    if mins or not parts:
        parts.append(f"{mins}m")
    return " ".join(parts)


def _defined(fn: Callable[..., str]) -> Callable[..., str]:
    """A filter given a missing variable says which one (instead of a TypeError about Undefined)."""

    def checked(value: Any, *args: Any) -> str:
        if isinstance(value, Undefined):
            value._fail_with_undefined_error()
        return fn(value, *args)

    return checked


def _shown(value: Any) -> Any:
    """Every value a template prints: text loses bidi controls and invisible characters, so that a
    name stored before they were refused (or any text someone typed) cannot reorder or hide a card."""
    if isinstance(value, str) and has_hidden(value):
        cleaned = strip_hidden(str(value))
        return type(value)(cleaned) if hasattr(value, "__html__") else cleaned  # Markup stays Markup
    return value


class TextRenderer:
    """One Jinja environment for the whole bot."""

    def __init__(self, currency: str = "CNY", templates_dir: Path = TEMPLATES_DIR) -> None:
        self.currency = currency
        self.env = Environment(
            loader=FileSystemLoader(str(templates_dir)),
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            undefined=StrictUndefined,
            finalize=_shown,
        )
        self.env.filters["money"] = _defined(lambda minor: format_money(minor, self.currency))
        self.env.filters["date"] = _defined(_date)
        self.env.filters["duration"] = _defined(_duration)

    def render(self, lang: str, name: str, /, **context: Any) -> str:
        lang = lang if lang in LANGUAGES else LANGUAGES[0]
        template = self.env.get_template(self._path(lang, name))
        return template.render(lang=lang, **context).strip()

    @staticmethod
    def _path(lang: str, name: str) -> str:
        suffix = ".txt" if name.startswith("buttons/") or name.endswith(".txt") else ".html"
        return f"{lang}/{name.removesuffix('.txt').removesuffix('.html')}{suffix}"

    def for_language(self, lang: str) -> "Texts":
        return Texts(self, lang)


class Texts:
    """The renderer bound to one language: ``texts("registration/ask_name", ...)``."""

    def __init__(self, renderer: TextRenderer, lang: str) -> None:
        self.renderer = renderer
        self.lang = lang if lang in LANGUAGES else LANGUAGES[0]

    def __call__(self, template: str, /, **context: Any) -> str:
        return self.renderer.render(self.lang, template, **context)

    def button(self, template: str, /, **context: Any) -> str:
        return self.renderer.render(self.lang, f"buttons/{template}", **context)


@lru_cache(maxsize=1)
def template_names() -> dict[str, set[str]]:
    """Template paths relative to each language folder."""
    return {
        lang: {str(p.relative_to(TEMPLATES_DIR / lang)) for p in (TEMPLATES_DIR / lang).rglob("*") if p.is_file()}
        for lang in LANGUAGES
    }
