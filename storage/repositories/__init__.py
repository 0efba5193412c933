"""Repositories, held together per unit of work.

A handler or job gets one :class:`Repos` per update or run. Repositories only
``flush``; the single ``commit`` happens in the middleware (or the job runner)
that owns the transaction.
"""

from __future__ import annotations

from functools import cached_property

from sqlalchemy.ext.asyncio import AsyncSession

from storage.repositories.care import CareRepo
from storage.repositories.conversations import ConversationRepo
from storage.repositories.customers import CustomerRepo
from storage.repositories.leases import LeaseRepo
from storage.repositories.orders import OrderRepo, ProductRepo
from storage.repositories.outbox import OutboxRepo
from storage.repositories.reports import ReportRepo
from storage.repositories.staff_languages import StaffLanguageRepo
from storage.repositories.tickets import TicketRepo


class Repos:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @cached_property
    def customers(self) -> CustomerRepo:
        return CustomerRepo(self.session)

    @cached_property
    def care(self) -> CareRepo:
        return CareRepo(self.session)

    @cached_property
    def conversations(self) -> ConversationRepo:
        return ConversationRepo(self.session)

    @cached_property
    def outbox(self) -> OutboxRepo:
        return OutboxRepo(self.session)

    @cached_property
    def leases(self) -> LeaseRepo:
        return LeaseRepo(self.session)

    @cached_property
    def products(self) -> ProductRepo:
        return ProductRepo(self.session)

    @cached_property
    def orders(self) -> OrderRepo:
        return OrderRepo(self.session)

    @cached_property
    def tickets(self) -> TicketRepo:
        return TicketRepo(self.session)

    @cached_property
    def reports(self) -> ReportRepo:
        return ReportRepo(self.session)

    @cached_property
    def staff_languages(self) -> StaffLanguageRepo:
        return StaffLanguageRepo(self.session)

    async def commit(self) -> None:
        await self.session.commit()

    async def rollback(self) -> None:
        await self.session.rollback()


__all__ = ["Repos"]
