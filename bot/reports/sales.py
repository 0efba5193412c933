"""``/report``: the period at a glance, each figure beside the previous period's.

* *new customers*: customer files registered in the period;
* *active customers*: customers with at least one order in the period;
* *orders*, *revenue*, *average order value*: orders created in the period,
  cancelled (and refunded) ones left out — they are counted apart;
* *top products*: by revenue at the order's prices (``unit_price`` × quantity);
* complaints, handling times, satisfaction and care: the summaries of
  ``/sla``, ``/csat`` and ``/care``;
* the revenue trend, per business day (per month for periods over 92 days);
* the forecast: orders expected in the next 30 days beside the last 30 days'
  (:mod:`bot.reports.forecast`), whatever the period.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.reports.care import CareSummary, care_summary
from bot.reports.csat import CsatSummary, SurveySummary, csat_summary, survey_summary
from bot.reports.figures import share
from bot.reports.forecast import Forecast
from bot.reports.forecast import compute as forecast_next
from bot.reports.periods import Period, add_months, month_end, month_start
from bot.reports.sla import SlaSummary, sla_summary
from storage.queries import sales as queries
from storage.queries.common import local_totals

TREND_DAYS_MAX = 92


@dataclass
class SalesFigures:
    new_customers: int = 0
    active_customers: int = 0
    orders: int = 0
    revenue: int = 0
    cancelled: int = 0

    @property
    def average_order(self) -> int | None:
        if not self.orders:
            return None
        return round(self.revenue / self.orders)


@dataclass
class ProductLine:
    product_id: int
    name_en: str
    name_zh: str
    unit: str
    quantity: int
    revenue: int
    revenue_share: float | None
    unit_zh: str | None = None

    def name(self, lang: str) -> str:
        return self.name_zh if lang == "zh" else self.name_en

    def unit_for(self, lang: str) -> str:
        return self.unit_zh if lang == "zh" and self.unit_zh else self.unit


@dataclass
class TrendPoint:
    label: str  # YYYY-MM-DD or YYYY-MM
    revenue: int
    orders: int
    partial: bool = False  # a month the period covers only in part (its first or last)


@dataclass
class SalesReport:
    period: Period
    previous: Period
    current: SalesFigures
    before: SalesFigures
    top_products: list[ProductLine]
    sla: SlaSummary
    sla_before: SlaSummary
    csat: CsatSummary
    csat_before: CsatSummary
    survey: SurveySummary
    survey_before: SurveySummary
    care: CareSummary
    care_before: CareSummary
    trend_unit: str  # day | month
    trend: list[TrendPoint]
    trend_before: list[TrendPoint]
    forecast: Forecast | None = None  # the next 30 days (bot.reports.forecast)


async def sales_figures(session: AsyncSession, start: datetime, end: datetime) -> SalesFigures:
    found = await queries.figures(session, start, end)
    return SalesFigures(new_customers=found.new_customers, active_customers=found.active, orders=found.orders,
                        revenue=found.revenue, cancelled=found.cancelled)


async def top_products(session: AsyncSession, start: datetime, end: datetime, limit: int,
                       total_revenue: int) -> list[ProductLine]:
    return [
        ProductLine(product_id=row.id, name_en=row.name_en, name_zh=row.name_zh, unit=row.unit, unit_zh=row.unit_zh,
                    quantity=int(row.qty or 0), revenue=int(row.revenue or 0),
                    revenue_share=share(row.revenue, total_revenue))
        for row in await queries.top_products(session, start, end, limit)
    ]


def trend_labels(period: Period, unit: str) -> list[str]:
    if unit == "day":
        return [day.isoformat() for day in period.day_list()]
    labels, cursor = [], month_start(period.start)
    while cursor <= period.end:
        labels.append(f"{cursor.year:04d}-{cursor.month:02d}")
        cursor = add_months(cursor, 1)
    return labels


async def revenue_trend(session: AsyncSession, settings: Settings, period: Period, unit: str) -> list[TrendPoint]:
    start, end = period.bounds(settings.tz)
    found = await local_totals(session, settings.tz, start, end, unit)
    return [TrendPoint(label, *found.get(label, (0, 0)), partial=_partial(period, unit, label))
            for label in trend_labels(period, unit)]


def _partial(period: Period, unit: str, label: str) -> bool:
    if unit != "month":
        return False
    first = date(int(label[:4]), int(label[5:7]), 1)
    return first < period.start or month_end(first) > period.end


async def compute(session: AsyncSession, settings: Settings, period: Period, now: datetime) -> SalesReport:
    tz = settings.tz
    start, end = period.bounds(tz)
    previous = period.previous()
    p_start, p_end = previous.bounds(tz)
    current = await sales_figures(session, start, end)
    unit = "day" if period.days <= TREND_DAYS_MAX else "month"
    return SalesReport(
        period=period,
        previous=previous,
        current=current,
        before=await sales_figures(session, p_start, p_end),
        top_products=await top_products(session, start, end, min(settings.report_top_n, 5), current.revenue),
        sla=await sla_summary(session, start, end),
        sla_before=await sla_summary(session, p_start, p_end),
        csat=await csat_summary(session, start, end),
        csat_before=await csat_summary(session, p_start, p_end),
        survey=await survey_summary(session, start, end),
        survey_before=await survey_summary(session, p_start, p_end),
        care=await care_summary(session, start, end),
        care_before=await care_summary(session, p_start, p_end),
        trend_unit=unit,
        trend=await revenue_trend(session, settings, period, unit),
        trend_before=await revenue_trend(session, settings, previous, unit),
        forecast=await forecast_next(session, settings, now),
    )


def csv_rows(report: SalesReport) -> list[list[Any]]:
    """One row per figure: name, this period, the previous one."""
    def pct(value: float | None) -> str:
        return "" if value is None else f"{value * 100:.1f}"

    def num(value: float | None) -> str:
        return "" if value is None else f"{value:.1f}"

    c, b = report.current, report.before
    pairs: list[tuple[str, Any, Any]] = [
        ("period", report.period.label, report.previous.label),
        ("new_customers", c.new_customers, b.new_customers),
        ("active_customers", c.active_customers, b.active_customers),
        ("orders", c.orders, b.orders),
        ("revenue", c.revenue, b.revenue),
        ("average_order_value", c.average_order or "", b.average_order or ""),
        ("cancelled_orders", c.cancelled, b.cancelled),
        ("complaints_opened", report.sla.opened, report.sla_before.opened),
        ("complaints_resolved", report.sla.resolved, report.sla_before.resolved),
        ("first_response_median_min", num(report.sla.first_response.median),
         num(report.sla_before.first_response.median)),
        ("first_response_p90_min", num(report.sla.first_response.p90), num(report.sla_before.first_response.p90)),
        ("first_response_within_target_pct", pct(report.sla.first_response.within_share),
         pct(report.sla_before.first_response.within_share)),
        ("resolution_median_min", num(report.sla.resolution.median), num(report.sla_before.resolution.median)),
        ("resolution_p90_min", num(report.sla.resolution.p90), num(report.sla_before.resolution.p90)),
        ("resolution_within_target_pct", pct(report.sla.resolution.within_share),
         pct(report.sla_before.resolution.within_share)),
        ("csat_average", num(report.csat.average), num(report.csat_before.average)),
        ("csat_rated_4_5_pct", pct(report.csat.good_share), pct(report.csat_before.good_share)),
        ("csat_response_rate_pct", pct(report.csat.response_rate), pct(report.csat_before.response_rate)),
        ("delivery_survey_average", num(report.survey.average), num(report.survey_before.average)),
        ("delivery_survey_rated_4_5_pct", pct(report.survey.good_share), pct(report.survey_before.good_share)),
        ("delivery_survey_response_rate_pct", pct(report.survey.response_rate),
         pct(report.survey_before.response_rate)),
        ("care_sent", report.care.sent, report.care_before.sent),
        ("care_orders", report.care.orders, report.care_before.orders),
        ("care_revenue", report.care.revenue, report.care_before.revenue),
    ]
    rows = [[name, now, before] for name, now, before in pairs]
    for line in report.care.lines:
        prev = report.care_before.line(line.kind)
        rows.append([f"care_sent:{line.kind}", line.sent, prev.sent])
        rows.append([f"care_orders:{line.kind}", line.orders, prev.orders])
    for product in report.top_products:
        rows.append([f"top_product:{product.name_en}", product.revenue, ""])
    return rows

