"""Use cases the edges (handlers, jobs) share: the staff chat's cards and notices, and more to come.

A service gets plain values and repositories as arguments; it never imports handlers, jobs or the App
object (pyproject.toml: the import contracts).
"""
