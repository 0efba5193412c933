"""The product catalog: CSV and YAML import with line-numbered problems,
all-or-nothing, upsert by SKU, export → import round trips, the CLI's exit
codes, and the sample catalog the sandbox loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import cli
from bot.app import App
from bot.catalog import (
    COLUMNS,
    SAMPLE_CATALOG,
    CatalogError,
    export_products,
    export_text,
    import_file,
    load_sample_catalog_if_empty,
    parse_catalog,
)
from bot.config import Settings
from tests.helpers import load_catalog, product, set_product

HEADER = "sku,name_en,name_zh,category,unit,price,days_per_unit_per_person,active\n"
GOOD = (HEADER + "RICE-5,Jasmine rice,泰国香米,rice,5 kg bag,68.00,10,true\n"
        "OIL-5,Peanut oil,花生油,oil,5 L bottle,139,,\n")


def problems_of(data: bytes, fmt: str = "csv", currency: str = "CNY") -> list[str]:
    with pytest.raises(CatalogError) as caught:
        parse_catalog(data, fmt, currency)
    return [str(p) for p in caught.value.problems]


async def all_products(app: App) -> list[tuple]:
    async with app.db.session() as session:
        from storage.repositories import Repos

        return [(p.sku, p.name_en, p.name_zh, p.category, p.unit, p.unit_zh, p.price, p.days_per_unit_per_person,
                 p.active)
                for p in await Repos(session).products.all()]


# ----- reading ----------------------------------------------------------------

def test_good_csv_rows_are_clean_values() -> None:
    rows = parse_catalog(GOOD.encode(), "csv", "CNY")
    assert rows == [
        {"sku": "RICE-5", "name_en": "Jasmine rice", "name_zh": "泰国香米", "category": "rice", "unit": "5 kg bag",
         "unit_zh": None, "price": 6800, "days_per_unit_per_person": 10.0, "active": True},
        {"sku": "OIL-5", "name_en": "Peanut oil", "name_zh": "花生油", "category": "oil", "unit": "5 L bottle",
         "unit_zh": None, "price": 13900, "days_per_unit_per_person": None, "active": True},
    ]


def test_optional_columns_may_be_left_out_and_a_bom_is_fine() -> None:
    data = "\ufeffsku,name_en,name_zh,category,unit,price\nA-1,Salt,盐,condiments,500 g,3.5\n".encode()
    assert parse_catalog(data, "csv", "CNY")[0]["price"] == 350


def test_every_bad_row_is_listed_with_its_line() -> None:
    data = (HEADER
            + "RICE-5,Jasmine rice,泰国香米,rice,5 kg bag,68.00,10,true\n"   # line 2: fine
            + "RICE-5,Jasmine rice,泰国香米,rice,10 kg bag,128.00,,\n"      # line 3: duplicate
            + "OIL-5,Peanut oil,花生油,oil,5 L,-1.00,,\n"                    # line 4: negative price
            + "SALT,,盐,condiments,500 g,3.50,,\n"                           # line 5: missing name
            ).encode() + b"TEA,Green tea,\xe7\xbb\xff,drinks,250 g,45.00,,\n"  # line 6: not UTF-8
    problems = problems_of(data)
    assert problems == [
        "line 3: duplicate sku 'RICE-5' (first on line 2)",
        "line 4: price must not be negative (-1.00)",
        "line 5: missing name_en",
        "line 6: not UTF-8: byte 0xe7 at column 15 (save the file as UTF-8)",
    ]


@pytest.mark.parametrize(("row", "reason"), [
    ("A,x,y,c,u,abc,,", "price 'abc' is not a number (write e.g. 68.00)"),
    ("A,x,y,c,u,1.234,,", "price 1.234 has more than 2 decimal place(s) for CNY"),
    ("A,x,y,c,u,,,", "missing price"),
    ("A,x,y,c,u,1,0,", "days_per_unit_per_person must be more than 0 and at most 3650 (0)"),
    ("A,x,y,c,u,1,soon,", "days_per_unit_per_person 'soon' is not a number"),
    ("A,x,y,c,u,1,,maybe", "active must be true or false, not 'maybe'"),
    ("A B,x,y,c,u,1,,", "sku 'A B' must be up to 64 letters, digits, '.', '_' or '-'"),
    (",x,y,c,u,1,,", "missing sku"),
    ("A,x,,,,1,,", "missing name_zh; missing category; missing unit"),
    ("A," + "x" * 65 + ",y,c," + "u" * 33 + ",1,,",
     "name_en is longer than 64 characters; unit is longer than 32 characters"),
    ("A,x,y,c,u,1,,,extra", "9 values but 8 columns"),
])
def test_each_kind_of_bad_value(row: str, reason: str) -> None:
    assert problems_of((HEADER + row + "\n").encode()) == [f"line 2: {reason}"]


def test_a_bad_header_is_reported_on_line_1() -> None:
    assert problems_of(b"sku,name,price\nA,x,1\n") == [
        "line 1: missing column(s): name_en, name_zh, category, unit",
        "line 1: unknown column(s): name (known: sku, name_en, name_zh, category, unit, unit_zh, price, "
        "days_per_unit_per_person, active)",
    ]


def test_an_empty_file_is_refused() -> None:
    assert problems_of(b"") == [
        "the file is empty (expected a header line: sku,name_en,name_zh,category,unit,unit_zh,price,"
        "days_per_unit_per_person,active)"]
    assert problems_of(HEADER.encode()) == ["no products in the file"]


def test_yaml_rows_have_line_numbers_too() -> None:
    data = """- sku: RICE-5
  name_en: Jasmine rice
  name_zh: 泰国香米
  category: rice
  unit: 5 kg bag
  price: 68.00
- sku: RICE-5
  name_en: Jasmine rice
  name_zh: 泰国香米
  category: rice
  unit: 10 kg bag
  price: -3
- sku: OIL
  name_en: Oil
  colour: gold
""".encode()
    assert problems_of(data, "yaml") == [
        "line 7: duplicate sku 'RICE-5' (first on line 1); price must not be negative (-3)",
        "line 13: unknown key 'colour'",
    ]
    assert problems_of(b"sku: A\n", "yaml") == ["line 1: expected a list of products (each item starting with '- ')"]
    assert problems_of(b"- [a, b\n", "yaml")[0].startswith("line 2: unreadable YAML")


def test_yen_has_no_decimals() -> None:
    assert parse_catalog((HEADER + "A,x,y,c,u,500,,\n").encode(), "csv", "JPY")[0]["price"] == 500
    assert problems_of((HEADER + "A,x,y,c,u,500.5,,\n").encode(), "csv", "JPY") == [
        "line 2: price 500.5 has more than 0 decimal place(s) for JPY"]


# ----- the database -----------------------------------------------------------

async def test_a_bad_file_leaves_the_database_unchanged(app: App, tmp_path: Path) -> None:
    await load_catalog(app, GOOD)
    before = await all_products(app)
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "RICE-5,Jasmine rice,泰国香米,rice,5 kg bag,1.00,,\nNEW-1,,新,x,u,1,,\n",
                   encoding="utf-8")
    with pytest.raises(CatalogError):
        await import_file(app.db, bad, "CNY")
    assert await all_products(app) == before  # not even the good row's new price


async def test_import_upserts_by_sku(app: App, tmp_path: Path) -> None:
    await load_catalog(app, GOOD)
    rice_id = (await product(app, "RICE-5")).id
    path = tmp_path / "update.csv"
    path.write_text(HEADER + "RICE-5,Jasmine rice,泰国香米,rice,5 kg bag,72.00,10,true\n"
                    "OIL-5,Peanut oil,花生油,oil,5 L bottle,139,,\nEGG-10,Eggs,鸡蛋,eggs,box of 10,19.90,10,false\n",
                    encoding="utf-8")
    assert await import_file(app.db, path, "CNY") == (1, 1, 1)
    rice = await product(app, "RICE-5")
    assert (rice.id, rice.price) == (rice_id, 7200)  # same product, new price
    assert (await product(app, "EGG-10")).active is False


@pytest.mark.parametrize("suffix", [".csv", ".yaml"])
async def test_export_then_import_round_trips(app: App, tmp_path: Path, suffix: str) -> None:
    await load_catalog(app)
    before = await all_products(app)
    text = await export_products(app.db, "yaml" if suffix == ".yaml" else "csv", "CNY")
    path = tmp_path / f"catalog{suffix}"
    path.write_text(text, encoding="utf-8")
    assert await import_file(app.db, path, "CNY") == (0, 0, len(before))
    assert await all_products(app) == before
    # ... and the file holds exactly the catalog, row for row.
    rows = parse_catalog(path.read_bytes(), "yaml" if suffix == ".yaml" else "csv", "CNY")
    assert [tuple(row[c] for c in COLUMNS) for row in rows] == before


def test_export_text_writes_decimals_and_optional_values() -> None:
    from storage.models import Product

    rows = [Product(sku="A", name_en="Salt & co", name_zh="盐", category="c", unit="500 g", price=350,
                    days_per_unit_per_person=None, active=False),
            Product(sku="B", name_en="Rice", name_zh="米", category="rice", unit="5 kg", price=6800,
                    days_per_unit_per_person=12.5, active=True)]
    rows[1].unit_zh = "5 公斤装"
    assert export_text(rows, "csv", "CNY") == (
        "sku,name_en,name_zh,category,unit,unit_zh,price,days_per_unit_per_person,active\n"
        "A,Salt & co,盐,c,500 g,,3.50,,false\nB,Rice,米,rice,5 kg,5 公斤装,68.00,12.5,true\n")
    yaml_text = export_text(rows, "yaml", "CNY")
    assert "price: 3.50\n" in yaml_text and "days_per_unit_per_person: 12.5\n" in yaml_text
    assert "name_zh: 盐" in yaml_text
    assert "unit: 5 kg\n  unit_zh: 5 公斤装\n  price: 68.00\n" in yaml_text and yaml_text.count("unit_zh") == 1


def test_chinese_units_are_read_and_checked() -> None:
    head = "sku,name_en,name_zh,category,unit,unit_zh,price\n"
    [row] = parse_catalog((head + "OIL-5,Peanut oil,花生油,oil,5 L bottle, 5 升桶装 ,139\n").encode(), "csv", "CNY")
    assert (row["unit"], row["unit_zh"]) == ("5 L bottle", "5 升桶装")
    assert problems_of((head + "OIL-5,Peanut oil,花生油,oil,5 L bottle," + "升" * 33 + ",139\n").encode()) == [
        "line 2: unit_zh is longer than 32 characters"]


# ----- the command line ---------------------------------------------------------

@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    monkeypatch.chdir(tmp_path)  # no .env from the working directory
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CURRENCY", "CNY")
    return settings


def test_cli_rejects_a_bad_file_with_exit_code_2(cli_env: Settings, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["catalog", "import", str(SAMPLE_CATALOG)]) == 0
    assert "20 new, 0 updated, 0 unchanged" in capsys.readouterr().out
    bad = tmp_path / "bad.csv"
    bad.write_bytes((HEADER + "RICE-JAS-5,Jasmine rice,泰国香米,rice,5 kg bag,-68,,\n"
                     "RICE-JAS-5,x,y,rice,u,1,,\n").encode() + b"X,\xff,y,c,u,1,,\n")
    assert cli.main(["catalog", "import", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "3 problem(s), nothing was imported" in err
    assert "line 2: price must not be negative (-68)" in err
    assert "line 3: duplicate sku 'RICE-JAS-5' (first on line 2)" in err
    assert "line 4: not UTF-8" in err
    # Unchanged: exporting gives the sample catalog back.
    out = tmp_path / "out.csv"
    assert cli.main(["catalog", "export", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == SAMPLE_CATALOG.read_text(encoding="utf-8")


def test_cli_export_to_stdout_and_missing_file(cli_env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["catalog", "import", str(SAMPLE_CATALOG)]) == 0
    capsys.readouterr()
    assert cli.main(["catalog", "export"]) == 0
    assert capsys.readouterr().out == SAMPLE_CATALOG.read_text(encoding="utf-8")
    assert cli.main(["catalog", "import", "nope.csv"]) == 2
    assert "no such file" in capsys.readouterr().err


# ----- the sample catalog -----------------------------------------------------------

def test_sample_catalog_is_a_rice_and_grocery_shop() -> None:
    rows = parse_catalog(SAMPLE_CATALOG.read_bytes(), "csv", "CNY")
    assert 18 <= len(rows) <= 25
    assert len({r["category"] for r in rows}) >= 5
    rice = next(r for r in rows if r["unit"] == "5 kg bag" and r["category"] == "rice")
    assert rice["days_per_unit_per_person"] == 10
    assert all(r["name_zh"] and r["name_en"] for r in rows)


async def test_the_sandbox_loads_the_sample_only_into_an_empty_catalog(app: App) -> None:
    await load_sample_catalog_if_empty(app.db, app.settings.currency)
    assert len(await all_products(app)) == 20
    await set_product(app, "RICE-JAS-5", price=1)
    await load_sample_catalog_if_empty(app.db, app.settings.currency)  # not empty: left alone
    assert (await product(app, "RICE-JAS-5")).price == 1
