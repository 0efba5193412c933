"""All models; importing this module registers every table on ``Base.metadata``."""

from storage.models.base import Base, UTCDateTime
from storage.models.care import CareStop, SurveyAnswer
from storage.models.conversations import Conversation, ConversationMessage
from storage.models.customers import Customer, StaffNote
from storage.models.dialogs import DialogState
from storage.models.inbox import InboxUpdate
from storage.models.leases import Lease
from storage.models.orders import Order, OrderItem, OrderStatusChange, Product
from storage.models.outbox import OutboxMessage
from storage.models.reports import ReportDigest, SegmentCampaign
from storage.models.staff import StaffLanguage
from storage.models.tickets import Ticket, TicketEvent, TicketMessage

__all__ = [
    "Base", "CareStop", "Conversation", "ConversationMessage", "Customer", "DialogState", "InboxUpdate", "Lease",
    "Order", "OrderItem", "OrderStatusChange", "OutboxMessage", "Product", "ReportDigest", "SegmentCampaign",
    "StaffLanguage", "StaffNote", "SurveyAnswer", "Ticket", "TicketEvent", "TicketMessage", "UTCDateTime",
]
