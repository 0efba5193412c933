"""What ``/metrics`` reports (Prometheus, ``prometheus-client``), and the calls that count it.

The update pipeline calls :func:`observe_update` once per handled update; the
outbox worker calls :func:`count_send` once per Telegram send. The backlog and
the lease holder are read from the database and the app when ``/metrics`` is
asked (``bot.ops``). Labels never carry personal data: handler names, outbox
categories, statuses and outcomes only.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# One registry for CareDesk's metrics (not the library's global one, which a
# test process would share with anything else that registers there).
REGISTRY = CollectorRegistry(auto_describe=True)

UPDATES = Counter("caredesk_updates_total", "Updates handled, by handler and result (ok / failed)",
                  ["handler", "result"], registry=REGISTRY)
UPDATE_SECONDS = Histogram("caredesk_update_seconds", "Time to handle one update, by handler", ["handler"],
                           buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
                           registry=REGISTRY)
SENDS = Counter("caredesk_sends_total",
                "Telegram sends by category (service / care: outbox rows; reply: a handler's own messages) "
                "and outcome (sent, rate_limited = 429, forbidden = 403, chat_gone, bad_request, network_error, "
                "server_error, error)",
                ["category", "outcome"], registry=REGISTRY)
RATE_LIMITED = Counter("caredesk_telegram_429_total", "429 Too Many Requests answers from Telegram",
                       registry=REGISTRY)
FORBIDDEN = Counter("caredesk_telegram_403_total", "403 Forbidden answers from Telegram (blocked, deactivated)",
                    registry=REGISTRY)
OUTBOX = Gauge("caredesk_outbox_rows", "Outbox rows by status and category (kind of message: service / care)",
               ["status", "category"], registry=REGISTRY)
LEASE_HELD = Gauge("caredesk_scheduler_lease_held", "1 when this replica runs the singleton jobs",
                   registry=REGISTRY)
LEASE_HOLDER = Gauge("caredesk_scheduler_lease_holder", "The replica holding the scheduler lease (value 1)",
                     ["holder"], registry=REGISTRY)


def observe_update(handler_name: str, seconds: float, ok: bool) -> None:
    """One update handled by ``handler_name`` (e.g. the router or callback name) in ``seconds``."""
    UPDATES.labels(handler_name, "ok" if ok else "failed").inc()
    UPDATE_SECONDS.labels(handler_name).observe(seconds)


def count_send(category: str, outcome: str) -> None:
    """One attempt to send an outbox row (or a handler's reply) and what Telegram said."""
    SENDS.labels(category, outcome).inc()
    if outcome == "rate_limited":
        RATE_LIMITED.inc()
    elif outcome == "forbidden":
        FORBIDDEN.inc()
