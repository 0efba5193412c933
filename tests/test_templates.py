"""Every text is a template in both languages, and every template holds up
with the longest inputs the bot allows.

How a template gets its context without anyone writing one by hand: the
variables it needs are found with ``jinja2.meta.find_undeclared_variables``
(plus any a render then reports as undefined — ``StrictUndefined`` is on),
and each gets a :class:`Probe`: a worst-case value that acts as whatever the
template makes of it. It prints as the longest text allowed for its name
(``name`` → 120 characters of ``<&>``-heavy text, ``address`` → 300,
``description`` → 3500 ..., see ``TEXT_LENGTHS``; ids and counts print as
numbers), it is a number for ``|money``, ``|duration``, comparisons and
arithmetic, an object whose attributes are probes again, a list of
``LOOP_ITEMS`` probes in a ``for`` (tuples when the loop unpacks them), and a
mapping for ``.get()``/``.items()``. Names that must be real values (time
zones, dates) come from ``REAL_VALUES`` and ``DATE_NAMES``.

Each template renders twice: every probe truthy (optional parts shown, loops
full) and every probe falsy/empty (the ``else`` branches). ``.html`` results
must pass Telegram's HTML check and stay within 4096 visible characters
(1024 for captions: a template with ``caption`` in its name); button labels
(``buttons/*.txt``) within 64, command descriptions within 256.

When a template needs a structure the probes cannot stand in for, or the code
that renders it guarantees smaller inputs than the worst case (e.g. it
truncates first), give it an entry in ``CONTEXT`` (relative path without the
language → variables that override the generated ones) with a comment saying
why. Keep that table small.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jinja2 import meta, nodes
from jinja2.exceptions import UndefinedError

from bot.catalog import NAME_MAX as PRODUCT_NAME_MAX
from bot.catalog import UNIT_MAX
from bot.commands import COMMANDS
from bot.config import LANGUAGES
from bot.fake_telegram import CAPTION_LIMIT, TEXT_LIMIT
from bot.rules.orders import HISTORY_LIMIT, MAX_CART_LINES, QTY_MAX
from bot.rules.orders import NOTE_MAX as ORDER_NOTE_MAX
from bot.rules.orders import REASON_MAX as ORDER_REASON_MAX
from bot.rules.tickets import NOTE_MAX as TICKET_NOTE_MAX
from bot.telegram_html import HTMLEntityError, check
from bot.texts import TEMPLATES_DIR, TextRenderer
from handlers.my_orders import ITEMS_SHOWN

REPO = Path(__file__).resolve().parent.parent
RENDERER = TextRenderer(currency="CNY")
ENV = RENDERER.env
BUTTON_LIMIT = 64
COMMAND_DESCRIPTION_LIMIT = 256
LOOP_ITEMS = 10

# The longest text a value of this name can hold (characters); default DEFAULT_TEXT.
TEXT_LENGTHS = {
    "name": 64,  # customer and Telegram names ≤ 64 (product names may reach 120: see CONTEXT)
    "address": 300,
    "description": 3500,
    "text": 3500,
    "note": 1000, "resolution_note": 1000, "rating_comment": 1000, "comment": 1000, "preferences": 1000,
    "reason": 300,
    "phone": 16,
    "isoformat": 25,
}
DEFAULT_TEXT = 64
# Codes from a fixed set (statuses, kinds ...): the longest is about this long.
ENUM_NAMES = {"category", "status", "priority", "kind", "level", "role", "source", "segment", "template", "step",
              "direction", "target", "window", "fmt", "code", "key", "from_status", "to_status", "action", "mode",
              "klass", "actor_role", "language", "lang_code"}
ENUM_TEXT = 24
# Names that print as numbers: ids, counts, amounts.
NUMBER_NAMES = {
    "id", "num", "number", "count", "total", "quantity", "qty", "members", "queued", "page", "pages", "limit",
    "low", "high", "minutes", "days", "hour", "year", "years", "price", "revenue", "more", "left", "over",
    "length", "rating", "stars", "level_count", "max_photos", "per_day", "per_week", "reopen_days",
}
NUMBER_SUFFIXES = ("_id", "_count", "_days", "_minutes", "_hours", "_total", "_revenue", "_price", "_share",
                   "_customers", "_size")
# Numbers with a small natural maximum (a text may repeat something that many times).
NUMBER_VALUES = {"rating": 5, "stars": 5, "hour": 23, "household_size": 20, "photos": 5, "max_photos": 5}
# Names whose values are dates or times (the |date filter formats them).
DATE_NAMES = {"at", "since", "until", "due", "tomorrow", "start", "end", "as_of", "birthday", "date",
              "waiting_since"}
REAL_VALUES: dict[str, Any] = {"tz": "Asia/Shanghai"}
WORST_DATETIME = datetime(2026, 12, 31, 23, 59, tzinfo=UTC)
WORST_DATE = date(2026, 12, 31)
# A number that is long when printed, as money and as a count, yet safe to loop over small ranges with.
WORST_NUMBER = 12_345_678



_NASTY = "<b>Li & Co</b> 🍚 李&amp;<i>\"'"


def nasty(length: int) -> str:
    """``length`` characters of text full of what HTML escaping must handle."""
    return (_NASTY * (length // len(_NASTY) + 1))[:length]


ContextFactory = Callable[[str, "Probes"], dict[str, Any]]


def _help(lang: str, p: Probes) -> dict[str, Any]:
    # Every command with its real description (each ≤ 256 characters, like Telegram's).
    return {"role": "manager",
            "commands": [(c.name, RENDERER.render(lang, f"commands/{c.name}.txt")) for c in COMMANDS]}


def _product_lines(lang: str, p: Probes) -> dict[str, Any]:
    # The cart holds at most MAX_CART_LINES lines; product names reach 120 characters, units 64.
    line = p.obj("line", name=nasty(PRODUCT_NAME_MAX), unit=nasty(UNIT_MAX), quantity=QTY_MAX)
    return {"lines": p.items([line] * MAX_CART_LINES)}


def _order_list(lang: str, p: Probes) -> dict[str, Any]:
    # handlers/my_orders.py: HISTORY_LIMIT orders, each naming ITEMS_SHOWN products and counting the rest.
    order = p.obj("order", products=p.items([f"{QTY_MAX} × {nasty(PRODUCT_NAME_MAX)}"] * ITEMS_SHOWN))
    return {"orders": p.items([order] * HISTORY_LIMIT)}


def _desk_card(lang: str, p: Probes) -> dict[str, Any]:
    # The staff's order card: the cart's lines, and the status changes an order can go through
    # (new, accepted, out for delivery, then delivered or cancelled — only a cancellation has a reason).
    changes = [p.obj("change", reason=None)] * 3 + [p.obj("change", reason=nasty(ORDER_REASON_MAX))]
    order = p.obj("order", note=nasty(ORDER_NOTE_MAX))
    return {**_product_lines(lang, p), "history": p.items(changes), "order": order}


def _segment_label(lang: str, p: Probes) -> dict[str, Any]:
    # A segment's translated name (reports/segment_<code>.txt), not free text.
    names = [RENDERER.render(lang, f"reports/{Path(n).stem}.txt") for n in ALL_TEMPLATES
             if n.startswith("reports/segment_") and n.endswith(".txt")]
    return {"name": max(names, key=len, default=nasty(ENUM_TEXT))}


def _abc_classes(lang: str, p: Probes) -> dict[str, Any]:
    # Three classes, A, B and C, under a period label.
    classes = [p.obj("class", name=code, revenue_share=1) for code in "ABC"]
    return {"r": p.obj("r", classes=p.items(classes), period=p.obj("period", label=nasty(ENUM_TEXT * 2)))}


def _customer_file(lang: str, p: Probes) -> dict[str, Any]:
    # handlers/staff_tools.py shows the last 10 staff notes (each ≤ NOTE_MAX characters).
    # It also lists the last 5 orders and the last 5 complaints.
    note = p.obj("note", text=nasty(TICKET_NOTE_MAX))
    return {"notes": p.items([note] * 10), "orders": p.items([p.obj("order")] * 5),
            "tickets": p.items([p.obj("ticket")] * 5)}


# Explicit context for templates the probes cannot serve (relative path without the language):
# variables, or a function of the language and the render's Probes returning them.
CONTEXT: dict[str, dict[str, Any] | ContextFactory] = {
    "buttons/csat_rating.txt": {"value": 5},  # the stars 1..5
    "buttons/care_rating.txt": {"value": 5},
    "buttons/order_product.txt": {"name": nasty(PRODUCT_NAME_MAX), "unit": nasty(UNIT_MAX)},
    "buttons/report_segment_choice.txt": _segment_label,
    "common/help.html": _help,  # a list of (command, description) pairs
    "orders/cart.html": _product_lines,
    "orders/summary.html": _product_lines,
    "orders/list.html": _order_list,
    "orders/desk/card.html": _desk_card,
    "reports/abc_caption.html": _abc_classes,
    "tickets/customer_file.html": _customer_file,
}
# Templates whose output the code splits into several messages, so only each piece has a limit.
SPLIT_AT_LINES = "reports/"  # bot/reports/output.split_text cuts at line ends: every line must stand alone
# handlers/staff_tools.py puts entries into chunks that fit
SPLIT_BY_CODE = {"tickets/history.html", "tickets/customer_notes.html"}


def _is_number_name(name: str) -> bool:
    return name in NUMBER_NAMES or name.endswith(NUMBER_SUFFIXES)


def _is_date_name(name: str) -> bool:
    return name in DATE_NAMES or name.endswith(("_at", "_on", "_since", "_until"))


class Probes:
    """The probes of one render: truthy or falsy, and how loops unpack."""

    def __init__(self, truthy: bool, arity: dict[str, tuple[str, ...]]) -> None:
        self.truthy = truthy
        self.arity = arity

    def obj(self, name: str = "obj", /, **fixed: Any) -> Probe:
        """A probe whose listed attributes are real values (the others stay probes)."""
        probe = Probe(self, name)
        probe._fixed = fixed
        return probe

    def items(self, items: list[Any]) -> list[Any]:
        """A list that is empty when rendering with empty values."""
        return items if self.truthy else []

    def value(self, name: str) -> Any:
        if name in REAL_VALUES:
            return REAL_VALUES[name]
        if _is_date_name(name):
            return WORST_DATE if name in ("birthday", "date") or name.endswith("_on") else WORST_DATETIME
        return Probe(self, name)


class Probe(int):
    """A worst-case value: a number, a text, an object, a list or a mapping, as used."""

    _probes: Probes
    _name: str
    _fixed: Mapping[str, Any] = {}  # read only; Probes.obj gives a probe its own

    def __new__(cls, probes: Probes, name: str) -> Probe:
        obj = super().__new__(cls, NUMBER_VALUES.get(name, WORST_NUMBER) if probes.truthy else 0)
        obj._probes = probes
        obj._name = name
        return obj

    def __str__(self) -> str:
        if _is_number_name(self._name) or self._name in NUMBER_VALUES:
            return str(int(self))
        if self._name in ENUM_NAMES:
            return nasty(ENUM_TEXT)
        return nasty(TEXT_LENGTHS.get(self._name, DEFAULT_TEXT))

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        return str(self) if not spec else format(int(self), spec)

    def __bool__(self) -> bool:
        return self._probes.truthy

    def __len__(self) -> int:
        return len(str(self))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self._fixed:
            return self._fixed[name]
        return self._probes.value(name)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, slice):
            return str(self)[key]
        if isinstance(key, str) and key in self._fixed:
            return self._fixed[key]
        return self._probes.value(key if isinstance(key, str) else self._name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._name == "get" and args and isinstance(args[0], str):
            return self._probes.value(args[0])  # mapping.get("key", default)
        return self

    def __iter__(self) -> Iterator[Any]:
        if not self._probes.truthy:
            return iter(())
        names = self._probes.arity.get(self._name)
        if self._name == "items" and not names:
            names = ("key", "value")
        if names:
            return iter([tuple(self._probes.value(n) for n in names) for _ in range(LOOP_ITEMS)])
        return iter([self._probes.value(self._name) for _ in range(LOOP_ITEMS)])

    def __contains__(self, item: Any) -> bool:
        return False

    def __add__(self, other: Any) -> Any:  # type: ignore[override]
        return str(self) + other if isinstance(other, str) else int(self) + other

    def __radd__(self, other: Any) -> Any:  # type: ignore[override]
        return other + str(self) if isinstance(other, str) else other + int(self)


# ----- finding templates and what they use --------------------------------------------------
def template_files(lang: str) -> set[str]:
    root = TEMPLATES_DIR / lang
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.suffix in (".html", ".txt")}


ALL_TEMPLATES = sorted(template_files("en") | template_files("zh"))


def _template_expr(node: nodes.Expr, lang: str) -> str | None:
    """A template name that is a constant, or ``lang ~ '/...'``."""
    if isinstance(node, nodes.Const) and isinstance(node.value, str):
        return node.value
    if isinstance(node, nodes.Name) and node.name == "lang":
        return lang
    if isinstance(node, nodes.Concat):
        parts = [_template_expr(n, lang) for n in node.nodes]
        return None if None in parts else "".join(parts)  # type: ignore[arg-type]
    if isinstance(node, nodes.Add):
        left, right = _template_expr(node.left, lang), _template_expr(node.right, lang)
        return None if left is None or right is None else left + right
    return None


@cache
def _parsed(name: str) -> nodes.Template:
    source = ENV.loader.get_source(ENV, name)[0]  # type: ignore[union-attr]
    return ENV.parse(source)


def _with_referenced(name: str, lang: str) -> list[nodes.Template]:
    """The template and every template it includes or imports (resolvable names only)."""
    seen: dict[str, nodes.Template] = {}
    todo = [name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen[current] = _parsed(current)
        for node in seen[current].find_all((nodes.Include, nodes.Import, nodes.FromImport)):
            target = _template_expr(node.template, lang)
            if target:
                todo.append(target)
    return list(seen.values())


def _target_names(target: nodes.Node) -> tuple[str, ...] | None:
    if isinstance(target, nodes.Tuple):
        return tuple(item.name if isinstance(item, nodes.Name) else "item" for item in target.items)
    return None


def _loop_arity(trees: list[nodes.Template]) -> dict[str, tuple[str, ...]]:
    """``for a, b in rows`` → {"rows": ("a", "b")}: how the probes of a name unpack."""
    arity: dict[str, tuple[str, ...]] = {}
    for tree in trees:
        for loop in tree.find_all(nodes.For):
            names = _target_names(loop.target)
            if not names:
                continue
            source = loop.iter
            if isinstance(source, nodes.Call):
                source = source.node
            if isinstance(source, nodes.Name):
                arity[source.name] = names
            elif isinstance(source, nodes.Getattr):
                arity[source.attr] = names
    return arity


def render(lang: str, path: str, truthy: bool) -> str:
    name = f"{lang}/{path}"
    trees = _with_referenced(name, lang)
    probes = Probes(truthy, _loop_arity(trees))
    wanted = set().union(*(meta.find_undeclared_variables(tree) for tree in trees)) - set(ENV.globals) - {"lang"}
    context: dict[str, Any] = {var: probes.value(var) for var in wanted}
    extra = CONTEXT.get(path, {})
    context.update(extra(lang, probes) if callable(extra) else extra)
    for _ in range(20):
        try:
            return RENDERER.render(lang, path, **context)
        except UndefinedError as exc:  # a variable only an included template uses
            match = re.fullmatch(r"'(\w+)' is undefined", str(exc))
            if not match or match.group(1) in context:
                raise
            context[match.group(1)] = probes.value(match.group(1))
    raise AssertionError(f"{name}: too many undefined variables")


def visible_length(text: str, path: str) -> int:
    """Telegram counts message text in UTF-16 units; our button rule counts characters."""
    if path.startswith(("buttons/", "commands/")):
        return len(text)
    return len(text.encode("utf-16-le")) // 2


# ----- the tests --------------------------------------------------------------------------------
def test_templates_exist() -> None:
    assert len(ALL_TEMPLATES) > 20
    assert "registration/ask_name.html" in ALL_TEMPLATES


@pytest.mark.parametrize("path", ALL_TEMPLATES)
def test_template_exists_in_every_language(path: str) -> None:
    missing = [lang for lang in LANGUAGES if not (TEMPLATES_DIR / lang / path).is_file()]
    assert not missing, f"templates/{{{','.join(missing)}}}/{path} is missing (every text in en and zh)"


def test_no_stray_files_in_language_folders() -> None:
    for lang in LANGUAGES:
        stray = [str(p) for p in (TEMPLATES_DIR / lang).rglob("*")
                 if p.is_file() and p.suffix not in (".html", ".txt")]
        assert not stray, f"not templates (use .html for messages, .txt for plain text): {stray}"


def _limit(path: str) -> tuple[int, str]:
    if path.startswith("buttons/"):
        return BUTTON_LIMIT, "button label"
    if path.startswith("commands/"):
        return COMMAND_DESCRIPTION_LIMIT, "command description"
    if "caption" in Path(path).name:
        return CAPTION_LIMIT, "caption"
    return TEXT_LIMIT, "message"


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("path", ALL_TEMPLATES)
def test_template_renders_within_telegram_limits(lang: str, path: str) -> None:
    if not (TEMPLATES_DIR / lang / path).is_file():
        pytest.skip("missing in this language (the test above fails for it)")
    limit, what = _limit(path)
    for truthy in (True, False):
        mode = "with every optional part" if truthy else "with empty/false values"
        try:
            out = render(lang, path, truthy)
        except UndefinedError as exc:
            pytest.fail(f"{lang}/{path} ({mode}): {exc} — give it an entry in CONTEXT in {__file__}")
        if path.endswith(".html"):
            try:
                visible = check(out)
            except HTMLEntityError as exc:
                pytest.fail(f"{lang}/{path} ({mode}) is not valid Telegram HTML: {exc}\n{out[:500]}")
            if truthy and not Path(path).name.startswith("_"):
                assert visible.strip(), f"{lang}/{path} renders an empty message"
        else:
            visible = out
        if path in SPLIT_BY_CODE:
            continue
        if path.startswith(SPLIT_AT_LINES) and path.endswith(".html") and what == "message":
            for number, line in enumerate(out.split("\n"), start=1):
                try:
                    shown = check(line)
                except HTMLEntityError as exc:
                    pytest.fail(f"{lang}/{path} ({mode}) line {number} is not valid on its own (the text is "
                                f"split at line ends): {exc}\n{line[:300]}")
                assert visible_length(shown, path) <= limit, f"{lang}/{path} ({mode}) line {number} is too long"
            continue
        length = visible_length(visible, path)
        assert length <= limit, f"{lang}/{path} ({mode}): {what} of {length} characters, over {limit}"
        if path.startswith(("buttons/", "commands/")) and truthy:
            assert visible.strip(), f"{lang}/{path}: an empty {what}"
            assert "\n" not in visible.strip(), f"{lang}/{path}: a {what} on more than one line"


def test_customer_text_is_escaped_not_trusted() -> None:
    """What a customer typed shows exactly as typed, whatever it contains."""
    name = "<b>Li & Co</b> 🍚"
    for lang in LANGUAGES:
        shown = check(RENDERER.render(lang, "registration/done.html", name=name)) \
            if "registration/done.html" in ALL_TEMPLATES else name
        assert name in shown


# ----- no user-visible text in handler code -------------------------------------------------------
SEND_METHODS = {
    # method name -> index of the text among positional arguments
    "answer": 0, "reply": 0, "edit_text": 0, "edit_caption": 0, "answer_photo": None, "answer_document": None,
    "send_message": 1, "edit_message_text": 0, "send_photo": None, "send_document": None, "reply_photo": None,
}
TEXT_KEYWORDS = {"text", "caption"}


def _literal_words(node: ast.AST) -> str | None:
    """The literal text of a string constant or f-string, when it contains letters."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        text = node.value
    elif isinstance(node, ast.JoinedStr):
        text = "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
    elif isinstance(node, ast.BinOp):  # "a" + x, "a %s" % x
        return _literal_words(node.left) or _literal_words(node.right)
    else:
        return None
    return text if any(ch.isalpha() for ch in text) else None


def _visible_literals(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        candidates: list[ast.AST] = []
        if name in SEND_METHODS:
            index = SEND_METHODS[name]
            if index is not None and len(node.args) > index:
                candidates.append(node.args[index])
            candidates += [kw.value for kw in node.keywords if kw.arg in TEXT_KEYWORDS]
        elif name.endswith("Button"):  # InlineKeyboardButton(text=...), KeyboardButton("...")
            candidates += node.args[:1] + [kw.value for kw in node.keywords if kw.arg == "text"]
        elif name == "button":  # builder.button(text=...); texts.button("name") names a template
            candidates += [kw.value for kw in node.keywords if kw.arg == "text"]
        for candidate in candidates:
            words = _literal_words(candidate)
            if words:
                yield node.lineno, words


HANDLER_FILES = sorted(p for p in (REPO / "handlers").rglob("*.py"))


@pytest.mark.parametrize("path", HANDLER_FILES, ids=lambda p: p.name)
def test_handlers_send_no_literal_text(path: Path) -> None:
    found = list(_visible_literals(ast.parse(path.read_text(encoding="utf-8"))))
    assert not found, "user-visible text belongs in templates/en and templates/zh:\n" + "\n".join(
        f"  {path.relative_to(REPO)}:{line}: {text!r}" for line, text in found)


def test_the_literal_scan_finds_literals() -> None:
    code = (
        "async def h(message, bot, cb):\n"
        "    await message.answer('Hello there')\n"
        "    await bot.send_message(1, f'Order {n} placed')\n"
        "    await cb.answer(text='Expired')\n"
        "    await message.answer(texts('x'))\n"
        "    await message.answer('✅')\n"
        "    b.button(text='Yes', callback_data='y')\n"
    )
    found = sorted(text for _, text in _visible_literals(ast.parse(code)))
    assert found == ["Expired", "Hello there", "Order  placed", "Yes"]
