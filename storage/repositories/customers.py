from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.dialect import is_postgres
from storage.models import Customer, StaffNote

LIKE_ESCAPE = "\\"


def escape_like(text: str) -> str:
    """``text`` for a LIKE pattern in which it matches only itself (used with ``escape=LIKE_ESCAPE``)."""
    return text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", LIKE_ESCAPE + "%").replace("_", LIKE_ESCAPE + "_")


# The fields a customer fills in through the dialog, in dialog order.
PROFILE_FIELDS = ("name", "phone", "birthday", "address", "household_size", "care_consent")


class CustomerRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, customer_id: int) -> Customer | None:
        return await self.session.get(Customer, customer_id)

    async def get_locked(self, customer_id: int) -> Customer | None:
        """The customer, locked until the transaction ends (``SELECT .. FOR UPDATE``) on PostgreSQL;
        on SQLite (one writer at a time) as :meth:`get`."""
        if not is_postgres(self.session):
            return await self.get(customer_id)
        return await self.session.scalar(select(Customer).where(Customer.id == customer_id).with_for_update())

    async def by_telegram_id(self, telegram_id: int) -> Customer | None:
        return await self.session.scalar(select(Customer).where(Customer.telegram_id == telegram_id))

    async def register(self, telegram_id: int, fields: dict[str, Any], language: str, now: datetime) -> Customer:
        """Create the customer file, or update it if a double press got here first."""
        customer = await self.by_telegram_id(telegram_id)
        if customer is None:
            customer = Customer(telegram_id=telegram_id, registered_at=now, reachable=True)
            self.session.add(customer)
        for key, value in fields.items():
            setattr(customer, key, value)
        customer.language = language
        customer.care_consent_changed_at = now
        customer.updated_at = now
        await self.session.flush()
        return customer

    async def update_field(self, customer: Customer, field: str, value: Any, now: datetime) -> None:
        if field not in PROFILE_FIELDS and field not in ("language", "timezone", "preferences"):
            raise ValueError(f"not an editable field: {field}")
        setattr(customer, field, value)
        if field == "care_consent":
            customer.care_consent_changed_at = now
        customer.updated_at = now
        await self.session.flush()

    async def mark_unreachable(self, customer_id: int, now: datetime) -> None:
        customer = await self.get(customer_id)
        if customer is not None and customer.reachable:
            customer.reachable = False
            customer.unreachable_since = now

    async def mark_reachable(self, customer: Customer) -> None:
        if not customer.reachable:
            customer.reachable = True
            customer.unreachable_since = None

    async def forget(self, customer: Customer, now: datetime) -> None:
        """Erase personal data; the row stays (anonymised) for other records."""
        customer.telegram_id = None
        customer.name = None
        customer.phone = None
        customer.birthday = None
        customer.address = None
        customer.household_size = None
        customer.preferences = None
        customer.care_consent = False
        customer.care_consent_changed_at = now
        customer.reachable = False
        customer.forgotten_at = now
        customer.updated_at = now
        await self.session.execute(delete(StaffNote).where(StaffNote.customer_id == customer.id))
        await self.session.flush()

    async def search(self, text: str, limit: int = 10) -> list[Customer]:
        """Partial, case-insensitive match on name, phone or staff notes."""
        # LIKE wildcards typed by staff (``%``, ``_``) match themselves, not everyone.
        pattern = f"%{escape_like(text.strip().lower())}%"
        digits = "".join(ch for ch in text if ch.isdigit())
        conditions = [
            Customer.name.ilike(pattern, escape=LIKE_ESCAPE),
            Customer.id.in_(select(StaffNote.customer_id).where(StaffNote.text.ilike(pattern, escape=LIKE_ESCAPE))),
        ]
        if len(digits) >= 3:
            conditions.append(Customer.phone.like(f"%{digits}%"))
        stmt = (
            select(Customer)
            .where(Customer.forgotten_at.is_(None), or_(*conditions))
            .order_by(Customer.id)
            .limit(limit)
        )
        return list(await self.session.scalars(stmt))

    async def add_note(self, customer: Customer, author_id: int, author_name: str, text: str,
                       now: datetime) -> StaffNote:
        note = StaffNote(
            customer_id=customer.id,
            author_telegram_id=author_id,
            author_name=author_name,
            text=text,
            created_at=now,
        )
        self.session.add(note)
        await self.session.flush()
        return note

    async def notes(self, customer_id: int) -> list[StaffNote]:
        stmt = select(StaffNote).where(StaffNote.customer_id == customer_id).order_by(StaffNote.id)
        return list(await self.session.scalars(stmt))
