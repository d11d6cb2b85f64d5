"""GDPR: export a contact's data, anonymise a contact.

Invariants:
* Export is read-only apart from its audit row; it never includes secrets (the widget's
  ``pubsub_token``) nor staff-internal notes.
* Anonymisation keeps conversations (statistics, the operators' history) and removes personal data:
  the contact's fields, the bodies of the contact's messages (also inside the stored event log, which
  replays them, and inside the webhook log, which sends them), every attachment file of the
  contact's conversations uploaded by the contact, page and IP details, the outbox's e-mails about
  those conversations (sent or not: they quote them); the widget secrets are rotated so an old
  browser session cannot read anything.
* Both write an audit row; anonymisation runs in one transaction with the contact row locked, and
  files are deleted only after the commit (a rolled-back anonymisation keeps them).
"""

from __future__ import annotations

import json
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from messenger import events, formatting
from messenger.actions import visitors
from messenger.actions.base import Actor, audit
from messenger.errors import NotFound
from messenger.models import (
    ActivityEvent,
    Attachment,
    Contact,
    ContactInbox,
    Conversation,
    ConversationEvent,
    Message,
    MessageDirection,
    OutgoingEmail,
    WebhookDelivery,
)
from messenger.models.contact import new_pubsub_token, new_source_id
from messenger.realtime.broadcast import dumps

REMOVED = "[removed]"


def _contact(contact_id: Any, *, lock: bool = False) -> Contact:
    try:
        contact_id = int(contact_id)
    except (TypeError, ValueError):
        raise NotFound("No such contact.") from None
    queryset = Contact.objects.select_for_update() if lock else Contact.objects.all()
    contact = queryset.filter(pk=contact_id).first()
    if contact is None:
        raise NotFound("No such contact.")
    return contact


def _attachment(attachment: Attachment) -> dict[str, Any]:
    return {
        "id": attachment.pk,
        "message_id": attachment.message_id,
        "name": attachment.original_name,
        "content_type": attachment.content_type,
        "size": attachment.size,
        "width": attachment.width,
        "height": attachment.height,
        "created_at": events.iso(attachment.created_at),
    }


def do_export_contact(*, contact_id: Any, actor: Actor) -> dict[str, Any]:
    """Everything stored about one contact, as JSON-ready data."""
    contact = _contact(contact_id)
    conversations = list(Conversation.objects.filter(contact=contact).select_related("inbox").order_by("id"))
    messages = (
        Message.objects.filter(conversation__in=conversations)
        .exclude(direction=MessageDirection.INTERNAL)
        .order_by("conversation_id", "id")
    )
    by_conversation: dict[int, list[dict[str, Any]]] = {c.pk: [] for c in conversations}
    for message in messages:
        by_conversation[message.conversation_id].append(
            {
                "id": message.pk,
                "direction": message.direction,
                "sender_type": message.sender_type,
                "from_contact": message.sender_contact_id == contact.pk,
                "body": message.body,
                "created_at": events.iso(message.created_at),
                "delivered_at": events.iso(message.delivered_at),
                "read_at": events.iso(message.read_at),
            }
        )
    attachments: dict[int, list[dict[str, Any]]] = {c.pk: [] for c in conversations}
    for attachment in Attachment.objects.filter(conversation__in=conversations, message__isnull=False).exclude(
        message__direction=MessageDirection.INTERNAL
    ):
        attachments[attachment.conversation_id].append(_attachment(attachment))
    data = {
        "contact": {
            "id": contact.pk,
            "name": contact.name,
            "email": contact.email,
            "phone": contact.phone,
            "external_id": contact.external_id,
            "region": contact.region_id,
            "blocked": contact.blocked,
            "additional_attributes": contact.additional_attributes,
            "custom_attributes": contact.custom_attributes,
            "last_activity_at": events.iso(contact.last_activity_at),
            "anonymized_at": events.iso(contact.anonymized_at),
            "created_at": events.iso(contact.created_at),
        },
        "contact_inboxes": [
            {
                "inbox_id": ci.inbox_id,
                "inbox": ci.inbox.name,
                "visitor_id": ci.source_id,
                "created_at": events.iso(ci.created_at),
            }
            for ci in ContactInbox.objects.filter(contact=contact).select_related("inbox").order_by("id")
        ],
        "conversations": [
            {
                "id": conversation.pk,
                "identifier": conversation.identifier,
                "inbox": conversation.inbox.name,
                "status": conversation.status,
                "created_at": events.iso(conversation.created_at),
                "resolved_at": events.iso(conversation.resolved_at),
                "page": conversation.additional_attributes.get("page", {}),
                "ip": conversation.additional_attributes.get("ip", ""),
                "rating": (
                    {
                        "score": conversation.rating_score,
                        "comment": conversation.rating_comment,
                        "rated_at": events.iso(conversation.rated_at),
                    }
                    if conversation.rating_score is not None
                    else None
                ),
                "messages": by_conversation[conversation.pk],
                "attachments": attachments[conversation.pk],
            }
            for conversation in conversations
        ],
    }
    audit(actor, "contact.exported", target=contact)
    return data


def _scrub(value: Any, *, contact_id: int, removed_ids: set[int]) -> Any:
    """Personal data out of a stored event payload: the contact's name and e-mail, the bodies of its
    messages, previews and pages. The event log replays these to clients, so it must forget too."""
    if isinstance(value, list):
        return [_scrub(item, contact_id=contact_id, removed_ids=removed_ids) for item in value]
    if not isinstance(value, dict):
        return value
    clean = {key: _scrub(item, contact_id=contact_id, removed_ids=removed_ids) for key, item in value.items()}
    if clean.get("id") in removed_ids and "body" in clean:
        clean.update(body=REMOVED, content=formatting.render(REMOVED), attachments=[])
    if clean.get("type") == "contact" and clean.get("id") == contact_id and "name" in clean:
        clean["name"] = ""
    contact = clean.get("contact")
    if isinstance(contact, dict) and contact.get("id") == contact_id:
        clean["contact"] = {**contact, **{k: "" for k in ("name", "email", "phone", "external_id") if k in contact}}
    if "last_message_preview" in clean:
        clean["last_message_preview"] = ""
    return clean


def _scrub_webhook_deliveries(contact_id: int, *, conversations: list[int], removed_ids: set[int]) -> None:
    """The webhook log (messenger.webhooks) holds the same payloads: scrubbed alike, whether sent
    or still pending (a pending one then sends the scrubbed text)."""
    own_contact_event = f'"contact":{{"id":{contact_id},'
    deliveries = WebhookDelivery.objects.filter(
        Q(conversation_id__in=conversations) | Q(conversation_id__isnull=True, payload__contains=own_contact_event)
    )
    for delivery in deliveries:
        envelope = json.loads(delivery.payload)
        data = _scrub(envelope.get("data"), contact_id=contact_id, removed_ids=removed_ids)
        contact = data.get("contact") if isinstance(data, dict) else None
        if isinstance(contact, dict) and contact.get("id") == contact_id and "custom_attributes" in contact:
            contact["custom_attributes"] = {}
        envelope["data"] = data
        payload = dumps(envelope)
        if payload != delivery.payload:
            WebhookDelivery.objects.filter(pk=delivery.pk).update(payload=payload)


def do_anonymise_contact(*, contact_id: Any, actor: Actor) -> Contact:
    """Remove a contact's personal data; keep its conversations."""
    with transaction.atomic():
        contact = _contact(contact_id, lock=True)
        now = timezone.now()
        conversations = list(Conversation.objects.filter(contact=contact).values_list("pk", flat=True))
        removed_ids = set(Message.objects.filter(sender_contact=contact).values_list("pk", flat=True))
        Message.objects.filter(pk__in=removed_ids).update(body=REMOVED, content=formatting.render(REMOVED))
        attachments = list(
            Attachment.objects.filter(
                Q(uploaded_by_contact=contact) | Q(message_id__in=removed_ids), conversation_id__in=conversations
            )
        )
        files = [attachment.file for attachment in attachments if attachment.file]
        Attachment.objects.filter(pk__in=[a.pk for a in attachments]).delete()
        OutgoingEmail.objects.filter(conversation_id__in=conversations).delete()
        for conversation in Conversation.objects.filter(pk__in=conversations).select_for_update():
            conversation.additional_attributes = {
                key: value for key, value in conversation.additional_attributes.items() if key not in ("page", "ip")
            }
            conversation.last_message_preview = ""
            conversation.rating_comment = ""
            conversation.save(
                update_fields=["additional_attributes", "last_message_preview", "rating_comment", "updated_at"]
            )
        for event in ConversationEvent.objects.filter(conversation_id__in=conversations):
            payload = _scrub(event.payload, contact_id=contact.pk, removed_ids=removed_ids)
            public = _scrub(event.public_payload, contact_id=contact.pk, removed_ids=removed_ids)
            if payload != event.payload or public != event.public_payload:
                ConversationEvent.objects.filter(pk=event.pk).update(payload=payload, public_payload=public)
        _scrub_webhook_deliveries(contact.pk, conversations=conversations, removed_ids=removed_ids)
        ActivityEvent.objects.filter(actor_contact=contact).update(ip=None)
        forgotten = []
        for contact_inbox in ContactInbox.objects.filter(contact=contact):
            # New secrets: a browser that still holds the old ones can no longer read the history.
            forgotten.append(contact_inbox.source_id)
            contact_inbox.pubsub_token = new_pubsub_token()
            contact_inbox.source_id = new_source_id()
            contact_inbox.save(update_fields=["pubsub_token", "source_id"])
        contact.name = contact.email = contact.phone = contact.external_id = ""
        contact.additional_attributes = {}
        contact.custom_attributes = {}
        contact.anonymized_at = now
        contact.save(
            update_fields=[
                "name",
                "email",
                "phone",
                "external_id",
                "additional_attributes",
                "custom_attributes",
                "anonymized_at",
            ]
        )
        audit(
            actor,
            "contact.anonymised",
            target=contact,
            payload={
                "messages": len(removed_ids),
                "attachments": len(attachments),
                "conversations": len(conversations),
            },
        )

        def delete_files() -> None:
            for file in files:
                file.storage.delete(file.name)

        transaction.on_commit(delete_files)
        transaction.on_commit(lambda: visitors.forget_visitors(forgotten))
    return contact
