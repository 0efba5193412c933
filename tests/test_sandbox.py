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


async def shell(settings: Settings, script: str) -> tuple[int, str]:
    out = io.StringIO()
    code = await run_sandbox(settings, stdin=io.StringIO(script), out=out)
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


async def test_a_handler_that_raises_fails_the_script(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    async def install_failure(app: Any) -> None:
        async def explode(handler: Any, event: Any, data: dict[str, Any]) -> Any:
            if event.message is not None and event.message.text == "boom":
                raise RuntimeError("kaboom")
            return await handler(event, data)

        app.dispatcher.update.outer_middleware(explode)

    monkeypatch.setattr(sandbox_module, "START_HOOKS", [*sandbox_module.START_HOOKS, install_failure])
    code, output = await shell(settings, "boom\n/help\n")
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
