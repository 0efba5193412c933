"""Report charts as a manager sees them: Chinese drawn with the packaged font,
and charts that do not mislead (partial periods, targets, zero bars)."""

from __future__ import annotations

import logging
import os
import re
import warnings
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from bot.fake_telegram import FakeTelegram, FakeUser
from bot.reports import charts
from tests.conftest import MANAGER_ID
from tests.test_reports_handlers import assert_png, db_of, photos
from tests.test_reports_sales import build_shop

CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """Every chart function called, with its arguments (the chart is still drawn)."""
    calls: list[tuple[str, dict[str, Any]]] = []
    for name in ("revenue_trend", "segment_sizes", "seasonal_index", "response_times", "rating_distribution"):
        original = getattr(charts, name)

        def spy(*args: Any, _name: str = name, _original: Any = original, **kwargs: Any) -> bytes:
            calls.append((_name, {"args": args, **kwargs}))
            return _original(*args, **kwargs)

        monkeypatch.setattr(charts, name, spy)
    return calls


async def test_every_chart_in_chinese_has_every_glyph(app: App, world: FakeTelegram, caplog: pytest.LogCaptureFixture,
                                                      drawn: list[tuple[str, dict[str, Any]]]) -> None:
    """Each chart in zh: Chinese labels, and matplotlib finds a glyph for every character."""
    await build_shop(db_of(app))
    boss = FakeUser(world, MANAGER_ID, "老板", language_code="zh-hans")
    keep = os.environ.get("CAREDESK_KEEP_CHARTS")  # a folder: the PNGs are written there to look at
    caplog.set_level(logging.WARNING, logger="matplotlib")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for command in ("/report 2026-02", "/abc 2026-02", "/rfm 2026-02", "/seasonal", "/sla 2026-02",
                        "/csat 2026-02"):
            [photo] = photos(await boss.send(command))
            assert_png(photo)
            if keep:
                Path(keep, command[1:].split()[0] + ".png").write_bytes(photo.file or b"")
    missing = [str(w.message) for w in caught if "missing from font" in str(w.message)]
    assert missing == []
    assert not [r for r in caplog.records if "not found" in r.getMessage()]
    assert sorted({name for name, _ in drawn}) == ["rating_distribution", "response_times", "revenue_trend",
                                                   "seasonal_index", "segment_sizes"]
    for name, arguments in drawn:
        assert CJK.search(arguments["title"]), (name, arguments["title"])
