"""What a job is, and what it gets.

A job is ``async def job(ctx: JobContext) -> None``, declared with :func:`job`
(its id and how often it runs). Which jobs run, in which order, is listed in
the composition function (``bot.app``); so are the dependencies they share, a
:class:`JobDeps`: the settings, the clock, the database, the Bot object, the
text renderer, the care engine's last checks, and the state this process keeps
between runs. Never the App object. A job opens its own session per run and
commits once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any

from aiogram import Bot

from bot.clock import Clock
from bot.config import Settings
from bot.texts import TextRenderer
from storage.db import Database
from storage.models.outbox import OutboxMessage
from storage.repositories import Repos

JobFn = Callable[["JobContext"], Awaitable[None]]
# A kind-specific last check for a due care row (jobs.delivery): a reason to skip it, or None.
CareCheck = Callable[[Repos, OutboxMessage, datetime], Awaitable[str | None]]


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

    async def __call__(self, ctx: JobContext) -> None:
        await self.func(ctx)


def job(job_id: str, every: timedelta = timedelta(days=1), misfire_grace_time: int = 60,
        at: time | None = None, singleton: bool = True) -> Callable[[JobFn], JobSpec]:
    """Declare a job run every ``every``, or once a day at local time ``at`` (it runs once listed in bot.app).

    A job is singleton work by default: with several replicas only the holder
    of the scheduler lease runs it. ``singleton=False``: every replica runs it.
    """

    def declare(fn: JobFn) -> JobSpec:
        return JobSpec(job_id, fn, timedelta(days=1) if at is not None else every, misfire_grace_time, at, singleton)

    return declare


@dataclass
class CareMemo:
    """What care planning (jobs.care) remembers between passes in this process."""

    plan: dict[str, Any] = field(default_factory=dict)  # the last full pass: data fingerprint, commits, until
    batch: dict[Any, Any] = field(default_factory=dict)  # (customer, product) pairs written, with their inputs
    winback_targets: tuple[Any, Any] | None = None  # (local date, customer ids /churn ranks at risk)


@dataclass(eq=False)
class JobDeps:
    """Everything the jobs use, built once per app by the composition function (bot.app)."""

    settings: Settings
    clock: Clock
    db: Database
    bot: Bot
    renderer: TextRenderer
    # The jobs jobs.runner and jobs.scheduler run, in this order.
    specs: tuple[JobSpec, ...] = ()
    # Last checks before a care row of a kind goes out (jobs.delivery), by kind.
    care_checks: Mapping[str, CareCheck] = field(default_factory=dict)
    # The dialog-state Redis connection, when there is one: the rate limits every replica shares use it.
    redis: Any = None
    # Key prefix of those shared limits (default: per bot id).
    rate_prefix: str | None = None
    # ----- what this process keeps between runs -----
    # The outbox delivery worker (a jobs.delivery.OutboxWorker), built on first use by worker_for.
    outbox: Any = None
    # Set while the live scheduler runs: delivery is the worker's own loop, not the job's.
    outbox_live: bool = False
    # What this replica last learnt about the scheduler lease (jobs.leases.status).
    lease: dict[str, Any] = field(default_factory=lambda: {"held": False, "holder": None, "checked_at": None})
    # When each job last ran under time travel (jobs.runner.advance).
    last_run: dict[str, datetime] = field(default_factory=dict)
    care: CareMemo = field(default_factory=CareMemo)
    # The live scheduler (jobs.scheduler), while it runs.
    scheduler: Any = None

    def spec(self, job_id: str) -> JobSpec:
        for spec in self.specs:
            if spec.id == job_id:
                return spec
        raise KeyError(job_id)


@dataclass
class JobContext:
    """One run of a job: the shared dependencies and the time it runs at."""

    deps: JobDeps
    now: datetime

    @property
    def settings(self) -> Settings:
        return self.deps.settings

    @property
    def db(self) -> Database:
        return self.deps.db

    @property
    def clock(self) -> Clock:
        return self.deps.clock

    @property
    def bot(self) -> Bot:
        return self.deps.bot

    @property
    def renderer(self) -> TextRenderer:
        return self.deps.renderer
