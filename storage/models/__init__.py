"""All models; importing this module registers every table on ``Base.metadata``."""

from storage.models.base import Base, UTCDateTime
from storage.models.customers import Customer, StaffNote
from storage.models.dialogs import DialogState
from storage.models.outbox import OutboxMessage

__all__ = ["Base", "Customer", "DialogState", "OutboxMessage", "StaffNote", "UTCDateTime"]
