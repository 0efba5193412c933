"""Which commands each role has; descriptions live in templates/<lang>/commands/."""

from __future__ import annotations

from dataclasses import dataclass

from bot.roles import Role


@dataclass(frozen=True)
class Command:
    name: str
    role: Role  # the lowest role that may use it
    customer_only: bool = False  # hidden from staff (e.g. /forget)


COMMANDS: list[Command] = [
    Command("start", Role.CUSTOMER, customer_only=True),  # staff's /start shows their /help
    Command("order", Role.CUSTOMER, customer_only=True),
    Command("orders", Role.CUSTOMER, customer_only=True),
    Command("help", Role.CUSTOMER),
    Command("cancel", Role.CUSTOMER),
    Command("profile", Role.CUSTOMER, customer_only=True),
    Command("language", Role.CUSTOMER),
    Command("stop", Role.CUSTOMER, customer_only=True),
    Command("resume", Role.CUSTOMER, customer_only=True),
    Command("mydata", Role.CUSTOMER, customer_only=True),
    Command("forget", Role.CUSTOMER, customer_only=True),
    Command("complaint", Role.CUSTOMER, customer_only=True),
    Command("tickets", Role.STAFF),
    Command("ticket", Role.STAFF),
    Command("customer", Role.STAFF),
    Command("note", Role.STAFF),
    Command("report", Role.MANAGER),
    Command("abc", Role.MANAGER),
    Command("rfm", Role.MANAGER),
    Command("churn", Role.MANAGER),
    Command("seasonal", Role.MANAGER),
    Command("sla", Role.MANAGER),
    Command("csat", Role.MANAGER),
    Command("care", Role.MANAGER),
    Command("export", Role.MANAGER),
    Command("digest", Role.MANAGER),
]


def commands_for(role: Role) -> list[Command]:
    return [c for c in COMMANDS if c.role <= role and not (c.customer_only and role > Role.CUSTOMER)]
