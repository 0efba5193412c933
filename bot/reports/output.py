"""A computed report as a person reads it: Telegram HTML text, a chart, a CSV file.

Texts are the templates ``templates/<lang>/reports/<name>.html`` (the
figures) and ``<name>_caption.html`` (the short caption under the chart);
chart labels and CSV headers are templates too.
"""

from __future__ import annotations

import io
import threading
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot import csv_safe
from bot.config import Settings
from bot.reports import abc, care, churn, csat, rfm, sales, seasonal, sla
from bot.reports.periods import Period
from bot.rules.text_units import TEXT_LIMIT, utf16_cut, utf16_len
from bot.texts import Texts, duration_parts, minor_digits, template_names
from storage.queries.common import prepare

# Charts that have a caption template; the others are sent as text only.
CHARTED = ("report", "abc", "rfm", "seasonal", "sla", "csat")

# rc_context (fonts) is process-wide: one chart at a time.
_chart_lock = threading.Lock()


def label(texts: Texts, group: str, code: str | None) -> str:
    """A translated name (segment, care kind...) or the code itself when there is no template."""
    if code is None:
        return texts(f"reports/{group}_none.txt")
    name = f"reports/{group}_{code}.txt"
    if name in template_names().get(texts.lang, set()):
        return texts(name)
    return code


def month_names(texts: Texts) -> list[str]:
    return texts("reports/months.txt").split()


def _context(name: str, result: Any, texts: Texts, settings: Settings) -> dict[str, Any]:
    tz = settings.tz

    def local_day(moment: datetime | None) -> str:
        return moment.astimezone(tz).date().isoformat() if moment is not None else ""

    return {
        "r": result,
        "segment_name": lambda code: label(texts, "segment", code),
        "kind_name": lambda code: label(texts, "kind", code),
        "campaign_name": lambda code: label(texts, "campaign", code),
        "reason_name": lambda reason: label(texts, "reason", "_".join(reason.split()) if reason else None),
        # A row of a "by staff member / category / priority" table.
        "group_name": lambda scope, key: (key or label(texts, "staff", None)) if scope == "staff"
        else label(texts, scope, key),
        "local_day": local_day,
        "months": month_names(texts),
        "name": name,
    }


def render_text(name: str, result: Any, texts: Texts, settings: Settings) -> str:
    return texts(f"reports/{name}", **_context(name, result, texts, settings))


def render_caption(name: str, result: Any, texts: Texts, settings: Settings) -> str:
    return texts(f"reports/{name}_caption", **_context(name, result, texts, settings))


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Split a long message at line ends (each template line closes its own tags); lengths in UTF-16
    units, as Telegram counts them."""
    if utf16_len(text) <= limit:
        return [text]
    parts: list[str] = []
    current = ""
    for line in text.split("\n"):
        candidate = f"{current}\n{line}" if current else line
        if utf16_len(candidate) > limit and current:
            parts.append(current)
            current = line
        else:
            current = candidate
    if current:
        parts.append(current)
    return [utf16_cut(part, limit) for part in parts]


# ----- charts ---------------------------------------------------------------------

def _money_axis(currency: str) -> Any:
    from bot.texts import _SYMBOLS

    digits = minor_digits(currency)
    symbol = _SYMBOLS.get(currency.upper(), "")

    def fmt(value: float) -> str:
        return f"{symbol}{value / 10 ** digits:,.0f}"

    return fmt


def has_chart(name: str, result: Any) -> bool:
    if name not in CHARTED:
        return False
    if name == "report":
        return any(p.revenue for p in result.trend) or any(p.revenue for p in result.trend_before)
    if name == "abc":
        return result.total_customers > 0
    if name == "rfm":
        return result.total_customers > 0
    if name == "seasonal":
        return result.window is not None
    if name == "sla":
        return result.current.first_response.count > 0 or result.current.resolution.count > 0
    if name == "csat":
        return result.current.rated > 0
    return False


def render_chart(name: str, result: Any, texts: Texts, settings: Settings) -> bytes | None:
    """The report's chart as PNG, or None when it has none (or nothing to draw)."""
    if not has_chart(name, result):
        return None
    from bot.reports import charts

    chart_texts = texts.renderer.for_language(charts.chart_language(texts.lang))
    with _chart_lock:
        return _draw(name, result, chart_texts, settings, charts)


def _draw(name: str, result: Any, t: Texts, settings: Settings, charts: Any) -> bytes:
    if name == "report":
        report: sales.SalesReport = result
        labels = [p.label[5:] if report.trend_unit == "day" else p.label for p in report.trend]
        return charts.revenue_trend(
            labels, [p.revenue for p in report.trend], [p.revenue for p in report.trend_before],
            title=t("reports/chart_trend_title.txt", period=report.period.label, unit=report.trend_unit),
            current_label=report.period.label, previous_label=report.previous.label,
            money=_money_axis(settings.currency), partial=[p.partial for p in report.trend],
            partial_label=t("reports/chart_partial.txt"),
        )
    if name == "abc":
        report_abc: abc.AbcReport = result
        return charts.segment_sizes(
            [t("reports/chart_abc_class.txt", klass=c.name) for c in report_abc.classes],
            [c.customers for c in report_abc.classes], [c.revenue_share for c in report_abc.classes],
            title=t("reports/chart_abc_title.txt", period=report_abc.period.label),
            count_label=t("reports/chart_customers.txt"), share_label=t("reports/chart_of_revenue.txt"),
        )
    if name == "rfm":
        report_rfm: rfm.RfmReport = result
        return charts.segment_sizes(
            [label(t, "segment", s.code) for s in report_rfm.segments],
            [s.customers for s in report_rfm.segments], [s.revenue_share for s in report_rfm.segments],
            title=t("reports/chart_rfm_title.txt", period=report_rfm.period.label),
            count_label=t("reports/chart_customers.txt"), share_label=t("reports/chart_of_revenue.txt"),
        )
    if name == "seasonal":
        report_s: seasonal.SeasonalReport = result
        window = report_s.window
        return charts.seasonal_index(
            month_names(t), [i.index for i in report_s.indexes],
            title=t("reports/chart_seasonal_title.txt", window=window.label if window else ""),
            baseline_label=t("reports/chart_seasonal_baseline.txt"),
        )
    if name == "sla":
        report_sla: sla.SlaReport = result
        rows = [r for r in report_sla.by_staff if r.first_response.count][:8]
        labels = [t("reports/chart_all.txt")] + [r.key or t("reports/staff_none.txt") for r in rows]
        medians = [report_sla.current.first_response.median] + [r.first_response.median for r in rows]
        p90s = [report_sla.current.first_response.p90] + [r.first_response.p90 for r in rows]
        return charts.response_times(
            labels, medians, p90s,
            title=t("reports/chart_sla_title.txt", period=report_sla.period.label),
            median_label=t("reports/chart_median.txt"), p90_label=t("reports/chart_p90.txt"),
            axis_label=t("reports/chart_minutes.txt"),
            targets=_first_response_targets(report_sla, t, settings),
            value_label=lambda minutes: t("common/duration.txt", **duration_parts(minutes)),
        )
    report_c: csat.CsatReport = result
    return charts.rating_distribution(
        [report_c.current.distribution[r] for r in range(1, 6)],
        title=t("reports/chart_csat_title.txt", period=report_c.period.label),
        axis_label=t("reports/chart_rating.txt"),
    )


def _first_response_targets(report: sla.SlaReport, t: Texts, settings: Settings) -> list[tuple[float, str]]:
    """A target line for each priority the period's complaints had (the normal one when none is known)."""
    present = {row.key for row in report.by_priority if row.first_response.count}
    priorities = [p for p in ("high", "normal", "low") if p in present] or ["normal"]
    targets = []
    for priority in priorities:
        minutes = getattr(settings, f"sla_first_response_{priority}")
        targets.append((float(minutes), t("reports/chart_target.txt", priority=label(t, "priority", priority),
                                          minutes=minutes)))
    return targets


# ----- CSV --------------------------------------------------------------------------

async def csv_rows(name: str, result: Any, session: AsyncSession, settings: Settings, period: Period | None,
                   now: datetime) -> list[list[Any]]:
    if name == "report":
        return sales.csv_rows(result)
    if name == "abc":
        assert period is not None
        return await abc.csv_detail(session, settings, period)
    if name == "rfm":
        assert period is not None
        return await rfm.csv_detail(session, settings, period)
    if name == "churn":
        return await churn.csv_detail(session, settings, now)
    if name == "seasonal":
        return seasonal.csv_rows(result)
    if name == "sla":
        return sla.csv_rows(result)
    if name == "csat":
        return csat.csv_rows(result)
    if name == "care":
        return care.csv_rows(result)
    raise ValueError(name)


async def render_csv(name: str, result: Any, texts: Texts, session: AsyncSession, settings: Settings,
                     period: Period | None, now: datetime) -> bytes:
    """The report as CSV (UTF-8 with a byte-order mark, so spreadsheets read Chinese right)."""
    await prepare(session)
    buffer = io.StringIO()
    writer = csv_safe.writer(buffer, lineterminator="\r\n")  # names like =HYPERLINK(…) stay text
    writer.writerow(texts(f"reports/csv_{name}.txt").split(","))
    writer.writerows(await csv_rows(name, result, session, settings, period, now))
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def file_name(name: str, period: Period | None, now: datetime, extension: str) -> str:
    stamp = period.token.replace("..", "_") if period is not None else now.strftime("%Y-%m-%d")
    return f"caredesk-{name}-{stamp}.{extension}"
