"""Report charts as PNG bytes (matplotlib, Agg backend, no pyplot state).

Each function takes figures and ready-made (translated) labels and returns a
PNG of about 900×500 pixels. Figures are built with the object API
(``Figure`` + ``FigureCanvasAgg``), so rendering never touches pyplot's
global state and may run in a worker thread.

Chinese labels are drawn with Noto Sans CJK SC from the ``noto-cjk-sans-otc``
package (a dependency, SIL Open Font License), registered by its file path, so
a fresh install draws Chinese without any font on the system.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from functools import lru_cache

import matplotlib

matplotlib.use("Agg")  # before anything imports pyplot; the bot never opens a window

from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

WIDTH, HEIGHT, DPI = 9.0, 5.0, 100
COLOR = "#2f6f9f"
COLOR_SOFT = "#9cc3e0"
COLOR_PREVIOUS = "#e07b39"
COLOR_TARGET = "#c0392b"
CJK_FONT = "Noto Sans CJK SC"  # the Simplified Chinese face of the packaged collection


@lru_cache(maxsize=1)
def cjk_font() -> str:
    """Register the packaged Noto Sans CJK collection with matplotlib; the name of its Chinese face."""
    import noto_cjk_sans_otc

    font_manager.fontManager.addfont(str(noto_cjk_sans_otc.FONT_PATH))
    names = {font.name for font in font_manager.fontManager.ttflist}
    if CJK_FONT not in names:  # matplotlib < 3.11 reads only the first face of a collection
        raise RuntimeError(f"{CJK_FONT} not found in {noto_cjk_sans_otc.FONT_PATH}")
    return CJK_FONT


def chart_language(lang: str) -> str:
    """The language to draw a chart in: the reader's (the CJK font comes with the package)."""
    return lang


def _figure(title: str, left: float = 0.09, bottom: float = 0.14) -> tuple[Figure, object]:
    # Fixed margins: a layout engine would cost more than the drawing itself.
    figure = Figure(figsize=(WIDTH, HEIGHT), dpi=DPI)
    FigureCanvasAgg(figure)
    figure.subplots_adjust(left=left, right=0.97, top=0.9, bottom=bottom)
    axes = figure.add_subplot()
    # The packaged CJK face has one weight: a Chinese title is set a size larger instead of bold, and
    # a bold title is set in DejaVu alone (bold asked of the whole family list made matplotlib warn
    # "Failed to find font weight bold for Noto Sans CJK SC").
    if title.isascii():
        axes.set_title(title, fontsize=13, loc="left", fontweight="bold", fontfamily="DejaVu Sans")
    else:
        axes.set_title(title, fontsize=14, loc="left")
    axes.spines[["top", "right"]].set_visible(False)
    axes.grid(axis="y", color="#dddddd", linewidth=0.8)
    axes.set_axisbelow(True)
    return figure, axes


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, pil_kwargs={"compress_level": 3})
    return buffer.getvalue()


def _style() -> dict[str, object]:
    """Fonts for the labels: DejaVu Sans, and the CJK font for what DejaVu lacks.

    Matplotlib falls back glyph by glyph along ``font.family`` only (a generic family such as
    ``sans-serif`` resolves to one font), so both are named there.
    """
    return {"font.family": ["DejaVu Sans", cjk_font()]}


def _thin_ticks(axes: object, labels: Sequence[str], most: int = 12) -> None:
    step = max(1, (len(labels) + most - 1) // most)
    positions = list(range(0, len(labels), step))
    axes.set_xticks(positions, [labels[i] for i in positions], rotation=45 if len(labels) > 8 else 0,
                    ha="right" if len(labels) > 8 else "center", fontsize=9)


def revenue_trend(labels: Sequence[str], values: Sequence[float], previous: Sequence[float] | None, *,
                  title: str, current_label: str, previous_label: str,
                  money: Callable[[float], str], partial: Sequence[bool] | None = None,
                  partial_label: str = "") -> bytes:
    """Revenue per day (or month) as bars, the previous period as a line.

    Bars of ``partial`` buckets (a month the period covers only in part) are hatched and lighter, with
    their own legend entry, so a month two days old does not look like a collapse.
    """
    with matplotlib.rc_context(_style()):
        figure, axes = _figure(title, left=0.11, bottom=0.17)
        positions = list(range(len(labels)))
        partial = list(partial or [False] * len(labels))
        whole = [p for p in positions if not partial[p]]
        part = [p for p in positions if partial[p]]
        axes.bar(whole, [values[p] for p in whole], color=COLOR, label=current_label, width=0.8)
        if part:
            axes.bar(part, [values[p] for p in part], color=COLOR_SOFT, edgecolor=COLOR, hatch="//", linewidth=0.8,
                     label=partial_label, width=0.8)
        if previous:
            count = min(len(previous), len(labels))
            axes.plot(positions[:count], list(previous)[:count], color=COLOR_PREVIOUS, linewidth=2, marker="o",
                      markersize=3, label=previous_label)
        axes.yaxis.set_major_formatter(FuncFormatter(lambda v, _: money(v)))
        axes.yaxis.set_major_locator(MaxNLocator(nbins=6))
        top = max([*values, *(previous or []), 1])
        axes.set_ylim(0, top * 1.22)  # room for the legend above the bars
        _thin_ticks(axes, labels)
        axes.legend(frameon=False, loc="upper left", ncol=3)
        return _png(figure)


def segment_sizes(labels: Sequence[str], counts: Sequence[int], revenue_shares: Sequence[float | None], *,
                  title: str, count_label: str, share_label: str) -> bytes:
    """Customers per segment (bars), with each segment's share of revenue written beside it."""
    with matplotlib.rc_context(_style()):
        figure, axes = _figure(title, left=0.2, bottom=0.12)
        axes.grid(axis="y", visible=False)
        axes.grid(axis="x", color="#dddddd", linewidth=0.8)
        positions = list(range(len(labels)))[::-1]
        bars = axes.barh(positions, counts, color=COLOR, height=0.7)
        axes.set_yticks(positions, labels, fontsize=10)
        axes.set_xlabel(count_label)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
        top = max(counts) if counts and max(counts) > 0 else 1
        axes.set_xlim(0, top * 1.25)
        for bar, count, revenue_share in zip(bars, counts, revenue_shares):
            note = f"{count}" if revenue_share is None else f"{count} · {revenue_share * 100:.0f}% {share_label}"
            axes.text(bar.get_width() + top * 0.01, bar.get_y() + bar.get_height() / 2, note, va="center",
                      fontsize=9, color="#333333")
        return _png(figure)


def seasonal_index(labels: Sequence[str], values: Sequence[float | None], *, title: str, baseline_label: str) -> bytes:
    """The 12 monthly indexes as bars around the 100 line."""
    with matplotlib.rc_context(_style()):
        figure, axes = _figure(title)
        positions = list(range(len(labels)))
        heights = [v if v is not None else 0 for v in values]
        colors = [COLOR if (v or 0) >= 100 else COLOR_SOFT for v in values]
        bars = axes.bar(positions, heights, color=colors, width=0.75)
        axes.axhline(100, color=COLOR_TARGET, linewidth=1.5, linestyle="--", label=baseline_label)
        for bar, value in zip(bars, values):
            if value is not None:
                axes.text(bar.get_x() + bar.get_width() / 2, bar.get_height() + 1.5, f"{value:.0f}",
                          ha="center", fontsize=9)
        axes.set_xticks(positions, labels, fontsize=10)
        top = max([v for v in values if v is not None] or [100])
        axes.set_ylim(0, max(120, top * 1.15))
        axes.legend(frameon=False, loc="upper left")
        return _png(figure)


TARGET_STYLES = ("--", "-.", ":")


def response_times(labels: Sequence[str], medians: Sequence[float | None], p90s: Sequence[float | None], *,
                   title: str, median_label: str, p90_label: str, axis_label: str,
                   targets: Sequence[tuple[float, str]] = (), value_label: Callable[[float], str] = str) -> bytes:
    """Median and "9 in 10 within" (minutes) per group, side by side, and a line per target.

    Every bar carries its value (``value_label``), and a bar of 0 minutes keeps a sliver of height, so
    "answered at once" shows instead of looking like no data; a missing value has neither.
    """
    with matplotlib.rc_context(_style()):
        figure, axes = _figure(title, bottom=0.18)
        positions = list(range(len(labels)))
        width = 0.38
        top = max([v for v in (*medians, *p90s) if v is not None] + [t for t, _ in targets] + [1])
        sliver = top * 0.008
        for offset, values, color, label in ((-width / 2, medians, COLOR, median_label),
                                             (width / 2, p90s, COLOR_SOFT, p90_label)):
            xs = [p + offset for p in positions]
            bars = axes.bar(xs, [max(v, sliver) if v is not None else 0 for v in values], width, color=color,
                            label=label)
            for bar, value in zip(bars, values):
                if value is not None:
                    axes.text(bar.get_x() + bar.get_width() / 2, bar.get_height() + top * 0.01, value_label(value),
                              ha="center", va="bottom", fontsize=8, color="#333333")
        for (target, target_label), style in zip(targets, TARGET_STYLES * len(targets)):
            axes.axhline(target, color=COLOR_TARGET, linewidth=1.3, linestyle=style, label=target_label)
        axes.set_xticks(positions, labels, fontsize=9, rotation=20 if len(labels) > 5 else 0,
                        ha="right" if len(labels) > 5 else "center")
        axes.set_ylabel(axis_label)
        axes.set_ylim(0, top * 1.3)  # room for the legend above the bars
        axes.legend(frameon=False, loc="upper left", ncol=3 if len(targets) < 2 else 2, fontsize=9)
        return _png(figure)


def rating_distribution(counts: Sequence[int], *, title: str, axis_label: str) -> bytes:
    """How many tickets got each rating, 1 to 5."""
    with matplotlib.rc_context(_style()):
        figure, axes = _figure(title)
        labels = ["1", "2", "3", "4", "5"]
        colors = ["#c0392b", "#e67e22", "#f1c40f", "#7fb77e", "#2e8b57"]
        bars = axes.bar(labels, counts, color=colors, width=0.7)
        for bar, count in zip(bars, counts):
            axes.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), str(count), ha="center", va="bottom",
                      fontsize=10)
        axes.set_xlabel(axis_label)
        axes.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
        return _png(figure)
