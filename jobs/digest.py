"""The managers' daily summary: queued through the outbox at each manager's hour.

Every few minutes: for each digest that is on, whose hour (in the business's
time zone) has come today and that was not queued today, write yesterday's
figures beside the day before's to the outbox (a service message; care caps
and quiet hours are for customers). ``last_sent_on`` and the outbox dedupe key
``digest:<manager>:<day>`` make sure it goes once a day, also when the bot was
down at the hour (it goes when it is back, the same day).

Language: in the staff chat, the staff chat's; in a manager's private chat,
the language they chose there with /language (else the one they read when
they turned the digest on).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from bot.reports.care import care_summary
from bot.reports.csat import csat_summary
from bot.reports.periods import Period
from bot.reports.sales import sales_figures
from bot.reports.sla import overdue_open, sla_summary
from bot.staff_language import is_staff_chat, own_choice, staff_chat_language
from jobs.context import JobContext, job
from storage.repositories import Repos

log = logging.getLogger(__name__)

KIND = "digest"


@job("reports.digest", every=timedelta(minutes=5), misfire_grace_time=600)
async def queue_digests(ctx: JobContext) -> None:
    settings = ctx.settings
    tz = settings.tz
    local = ctx.now.astimezone(tz)
    today = local.date()
    async with ctx.db.session() as session:
        repos = Repos(session)
        due = await repos.reports.digests_due(today, local.hour)
        if not due:
            return
        yesterday = Period(today - timedelta(days=1), today - timedelta(days=1), "day")
        day_before = yesterday.previous()
        start, end = yesterday.bounds(tz)
        p_start, p_end = day_before.bounds(tz)
        figures = {
            "day": yesterday.start.isoformat(),
            "s": await sales_figures(session, start, end),
            "sb": await sales_figures(session, p_start, p_end),
            "sla": await sla_summary(session, start, end),
            "sla_b": await sla_summary(session, p_start, p_end),
            "overdue": await overdue_open(session, ctx.now),
            "csat": await csat_summary(session, start, end),
            "csat_b": await csat_summary(session, p_start, p_end),
            "care": await care_summary(session, start, end),
        }
        for digest in due:
            digest.last_sent_on = today
            if digest.manager_telegram_id not in settings.manager_ids:
                digest.enabled = False  # no longer a manager: no more figures
                log.info("digest of %s turned off: not a manager any more", digest.manager_telegram_id)
                continue
            if is_staff_chat(digest.chat_id, settings):
                lang = await staff_chat_language(repos, settings)
            else:
                lang = await own_choice(repos, digest.manager_telegram_id) or digest.language
            text = ctx.renderer.render(lang, "reports/digest", **figures)
            await repos.outbox.enqueue(
                dedupe_key=f"digest:{digest.manager_telegram_id}:{today.isoformat()}", kind=KIND,
                chat_id=digest.chat_id, text=text, now=ctx.now,
            )
        await repos.commit()
