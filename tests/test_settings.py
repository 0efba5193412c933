"""Settings: a bad value stops ``caredesk`` with one line naming the variable
(exit code 2); ``run`` without a token points to the sandbox; ``.env`` is read.

Every bad value goes through ``bot.cli.main`` in-process (the same code path
as the console script, and fast); a few cases also run the real
``python -m bot`` in subprocesses (started at once), each in an empty
directory with only the variables the case sets.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config import Settings

REPO = Path(__file__).resolve().parent.parent

# variable -> (environment of the case, a fragment the line must contain)
BAD: dict[str, tuple[dict[str, str], str]] = {
    "DEFAULT_TIMEZONE": ({"DEFAULT_TIMEZONE": "Mars/Olympus_Mons"}, "Mars/Olympus_Mons"),
    "DEFAULT_LANGUAGE": ({"DEFAULT_LANGUAGE": "fr"}, "'en' or 'zh'"),
    "STAFF_IDS": ({"STAFF_IDS": "123,abc"}, "123,456"),
    "MANAGER_IDS": ({"MANAGER_IDS": "1.5"}, "123,456"),
    "STAFF_CHAT_ID": ({"STAFF_CHAT_ID": "the-staff-group"}, "integer"),
    "DEFAULT_REGION": ({"DEFAULT_REGION": "XX"}, "'XX'"),
    "DATABASE_URL": ({"DATABASE_URL": "mysql://root@localhost/caredesk"}, "sqlite+aiosqlite"),
    "REDIS_URL": ({"REDIS_URL": "localhost:6379"}, "redis://"),
    "BOT_TOKEN": ({"BOT_TOKEN": "not a token"}, "BotFather"),
    "MODE": ({"MODE": "carrier-pigeon"}, "'polling' or 'webhook'"),
    "WEBHOOK_URL": ({"MODE": "webhook", "WEBHOOK_SECRET": "s3cret"}, "MODE=webhook"),
    "WEBHOOK_SECRET": ({"MODE": "webhook", "WEBHOOK_URL": "https://bot.example.com"}, "MODE=webhook"),
    "WEBHOOK_PORT": ({"WEBHOOK_PORT": "0"}, "greater than or equal to 1"),
    "TELEGRAM_API_URL": ({"TELEGRAM_API_URL": "localhost:8081"}, "http"),
}
# Names of every setting, so a case runs with none of them inherited from this process.
SETTING_NAMES = {name.upper() for name in Settings.model_fields}


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.upper() not in SETTING_NAMES}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env.update(extra)
    return env


def start(args: list[str], cwd: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "bot", *args], cwd=cwd, env=clean_env(**env),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# The cases that also run as real processes (each costs an interpreter start).
SUBPROCESS_CASES = ("DEFAULT_TIMEZONE", "WEBHOOK_URL")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, subprocess.Popen[str]]]:
    """The command-line cases, started at once; a test waits for its own."""
    procs: dict[str, subprocess.Popen[str]] = {}
    for name in SUBPROCESS_CASES:
        env = BAD[name][0]
        where = tmp_path_factory.mktemp(f"bad-{name.lower()}")
        procs[name] = start(["migrate"], where, **{"DATABASE_URL": f"sqlite+aiosqlite:///{where / 'db.sqlite3'}",
                                                   **env})
    where = tmp_path_factory.mktemp("run-no-token")
    procs["run without token"] = start(["run"], where)
    where = tmp_path_factory.mktemp("dotenv")
    (where / ".env").write_text("# a .env next to where caredesk runs\nDEFAULT_TIMEZONE=Atlantis/Capital\n")
    procs[".env"] = start(["migrate"], where)
    where = tmp_path_factory.mktemp("good")
    procs["good"] = start(["migrate"], where, DATABASE_URL=f"sqlite+aiosqlite:///{where / 'data' / 'db.sqlite3'}",
                          STAFF_IDS="1,2", MANAGER_IDS="3", DEFAULT_TIMEZONE="Asia/Shanghai", STAFF_CHAT_ID="")
    procs["good"].cwd = where  # type: ignore[attr-defined]
    yield procs
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


def check_one_line(variable: str, code: int | str | None, out: str, err: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2, (code, out, err)
    assert len(lines) == 1, f"expected one line, got:\n{err}"
    assert lines[0].startswith(f"caredesk: bad configuration: {variable}: "), lines[0]
    assert BAD[variable][1] in lines[0]
    assert "Traceback" not in err
    assert out == ""


@pytest.mark.parametrize("variable", list(BAD))
def test_a_bad_value_stops_with_one_line_naming_the_variable(
    variable: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main

    for name in list(os.environ):
        if name.upper() in SETTING_NAMES:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}")
    for name, value in BAD[variable][0].items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit_info:
        main(["migrate"])
    captured = capsys.readouterr()
    check_one_line(variable, exit_info.value.code, captured.out, captured.err)
    assert not (tmp_path / "db.sqlite3").exists()  # stopped before touching anything


@pytest.mark.parametrize("variable", SUBPROCESS_CASES)
def test_the_real_command_exits_2_with_one_line(runs: dict[str, subprocess.Popen[str]], variable: str) -> None:
    check_one_line(variable, *finish(runs[variable]))


def test_run_without_a_token_points_to_the_sandbox(runs: dict[str, subprocess.Popen[str]]) -> None:
    code, out, err = finish(runs["run without token"])
    lines = err.strip().splitlines()
    assert code == 2
    assert len(lines) == 1, err
    assert "BOT_TOKEN" in lines[0] and "caredesk shell" in lines[0]


def test_dotenv_in_the_working_directory_is_read(runs: dict[str, subprocess.Popen[str]]) -> None:
    code, _, err = finish(runs[".env"])
    assert code == 2
    assert "DEFAULT_TIMEZONE" in err and "Atlantis/Capital" in err


def test_good_settings_migrate(runs: dict[str, subprocess.Popen[str]]) -> None:
    proc = runs["good"]
    code, out, err = finish(proc)
    assert code == 0, err
    assert "database is up to date" in out
    assert (proc.cwd / "data" / "db.sqlite3").is_file()  # type: ignore[attr-defined]  (the folder is made)


# ----- in-process: how values are read ---------------------------------------------------------
@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No setting inherited from this process; an empty working directory."""
    for name in list(os.environ):
        if name.upper() in SETTING_NAMES:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("raw, expected", [
    ("1,2", {1, 2}),
    (" 1, 2 ", {1, 2}),
    ("1;2 3", {1, 2, 3}),
    ("42", {42}),
    ("", set()),
])
def test_staff_ids_parse(bare_env: Path, monkeypatch: pytest.MonkeyPatch, raw: str, expected: set[int]) -> None:
    monkeypatch.setenv("STAFF_IDS", raw)
    monkeypatch.setenv("MANAGER_IDS", "7")
    settings = Settings()
    assert settings.staff_ids == expected
    assert settings.all_staff_ids == expected | {7}  # managers are staff too


def test_dotenv_values_blanks_and_precedence(bare_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (bare_env / ".env").write_text(
        "STAFF_IDS=1,2\nDEFAULT_TIMEZONE=Asia/Shanghai\nDEFAULT_LANGUAGE=zh\nSTAFF_CHAT_ID=\nBOT_TOKEN=\n"
        "DEFAULT_REGION=hk\n"
    )
    monkeypatch.setenv("DEFAULT_LANGUAGE", "en")  # the environment wins over .env
    settings = Settings()
    assert settings.staff_ids == {1, 2}
    assert settings.default_timezone == "Asia/Shanghai"
    assert settings.default_language == "en"
    assert settings.staff_chat_id is None  # blank means not set
    assert settings.bot_token is None
    assert settings.default_region == "HK"


def test_defaults_without_any_configuration(bare_env: Path) -> None:
    settings = Settings()
    assert settings.mode == "polling"
    assert settings.database_url == "sqlite+aiosqlite:///./data/caredesk.sqlite3"
    assert settings.default_language == "en"
    assert settings.bot_token is None and settings.redis_url is None


@pytest.mark.parametrize("raw, expected", [
    ("sqlite:///./x.sqlite3", "sqlite+aiosqlite:///./x.sqlite3"),
    ("postgresql://u@db/caredesk", "postgresql+asyncpg://u@db/caredesk"),
    ("postgres://u@db/caredesk", "postgresql+asyncpg://u@db/caredesk"),
    ("postgresql+asyncpg://u@db/caredesk", "postgresql+asyncpg://u@db/caredesk"),
])
def test_database_url_gets_the_async_driver(bare_env: Path, raw: str, expected: str) -> None:
    assert Settings(database_url=raw).database_url == expected


def test_webhook_settings_accepted_when_complete(bare_env: Path) -> None:
    settings = Settings(mode="webhook", webhook_url="https://bot.example.com", webhook_secret="abc_DEF-123",
                        webhook_port=8443)
    assert settings.webhook_secret is not None and settings.webhook_secret.get_secret_value() == "abc_DEF-123"
    # A local Bot API server may post to plain http.
    Settings(mode="webhook", webhook_url="http://caredesk:8080", webhook_secret="x",
             telegram_api_url="http://botapi:8081")
