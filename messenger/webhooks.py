"""Webhook events: which durable events a webhook hears of, the outbox rows that report them, and
the signed request that carries one (docs/integrations.md, "Webhooks").

The names a webhook subscribes to are ``models.webhook.WEBHOOK_EVENTS``; ``webhook_events_for``
maps each durable event (``events.EVENT_TYPES``) onto them, here and nowhere else.

Invariants:
* The outbox is written by ``outbox_statements``: one ``INSERT … SELECT`` per durable event, run
  with the change's own statements (``eventlog.record_event``: one round trip with them on
  PostgreSQL), inserting a row for each active webhook of the inbox that subscribes, and none
  otherwise. A change that rolls back leaves no delivery.
* A delivery's body is the envelope (``envelope_text``) around the staff payload text the event
  row stores: serialised once, and a parameter of the outbox statement once. Its ``id`` is the
  delivery id, added at send (``body_of``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from typing import Any

from messenger.events import ASSIGNMENT_EVENTS, CONVERSATION_CREATED, CONVERSATION_UPDATED, MESSAGE_CREATED, iso
from messenger.models import Contact, Webhook, WebhookDelivery
from messenger.models.webhook import ALL_EVENTS_FILTER, TEST_EVENT, WEBHOOK_EVENTS

__all__ = ["TEST_EVENT", "WEBHOOK_EVENTS"]

# models cannot import events: the list there must name every assignment event.
_missing = {event.type for event in ASSIGNMENT_EVENTS.values()} - set(WEBHOOK_EVENTS)
assert not _missing, f"models.webhook.WEBHOOK_EVENTS lacks {sorted(_missing)}"

Statement = tuple[str, list[Any]]


def webhook_events_for(event_type: str, data: Any) -> tuple[str, ...]:
    """The webhook events a durable event of ``event_type`` (staff ``data``) reports.

    ``conversation.updated`` is also ``conversation.status_changed`` when its ``changes`` name
    ``status``, and ``rating.created`` when they name ``rating`` (the visitor rated). The
    delivery receipts and read markers (``message.updated``, ``conversation.read``) and the
    rating request are not reported.
    """
    if event_type == MESSAGE_CREATED.type:
        return ("message.created",)
    if event_type == CONVERSATION_CREATED.type:
        return ("conversation.created",)
    if event_type == CONVERSATION_UPDATED.type:
        changes = data.get("changes", ()) if isinstance(data, dict) else ()
        names = ["conversation.updated"]
        if "status" in changes:
            names.append("conversation.status_changed")
        if "rating" in changes:
            names.append("rating.created")
        return tuple(names)
    if event_type.startswith("assignment.") and event_type in WEBHOOK_EVENTS:
        return (event_type,)
    return ()


def envelope_head(
    *, event: str, created_at: Any, inbox_id: int, conversation_id: int | None, event_id: int | None
) -> str:
    """The delivery's JSON text up to its ``data`` (which follows, then ``}``); ``body_of`` adds the ``id``."""
    return (
        f'{{"event":{json.dumps(event)},"created_at":{json.dumps(iso(created_at))},"inbox_id":{int(inbox_id)},'
        f'"conversation_id":{json.dumps(conversation_id)},"event_id":{json.dumps(event_id)},"data":'
    )


def envelope_text(
    *,
    event: str,
    created_at: Any,
    inbox_id: int,
    conversation_id: int | None,
    event_id: int | None,
    data_json: str,
) -> str:
    """The delivery's JSON text without its ``id`` (``body_of`` adds it), around ``data_json``."""
    head = envelope_head(
        event=event, created_at=created_at, inbox_id=inbox_id, conversation_id=conversation_id, event_id=event_id
    )
    return f"{head}{data_json}}}"


def body_of(delivery: WebhookDelivery) -> str:
    """The exact text POSTed for ``delivery``: its envelope with the delivery id first."""
    payload = delivery.payload.strip()
    assert payload.startswith("{"), "an envelope is a JSON object"
    members = payload[1:].lstrip()
    separator = "" if members.startswith("}") else ","
    return f'{{"id":"{delivery.delivery_id}"{separator}{members}'


def _uuid_sql(vendor: str) -> str:
    """A random (version 4) UUID, as the column stores it. SQLite stores a UUIDField as 32 hex
    digits; the version nibble is ``4`` and the variant one of ``8 9 a b``, as a receiver that
    validates the documented UUID expects."""
    if vendor == "postgresql":
        return "gen_random_uuid()"
    return (
        "lower(hex(randomblob(6)) || '4' || substr(hex(randomblob(2)), 2)"
        " || substr('89ab', 1 + (random() & 3), 1) || substr(hex(randomblob(2)), 2) || hex(randomblob(6)))"
    )


def _like_pattern(name: str) -> str:
    return "%," + name.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%") + ",%"


def outbox_statements(
    names: Sequence[str],
    *,
    vendor: str,
    inbox_id: int,
    conversation_id: int | None,
    event_id: int | None,
    created_at: Any,
    created_at_param: Any,
    data_json: str,
) -> list[Statement]:
    """The ``INSERT … SELECT`` of a pending delivery for each active webhook of ``inbox_id`` and
    each name of ``names`` it subscribes to (no row when none does): one statement, whatever the
    number of names. ``created_at_param``: ``created_at`` as the connection takes it
    (``ops.adapt_datetimefield_value``)."""
    if not names:
        return []
    delivery = WebhookDelivery._meta.db_table
    webhook = Webhook._meta.db_table
    # The event names, their envelopes' heads and LIKE patterns as a derived table (PostgreSQL and
    # SQLite alike: no VALUES column aliases); the payload text is a parameter once, whatever the
    # number of names.
    wanted = " UNION ALL ".join(["SELECT %s AS name, %s AS head, %s AS pattern"] * len(names))
    params: list[Any] = [
        data_json,
        conversation_id,
        event_id,
        WebhookDelivery.Status.PENDING.value,
        created_at_param,
        created_at_param,
    ]
    for name in names:
        params += [
            name,
            envelope_head(
                event=name,
                created_at=created_at,
                inbox_id=inbox_id,
                conversation_id=conversation_id,
                event_id=event_id,
            ),
            _like_pattern(name),
        ]
    sql = (
        f"INSERT INTO {delivery} (webhook_id, delivery_id, event, payload, conversation_id, event_seq, status,"  # noqa: S608
        " attempts, next_attempt_at, response_body, last_error, created_at)"
        f" SELECT w.id, {_uuid_sql(vendor)}, e.name, e.head || CAST(%s AS text) || '}}',"
        " CAST(%s AS bigint), CAST(%s AS bigint), %s, 0, %s,"
        f" '', '', %s FROM {webhook} w JOIN ({wanted}) e"
        " ON w.event_filter = %s OR w.event_filter LIKE e.pattern ESCAPE '\\'"
        " WHERE w.inbox_id = %s AND w.is_active"
    )
    params += [ALL_EVENTS_FILTER, inbox_id]
    return [(sql, params)]


def contact_data(contact: Contact, *, changes: Sequence[str]) -> dict[str, Any]:
    """``data`` of ``contact.created`` / ``contact.updated``: the details staff see."""
    return {
        "changes": list(changes),
        "contact": {
            "id": contact.pk,
            "name": contact.name,
            "email": contact.email,
            "phone": contact.phone,
            "external_id": contact.external_id,
            "custom_attributes": contact.custom_attributes,
            "created_at": iso(contact.created_at),
        },
    }


def webhook_test_data(webhook: Webhook) -> dict[str, Any]:
    """``data`` of the admin's ``webhook.test``."""
    return {"webhook_id": webhook.pk, "message": "A test event sent from the Messenger admin."}


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``{timestamp}.{body}`` under ``secret``."""
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def signature_header(secrets: Sequence[str], timestamp: int, body: bytes) -> str:
    """``X-Messenger-Signature``: ``sha256=<hex>`` per valid secret, the current one first."""
    return ",".join(f"sha256={signature(secret, timestamp, body)}" for secret in secrets)
