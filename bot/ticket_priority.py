"""The priority of a new complaint, from the customer's value and open complaints.

Value counts only once the shop has the history to judge it: with a handful of
customers nearly everyone is "class A", and every complaint would be high.
Used by the complaint dialog and by staff turning a conversation into a
complaint.
"""

from __future__ import annotations

from datetime import datetime

from bot.config import Settings
from bot.rules import tickets as rules
from storage.models import Customer
from storage.repositories import Repos


async def complaint_priority(repos: Repos, customer: Customer, category: str, now: datetime,
                             settings: Settings) -> tuple[str, list[str]]:
    """(priority, reason codes) for a new complaint of this customer in this category."""
    rank = None
    customers, orders = await repos.tickets.value_history(now)
    if rules.enough_history(customers, orders, min_customers=settings.value_priority_min_customers,
                            min_orders=settings.value_priority_min_orders):
        rank = await repos.tickets.top_customer_rank(customer.id, now, settings.abc_a_share)
    return rules.priority_for(
        category,
        top_customer=rank is not None,
        top_percent=rules.top_percent(*rank) if rank is not None else None,
        recent_unresolved=await repos.tickets.has_recent_unresolved(customer.id, now),
    )
