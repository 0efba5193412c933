"""``caredesk shell``: scripts piped into the sandbox, as a new user would.

Most tests run :func:`bot.sandbox.run_sandbox` in-process on a fresh migrated
database (the ``settings`` fixture); one runs the real ``python -m bot shell``.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import bot.sandbox as sandbox_module
from bot.config import Settings
from bot.sandbox import SANDBOX_STAFF_CHAT_ID, parse_duration, run_sandbox
from storage.db import Database
from storage.models import Customer

REPO = Path(__file__).resolve().parent.parent
NAME = "<b>Li & Co</b> 🍚"


async def shell(settings: Settings, script: str, start_hooks: Any = ()) -> tuple[int, str]:
    out = io.StringIO()
    code = await run_sandbox(settings, stdin=io.StringIO(script), out=out, start_hooks=start_hooks)
    return code, out.getvalue()


def after(output: str, line: str) -> str:
    """What the sandbox printed after the script line ``line`` (up to the next script line)."""
    marker = f"> {line}\n"
    assert marker in output, f"the script line {line!r} is not in the output"
    rest = output.split(marker, 1)[1]
    return re.split(r"^(?:customer \d+|staff|manager)[^\n>]*> ", rest, maxsplit=1, flags=re.M)[0]


async def customers(settings: Settings) -> list[Customer]:
    db = Database(settings.database_url)
    try:
        async with db.session() as session:
            return list((await session.scalars(select(Customer).order_by(Customer.telegram_id))).all())
    finally:
        await db.dispose()


REGISTER_AND_RESTART = f"""\
# customer 1 registers with a name full of HTML
/start
{NAME}
:contact
1990-03-25
12 Rice Street
3
:press Yes
:press Confirm
/profile
# a second customer, with the bot rebuilt in the middle of registration
:as customer 2
/start
:press 1
:restart
:contact
:press Skip
:press Skip
:press Skip
:press No
:press Confirm
/profile
:quit
"""


async def test_register_show_profile_and_survive_a_restart(settings: Settings) -> None:
    code, output = await shell(settings, REGISTER_AND_RESTART)
    assert code == 0, output
    assert output.startswith("CareDesk sandbox")
    # The name is shown exactly as typed: no tags rendered, none lost.
    assert f"Name: {NAME}" in after(output, "/profile")
    assert NAME in after(output, ":press Confirm")
    # Buttons are numbered.
    assert "[1] Use “Customer 1”" in after(output, "/start")
    # The second registration continues after the restart where it was.
    assert "-- the bot was rebuilt from the database" in after(output, ":restart")
    assert "Phone: +86" in after(output, ":contact")
    summary = output.rsplit("> /profile\n", 1)[1]
    assert "Name: Customer 2" in summary and "Care messages: no" in summary
    assert "\n! " not in output  # no failed line
    rows = await customers(settings)
    assert [(c.name, c.care_consent) for c in rows] == [(NAME, True), ("Customer 2", False)]


async def test_a_line_that_cannot_be_done_fails_the_script(settings: Settings) -> None:
    code, output = await shell(settings, "/start\n:press There is no such button\n/cancel\n:unknown\n")
    assert code == 1
    assert "! no button 'There is no such button'" in output
    assert "! unknown sandbox command :unknown" in output
    assert "-- 2 line(s) failed" in output
    assert "/cancel" in output  # the script went on after the bad line


async def test_a_handler_that_raises_fails_the_script(settings: Settings) -> None:
    async def install_failure(app: Any) -> None:
        async def explode(handler: Any, event: Any, data: dict[str, Any]) -> Any:
            if event.message is not None and event.message.text == "boom":
                raise RuntimeError("kaboom")
            return await handler(event, data)

        app.dispatcher.update.outer_middleware(explode)

    code, output = await shell(settings, "boom\n/help\n", start_hooks=[install_failure])
    assert code == 1
    assert "! the bot failed: RuntimeError: kaboom" in output
    assert "What I can do" in after(output, "/help")  # the next line still works


async def test_advance_moves_the_clock(settings: Settings) -> None:
    code, output = await shell(settings, ":time\n:advance 2h\n:advance 1h30m\n:advance soon\n")
    assert code == 1  # "soon" is not a duration
    times = [datetime.strptime(t, "%Y-%m-%d %H:%M") for t in re.findall(r"sandbox time: (\S+ \S+)", output)]
    assert len(times) == 3
    assert times[1] - times[0] == timedelta(hours=2)
    assert times[2] - times[1] == timedelta(hours=1, minutes=30)
    assert "! not a duration: 'soon'" in output


@pytest.mark.parametrize("text, delta", [
    ("3d", timedelta(days=3)), ("2h", timedelta(hours=2)), ("30m", timedelta(minutes=30)),
    ("1d12h", timedelta(days=1, hours=12)), ("1w", timedelta(weeks=1)), ("90s", timedelta(seconds=90)),
])
def test_parse_duration(text: str, delta: timedelta) -> None:
    assert parse_duration(text) == delta


async def test_staff_speak_in_the_staff_chat(settings: Settings) -> None:
    code, output = await shell(settings, ":as staff\n/help\n:as staff private\n/help\n:as manager\n/help\n")
    assert code == 0, output
    assert "-- you are now staff (staff chat)" in output
    in_group = after(output, "/help")
    assert in_group.startswith("[staff chat]: ")
    assert "/tickets" in in_group and "/report" not in in_group
    private = output.split("-- you are now staff (private chat)", 1)[1]
    assert after(private, "/help").startswith("bot: ")  # the private chat is the persona's own
    manager = output.split("-- you are now manager (staff chat)", 1)[1]
    assert "[staff chat]: " in manager and "/report" in manager
    assert settings.staff_chat_id == SANDBOX_STAFF_CHAT_ID


async def test_a_document_is_saved_and_its_path_printed(settings: Settings) -> None:
    code, output = await shell(settings, f"/start\n{NAME}\n:contact\n:press Skip\n:press Skip\n:press Skip\n"
                                         ":press No\n:press Confirm\n/mydata\n")
    assert code == 0, output
    match = re.search(r"📎 document saved to (\S+)", after(output, "/mydata"))
    assert match, output
    path = Path(match.group(1))
    assert path.is_file()
    assert path.resolve().parent == Path(settings.sandbox_files_dir).resolve()
    assert NAME in json.dumps(json.loads(path.read_text(encoding="utf-8")), ensure_ascii=False)


async def test_chinese_persona(settings: Settings) -> None:
    code, output = await shell(settings, ":lang zh\n/start\n")
    assert code == 0, output
    reply = after(output, "/start")
    assert re.search(r"[\u4e00-\u9fff]", reply), reply  # answered in Chinese


def test_the_real_command_with_piped_input(tmp_path: Path) -> None:
    """``python -m bot shell < script`` in an empty directory: migrates, runs, exits 0."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in {n.upper() for n in Settings.model_fields}}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    script = f"/start\n{NAME}\n:contact\n:press Skip\n:press Skip\n:press Skip\n:press Yes\n:press Confirm\n/profile\n"
    result = subprocess.run([sys.executable, "-m", "bot", "shell"], input=script, cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Name: {NAME}" in result.stdout
    assert (tmp_path / "data" / "caredesk.sqlite3").is_file()  # the default database, made and migrated


# ----- the newcomer path and sandbox fidelity (issue 12, items 20 and 21) ----------------------

REGISTERED = "/start\n:press 1\n:contact\n:press Skip\n12 Rice Street\n:press Skip\n:press Yes\n:press Confirm\n"


async def test_staff_start_in_the_staff_group_lists_their_commands(settings: Settings) -> None:
    code, output = await shell(settings, ":as staff\n/start\n:as manager\n/start\n:lang zh\n/start\n"
                                         "/language\n:press 中文\n/start\n")
    assert code == 0, output
    staff = after(output, "/start")
    assert staff.startswith("[staff chat]: Commands for staff"), staff
    assert "/tickets" in staff and "/report" not in staff and "don't know" not in staff
    manager = output.split("-- you are now manager (staff chat)", 1)[1]
    assert "Commands for managers" in after(manager, "/start") and "/report" in after(manager, "/start")
    # The staff chat reads one language, the group's (not each member's Telegram language) until
    # staff choose another there with /language.
    chinese = output.split("Telegram language of manager (staff chat): zh", 1)[1]
    assert after(chinese, "/start").startswith("[staff chat]: Commands for managers"), chinese
    chosen = output.split("(staff chat)> /language", 1)[1]
    assert after(chosen, "/start").startswith("[staff chat]: 经理可用的命令"), chosen


def _zone_settings(settings: Settings, **values: Any) -> Settings:
    return Settings(_env_file=None, database_url=settings.database_url, sandbox_files_dir=settings.sandbox_files_dir,
                    **values)


@pytest.mark.parametrize("values, zone, note", [
    ({"default_region": "CN"}, "Asia/Shanghai", "the zone of DEFAULT_REGION=CN"),
    ({"default_region": "CN", "default_timezone": "Europe/Berlin"}, "Europe/Berlin", "(DEFAULT_TIMEZONE)"),
    ({"default_region": "US"}, "UTC", "DEFAULT_REGION=US has several zones"),
])
async def test_the_sandbox_keeps_the_time_of_the_configured_region(
        settings: Settings, values: dict[str, str], zone: str, note: str) -> None:
    code, output = await shell(_zone_settings(settings, **values), ":time\n")
    assert code == 0, output
    start = output.splitlines()[1]
    assert start.startswith("-- the clock starts at ") and f"times are in {zone}" in start and note in start, start
    assert f"({zone})" in after(output, ":time")


async def test_button_answers_are_shown(settings: Settings) -> None:
    """Toasts and alerts are printed as the person who pressed sees them."""
    code, output = await shell(settings, REGISTERED + ":press Order\n:press Rice\n:press 1\n:press 1\n"
                               ":press Checkout\n:press 12 Rice\n:press Skip\n:press Confirm order\n"
                               ":as staff\n:press Accept twice\n")
    assert code == 0, output
    pressed = after(output, ":press Accept twice")
    assert pressed.startswith("[staff chat] (toast): Order #1: Accepted.\n"), pressed
    # The second tap: an alert with OK (the card was changed by the first).
    assert "[staff chat] (alert): Order #1 is already Accepted (Sam (staff), " in pressed


async def test_a_stale_button_says_it_expired(settings: Settings) -> None:
    code, output = await shell(settings, "/start\n/cancel\n:press Use\n")
    assert code == 0, output
    assert after(output, ":press Use").strip() == "bot (toast): This button has expired."


async def test_service_messages_arrive_right_after_the_line_that_caused_them(settings: Settings) -> None:
    """The resolution note and its rating reach the customer at once; the clock does not move."""
    code, output = await shell(settings, REGISTERED + "/complaint\n:press Delivery\nThe bag was torn\n:press Submit\n"
                               ":as staff\n:time\n:press Take\n:press Resolve\nNew bag delivered\n:time\n"
                               ":as customer 1\n:press 5\n")
    assert code == 0, output
    resolved = after(output, "New bag delivered")
    assert "[to customer 1]: ✅ Your complaint no. 1 is resolved." in resolved, resolved
    assert "[5] 5 ⭐" in resolved
    times = re.findall(r"sandbox time: (\S+ \S+)", output)
    assert times[-2] == times[-1], times  # nothing moved the clock
    assert "Thank you for your rating!" in after(output, ":press 5")


async def test_press_a_button_of_an_older_message(settings: Settings) -> None:
    """``:press N on -K``: the menu under the welcome stays pressable while a dialog runs;
    ``:press … twice`` taps the same button twice (one order, not two)."""
    code, output = await shell(settings, REGISTERED + "/complaint\n:press 6 on -2\n"
                               ":press Other\n/cancel\n:press Order\n:press Rice\n:press 1\n:press 1\n"
                               ":press Checkout\n:press 12 Rice\n:press Skip\n:press Confirm order twice\n")
    assert code == 0, output
    assert after(output, ":press 6 on -2").startswith("bot: What I can do")  # the menu's Help, under the welcome
    assert "bot (toast): Order #1 is already placed." in after(output, ":press Confirm order twice")
    assert output.count("🧾 Order #1 · New") == 1 and "Order #2" not in output


async def test_press_syntax_errors(settings: Settings) -> None:
    code, output = await shell(settings, ":press on -1\n:press 1 on -1\n/start\n:press 1 on -2 twice\n")
    assert code == 1
    assert "! usage: :press TEXT" in after(output, ":press on -1")
    assert "! no message with buttons in this chat (customer 1)" in after(output, ":press 1 on -1")
    assert "! only 1 message(s) with buttons in this chat, so no -2" in after(output, ":press 1 on -2 twice")


def _caredesk(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k.upper() not in {n.upper() for n in Settings.model_fields}}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_a_command_that_only_reads_refuses_a_database_that_does_not_exist(tmp_path: Path) -> None:
    """``caredesk report`` in the wrong folder names the database it looked for; it creates nothing."""
    expected = tmp_path / "data" / "caredesk.sqlite3"
    for args in (["report", "report"], ["catalog", "export"]):
        result = _caredesk(args, tmp_path)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, result.stdout + result.stderr
        assert lines[0].startswith(f"caredesk: no database at {expected}"), lines
    assert not (tmp_path / "data").exists()
    assert _caredesk(["migrate"], tmp_path).returncode == 0
    result = _caredesk(["report", "report"], tmp_path)
    assert result.returncode == 0, result.stderr


async def test_messages_to_many_other_chats_are_summed_up(settings: Settings) -> None:
    """A campaign to hundreds of demo customers shows a few messages and a count, not every one."""
    out = io.StringIO()
    sandbox = sandbox_module.Sandbox(settings, out=out)
    await sandbox.start()
    try:
        assert sandbox.app is not None
        for n in range(5):
            await sandbox.app.bot.send_message(7_000_000_000 + n, f"Hello {n}")
        await sandbox.handle_line(":time")
        await sandbox.app.bot.send_message(7_000_000_009, "Hello again")
        await sandbox.handle_line(":time")
    finally:
        await sandbox.close()
    text = out.getvalue()
    assert "[to chat 7000000002]: Hello 2" in text and "Hello 3" not in text and "Hello 4" not in text
    assert text.count("-- and 2 more message(s) to other customers' chats, not shown") == 1
    assert "[to chat 7000000009]: Hello again" in text  # the count starts again with each line


def test_a_sandbox_after_time_travel_still_delivers(tmp_path: Path) -> None:
    """An earlier ``caredesk shell`` moved its clock two days ahead (and took the leases on that clock);
    the next one, another process on the same database, still runs the jobs and delivers at once."""
    def shell_process(script: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k.upper() not in {n.upper() for n in Settings.model_fields}}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        return subprocess.run([sys.executable, "-m", "bot", "shell"], input=script, cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)

    assert shell_process(":advance 2d\n").returncode == 0
    result = shell_process(REGISTERED + "/complaint\n:press Delivery\nThe bag was torn\n:press Submit\n"
                           ":as staff\n:press Take\n:press Resolve\nNew bag delivered\n")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[to customer 1]: ✅ Your complaint no. 1 is resolved." in after(result.stdout, "New bag delivered"), \
        result.stdout + result.stderr


async def test_a_message_whose_buttons_change_is_shown_again(settings: Settings) -> None:
    """Priority on a ticket card swaps its buttons for the priorities: the reader sees the new buttons."""
    code, output = await shell(settings, REGISTERED + "/complaint\n:press Delivery\nThe bag was torn\n:press Submit\n"
                               ":as staff\n:press Priority\n")
    assert code == 0, output
    pressed = after(output, ":press Priority")
    assert pressed.startswith("[staff chat] (edited #1): 🎫 Complaint no. 1"), output
    assert "🙋 Take" not in pressed and "[2] 🟡 Normal" in pressed, pressed


async def test_a_persona_keeps_its_language(settings: Settings) -> None:
    """The Telegram language is the person's: it stays after playing someone else, in their private chat
    (the staff chat reads the group's language)."""
    code, output = await shell(settings, ":as staff\n:lang zh\n:as customer 1\n:as staff\n/help\n"
                               ":as staff private\n/start\n")
    assert code == 0, output
    assert after(output, "/help").startswith("[staff chat]: Commands for staff"), output
    assert after(output, "/start").startswith("bot: 员工可用的命令"), output
