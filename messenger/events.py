"""The wire format: the only place an event payload is shaped (see docs/protocol.md)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from messenger.models import Attachment, Conversation, Message
from messenger.tokens import attachment_token

# daphne's WebSocket limit (1 MiB) applies to what the server sends as well as to what it receives:
# a larger frame closes the receiving socket (1011). A message's body and its rendered content must
# fit in one frame with room to spare for the rest of it, and a page of history in another.
MESSAGE_TEXT_MAX_BYTES = 960 * 1024
PAGE_TEXT_MAX_BYTES = 512 * 1024


def text_bytes(body: str, content: str) -> int:
    """What ``body`` and its rendered ``content`` take in a frame: JSON strings, UTF-8."""
    return len(json.dumps(body, ensure_ascii=False).encode()) + len(json.dumps(content, ensure_ascii=False).encode())


def fitting_page(newest_first: list[Message]) -> list[Message]:
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


def user_brief(user: AbstractBaseUser | None) -> dict[str, Any] | None:
    if user is None:
        return None
    return {"id": user.pk, "name": user_name(user)}


def attachment_payload(attachment: Attachment, *, for_contact_inbox_id: int | None) -> dict[str, Any]:
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


def message_payload(message: Message, *, public: bool, attachments: list[Attachment] | None = None) -> dict[str, Any]:
    """``attachments`` saves the query when the caller already has them (the send path)."""
    if attachments is None:
        attachments = list(message.attachments.all()) if message.pk else []
    contact_inbox_id = message.conversation.contact_inbox_id if public else None
    if message.sender_type == "contact":
        contact = message.sender_contact
        sender: dict[str, Any] = {
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


def _public_attributes(message: Message) -> dict[str, Any]:
    attributes = message.content_attributes or {}
    return {key: attributes[key] for key in ("in_reply_to", "deleted", "kind") if key in attributes}


def conversation_staff(conversation: Conversation) -> dict[str, Any]:
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


def _rating(conversation: Conversation) -> dict[str, Any] | None:
    if conversation.rating_score is None:
        return None
    return {
        "score": conversation.rating_score,
        "comment": conversation.rating_comment,
        "rated_at": iso(conversation.rated_at),
    }


def conversation_public(conversation: Conversation) -> dict[str, Any]:
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


def durable_frame(
    *, type: str, conversation_id: int, event_id: int, ts: datetime, data: dict[str, Any]
) -> dict[str, Any]:
    return {"type": type, "conversation_id": conversation_id, "id": event_id, "ts": iso(ts), "data": data}


def durable_frame_text(*, type: str, conversation_id: int, event_id: int, ts: datetime, data_json: str) -> str:
    """``durable_frame`` as JSON, around a payload already serialised once for the event row."""
    return (
        f'{{"type":{json.dumps(type)},"conversation_id":{int(conversation_id)},"id":{int(event_id)},'
        f'"ts":{json.dumps(iso(ts))},"data":{data_json}}}'
    )


def typing_frame(
    *, started: bool, conversation_id: int, who: str, name: str, preview: str | None = None
) -> dict[str, Any]:
    data: dict[str, Any] = {"who": who, "name": name}
    if preview is not None:
        data["preview"] = preview
    return {"type": "typing.started" if started else "typing.stopped", "conversation_id": conversation_id, "data": data}


def live_frame(*, delivering: bool) -> dict[str, Any]:
    """Whether live delivery works: ``restored`` asks the client to resume every conversation."""
    return {"type": "live", "data": {"state": "restored" if delivering else "interrupted"}}


def error_frame(code: str, message: str, *, ref: Any = None, **extra: Any) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if ref is not None:
        frame["ref"] = ref
    frame.update(extra)
    return frame


def ack_frame(ref: Any, data: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "ack", "ref": ref, "data": data or {}}
