"""Singleton work under a lease in the database.

Care planning, SLA checks, digests and the recovery of stuck outbox rows run on
one replica at a time: the holder of the ``scheduler`` lease. Every replica's
``lease`` job tries to take or renew it every third of ``LEASE_SECONDS``; a
renewal runs the lease for two thirds of ``LEASE_SECONDS``. So a holder that
dies loses it at most two thirds of a period after its last renewal, and the
next replica's try (at most a third later) takes it: within one period.
A clean stop gives the lease up at once.

Each singleton job renews the lease right before it runs (one UPDATE), so a
replica that lost it (a long pause, a network split) does not run the job.

On SQLite the ``delivery`` lease keeps a second process from delivering the
outbox (SQLite has one writer; the claims that make replicas safe need
PostgreSQL); that process says so in its log and leaves the outbox alone.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import timedelta
from typing import Any

from jobs.context import JobContext, JobDeps, job
from storage.repositories import Repos

log = logging.getLogger(__name__)

SCHEDULER = "scheduler"
DELIVERY = "delivery"


def instance_id(deps: JobDeps) -> str:
    """This replica's name: ``INSTANCE_ID``, else host:pid (the same for every app built in one process)."""
    return deps.settings.instance_id or f"{socket.gethostname()}:{os.getpid()}"


def lease_term(deps: JobDeps) -> timedelta:
    """How long one renewal holds the lease."""
    return timedelta(seconds=deps.settings.lease_seconds * 2 / 3)


def status(deps: JobDeps) -> dict[str, Any]:
    """What this replica last learnt about the scheduler lease (for /readyz and /metrics)."""
    return deps.lease


async def hold(deps: JobDeps, name: str = SCHEDULER, term: timedelta | None = None, *, renew: bool = False) -> bool:
    """Take or renew the lease ``name`` for this replica; False while another holds it.

    The scheduler lease renewed less than a third of ``LEASE_SECONDS`` ago is held
    without asking the database again (a renewal holds it two thirds), unless ``renew``.
    """
    now = deps.clock.now()
    me = instance_id(deps)
    if name == SCHEDULER and not renew:
        state = status(deps)
        if state["held"] and state["checked_at"] is not None and \
                timedelta(0) <= now - state["checked_at"] < lease_every(deps):
            return True
    async with deps.db.session() as session:
        repos = Repos(session)
        held = await repos.leases.acquire(name, me, now, now + (term or lease_term(deps)))
        holder = me if held else getattr(await repos.leases.get(name), "holder", None)
        await session.commit()
    if name == SCHEDULER:
        state = status(deps)
        if held and not state["held"]:
            log.info("this replica (%s) now runs the singleton jobs", me)
        elif not held and state["held"]:
            log.warning("this replica (%s) lost the scheduler lease to %s", me, holder)
        state.update(held=held, holder=holder, checked_at=now)
    return held


async def release(deps: JobDeps, name: str = SCHEDULER) -> None:
    """Give the lease up (a clean stop), so another replica takes over at its next try."""
    try:
        async with deps.db.session() as session:
            released = await Repos(session).leases.release(name, instance_id(deps), deps.clock.now())
            await session.commit()
    except Exception:  # stopping anyway; the lease expires on its own
        log.warning("could not give up the %s lease; it expires on its own", name, exc_info=True)
        return
    if released and name == SCHEDULER:
        status(deps).update(held=False)
        log.info("scheduler lease given up")


def lease_every(deps: JobDeps) -> timedelta:
    return timedelta(seconds=deps.settings.lease_seconds / 3)


@job("lease", every=timedelta(seconds=10), misfire_grace_time=5, singleton=False)
async def renew_lease(ctx: JobContext) -> None:
    """Take or renew the scheduler lease (the live scheduler runs this every LEASE_SECONDS / 3)."""
    await hold(ctx.deps, renew=True)
