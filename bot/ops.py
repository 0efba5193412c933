"""Operations endpoints: ``/healthz``, ``/readyz`` and ``/metrics``.

* ``/healthz`` — the process is up and its event loop answers (200, always).
* ``/readyz`` — the database answers, Redis answers (when ``REDIS_URL`` is set);
  200 when both do, else 503. The body (JSON) also says who holds the
  scheduler lease and whether this replica delivers the outbox; neither makes
  a replica unready (a replica without the lease still takes updates).
* ``/metrics`` — Prometheus text format (``prometheus-client``): the counters
  of :mod:`bot.metrics`, plus the outbox backlog and the lease read when asked.

Webhook mode: :func:`add_ops_routes` puts them on the webhook's aiohttp app
(same port). Polling mode: :func:`start_ops_server` serves them on
``HEALTH_PORT``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot import metrics
from bot.metrics import observe_update  # noqa: F401  (the update pipeline's entry point)
from jobs import leases
from storage.repositories import Repos

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

# A check that takes longer than this counts as failed.
CHECK_TIMEOUT = 2.0


async def _check_database(app: App) -> str:
    await app.db.ping()
    return "ok"


async def _check_redis(app: App) -> str:
    client = getattr(app.storage, "redis", None)
    if client is None:
        from redis.asyncio import Redis

        client = app.ops_redis
        if client is None:
            client = app.ops_redis = Redis.from_url(app.settings.redis_url)
    await client.ping()
    return "ok"


async def _timed(check: Any, app: App) -> str:
    try:
        return await asyncio.wait_for(check(app), CHECK_TIMEOUT)
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT:g} s"
    except Exception as exc:  # noqa: BLE001  (any failure: not ready; the reason without details)
        return f"failed: {type(exc).__name__}"


async def readiness(app: App) -> tuple[bool, dict[str, Any]]:
    """(ready, details) — what ``/readyz`` answers."""
    checks = {"database": _timed(_check_database, app)}
    if app.settings.redis_url:
        checks["redis"] = _timed(_check_redis, app)
    results = dict(zip(checks, await asyncio.gather(*checks.values())))
    ready = all(value == "ok" for value in results.values())
    lease = await _lease(app)
    worker = app.jobs.outbox
    body: dict[str, Any] = {
        "ready": ready, **results,
        "instance": leases.instance_id(app.jobs),
        "scheduler_lease": lease,
        "delivers_outbox": getattr(worker, "refused", None) is None,
    }
    if worker is not None and worker.refused:
        body["delivery_refused"] = worker.refused
    return ready, body


async def _lease(app: App) -> dict[str, Any]:
    """Who holds the scheduler lease, read from the database (the last known state when it cannot be read)."""
    state = leases.status(app.jobs)
    try:
        async with app.db.session() as session:
            row = await Repos(session).leases.get(leases.SCHEDULER)
        now = app.clock.now()
        if row is None or row.expires_at <= now:
            return {"holder": None, "held_here": False}
        return {"holder": row.holder, "held_here": row.holder == leases.instance_id(app.jobs),
                "expires_at": row.expires_at.isoformat()}
    except Exception:  # noqa: BLE001
        return {"holder": state.get("holder"), "held_here": bool(state.get("held")), "stale": True}


async def collect(app: App) -> bytes:
    """The metrics in Prometheus text format, with the backlog and the lease read now."""
    try:
        async with app.db.session() as session:
            backlog = await Repos(session).outbox.count_by_status()
        metrics.OUTBOX.clear()
        for status, category, count in backlog:
            metrics.OUTBOX.labels(status, category).set(count)
    except Exception:
        log.warning("metrics: could not read the outbox backlog", exc_info=True)
    lease = await _lease(app)
    metrics.LEASE_HELD.set(1 if lease.get("held_here") else 0)
    metrics.LEASE_HOLDER.clear()
    if lease.get("holder"):
        metrics.LEASE_HOLDER.labels(lease["holder"]).set(1)
    return generate_latest(metrics.REGISTRY)


def add_ops_routes(web_app: web.Application, app: App) -> None:
    """``/healthz``, ``/readyz`` and ``/metrics`` on an aiohttp application (the webhook's)."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        ready, body = await readiness(app)
        return web.json_response(body, status=200 if ready else 503)

    async def metrics_view(_: web.Request) -> web.Response:
        body = await collect(app)
        response = web.Response(body=body)
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    web_app.router.add_get("/healthz", healthz)
    web_app.router.add_get("/readyz", readyz)
    web_app.router.add_get("/metrics", metrics_view)


async def start_ops_server(app: App, port: int, host: str = "0.0.0.0") -> web.AppRunner:
    """Polling mode: serve the three endpoints on ``port``; stop with ``await runner.cleanup()``."""
    web_app = web.Application()
    add_ops_routes(web_app, app)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info("health and metrics on port %s: /healthz /readyz /metrics", port)
    return runner
