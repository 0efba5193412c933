"""Scheduled work: jobs, their registry, the scheduler, and time travel."""
