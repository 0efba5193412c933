"""APScheduler 3 for the live bot: one job per entry of the registry.

The sandbox and the tests do not start it; they call ``jobs.runner.advance``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from jobs.registry import JOBS
from jobs.runner import run_job

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

# Jobs get the app by this key, not as an argument: a persistent job store
# would have to pickle it.
_APPS: dict[str, "App"] = {}


async def _run(app_key: str, job_id: str) -> None:
    app = _APPS.get(app_key)
    if app is None:
        return
    try:
        await run_job(app, job_id)
    except Exception:
        log.exception("job %s failed", job_id)


def start_scheduler(app: "App") -> AsyncIOScheduler:
    key = str(id(app))
    _APPS[key] = app
    scheduler = AsyncIOScheduler(timezone="UTC")
    for spec in JOBS.values():
        common = dict(args=[key, spec.id], id=spec.id, replace_existing=True, coalesce=True, max_instances=1,
                      misfire_grace_time=spec.misfire_grace_time)
        if spec.at is not None:  # daily, at a local time
            scheduler.add_job(_run, "cron", hour=spec.at.hour, minute=spec.at.minute,
                              timezone=app.settings.default_timezone, **common)
        else:
            every = spec.every
            if spec.id == "lease":  # a third of LEASE_SECONDS (jobs.leases)
                from jobs.leases import lease_every

                every = lease_every(app)
            scheduler.add_job(_run, "interval", seconds=every.total_seconds(), **common)
    scheduler.start()
    # Take the scheduler lease now rather than at the first tick.
    scheduler.add_job(_run, args=[key, "lease"], id="lease-now")
    # The outbox is delivered by a loop task; its job only keeps it alive.
    from jobs.delivery import worker_for

    app.extras["outbox_live"] = True
    worker_for(app).start()
    app.extras["scheduler"] = scheduler
    app.extras["scheduler_key"] = key
    return scheduler


async def stop_scheduler(app: "App") -> None:
    scheduler: AsyncIOScheduler | None = app.extras.pop("scheduler", None)
    if scheduler is not None:
        scheduler.shutdown(wait=False)
    _APPS.pop(app.extras.pop("scheduler_key", ""), None)
    app.extras.pop("outbox_live", None)
    worker = app.extras.get("outbox_worker")
    if worker is not None:
        await worker.stop()
    # Let another replica take the singleton work at once.
    from jobs.leases import release

    await release(app)
