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
from matplotlib.text import Text

from bot.app import App
from bot.fake_telegram import FakeTelegram, FakeUser
from bot.reports import charts
from tests.conftest import MANAGER_ID
from tests.helpers import Data, utc
from tests.test_reports_handlers import assert_png, photos
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
    await build_shop(app.db)
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


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every figure drawn, as matplotlib built it (to read bars, hatches, lines and labels)."""
    kept: list[Any] = []
    original = charts._png

    def keep(figure: Any) -> bytes:
        kept.append(figure)
        png = original(figure)
        if folder := os.environ.get("CAREDESK_KEEP_CHARTS"):  # to look at them
            Path(folder, f"figure-{id(figure)}.png").write_bytes(png)
        return png

    monkeypatch.setattr(charts, "_png", keep)
    return kept


async def test_partial_months_are_marked(app: App, manager: FakeUser, figures: list[Any]) -> None:
    """/report 12m on 2 March: March 2025 from the 3rd and March 2026 (two days) are hatched, labelled bars."""
    await build_shop(app.db)
    [photo] = photos(await manager.send("/report 12m"))
    [figure] = figures
    axes = figure.axes[0]
    bars = [patch for patch in axes.patches]
    assert len(bars) == 13  # 2025-03 … 2026-03
    hatched = sorted(round(bar.get_x() + bar.get_width() / 2) for bar in bars if bar.get_hatch())
    assert hatched == [0, 12]
    legend = [text.get_text() for text in axes.get_legend().get_texts()]
    assert "part of a month" in legend


async def test_response_times_show_each_priority_target_and_zero_bars(app: App, manager: FakeUser,
                                                                      figures: list[Any]) -> None:
    await build_shop(app.db)
    async with app.db.session() as session:
        d = Data(session, first_id=100)
        zed = d.customer("Zed")
        d.ticket(zed, utc(2026, 2, 11, 2), priority="high", first_response_at=utc(2026, 2, 11, 2),
                 first_response_minutes=0, first_response_breached=False, assignee_name="Zoe")
        await d.commit()
    [photo] = photos(await manager.send("/sla 2026-02"))
    [figure] = figures
    axes = figure.axes[0]
    legend = [text.get_text() for text in axes.get_legend().get_texts()]
    assert "High priority target: 30m" in legend and "Normal priority target: 2h" in legend
    assert "9 in 10 answered within" in legend
    assert sorted(line.get_ydata()[0] for line in axes.get_lines()) == [30, 120]
    labels = [tick.get_text() for tick in axes.get_xticklabels()]
    zoe = labels.index("Zoe")
    zoe_bars = [bar for bar in axes.patches if abs(bar.get_x() + bar.get_width() / 2 - zoe) < 0.5]
    assert len(zoe_bars) == 2 and all(bar.get_height() > 0 for bar in zoe_bars)
    assert [t.get_text() for t in axes.texts].count("0m") >= 2


def test_a_bold_title_asks_only_dejavu(figures: list[Any]) -> None:
    """An English title is bold in DejaVu Sans alone: bold asked of the CJK face (it has one weight) made
    matplotlib warn "Failed to find font weight bold" in the bot's log; a Chinese one is a size larger."""
    charts.seasonal_index(["Jan", "Feb"], [90.0, 110.0], title="Seasonal index", baseline_label="100 = average")
    charts.seasonal_index(["1月", "2月"], [90.0, 110.0], title="季节指数", baseline_label="100 = 平均")
    english, chinese = (next(child for child in figure.axes[0].get_children()
                             if isinstance(child, Text) and child.get_text() == title)
                        for figure, title in zip(figures, ("Seasonal index", "季节指数"), strict=True))
    assert (english.get_fontfamily(), english.get_fontweight(), english.get_fontsize()) == (["DejaVu Sans"], "bold", 13)
    assert chinese.get_fontweight() == "normal" and chinese.get_fontsize() == 14
