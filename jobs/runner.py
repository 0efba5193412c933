"""Running jobs: once by id, or every job that falls due while the clock moves.

``advance`` is how the sandbox's ``:advance`` and the tests travel in time:
the clock moves in steps and each job runs at the times the scheduler would
have run it. For long jumps the steps are coarser (a per-minute job runs every
``step`` instead), which changes when within the step a message is sent, not
whether it is.
"""

from __future__ import annotations

import logging
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.clock import ManualClock
from jobs import leases
from jobs.context import JobContext, JobDeps

log = logging.getLogger(__name__)


async def run_job(deps: JobDeps, job_id: str) -> None:
    """Run one job now; singleton work only on the replica holding the scheduler lease."""
    spec = deps.spec(job_id)
    if spec.singleton and not await leases.hold(deps):
        return
    await spec(JobContext(deps, now=deps.clock.now()))


def _step_for(delta: timedelta) -> timedelta:
    if delta <= timedelta(hours=3):
        return timedelta(minutes=1)
    if delta <= timedelta(days=2):
        return timedelta(minutes=10)
    return timedelta(hours=1)


async def advance(deps: JobDeps, delta: timedelta, step: timedelta | None = None) -> datetime:
    """Move a ManualClock forward by ``delta``, running jobs as they fall due."""
    clock = deps.clock
    if not isinstance(clock, ManualClock):
        raise TypeError("advance needs a ManualClock")
    end = clock.now() + delta
    step = step or _step_for(delta)
    last_run = deps.last_run
    tz = ZoneInfo(deps.settings.default_timezone)
    while clock.now() < end:
        before = clock.now()
        clock.set(min(_next_tick(before, step), end))
        now = clock.now()
        for spec in deps.specs:
            if spec.at is not None:  # a daily job: when its local time falls in this step
                if _passes(spec.at, tz, before, now):
                    last_run[spec.id] = now
                    await run_job(deps, spec.id)
                continue
            previous = last_run.get(spec.id)
            # An hourly job runs hourly, whatever the step; a job more frequent than the step runs every step.
            if previous is None or now - previous >= spec.every:
                last_run[spec.id] = now
                await run_job(deps, spec.id)
    return clock.now()


def _next_tick(moment: datetime, step: timedelta) -> datetime:
    """The next multiple of ``step`` after ``moment`` (on the UTC grid): steps of an hour end on
    the hour, so what falls due at 09:00 is shown at 09:00, not at 09:59."""
    epoch = datetime(1970, 1, 1, tzinfo=moment.tzinfo)
    return moment + (step - (moment - epoch) % step)


def _passes(at: time, tz: ZoneInfo, start: datetime, end: datetime) -> bool:
    """Whether local time ``at`` occurs in (start, end]."""
    day = start.astimezone(tz).date()
    last = end.astimezone(tz).date()
    while day <= last:
        moment = datetime.combine(day, at, tzinfo=tz)
        if start < moment <= end:
            return True
        day += timedelta(days=1)
    return False
