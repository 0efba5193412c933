"""The issue's sandbox scenario (issue 12, items 1 and 2), piped into ``caredesk shell`` on a fresh
database, in English and in Chinese: the customer answers the post-delivery survey with free text,
the staff chat sees it and replies; a birthday and a reorder reminder due the same day arrive on two
days, the greeting first."""

from __future__ import annotations

import asyncio
import io
import re
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.config import Settings
from bot.sandbox import run_sandbox
from storage.migrate import upgrade

TZ = "Asia/Shanghai"

ORDER = {
    "en": """\
/order
:press Rice
:press Jasmine rice, 5 kg
5
:press Checkout
:press 12 Rice
:press Skip
:press Confirm order
:as staff
:press Accept
:press Delivered
:as customer 1
""",
    # The same presses by number (the labels are Chinese; the staff chat speaks Chinese too).
    "zh": """\
/order
:press 1
:press 1
5
:press 2
:press 1
:press 1
:press 1
:as staff
:press 1
:press 2
:as customer 1
""",
}
REGISTER = {
    "en": "/start\n:press 1\n:contact\n{birthday}\n12 Rice Street\n3\n:press yes\n:press confirm\n",
    "zh": ":lang zh\n/start\n:press 1\n:contact\n{birthday}\n人民路 12 号\n3\n:press 1\n:press 1\n",
}
WORDS = {
    "en": ("Delivery was late and the bag was torn", "So sorry! A new bag comes today, no charge."),
    "zh": ("送货晚了，米袋也破了", "非常抱歉！今天给您补送一袋新的，不收费。"),
}
EXPECT = {
    "en": {"relayed": "after the delivery survey of order no. 1", "reply": "💬 Sam (staff) from our team:",
           "birthday": "🎂 Happy birthday", "reminder": "🌾 Hi Customer 1! By our count your Jasmine rice"},
    "zh": {"relayed": "收到订单 #1 的送货满意度调查后来信", "reply": "💬 工作人员 Sam (staff)：",
           "birthday": "生日快乐", "reminder": "按我们的估算，您的泰国香米"},
}


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_survey_answer_reaches_staff_and_birthday_goes_before_the_reminder(tmp_path: Path, lang: str) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'sandbox.sqlite3'}"
    await asyncio.to_thread(upgrade, url)
    settings = Settings(_env_file=None, database_url=url, sandbox_files_dir=tmp_path / "files",
                        default_timezone=TZ, default_language=lang)
    # Orders on day 0 and day 8 (local): the rice runs out on day 16, the reminder is due on day 14
    # (REORDER_DAYS_BEFORE = 2) — the birthday.
    today = datetime.now(ZoneInfo(TZ)).date()
    birthday = (today + timedelta(days=14)).replace(year=1992)
    words, answer = WORDS[lang]
    script = (REGISTER[lang].format(birthday=birthday.isoformat()) + ORDER[lang]
              + f":advance 3d\n{words}\n:as staff\n:reply {answer}\n:as customer 1\n:advance 5d\n"
              + ORDER[lang] + ":advance 9d\n:quit\n")
    out = io.StringIO()
    code = await run_sandbox(settings, stdin=io.StringIO(script), out=out)
    output = out.getvalue()
    assert code == 0, output
    expect = EXPECT[lang]
    lines = output.splitlines()
    relayed = next(i for i, line in enumerate(lines)
                   if line.startswith("[staff chat]: 💬") and expect["relayed"] in line)
    assert words in lines[relayed + 1]
    assert any(line.startswith(f"[to customer 1]: {expect['reply']}") for line in lines), output
    assert answer in output

    def arrived(marker: str) -> tuple[int, str]:
        line = next(line for line in lines if marker in line and line.startswith("["))
        match = re.match(r"\[\w{3} (\d\d) \w{3} (\d\d:\d\d)\]", line)
        assert match, line
        return int(match.group(1)), match.group(2)

    greeting_day, greeting_at = arrived(expect["birthday"])
    reminder_day, reminder_at = arrived(expect["reminder"])
    assert (greeting_day, greeting_at) == (birthday.day, "10:00")
    assert reminder_at == "09:00" and reminder_day == (today + timedelta(days=15)).day  # the next day
