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
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Undefined,
    UndefinedError,
    pass_context,
    select_autoescape,
)
from jinja2.runtime import Context

from bot.config import LANGUAGES
from bot.rules.customer_file import split_phone
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


def duration_parts(minutes: float | int) -> dict[str, int]:
    """Whole minutes as days, hours and minutes (``common/duration.txt`` words them)."""
    minutes = round(minutes)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    return {"days": days, "hours": hours, "minutes": mins}


def _language_of(context: Context) -> str:
    """The language of the template being rendered (``zh/...``), also inside imported macros."""
    lang = (context.name or "").split("/", 1)[0]
    return lang if lang in LANGUAGES else context.get("lang", LANGUAGES[0])


def _missing(value: Undefined) -> NoReturn:
    """Jinja's error naming the missing variable: reading a StrictUndefined (the environment's) raises it."""
    str(value)
    raise UndefinedError("a filter was given an undefined value")


def _defined(fn: Callable[..., str]) -> Callable[..., str]:
    """A filter given a missing variable says which one (instead of a TypeError about Undefined)."""

    def checked(value: Any, *args: Any) -> str:
        if isinstance(value, Undefined):
            _missing(value)
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
        # Plurals: {{ ngettext("%(num)d order", "%(num)d orders", n) }} (Jinja's i18n extension; English
        # rules without a catalog: the Chinese templates write counters instead).
        self.env.add_extension("jinja2.ext.i18n")
        self.env.install_null_translations(newstyle=True)
        self.env.filters["money"] = _defined(lambda minor: format_money(minor, self.currency))
        self.env.filters["date"] = _defined(_date)
        self.env.filters["duration"] = self._duration
        self.env.filters["phone"] = self._phone
        self._bulk: dict[tuple[str, str], Callable[[dict[str, Any]], str]] = {}

    @pass_context
    def _duration(self, context: Context, minutes: float | int | None) -> str:
        """30 → "30m" / "30分钟"; 1500 → "1d 1h" / "1天1小时" (``common/duration.txt``)."""
        if isinstance(minutes, Undefined):
            _missing(minutes)
        if minutes is None:
            return "—"
        return self.render(_language_of(context), "common/duration.txt", **duration_parts(minutes))

    @pass_context
    def _phone(self, context: Context, phone: str | None) -> str:
        """A stored phone as read: "+861088889999;ext=12" → "+861088889999 ext. 12" / "… 转 12"."""
        if isinstance(phone, Undefined):
            _missing(phone)
        if not phone:
            return "—"
        number, extension = split_phone(str(phone))
        return self.render(_language_of(context), "common/phone.txt", number=number, extension=extension)

    def render(self, lang: str, name: str, /, **context: Any) -> str:
        lang = lang if lang in LANGUAGES else LANGUAGES[0]
        template = self.env.get_template(self._path(lang, name))
        return template.render(lang=lang, **context).strip()

    def bulk(self, lang: str, name: str, /) -> Callable[[dict[str, Any]], str]:
        """:meth:`render` of one template for thousands of calls in a row (the care planner's backlog).

        The same text as ``render(lang, name, **variables)``; the template is looked up once (the
        environment checks the file's modification time on every look-up) and its globals are
        merged once: each call hands Jinja a complete context (``make_module(..., shared=True)``,
        "the data is passed as is"), so Jinja does not merge the globals again for every render.
        """
        lang = lang if lang in LANGUAGES else LANGUAGES[0]
        key = (lang, name)
        render = self._bulk.get(key)
        if render is None:
            template = self.env.get_template(self._path(lang, name))
            fixed = {**template.globals, "lang": lang}

            def render(variables: dict[str, Any]) -> str:
                return str(template.make_module({**fixed, **variables}, shared=True)).strip()

            self._bulk[key] = render
        return render

    @staticmethod
    def _path(lang: str, name: str) -> str:
        suffix = ".txt" if name.startswith("buttons/") or name.endswith(".txt") else ".html"
        return f"{lang}/{name.removesuffix('.txt').removesuffix('.html')}{suffix}"

    def for_language(self, lang: str) -> Texts:
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
