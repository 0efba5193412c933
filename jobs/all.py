"""Imports every job module so each registers its jobs in jobs.registry.JOBS."""
