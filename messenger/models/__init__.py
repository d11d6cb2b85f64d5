from messenger.models.agent import AgentConnection, AgentProfile, AgentRole, AgentStatus, PresencePeriod
from messenger.models.api_token import ApiToken
from messenger.models.audit import ActivityEvent
from messenger.models.branch import Branch, Region, RoutingRule
from messenger.models.contact import Contact, ContactInbox
from messenger.models.conversation import (
    Conversation,
    ConversationEvent,
    ConversationPriority,
    ConversationStatus,
)
from messenger.models.email import EmailKind, EmailStatus, OutgoingEmail
from messenger.models.inbox import Inbox
from messenger.models.message import Attachment, Message, MessageDirection, SenderType
from messenger.models.misc import CannedResponse, Label
from messenger.models.proactive import ProactiveTrigger, TriggerKind
from messenger.models.webhook import Webhook, WebhookDelivery

__all__ = [
    "ActivityEvent",
    "AgentConnection",
    "AgentProfile",
    "AgentRole",
    "AgentStatus",
    "PresencePeriod",
    "ApiToken",
    "Attachment",
    "Branch",
    "CannedResponse",
    "Contact",
    "ContactInbox",
    "Conversation",
    "ConversationEvent",
    "ConversationPriority",
    "ConversationStatus",
    "EmailKind",
    "EmailStatus",
    "Inbox",
    "Label",
    "Message",
    "MessageDirection",
    "ProactiveTrigger",
    "TriggerKind",
    "OutgoingEmail",
    "Region",
    "RoutingRule",
    "SenderType",
    "Webhook",
    "WebhookDelivery",
]
