"""The wire format: every frame the server sends is shaped here, from the typed definitions below
(see docs/protocol.md, "Field reference").

Each shape is a ``TypedDict``: at run time a plain dict, so a frame is serialised as it is built
(key order included), and ``tests/test_events.py`` derives from these definitions every field the
server can send, nested ones too, and checks that docs/protocol.md documents each. A durable event
type is an ``EventType`` (its staff data and, when the visitor sees it, the visitor's data); an
ephemeral frame type is a ``FrameType``. ``EVENT_TYPES`` and ``FRAME_TYPES`` list them all: a type
string that is not in them is never sent.
"""

# No ``from __future__ import annotations``: a TypedDict tells its optional keys (``NotRequired``)
# only from annotations evaluated when it is defined.
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NotRequired, TypedDict

from django.contrib.auth.models import AbstractBaseUser

from messenger import models
from messenger.tokens import attachment_token

# daphne's WebSocket limit (1 MiB) applies to what the server sends as well as to what it receives:
# a larger frame closes the receiving socket (1011). A message's body and its rendered content must
# fit in one frame with room to spare for the rest of it, and a page of history in another.
MESSAGE_TEXT_MAX_BYTES = 960 * 1024
PAGE_TEXT_MAX_BYTES = 512 * 1024


def text_bytes(body: str, content: str) -> int:
    """What ``body`` and its rendered ``content`` take in a frame: JSON strings, UTF-8."""
    return len(json.dumps(body, ensure_ascii=False).encode()) + len(json.dumps(content, ensure_ascii=False).encode())


def fitting_page(newest_first: list[models.Message]) -> list[models.Message]:
    """The newest messages whose text stays within ``PAGE_TEXT_MAX_BYTES``; at least one."""
    size = 0
    for index, message in enumerate(newest_first):
        size += text_bytes(message.body, message.content)
        if index and size > PAGE_TEXT_MAX_BYTES:
            return newest_first[:index]
    return newest_first


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.isoformat().replace("+00:00", "Z")


def user_name(user: AbstractBaseUser | None) -> str:
    if user is None:
        return ""
    full = user.get_full_name() if hasattr(user, "get_full_name") else ""
    return full or user.get_username()


# --- objects inside payloads ----------------------------------------------------------------------


class Ref(TypedDict):
    """An inbox, branch, region or user."""

    id: int
    name: str


class ContactRef(TypedDict):
    id: int
    name: str
    email: str
    phone: str


class RatingData(TypedDict):
    score: int
    scale: str
    comment: str
    rated_at: str | None


class StaffConversation(TypedDict):
    id: int
    identifier: str
    status: str
    priority: int
    inbox: Ref
    branch: Ref | None
    region: Ref | None
    contact: ContactRef
    assignee: Ref | None
    unread_for_agent: int
    waiting_since: str | None
    last_activity_at: str | None
    last_message_preview: str
    assignee_opened_at: str | None
    snoozed_until: str | None
    escalation_count: int
    rating: RatingData | None
    created_at: str | None
    last_seq: int
    labels: NotRequired[list[str]]


class AssigneeName(TypedDict):
    name: str


class PublicConversation(TypedDict):
    id: int
    status: str
    assignee: AssigneeName | None
    opened: bool
    rating: RatingData | None
    rating_requested: bool
    unread_for_contact: int
    created_at: str | None
    last_id: int


class Sender(TypedDict):
    type: str
    id: NotRequired[int | None]
    name: str


class AttachmentData(TypedDict):
    id: int
    name: str
    content_type: str
    size: int
    width: int | None
    height: int | None
    is_image: bool
    url: str


class MessageData(TypedDict):
    id: int
    conversation_id: int
    direction: str
    client_id: str | None
    sender: Sender
    body: str
    content: str
    attachments: list[AttachmentData]
    content_attributes: dict[str, Any]
    created_at: str | None
    delivered_at: str | None
    read_at: str | None


class QueuePlace(TypedDict):
    position: int
    expected_wait_seconds: int | None


def user_brief(user: AbstractBaseUser | None) -> Ref | None:
    if user is None:
        return None
    return {"id": user.pk, "name": user_name(user)}


def attachment_payload(attachment: models.Attachment, *, for_contact_inbox_id: int | None) -> AttachmentData:
    url = f"/api/attachments/{attachment.pk}/"
    if for_contact_inbox_id is not None:
        url += f"?t={attachment_token(attachment.pk, for_contact_inbox_id)}"
    return {
        "id": attachment.pk,
        "name": attachment.original_name,
        "content_type": attachment.content_type,
        "size": attachment.size,
        "width": attachment.width,
        "height": attachment.height,
        "is_image": attachment.is_image,
        "url": url,
    }


def message_payload(
    message: models.Message, *, public: bool, attachments: list[models.Attachment] | None = None
) -> MessageData:
    """``attachments`` saves the query when the caller already has them (the send path)."""
    if attachments is None:
        attachments = list(message.attachments.all()) if message.pk else []
    contact_inbox_id = message.conversation.contact_inbox_id if public else None
    if message.sender_type == "contact":
        contact = message.sender_contact
        sender: Sender = {
            "type": "contact",
            "id": message.sender_contact_id,
            "name": str(contact) if contact else "",
        }
    elif message.sender_type == "user":
        sender = {"type": "user", "name": user_name(message.sender_user)}
        if not public:
            sender["id"] = message.sender_user_id
    else:
        sender = {"type": message.sender_type, "name": ""}
    return {
        "id": message.pk,
        "conversation_id": message.conversation_id,
        "direction": message.direction,
        "client_id": message.client_id,
        "sender": sender,
        "body": message.body,
        "content": message.content,
        "attachments": [attachment_payload(a, for_contact_inbox_id=contact_inbox_id) for a in attachments],
        "content_attributes": message.content_attributes if not public else _public_attributes(message),
        "created_at": iso(message.created_at),
        "delivered_at": iso(message.delivered_at),
        "read_at": iso(message.read_at),
    }


def _public_attributes(message: models.Message) -> dict[str, Any]:
    attributes = message.content_attributes or {}
    return {key: attributes[key] for key in ("in_reply_to", "deleted", "kind") if key in attributes}


def conversation_staff(conversation: models.Conversation) -> StaffConversation:
    """Needs inbox, branch, region, contact and assignee loaded (select_related)."""
    contact = conversation.contact
    return {
        "id": conversation.pk,
        "identifier": conversation.identifier,
        "status": conversation.status,
        "priority": conversation.priority,
        "inbox": {"id": conversation.inbox_id, "name": conversation.inbox.name},
        "branch": {"id": conversation.branch_id, "name": conversation.branch.name} if conversation.branch_id else None,
        "region": {"id": conversation.region_id, "name": conversation.region.name} if conversation.region_id else None,
        "contact": {"id": contact.pk, "name": str(contact), "email": contact.email, "phone": contact.phone},
        "assignee": user_brief(conversation.assignee) if conversation.assignee_id else None,
        "unread_for_agent": conversation.unread_for_agent,
        "waiting_since": iso(conversation.waiting_since),
        "last_activity_at": iso(conversation.last_activity_at),
        "last_message_preview": conversation.last_message_preview,
        "assignee_opened_at": iso(conversation.assignee_opened_at),
        "snoozed_until": iso(conversation.snoozed_until),
        "escalation_count": conversation.escalation_count,
        "rating": _rating(conversation),
        "created_at": iso(conversation.created_at),
        "last_seq": conversation.last_seq,
    }


def _rating(conversation: models.Conversation) -> RatingData | None:
    """``scale`` is the one the visitor rated on (kept with the score): a later change of the inbox's
    setting does not turn 4 stars into 4 of 10. A rating older than that column whose audit row
    recorded no scale (migration 0016) reads the inbox's current one."""
    if conversation.rating_score is None:
        return None
    return {
        "score": conversation.rating_score,
        "scale": conversation.rating_scale or conversation.inbox.effective_settings["rating"]["scale"],
        "comment": conversation.rating_comment,
        "rated_at": iso(conversation.rated_at),
    }


def conversation_public(conversation: models.Conversation) -> PublicConversation:
    return {
        "id": conversation.pk,
        "status": conversation.status,
        "assignee": {"name": user_name(conversation.assignee)} if conversation.assignee_id else None,
        "opened": conversation.assignee_opened_at is not None,
        "rating": _rating(conversation),
        "rating_requested": conversation.rating_requested_at is not None and conversation.rating_score is None,
        "unread_for_contact": conversation.unread_for_contact,
        "created_at": iso(conversation.created_at),
        "last_id": conversation.last_public_seq,
    }


# --- durable events -------------------------------------------------------------------------------


class MessageCreatedData(TypedDict):
    message: MessageData
    conversation: StaffConversation


class PublicMessageCreatedData(TypedDict):
    message: MessageData
    unread_for_contact: int


class DeliveredChanges(TypedDict):
    delivered_at: str | None


class MessageUpdatedData(TypedDict):
    direction: str
    up_to_message_id: int
    changes: DeliveredChanges


class ConversationReadData(TypedDict):
    reader: str
    up_to_message_id: int
    read_at: str | None


class ConversationChangedData(TypedDict):
    changes: list[str]
    conversation: StaffConversation


class PublicConversationChangedData(TypedDict):
    changes: list[str]
    conversation: PublicConversation


# ``from`` is a keyword: the functional form.
AssignmentData = TypedDict(
    "AssignmentData",
    {
        "from": Ref | None,
        "to": Ref | None,
        "reason": dict[str, Any],
        "conversation": StaffConversation,
        "step": NotRequired[int],
    },
)


class RatingRequestedData(TypedDict):
    scale: str


class DurableFrame(TypedDict):
    """Every durable event's frame; ``data`` is its type's staff or visitor data."""

    type: str
    conversation_id: int
    id: int
    ts: str
    data: dict[str, Any]


@dataclass(frozen=True)
class EventType:
    """A durable event type: ``staff`` is the TypedDict of its data on the staff stream, ``public``
    of its data on the visitor stream (None: the visitor never gets this type)."""

    type: str
    staff: type
    public: type | None


MESSAGE_CREATED = EventType("message.created", MessageCreatedData, PublicMessageCreatedData)
MESSAGE_UPDATED = EventType("message.updated", MessageUpdatedData, MessageUpdatedData)
CONVERSATION_READ = EventType("conversation.read", ConversationReadData, ConversationReadData)
CONVERSATION_CREATED = EventType("conversation.created", ConversationChangedData, PublicConversationChangedData)
CONVERSATION_UPDATED = EventType("conversation.updated", ConversationChangedData, PublicConversationChangedData)
RATING_REQUESTED = EventType("rating.requested", RatingRequestedData, RatingRequestedData)
# The visitor gets a ``conversation.updated`` with the new assignee's name instead.
ASSIGNMENT_EVENTS: dict[str, EventType] = {
    "assigned": EventType("assignment.assigned", AssignmentData, None),
    "reassigned": EventType("assignment.reassigned", AssignmentData, None),
    "escalated": EventType("assignment.escalated", AssignmentData, None),
    "escalation_queued": EventType("assignment.escalation_queued", AssignmentData, None),
    "transferred": EventType("assignment.transferred", AssignmentData, None),
    "unassigned": EventType("assignment.unassigned", AssignmentData, None),
}
EVENT_TYPES: tuple[EventType, ...] = (
    MESSAGE_CREATED,
    MESSAGE_UPDATED,
    CONVERSATION_READ,
    CONVERSATION_CREATED,
    CONVERSATION_UPDATED,
    *ASSIGNMENT_EVENTS.values(),
    RATING_REQUESTED,
)


@dataclass(frozen=True)
class PublicPart:
    """The visitor stream's side of an event: its type there and its data."""

    type: str
    data: Any


@dataclass(frozen=True)
class Event:
    """One durable event as an action records it: ``eventlog.record_event(conversation,
    type=event.type, data=event.data, public=event.public)``; ``public`` is None when the visitor
    does not see it."""

    type: str
    data: Any
    public: PublicPart | None = None


def message_created(
    message: models.Message, conversation: models.Conversation, attachments: list[models.Attachment]
) -> Event:
    """A stored message; an internal note (``direction`` internal) is staff only."""
    staff: MessageCreatedData = {
        "message": message_payload(message, public=False, attachments=attachments),
        "conversation": conversation_staff(conversation),
    }
    if message.direction == models.MessageDirection.INTERNAL:
        return Event(MESSAGE_CREATED.type, staff)
    public: PublicMessageCreatedData = {
        "message": message_payload(message, public=True, attachments=attachments),
        "unread_for_contact": conversation.unread_for_contact,
    }
    return Event(MESSAGE_CREATED.type, staff, PublicPart(MESSAGE_CREATED.type, public))


def messages_delivered(*, direction: str, up_to_message_id: int, at: datetime) -> Event:
    data: MessageUpdatedData = {
        "direction": direction,
        "up_to_message_id": up_to_message_id,
        "changes": {"delivered_at": iso(at)},
    }
    return Event(MESSAGE_UPDATED.type, data, PublicPart(MESSAGE_UPDATED.type, data))


def conversation_read(*, reader: str, up_to_message_id: int, at: datetime) -> Event:
    """``reader``: ``contact`` or ``agent``."""
    data: ConversationReadData = {"reader": reader, "up_to_message_id": up_to_message_id, "read_at": iso(at)}
    return Event(CONVERSATION_READ.type, data, PublicPart(CONVERSATION_READ.type, data))


def conversation_changed(
    conversation: models.Conversation,
    changes: list[str],
    *,
    created: bool = False,
    staff_only: bool = False,
    labels: list[str] | None = None,
) -> Event:
    """The conversation's summary after ``changes``; ``labels`` (the new ones) join the staff summary."""
    kind = CONVERSATION_CREATED if created else CONVERSATION_UPDATED
    summary = conversation_staff(conversation)
    if labels is not None:
        summary["labels"] = labels
    staff: ConversationChangedData = {"changes": changes, "conversation": summary}
    if staff_only:
        return Event(kind.type, staff)
    public: PublicConversationChangedData = {"changes": changes, "conversation": conversation_public(conversation)}
    return Event(kind.type, staff, PublicPart(kind.type, public))


def assignment_changed(
    kind: str,
    conversation: models.Conversation,
    *,
    previous: AbstractBaseUser | None,
    assignee: AbstractBaseUser | None,
    reason: dict[str, Any] | None,
) -> Event:
    """``kind``: a key of ``ASSIGNMENT_EVENTS``. Staff get the assignment, the visitor the new
    assignee's name (a ``conversation.updated``)."""
    event_type = ASSIGNMENT_EVENTS[kind]
    staff: AssignmentData = {
        "from": user_brief(previous),
        "to": user_brief(assignee),
        "reason": reason or {},
        "conversation": conversation_staff(conversation),
    }
    if kind in ("escalated", "escalation_queued"):
        staff["step"] = conversation.escalation_count
    public: PublicConversationChangedData = {
        "changes": ["assignee"],
        "conversation": conversation_public(conversation),
    }
    return Event(event_type.type, staff, PublicPart(CONVERSATION_UPDATED.type, public))


def rating_requested(*, scale: str) -> Event:
    data: RatingRequestedData = {"scale": scale}
    return Event(RATING_REQUESTED.type, data, PublicPart(RATING_REQUESTED.type, data))


def durable_frame(*, type: str, conversation_id: int, event_id: int, ts: datetime, data: Any) -> DurableFrame:
    return {"type": type, "conversation_id": conversation_id, "id": event_id, "ts": iso(ts), "data": data}


# How the text of a conversation's summary event begins (``durable_frame_text``): a socket that
# only needs the conversation's status reads those frames alone.
CONVERSATION_CHANGED_PREFIXES = tuple(
    f'{{"type":{json.dumps(event_type.type)},' for event_type in (CONVERSATION_CREATED, CONVERSATION_UPDATED)
)


def durable_frame_text(*, type: str, conversation_id: int, event_id: int, ts: datetime, data_json: str) -> str:
    """``durable_frame`` as JSON, around a payload already serialised once for the event row."""
    return (
        f'{{"type":{json.dumps(type)},"conversation_id":{int(conversation_id)},"id":{int(event_id)},'
        f'"ts":{json.dumps(iso(ts))},"data":{data_json}}}'
    )


# --- ephemeral frames -----------------------------------------------------------------------------


class VisitorHello(TypedDict):
    type: str
    role: str
    conversation_id: int | None
    last_id: int
    conversation: PublicConversation | None
    queue: QueuePlace | None
    heartbeat: int
    operators_available: bool
    within_working_hours: bool


class HelloUser(TypedDict):
    id: int
    name: str
    role: str
    branch_id: int | None
    status: str


class OperatorHello(TypedDict):
    type: str
    role: str
    user: HelloUser
    heartbeat: int


class TypingData(TypedDict):
    who: str
    name: str
    preview: NotRequired[str]


class TypingFrame(TypedDict):
    type: str
    conversation_id: int
    data: TypingData


class StaffPresenceData(TypedDict):
    user_id: int
    status: str
    connected: bool


class StaffPresenceFrame(TypedDict):
    type: str
    data: StaffPresenceData


class VisitorPresenceData(TypedDict):
    operators_available: bool
    within_working_hours: bool


class VisitorPresenceFrame(TypedDict):
    type: str
    data: VisitorPresenceData


class UnreadData(TypedDict):
    conversations: int
    messages: int


class UnreadFrame(TypedDict):
    type: str
    data: UnreadData


class SupervisorAlertData(TypedDict):
    kind: str
    conversation_id: int
    branch_id: int | None
    step: int
    reason: str


class SupervisorAlertFrame(TypedDict):
    type: str
    data: SupervisorAlertData


class LiveData(TypedDict):
    state: str


class LiveFrame(TypedDict):
    type: str
    data: LiveData


class ErrorFrame(TypedDict):
    type: str
    code: str
    message: str
    ref: NotRequired[Any]
    fields: NotRequired[list[str]]
    challenge: NotRequired[dict[str, Any]]
    reason: NotRequired[str]
    retry_after: NotRequired[int]
    conversation_id: NotRequired[int]


class ContactDetails(TypedDict):
    name: str
    email: str
    phone: str


class RatingAck(TypedDict):
    score: int


class TranscriptAck(TypedDict):
    email: str


class InviteAck(TypedDict):
    id: str
    visitor_id: str


class AckData(TypedDict, total=False):
    """What an ``ack`` carries: nothing, or the keys of the command it answers."""

    message: MessageData
    conversation_id: int | None
    created: bool
    rating: RatingAck
    transcript: TranscriptAck
    contact: ContactDetails
    status: str
    conversation: StaffConversation
    invitation: InviteAck


class AckFrame(TypedDict):
    type: str
    ref: Any
    data: AckData


class PongFrame(TypedDict):
    type: str


class QueueFrame(TypedDict):
    type: str
    conversation_id: int
    data: QueuePlace


class ResumeDoneFrame(TypedDict):
    type: str
    conversation_id: int
    last_id: int


class SnapshotConversation(StaffConversation):
    routing_log: list[dict[str, Any]]


class SnapshotData(TypedDict):
    conversation: SnapshotConversation
    messages: list[MessageData]
    has_more: bool
    last_id: int
    watch: bool


class SnapshotFrame(TypedDict):
    type: str
    conversation_id: int
    ref: Any
    data: SnapshotData


class LiveVisitor(TypedDict):
    """One visitor on a page with the widget (the live list; docs/dashboard.md, "Visitors")."""

    id: str
    inbox: Ref
    branch_id: int | None
    url: str
    title: str
    referrer: str
    started_at: str
    page_started_at: str
    pages_seen: int
    country: str
    region: str
    returning: bool
    chatting: bool
    conversation_id: int | None


class VisitorsChangedData(TypedDict):
    upserts: list[LiveVisitor]
    removed: list[str]


class VisitorsChangedFrame(TypedDict):
    type: str
    data: VisitorsChangedData


class VisitorsResetFrame(TypedDict):
    type: str


class InvitationData(TypedDict):
    id: str
    body: str
    content: str
    sender: Sender
    automatic: bool


class InvitationFrame(TypedDict):
    type: str
    data: InvitationData


@dataclass(frozen=True)
class FrameType:
    """An ephemeral frame type (never stored, never replayed): the TypedDicts of its frames (one
    per audience when they differ)."""

    type: str
    shapes: tuple[type, ...]


HELLO = FrameType("hello", (VisitorHello, OperatorHello))
TYPING_STARTED = FrameType("typing.started", (TypingFrame,))
TYPING_STOPPED = FrameType("typing.stopped", (TypingFrame,))
PRESENCE = FrameType("presence", (StaffPresenceFrame, VisitorPresenceFrame))
UNREAD = FrameType("unread", (UnreadFrame,))
SUPERVISOR_ALERT = FrameType("supervisor.alert", (SupervisorAlertFrame,))
LIVE = FrameType("live", (LiveFrame,))
ERROR = FrameType("error", (ErrorFrame,))
ACK = FrameType("ack", (AckFrame,))
PONG = FrameType("pong", (PongFrame,))
RESUME_DONE = FrameType("resume.done", (ResumeDoneFrame,))
CONVERSATION_SNAPSHOT = FrameType("conversation.snapshot", (SnapshotFrame,))
QUEUE = FrameType("queue", (QueueFrame,))
VISITORS_CHANGED = FrameType("visitors.changed", (VisitorsChangedFrame,))
VISITORS_RESET = FrameType("visitors.reset", (VisitorsResetFrame,))
INVITATION = FrameType("invitation", (InvitationFrame,))
FRAME_TYPES: tuple[FrameType, ...] = (
    HELLO,
    TYPING_STARTED,
    TYPING_STOPPED,
    PRESENCE,
    UNREAD,
    SUPERVISOR_ALERT,
    LIVE,
    ERROR,
    ACK,
    PONG,
    RESUME_DONE,
    CONVERSATION_SNAPSHOT,
    QUEUE,
    VISITORS_CHANGED,
    VISITORS_RESET,
    INVITATION,
)


def visitor_hello(
    conversation: models.Conversation | None,
    *,
    queue: QueuePlace | None,
    heartbeat: int,
    availability: VisitorPresenceData,
) -> VisitorHello:
    return {
        "type": HELLO.type,
        "role": "visitor",
        "conversation_id": conversation.pk if conversation else None,
        "last_id": conversation.last_public_seq if conversation else 0,
        "conversation": conversation_public(conversation) if conversation else None,
        "queue": queue,
        "heartbeat": heartbeat,
        "operators_available": availability["operators_available"],
        "within_working_hours": availability["within_working_hours"],
    }


def operator_hello(
    user: AbstractBaseUser, *, name: str, role: str, branch_id: int | None, status: str, heartbeat: int
) -> OperatorHello:
    return {
        "type": HELLO.type,
        "role": "operator",
        "user": {"id": user.pk, "name": name, "role": role, "branch_id": branch_id, "status": status},
        "heartbeat": heartbeat,
    }


def typing_frame(
    *, started: bool, conversation_id: int, who: str, name: str, preview: str | None = None
) -> TypingFrame:
    data: TypingData = {"who": who, "name": name}
    if preview is not None:
        data["preview"] = preview
    kind = TYPING_STARTED if started else TYPING_STOPPED
    return {"type": kind.type, "conversation_id": conversation_id, "data": data}


def staff_presence_frame(*, user_id: int, status: str, connected: bool) -> StaffPresenceFrame:
    """An operator's status changed (to staff)."""
    return {"type": PRESENCE.type, "data": {"user_id": user_id, "status": status, "connected": connected}}


def visitor_presence_frame(*, operators_available: bool, within_working_hours: bool) -> VisitorPresenceFrame:
    """Whether anyone can answer now (to an inbox's visitors)."""
    return {
        "type": PRESENCE.type,
        "data": {"operators_available": operators_available, "within_working_hours": within_working_hours},
    }


def unread_frame(*, conversations: int, messages: int) -> UnreadFrame:
    return {"type": UNREAD.type, "data": {"conversations": conversations, "messages": messages}}


def supervisor_alert_frame(conversation: models.Conversation, *, step: int, reason: str) -> SupervisorAlertFrame:
    return {
        "type": SUPERVISOR_ALERT.type,
        "data": {
            "kind": "escalation",
            "conversation_id": conversation.pk,
            "branch_id": conversation.branch_id,
            "step": step,
            "reason": reason,
        },
    }


def live_frame(*, delivering: bool) -> LiveFrame:
    """Whether live delivery works: ``restored`` asks the client to resume every conversation."""
    return {"type": LIVE.type, "data": {"state": "restored" if delivering else "interrupted"}}


def error_frame(
    code: str,
    message: str,
    *,
    ref: Any = None,
    fields: list[str] | None = None,
    challenge: dict[str, Any] | None = None,
    reason: str | None = None,
    retry_after: int | None = None,
    conversation_id: int | None = None,
) -> ErrorFrame:
    """``fields`` (``pre_chat_required``), ``challenge`` and ``reason`` (``captcha_required``) and
    ``conversation_id`` (``conflict`` on a reopen: the active one) are sent when given;
    ``retry_after`` whenever it is passed, even None."""
    frame: ErrorFrame = {"type": ERROR.type, "code": code, "message": message}
    if ref is not None:
        frame["ref"] = ref
    if fields is not None:
        frame["fields"] = fields
    if challenge is not None:
        frame["challenge"] = challenge
    if reason is not None:
        frame["reason"] = reason
    if retry_after is not None:
        frame["retry_after"] = retry_after
    if conversation_id is not None:
        frame["conversation_id"] = conversation_id
    return frame


def ack_frame(ref: Any, data: AckData | None = None) -> AckFrame:
    return {"type": ACK.type, "ref": ref, "data": data or {}}


def message_ack(ref: Any, message: MessageData, *, created: bool, conversation_id: int | None = None) -> AckFrame:
    """A ``message.send`` answered; ``conversation_id`` (the visitor's) when given."""
    data: AckData = {"message": message}
    if conversation_id is not None:
        data["conversation_id"] = conversation_id
    data["created"] = created
    return ack_frame(ref, data)


def contact_ack(ref: Any, contact: models.Contact) -> AckFrame:
    return ack_frame(ref, {"contact": {"name": contact.name, "email": contact.email, "phone": contact.phone}})


def rating_ack(ref: Any, conversation: models.Conversation) -> AckFrame:
    return ack_frame(ref, {"rating": {"score": conversation.rating_score}})


def transcript_ack(ref: Any, email: str) -> AckFrame:
    """``conversation.transcript``: the address the transcript is on its way to."""
    return ack_frame(ref, {"transcript": {"email": email}})


def new_conversation_ack(ref: Any) -> AckFrame:
    """``conversation.new``: the next message starts a conversation."""
    return ack_frame(ref, {"conversation_id": None})


def status_ack(ref: Any, status: str) -> AckFrame:
    return ack_frame(ref, {"status": status})


def conversation_ack(ref: Any, conversation: models.Conversation) -> AckFrame:
    """An operator's change of the conversation: its summary after it."""
    return ack_frame(ref, {"conversation": conversation_staff(conversation)})


def queue_frame(*, conversation_id: int, place: QueuePlace) -> QueueFrame:
    """The visitor's new place in the branch queue (the scheduler tick, when it changed)."""
    return {"type": QUEUE.type, "conversation_id": conversation_id, "data": place}


def pong_frame() -> PongFrame:
    return {"type": PONG.type}


def resume_done_frame(*, conversation_id: int, last_id: int) -> ResumeDoneFrame:
    return {"type": RESUME_DONE.type, "conversation_id": conversation_id, "last_id": last_id}


def snapshot_frame(
    conversation: models.Conversation,
    *,
    ref: Any,
    labels: list[str],
    messages: list[MessageData],
    has_more: bool,
    watch: bool,
) -> SnapshotFrame:
    """The answer to ``conversation.open``: the summary, the newest page and the staff stream's last id."""
    summary = conversation_staff(conversation)
    summary["labels"] = labels
    snapshot: SnapshotData = {
        "conversation": {**summary, "routing_log": conversation.routing_log},
        "messages": messages,
        "has_more": has_more,
        "last_id": conversation.last_seq,
        "watch": watch,
    }
    return {"type": CONVERSATION_SNAPSHOT.type, "conversation_id": conversation.pk, "ref": ref, "data": snapshot}


def visitors_changed_frame(*, upserts: list[LiveVisitor], removed: list[str]) -> VisitorsChangedFrame:
    """Staff: the live visitors that arrived or changed, and those who left, since the last frame."""
    return {"type": VISITORS_CHANGED.type, "data": {"upserts": upserts, "removed": removed}}


def visitors_reset_frame() -> VisitorsResetFrame:
    """Staff: too much changed at once for one frame: read the list again (``GET /api/operator/visitors/``)."""
    return {"type": VISITORS_RESET.type}


def invitation_frame(
    *, invitation_id: str, body: str, content: str, sender_name: str, automatic: bool
) -> InvitationFrame:
    """Visitor: an operator (or a proactive trigger of the inbox) invites them to chat."""
    sender: Sender = {"type": "bot", "name": ""} if automatic else {"type": "user", "name": sender_name}
    return {
        "type": INVITATION.type,
        "data": {"id": invitation_id, "body": body, "content": content, "sender": sender, "automatic": automatic},
    }


# Internal to the server: another tab of this visitor made their rows (``do_become_contact``); the
# visitor sockets act on it and never forward it.
SESSION_CONTACT = {"type": "session.contact"}
SESSION_CONTACT_PREFIX = '{"type":"session.contact"'


def session_contact_frame() -> dict[str, str]:
    return dict(SESSION_CONTACT)


def invite_ack(ref: Any, *, invitation_id: str, visitor_id: str) -> AckFrame:
    return ack_frame(ref, {"invitation": {"id": invitation_id, "visitor_id": visitor_id}})
