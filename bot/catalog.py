"""The product catalog: import and export as CSV or YAML.

Columns (CSV header, or YAML keys of each list item): ``sku, name_en, name_zh,
category, unit, price`` (a decimal in the currency's major unit, e.g.
``68.00``), and optionally ``unit_zh`` (the unit as Chinese customers read it,
e.g. ``5 公斤装``; without it they see ``unit``), ``days_per_unit_per_person`` and
``active`` (default true). Import upserts by SKU and is all-or-nothing: if any row is
invalid, nothing is written and every problem is reported with its line.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from bot import csv_safe
from bot.texts import minor_digits
from storage.models import Product
from storage.repositories import Repos

if TYPE_CHECKING:
    from storage.db import Database

COLUMNS = ("sku", "name_en", "name_zh", "category", "unit", "unit_zh", "price", "days_per_unit_per_person", "active")
REQUIRED = ("sku", "name_en", "name_zh", "category", "unit", "price")
SAMPLE_CATALOG = Path(__file__).resolve().parent / "data" / "sample_catalog.csv"

# Keep cards and summaries under 4096 (https://core.telegram.org/bots/api#sendmessage).
SKU_MAX, NAME_MAX, CATEGORY_MAX, UNIT_MAX = 64, 64, 64, 32
PRICE_MAX = Decimal(1_000_000)
DAYS_MAX = 3650.0
_SKU = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_PRICE = re.compile(r"[+-]?\d+(\.\d+)?")
_TRUE = {"true", "yes", "y", "1"}
_FALSE = {"false", "no", "n", "0"}


@dataclass(frozen=True)
class Problem:
    line: int | None
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}" if self.line is not None else self.reason


class CatalogError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = sorted(problems, key=lambda p: (p.line is not None, p.line or 0))


def format_of(path: str | Path) -> str:
    return "yaml" if str(path).lower().endswith((".yaml", ".yml")) else "csv"


# ----- reading -------------------------------------------------------------

def _decode(data: bytes) -> tuple[str, list[Problem], set[int]]:
    """UTF-8 text, plus a problem for every line holding bytes that are not UTF-8."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]  # the BOM spreadsheet programs write
    problems: list[Problem] = []
    bad_lines: set[int] = set()
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad_lines.add(number)
            problems.append(Problem(number, f"not UTF-8: byte 0x{raw[exc.start]:02x} at column {exc.start + 1} "
                                            "(save the file as UTF-8)"))
    return data.decode("utf-8", errors="replace"), problems, bad_lines


def _price(raw: str, currency: str) -> int:
    text = raw.strip()
    if not text:
        raise ValueError("missing price")
    if not _PRICE.fullmatch(text):
        raise ValueError(f"price {text!r} is not a number (write e.g. 68.00)")
    value = Decimal(text)
    if value < 0:
        raise ValueError(f"price must not be negative ({text})")
    if value > PRICE_MAX:
        raise ValueError(f"price {text} is too large")
    digits = minor_digits(currency)
    minor = value.scaleb(digits)
    if minor != minor.to_integral_value():
        raise ValueError(f"price {text} has more than {digits} decimal place(s) for {currency}")
    return int(minor)


def _days(raw: str) -> float | None:
    text = raw.strip()
    if not text:
        return None
    try:
        value = float(Decimal(text))
    except (InvalidOperation, ValueError):
        raise ValueError(f"days_per_unit_per_person {text!r} is not a number") from None
    if not 0 < value <= DAYS_MAX:
        raise ValueError(f"days_per_unit_per_person must be more than 0 and at most {DAYS_MAX:g} ({text})")
    return value


def _active(raw: str) -> bool:
    text = raw.strip().lower()
    if not text or text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"active must be true or false, not {raw.strip()!r}")


def _text(raw: dict[str, str], field: str, limit: int, reasons: list[str]) -> str:
    value = " ".join((raw.get(field) or "").split())
    if not value:
        reasons.append(f"missing {field}")
    elif len(value) > limit:
        reasons.append(f"{field} is longer than {limit} characters")
    return value


def validate_row(raw: dict[str, str], currency: str) -> tuple[dict[str, Any], list[str]]:
    """One row's clean values and what is wrong with it (empty when fine)."""
    reasons: list[str] = []
    sku = (raw.get("sku") or "").strip()
    if not sku:
        reasons.append("missing sku")
    elif len(sku) > SKU_MAX or not _SKU.fullmatch(sku):
        reasons.append(f"sku {sku!r} must be up to {SKU_MAX} letters, digits, '.', '_' or '-'")
    row: dict[str, Any] = {"sku": sku}
    row["name_en"] = _text(raw, "name_en", NAME_MAX, reasons)
    row["name_zh"] = _text(raw, "name_zh", NAME_MAX, reasons)
    row["category"] = _text(raw, "category", CATEGORY_MAX, reasons)
    row["unit"] = _text(raw, "unit", UNIT_MAX, reasons)
    unit_zh = " ".join((raw.get("unit_zh") or "").split())  # optional: Chinese customers see ``unit`` without it
    if len(unit_zh) > UNIT_MAX:
        reasons.append(f"unit_zh is longer than {UNIT_MAX} characters")
    row["unit_zh"] = unit_zh or None
    for field, parse in (("price", lambda v: _price(v, currency)), ("days_per_unit_per_person", _days),
                         ("active", _active)):
        try:
            row[field] = parse(raw.get(field) or "")
        except ValueError as exc:
            reasons.append(str(exc))
    return row, reasons


def _check_columns(columns: list[str], line: int) -> list[Problem]:
    problems = []
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        problems.append(Problem(line, f"missing column(s): {', '.join(missing)}"))
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown:
        problems.append(Problem(line, f"unknown column(s): {', '.join(unknown)} (known: {', '.join(COLUMNS)})"))
    doubled = sorted({c for c in columns if columns.count(c) > 1})
    if doubled:
        problems.append(Problem(line, f"column(s) given twice: {', '.join(doubled)}"))
    return problems


def _csv_rows(text: str, bad_lines: set[int]) -> tuple[list[tuple[int, dict[str, str]]], list[Problem]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[tuple[int, dict[str, str]]] = []
    problems: list[Problem] = []
    header: list[str] | None = None
    previous_end = 0
    try:
        for values in reader:
            line = previous_end + 1
            previous_end = reader.line_num
            if not any(v.strip() for v in values):
                continue  # blank line
            if header is None:
                header = [v.strip().lower() for v in values]
                problems.extend(_check_columns(header, line))
                if problems:
                    return [], problems
                continue
            if line in bad_lines:
                continue  # already reported as not UTF-8
            if len(values) > len(header):
                problems.append(Problem(line, f"{len(values)} values but {len(header)} columns"))
                continue
            rows.append((line, dict(zip(header, map(csv_safe.unneutralise, values)))))  # as exported
    except csv.Error as exc:
        problems.append(Problem(reader.line_num, f"unreadable CSV: {exc}"))
    if header is None:
        problems.append(Problem(None, "the file is empty (expected a header line: " + ",".join(COLUMNS) + ")"))
    return rows, problems


def _yaml_rows(text: str, bad_lines: set[int]) -> tuple[list[tuple[int, dict[str, str]]], list[Problem]]:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        return [], [Problem(mark.line + 1 if mark else None, f"unreadable YAML: {getattr(exc, 'problem', exc)}")]
    if root is None:
        return [], [Problem(None, "the file is empty (expected a list of products)")]
    if not isinstance(root, yaml.SequenceNode):
        return [], [Problem(root.start_mark.line + 1, "expected a list of products (each item starting with '- ')")]
    rows: list[tuple[int, dict[str, str]]] = []
    problems: list[Problem] = []
    for item in root.value:
        line = item.start_mark.line + 1
        if not isinstance(item, yaml.MappingNode):
            problems.append(Problem(line, "expected a product with keys such as sku: and price:"))
            continue
        values: dict[str, str] = {}
        item_problems: list[str] = []
        for key_node, value_node in item.value:
            key = str(key_node.value).strip().lower() if isinstance(key_node, yaml.ScalarNode) else "?"
            if key not in COLUMNS:
                item_problems.append(f"unknown key {key!r}")
            elif key in values:
                item_problems.append(f"key {key!r} given twice")
            elif not isinstance(value_node, yaml.ScalarNode):
                item_problems.append(f"{key} must be a single value")
            else:
                null = value_node.tag == "tag:yaml.org,2002:null"
                values[key] = "" if null else str(value_node.value)
        if any(n in bad_lines for n in range(line, item.end_mark.line + 2)):
            continue  # already reported as not UTF-8
        if item_problems:
            problems.append(Problem(line, "; ".join(item_problems)))
            continue
        rows.append((line, values))
    return rows, problems


def parse_catalog(data: bytes, fmt: str, currency: str) -> list[dict[str, Any]]:
    """Clean product rows from a file's bytes; raises CatalogError listing every bad row."""
    text, problems, bad_lines = _decode(data)
    raw_rows, more = (_yaml_rows if fmt == "yaml" else _csv_rows)(text, bad_lines)
    problems.extend(more)
    rows: list[dict[str, Any]] = []
    first_line: dict[str, int] = {}
    for line, raw in raw_rows:
        row, reasons = validate_row(raw, currency)
        sku = row["sku"]
        if sku and sku in first_line:
            reasons.insert(0, f"duplicate sku {sku!r} (first on line {first_line[sku]})")
        elif sku:
            first_line[sku] = line
        if reasons:
            problems.append(Problem(line, "; ".join(reasons)))
        else:
            rows.append(row)
    if not problems and not rows:
        problems.append(Problem(None, "no products in the file"))
    if problems:
        raise CatalogError(problems)
    return rows


# ----- writing -------------------------------------------------------------

def _price_text(minor: int, currency: str) -> str:
    digits = minor_digits(currency)
    return f"{Decimal(minor).scaleb(-digits):.{digits}f}"


def _days_text(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def product_row(product: Product, currency: str) -> dict[str, str]:
    return {
        "sku": product.sku, "name_en": product.name_en, "name_zh": product.name_zh,
        "category": product.category, "unit": product.unit, "unit_zh": product.unit_zh or "",
        "price": _price_text(product.price, currency),
        "days_per_unit_per_person": _days_text(product.days_per_unit_per_person),
        "active": "true" if product.active else "false",
    }


class _Number(str):
    """A value YAML should write as a bare number (prices keep their decimals)."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Number, lambda dumper, value: dumper.represent_scalar(
    "tag:yaml.org,2002:float" if "." in value else "tag:yaml.org,2002:int", str(value)))


def export_text(products: list[Product], fmt: str, currency: str) -> str:
    rows = [product_row(p, currency) for p in products]
    if fmt == "yaml":
        items = []
        for row in rows:
            item: dict[str, Any] = {k: row[k] for k in REQUIRED}
            if row["unit_zh"]:
                item = {**{k: item[k] for k in REQUIRED[:5]}, "unit_zh": row["unit_zh"], "price": item["price"]}
            item["price"] = _Number(row["price"])
            if row["days_per_unit_per_person"]:
                item["days_per_unit_per_person"] = _Number(row["days_per_unit_per_person"])
            item["active"] = row["active"] == "true"
            items.append(item)
        return yaml.dump(items, Dumper=_Dumper, allow_unicode=True, sort_keys=False, default_flow_style=False)
    out = io.StringIO(newline="")
    writer = csv_safe.DictWriter(out, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


# ----- the database ----------------------------------------------------------

async def import_rows(db: Database, rows: list[dict[str, Any]]) -> tuple[int, int, int]:
    """Upsert validated rows in one transaction; (created, updated, unchanged)."""
    async with db.session() as session:
        repos = Repos(session)
        counts = await repos.products.upsert(rows)
        await repos.commit()
    return counts


async def import_file(db: Database, path: Path, currency: str) -> tuple[int, int, int]:
    """Read, validate, then import; CatalogError leaves the database as it was."""
    rows = parse_catalog(path.read_bytes(), format_of(path), currency)
    return await import_rows(db, rows)


async def export_products(db: Database, fmt: str, currency: str) -> str:
    async with db.session() as session:
        products = await Repos(session).products.all()
    return export_text(products, fmt, currency)


async def load_sample_catalog_if_empty(db: Database, currency: str) -> None:
    """Sandbox start: a fresh database gets the sample shop's products."""
    async with db.session() as session:
        if await Repos(session).products.count():
            return
    rows = parse_catalog(SAMPLE_CATALOG.read_bytes(), "csv", currency)
    await import_rows(db, rows)
