"""The jobs the scheduler runs, each with an explicit id and interval.

A job is ``async def job(ctx: JobContext) -> None``. It receives a context
with ids and settings, the clock and the database — never a Bot object or an
open session: it opens its own session per run and commits once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.app import App


@dataclass
class JobContext:
    app: "App"
    now: datetime
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def settings(self):  # type: ignore[no-untyped-def]
        return self.app.settings

    @property
    def db(self):  # type: ignore[no-untyped-def]
        return self.app.db


JobFn = Callable[[JobContext], Awaitable[None]]


@dataclass(frozen=True)
class JobSpec:
    id: str
    func: JobFn
    every: timedelta
    misfire_grace_time: int  # seconds
    # Daily jobs: the local time (settings.default_timezone) they run at; ``every`` is then one day.
    at: time | None = None
    # Singleton work runs only on the replica holding the scheduler lease (jobs.leases).
    singleton: bool = True


JOBS: dict[str, JobSpec] = {}


def job(job_id: str, every: timedelta = timedelta(days=1), misfire_grace_time: int = 60,
        at: time | None = None, singleton: bool = True) -> Callable[[JobFn], JobFn]:
    """Register a job run every ``every``, or once a day at local time ``at``.

    A job is singleton work by default: with several replicas only the holder
    of the scheduler lease runs it. ``singleton=False``: every replica runs it.
    """

    def register(fn: JobFn) -> JobFn:
        JOBS[job_id] = JobSpec(job_id, fn, timedelta(days=1) if at is not None else every, misfire_grace_time, at,
                               singleton)
        return fn

    return register
