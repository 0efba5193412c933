"""Use cases the edges (handlers, jobs) share: the staff chat's cards and notices (tickets), and what a customer
writes to staff and staff answer (relay).

A service gets plain values and repositories as arguments; it never imports handlers, jobs or the App
object (pyproject.toml: the import contracts).
"""
