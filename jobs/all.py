"""Imports every job module so each registers its jobs in jobs.registry.JOBS."""

import jobs.sla  # noqa: F401  (watch_tickets)
import jobs.delivery  # noqa: F401  (deliver_outbox)
import jobs.digest  # noqa: F401  (queue_digests)
import jobs.care  # noqa: F401  (plan_care, care_daily; care checks and order attribution)
import jobs.leases  # noqa: F401  (lease: who runs the singleton jobs)
