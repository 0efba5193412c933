"""APScheduler 3 for the live bot: one scheduled job per job the composition function lists.

The sandbox and the tests do not start it; they call ``jobs.runner.advance``.
"""

from __future__ import annotations

import logging

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from jobs import leases
from jobs.context import JobDeps
from jobs.delivery import worker_for
from jobs.runner import run_job

log = logging.getLogger(__name__)

# Scheduled jobs name their dependencies by this key, not as an argument: a
# persistent job store would have to pickle them. Filled while a scheduler runs.
_RUNNING: dict[str, JobDeps] = {}


async def _run(deps_key: str, job_id: str) -> None:
    deps = _RUNNING.get(deps_key)
    if deps is None:
        return
    try:
        await run_job(deps, job_id)
    except Exception:
        log.exception("job %s failed", job_id)


def start_scheduler(deps: JobDeps) -> AsyncIOScheduler:
    key = str(id(deps))
    _RUNNING[key] = deps
    scheduler = AsyncIOScheduler(timezone="UTC")
    for spec in deps.specs:
        common = dict(args=[key, spec.id], id=spec.id, replace_existing=True, coalesce=True, max_instances=1,
                      misfire_grace_time=spec.misfire_grace_time)
        if spec.at is not None:  # daily, at a local time
            scheduler.add_job(_run, "cron", hour=spec.at.hour, minute=spec.at.minute,
                              timezone=deps.settings.default_timezone, **common)
        else:
            every = spec.every
            if spec.id == "lease":  # a third of LEASE_SECONDS (jobs.leases)
                every = leases.lease_every(deps)
            scheduler.add_job(_run, "interval", seconds=every.total_seconds(), **common)
    scheduler.start()
    # Take the scheduler lease now rather than at the first tick.
    scheduler.add_job(_run, args=[key, "lease"], id="lease-now")
    # The outbox is delivered by a loop task; its job only keeps it alive.
    deps.outbox_live = True
    worker_for(deps).start()
    deps.scheduler = scheduler
    return scheduler


async def stop_scheduler(deps: JobDeps) -> None:
    scheduler: AsyncIOScheduler | None = deps.scheduler
    deps.scheduler = None
    if scheduler is not None:
        scheduler.shutdown(wait=False)
    _RUNNING.pop(str(id(deps)), None)
    deps.outbox_live = False
    if deps.outbox is not None:
        await deps.outbox.stop()
    # Let another replica take the singleton work at once.
    await leases.release(deps)
