"""Manager reports by command: /report, /abc, /rfm, /churn, /seasonal, /sla,
/csat, /care, /export NAME, and /digest; plus sending a care message to an
RFM segment or to the churn list.

Managers only, in their private chat or in the staff group. Anyone else gets
a polite refusal before anything is read from the database. Reports show
customers' names, so they are never answered in any other chat.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.filters.callback_data import CallbackData
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardMarkup,
    Message,
)
from aiogram.utils.keyboard import InlineKeyboardBuilder
from markupsafe import Markup

from bot.clock import Clock
from bot.config import Settings
from bot.dialogs import Turn, set_buttons
from bot.reports import (
    REPORT_NAMES,
    REPORTS,
    PeriodError,
    output,
    report_period,
    run_report,
    segments,
)
from bot.reports.periods import Period, local_today, parse_period
from bot.roles import Role
from bot.rules.text_units import CAPTION_LIMIT, utf16_len
from bot.telegram_html import check
from bot.texts import TextRenderer, Texts
from storage.repositories import Repos


def build_router() -> Router:
    """A new router with this module's handlers, tried in this order (bot.app.build_routers places it)."""
    router = Router(name="reports")
    router.message.register(show_report, Command(*REPORT_NAMES))
    router.message.register(export_report, Command("export"))
    router.callback_query.register(segment_action, ReportCallback.filter())
    router.message.register(digest_command, Command("digest"))
    return router


DIGEST_HOURS = (7, 8, 9, 12, 18, 21)


class ReportCallback(CallbackData, prefix="rp"):
    action: str  # seg | pick | tpl | go | no | dg
    source: str = ""  # rfm | churn
    segment: str = ""
    template: str = ""  # a campaign template, or the digest hour / "off"
    period: str = ""  # Period.token


# ----- who may ask -------------------------------------------------------------------

def _allowed_chat(chat: Any, settings: Settings) -> bool:
    return chat is not None and (chat.type == "private" or chat.id == settings.staff_chat_id)


async def _refused(message: Message, role: Role, settings: Settings, texts: Texts) -> bool:
    """Answer and return True when this person or chat may not see reports."""
    if role < Role.MANAGER:
        await message.answer(texts("reports/managers_only"))
        return True
    if not _allowed_chat(message.chat, settings):
        await message.answer(texts("reports/wrong_chat"))
        return True
    return False


async def _refused_press(callback: CallbackQuery, role: Role, settings: Settings, texts: Texts) -> bool:
    message = callback.message
    if role < Role.MANAGER:
        await callback.answer(texts("reports/managers_only.txt"), show_alert=True)
        return True
    if not isinstance(message, Message) or not _allowed_chat(message.chat, settings):
        await callback.answer(texts("common/button_expired.txt"))
        return True
    return False


# ----- sending a report ----------------------------------------------------------------

def _fits_caption(caption: str) -> bool:
    try:
        return utf16_len(check(caption)) <= CAPTION_LIMIT
    except ValueError:
        return False


async def send_report(message: Message, name: str, result: Any, texts: Texts, settings: Settings,
                      markup: InlineKeyboardMarkup | None = None) -> None:
    """The chart (when there is one) with a short caption, then the figures."""
    text = output.render_text(name, result, texts, settings)
    png = await asyncio.to_thread(output.render_chart, name, result, texts, settings)
    if png is not None:
        caption = output.render_caption(name, result, texts, settings)
        await message.answer_photo(BufferedInputFile(png, filename=f"{name}.png"),
                                   caption=caption if _fits_caption(caption) else None)
    parts = output.split_text(text)
    for index, part in enumerate(parts):
        await message.answer(part, reply_markup=markup if index == len(parts) - 1 else None)


def _segment_markup(name: str, result: Any, texts: Texts) -> InlineKeyboardMarkup | None:
    builder = InlineKeyboardBuilder()
    if name == "rfm" and result.total_customers:
        builder.button(text=texts.button("report_segment"),
                       callback_data=ReportCallback(action="seg", source="rfm", period=result.period.token))
    elif name == "churn" and result.overdue:
        builder.button(text=texts.button("report_overdue"),
                       callback_data=ReportCallback(action="pick", source="churn", segment=segments.CHURN_SEGMENT))
    else:
        return None
    return builder.as_markup()


async def show_report(message: Message, command: CommandObject, role: Role, repos: Repos, settings: Settings,
                      clock: Clock, texts: Texts) -> None:
    if await _refused(message, role, settings, texts):
        return
    name = command.command.lower()
    now = clock.now()
    try:
        period = report_period(name, command.args, settings, now)
    except PeriodError:
        await message.answer(texts("reports/bad_period", text=command.args or "", name=name,
                                   takes_period=REPORTS[name].default_period is not None
                                   or REPORTS[name].optional_period))
        return
    result = await run_report(name, repos.session, settings, period, now)
    await send_report(message, name, result, texts, settings, _segment_markup(name, result, texts))


async def export_report(message: Message, command: CommandObject, role: Role, repos: Repos, settings: Settings,
                        clock: Clock, texts: Texts) -> None:
    if await _refused(message, role, settings, texts):
        return
    words = (command.args or "").split(maxsplit=1)
    name = words[0].lower().lstrip("/") if words else ""
    if name not in REPORTS:
        await message.answer(texts("reports/export_usage", names=REPORT_NAMES))
        return
    now = clock.now()
    typed = words[1] if len(words) > 1 else None
    try:
        period = report_period(name, typed, settings, now)
    except PeriodError:
        await message.answer(texts("reports/bad_period", text=typed or "", name=name,
                                   takes_period=REPORTS[name].default_period is not None
                                   or REPORTS[name].optional_period))
        return
    result = await run_report(name, repos.session, settings, period, now)
    body = await output.render_csv(name, result, texts, repos.session, settings, period, now)
    await message.answer_document(
        BufferedInputFile(body, filename=output.file_name(name, period, now, "csv")),
        caption=texts("reports/export_caption", name=name, period=period),
    )


# ----- a care message to a segment -----------------------------------------------------------

def _period_of(token: str, settings: Settings, clock: Clock) -> Period | None:
    try:
        return parse_period(token, local_today(clock.now(), settings.tz)) if token else None
    except PeriodError:
        return None


def _segment_title(texts: Texts, segment: str) -> str:
    return output.label(texts, "segment", segment)


async def segment_action(callback: CallbackQuery, callback_data: ReportCallback, role: Role, repos: Repos,
                         settings: Settings, clock: Clock, texts: Texts, renderer: TextRenderer, turn: Turn) -> None:
    """A segment's care message, chosen in a chain of buttons (bot.dialogs ``Turn.choice``): each button
    carries the choices so far, so no dialog state takes the manager's chatter in the staff group."""
    if await _refused_press(callback, role, settings, texts):
        return
    action = callback_data.action
    if action == "dg":
        await _digest_press(callback, callback_data, turn, repos, settings, clock, texts)
        return
    source, segment, template = callback_data.source, callback_data.segment, callback_data.template
    period = _period_of(callback_data.period, settings, clock)
    stale = (
        source not in segments.SOURCES
        or (source == "rfm" and period is None)
        or (action in ("tpl", "go", "pick") and not segments.valid_segment(source, segment))
        or (action in ("tpl", "go") and template not in segments.CAMPAIGN_TEMPLATES)
        or action not in ("seg", "pick", "tpl", "go", "no")
    )
    # Send is answered below: a second press of it finds the campaign made by the first.
    press = await turn.choice(callback, not stale, stale="reports/segment_stale.txt", alert=True,
                              accept=action != "go")
    if press is None:
        return
    message = press.message
    now = clock.now()
    session = repos.session
    if action == "no":
        await message.answer(texts("reports/segment_cancelled"))
        return
    if action == "seg":
        assert period is not None
        sizes = await segments.segment_sizes(session, settings, period, now)
        if not sizes:
            await message.answer(texts("reports/segment_none", period=period.label))
            return
        builder = InlineKeyboardBuilder()
        for code, count in sizes:
            builder.button(text=texts.button("report_segment_choice", name=_segment_title(texts, code), count=count),
                           callback_data=ReportCallback(action="pick", source="rfm", segment=code,
                                                        period=period.token))
        builder.button(text=texts.button("report_cancel"), callback_data=ReportCallback(action="no", source="rfm",
                                                                                         period=period.token))
        builder.adjust(2)
        await message.answer(texts("reports/segment_choose", period=period.label), reply_markup=builder.as_markup())
        return
    title = _segment_title(texts, segment)
    if action == "pick":
        members, reachable = await segments.audience(session, settings, source, segment, period, now)
        sample = texts("reports/campaign_customer.txt")
        # The previews are rendered templates (Telegram HTML, names escaped): shown as they are.
        previews = [(output.label(texts, "campaign", t),
                     Markup(segments.campaign_text(texts.renderer, texts.lang, t, sample)))
                    for t in segments.CAMPAIGN_TEMPLATES]
        builder = InlineKeyboardBuilder()
        for t in segments.CAMPAIGN_TEMPLATES:
            builder.button(text=output.label(texts, "campaign", t),
                           callback_data=ReportCallback(action="tpl", source=source, segment=segment, template=t,
                                                        period=callback_data.period))
        builder.button(text=texts.button("report_cancel"),
                       callback_data=ReportCallback(action="no", source=source, period=callback_data.period))
        builder.adjust(2)
        await message.answer(texts("reports/template_choose", segment=title, members=members, reachable=reachable,
                                   previews=previews), reply_markup=builder.as_markup())
        return
    if action == "tpl":
        members, reachable = await segments.audience(session, settings, source, segment, period, now)
        builder = InlineKeyboardBuilder()
        builder.button(text=texts.button("report_send"),
                       callback_data=ReportCallback(action="go", source=source, segment=segment, template=template,
                                                    period=callback_data.period))
        builder.button(text=texts.button("report_cancel"),
                       callback_data=ReportCallback(action="no", source=source, period=callback_data.period))
        quiet = f"{settings.quiet_hours_start:%H:%M}–{settings.quiet_hours_end:%H:%M}"
        await message.answer(texts("reports/segment_confirm", template=output.label(texts, "campaign", template),
                                   segment=title, members=members, reachable=reachable,
                                   per_day=settings.care_cap_per_day, per_week=settings.care_cap_per_week,
                                   quiet=quiet), reply_markup=builder.as_markup())
        return
    # action == "go"
    result = await segments.queue_campaign(repos, renderer, settings, source=source, segment=segment,
                                           template=template, period=period, manager_id=callback.from_user.id,
                                           now=now)
    if result.status == "already":
        await callback.answer(texts("reports/segment_already.txt"), show_alert=True)
        await set_buttons(message)
        return
    await press.accept()
    if result.status == "empty":
        await message.answer(texts("reports/segment_empty", segment=title))
        return
    await message.answer(texts("reports/segment_queued", queued=result.queued, segment=title,
                               template=output.label(texts, "campaign", template)))


# ----- the daily digest -------------------------------------------------------------------

def _digest_markup(texts: Texts) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for hour in DIGEST_HOURS:
        builder.button(text=texts.button("report_digest_hour", hour=hour),
                       callback_data=ReportCallback(action="dg", template=str(hour)))
    builder.button(text=texts.button("report_digest_off"), callback_data=ReportCallback(action="dg", template="off"))
    builder.adjust(3)
    return builder.as_markup()


async def _set_digest(message: Message, manager_id: int, choice: str, repos: Repos, settings: Settings,
                      clock: Clock, texts: Texts) -> None:
    now = clock.now()
    if choice == "off":
        existing = await repos.reports.digest(manager_id)
        if existing is not None:
            existing.enabled = False
            existing.updated_at = now
        await message.answer(texts("reports/digest_off"))
        return
    hour = int(choice)
    local = now.astimezone(settings.tz)
    # Past today's hour already: the first summary comes tomorrow.
    tomorrow = local.hour >= hour
    await repos.reports.set_digest(manager_id, chat_id=message.chat.id, enabled=True, hour=hour, language=texts.lang,
                                   now=now, last_sent_on=local.date() if tomorrow else None)
    await message.answer(texts("reports/digest_on", hour=hour, tz=settings.default_timezone, tomorrow=tomorrow))


def parse_hour(text: str) -> int | None:
    text = text.strip().lower().removesuffix(":00")
    if text.isdigit() and 0 <= int(text) <= 23:
        return int(text)
    return None


async def digest_command(message: Message, command: CommandObject, role: Role, repos: Repos, settings: Settings,
                         clock: Clock, texts: Texts) -> None:
    if await _refused(message, role, settings, texts):
        return
    user = message.from_user
    assert user is not None
    args = (command.args or "").strip().lower()
    if not args:
        digest = await repos.reports.digest(user.id)
        await message.answer(
            texts("reports/digest_status", enabled=bool(digest and digest.enabled),
                  hour=digest.hour if digest else settings.digest_default_hour, tz=settings.default_timezone,
                  here=bool(digest and digest.chat_id == message.chat.id)),
            reply_markup=_digest_markup(texts),
        )
        return
    if args == "off":
        await _set_digest(message, user.id, "off", repos, settings, clock, texts)
        return
    hour = parse_hour(args)
    if hour is None:
        await message.answer(texts("reports/digest_usage"))
        return
    await _set_digest(message, user.id, str(hour), repos, settings, clock, texts)


async def _digest_press(callback: CallbackQuery, callback_data: ReportCallback, turn: Turn, repos: Repos,
                        settings: Settings, clock: Clock, texts: Texts) -> None:
    choice = callback_data.template
    press = await turn.choice(callback, choice == "off" or parse_hour(choice) is not None)
    if press is None:
        return
    await _set_digest(press.message, callback.from_user.id, choice, repos, settings, clock, texts)
