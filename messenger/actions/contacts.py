"""Contacts: the visitor's own details (pre-chat and offline forms), and the rows a visitor gets
when they first write or fill a form.

Invariants:
* A visitor has no row until then (``do_become_contact``): the widget's session works with an
  unsaved contact-inbox (``unsaved_visitor``) whose page details wait in the cache.
* With ``features.pre_chat_form`` on, a visitor whose contact lacks a required pre-chat field cannot
  start a conversation (``check_pre_chat_complete``); the widget submits the form with
  ``contact.update`` first. Trusted server-side paths are not gated.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from messenger import events
from messenger.actions.base import Actor, audit_row
from messenger.actions.webhooks import contact_event_statements
from messenger.dbwrite import execute, insert_statement
from messenger.errors import Conflict, InvalidInput, NotFound
from messenger.inbox_settings import PRE_CHAT_MAX_CUSTOM_FIELDS, PRE_CHAT_MAX_VALUE_LENGTH
from messenger.models import Contact, ContactInbox, Inbox
from messenger.realtime.broadcast import broadcast_on_commit
from messenger.realtime.groups import visitor_session_group
from messenger.throttle import VisitorLimits
from messenger.tokens import visitor_source_id

CONTACT_FIELDS = ("name", "email", "phone")
# What the widget asks when the pre-chat form is on but ``pre_chat.fields`` is empty.
DEFAULT_PRE_CHAT_FIELDS: list[dict[str, Any]] = [
    {"name": "name", "type": "text", "required": True},
    {"name": "email", "type": "email", "required": True},
]


def required_pre_chat_fields(inbox: Inbox) -> list[str]:
    """The names the contact must have filled before a conversation starts ([] when the form is off)."""
    effective = inbox.effective_settings
    if not effective["features"].get("pre_chat_form", False):
        return []
    fields = effective["pre_chat"]["fields"] or DEFAULT_PRE_CHAT_FIELDS
    return [field["name"] for field in fields if field.get("required")]


def missing_pre_chat_fields(contact: Contact, required: list[str]) -> list[str]:
    def filled(name: str) -> bool:
        value = getattr(contact, name) if name in CONTACT_FIELDS else contact.custom_attributes.get(name)
        return value is not None and str(value).strip() != ""

    return [name for name in required if not filled(name)]


def check_pre_chat_complete(*, contact_inbox: ContactInbox) -> None:
    """Raise ``pre_chat_required`` (with the missing ``fields``) when the inbox's pre-chat form is
    on and the visitor's contact lacks one of its required fields."""
    required = required_pre_chat_fields(contact_inbox.inbox)
    if not required:
        return
    contact = contact_inbox.contact
    if contact.pk is not None and missing_pre_chat_fields(contact, required):
        # The socket read its contact at connect: another tab may have filled the form since.
        contact.refresh_from_db(fields=[*CONTACT_FIELDS, "custom_attributes"])
    missing = missing_pre_chat_fields(contact, required)
    if missing:
        raise InvalidInput(
            "Please fill in the form before starting a conversation.", code="pre_chat_required", fields=missing
        )


def _contact_changes(fields: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The validated changes of ``name``/``email``/``phone`` (absent or null: unchanged) and of
    ``custom`` (merged into the custom attributes), or ``InvalidInput``."""
    changes: dict[str, Any] = {}
    for name, limit in (("name", 200), ("email", 254), ("phone", 40)):
        if name not in fields or fields[name] is None:
            continue
        value = fields[name]
        if not isinstance(value, str) or len(value) > limit:
            raise InvalidInput(f"{name}: text of at most {limit} characters")
        value = value.strip()
        if name == "email" and value:
            try:
                validate_email(value)
            except ValidationError:
                raise InvalidInput("email: not a valid e-mail address") from None
        if name == "phone" and value and not all(ch.isdigit() or ch in "+-() " for ch in value):
            raise InvalidInput("phone: digits, spaces and + - ( ) only")
        changes[name] = value
    custom = fields.get("custom")
    if custom is not None:
        if (
            not isinstance(custom, dict)
            or len(custom) > PRE_CHAT_MAX_CUSTOM_FIELDS
            or not all(isinstance(k, str) and isinstance(v, str | int | float | bool) for k, v in custom.items())
        ):
            raise InvalidInput(f"custom: an object of at most {PRE_CHAT_MAX_CUSTOM_FIELDS} simple values")
        if any(len(str(v)) > PRE_CHAT_MAX_VALUE_LENGTH for v in custom.values()):
            raise InvalidInput(f"custom: values of at most {PRE_CHAT_MAX_VALUE_LENGTH} characters")
    return changes, custom


def _save_contact_changes(
    contact: Contact,
    changes: dict[str, Any],
    custom: dict[str, Any] | None,
    actor: Actor,
    *,
    inbox_ids: list[int] | None = None,
) -> Contact:
    """Save the changes; the audit row and the ``contact.updated`` outbox rows (for the webhooks of
    ``inbox_ids``, by default every inbox the contact wrote to) go out together, in the same
    transaction."""
    if not changes and custom is None:
        return contact
    if inbox_ids is None:
        inbox_ids = sorted(set(contact.contact_inboxes.values_list("inbox_id", flat=True)))
    with transaction.atomic():
        for name, value in changes.items():
            setattr(contact, name, value)
        update_fields = list(changes)
        if custom is not None:
            contact.custom_attributes = {**contact.custom_attributes, **custom}
            update_fields.append("custom_attributes")
        contact.save(update_fields=update_fields)
        # The audit row and the webhook outbox's INSERT go out together.
        execute(
            [
                insert_statement(
                    audit_row(actor, "contact.updated", target=contact, payload={"fields": sorted(update_fields)})
                ),
                *(
                    statement
                    for inbox_id in inbox_ids
                    for statement in contact_event_statements(
                        contact=contact, inbox_id=inbox_id, created=False, changes=sorted(update_fields)
                    )
                ),
            ]
        )
    return contact


def check_visitor_fields(fields: dict[str, Any]) -> bool:
    """Whether a visitor without rows says something with ``contact.update`` (``InvalidInput`` when
    refused): blank fields and an empty ``custom`` leave their empty contact as it is."""
    changes, custom = _contact_changes(fields)
    return any(changes.values()) or bool(custom)


def do_update_contact_from_visitor(*, contact_inbox: ContactInbox, fields: dict[str, Any], actor: Actor) -> Contact:
    changes, custom = _contact_changes(fields)
    return _save_contact_changes(contact_inbox.contact, changes, custom, actor, inbox_ids=[contact_inbox.inbox_id])


def do_update_contact(*, contact: Contact, fields: dict[str, Any], actor: Actor) -> Contact:
    """Staff edit a contact (the REST API): the visitor's fields plus ``external_id``. Expects the
    row locked; an anonymised contact stays anonymous (``Conflict``)."""
    changes, custom = _contact_changes(fields)
    external_id = fields.get("external_id")
    if external_id is not None:
        if not isinstance(external_id, str) or len(external_id) > 200:
            raise InvalidInput("external_id: text of at most 200 characters")
        changes["external_id"] = external_id.strip()
    if contact.anonymized_at is not None and (changes or custom is not None):
        raise Conflict("The contact was anonymised; its personal data cannot be set again.")
    return _save_contact_changes(contact, changes, custom, actor)


# --- a visitor's rows, made when they first write or fill a form ---------------------------------


def _attributes_key(source_id: str) -> str:
    return f"widget:visitor:{source_id}"


def stored_visitor_by_token(pubsub_token: str, inbox: Inbox) -> ContactInbox | None:
    return (
        ContactInbox.objects.select_related("contact", "inbox", "inbox__branch")
        .filter(pubsub_token=pubsub_token, inbox=inbox)
        .first()
    )


def unsaved_visitor(pubsub_token: str, inbox: Inbox, attributes: dict[str, str] | None = None) -> ContactInbox:
    """A visitor with no row yet: their page details (browser, address, page) wait in the cache
    for ``do_become_contact``; ``attributes`` are this page's, merged into them."""
    source_id = visitor_source_id(pubsub_token)
    stored = cache.get(_attributes_key(source_id)) or {}
    if attributes is not None:
        stored = {**stored, **attributes}
        cache.set(_attributes_key(source_id), stored, settings.MESSENGER_SESSION_TOKEN_MAX_AGE)
    contact = Contact(additional_attributes=stored)
    return ContactInbox(contact=contact, inbox=inbox, source_id=source_id, pubsub_token=pubsub_token)


def do_become_contact(contact_inbox: ContactInbox) -> ContactInbox:
    """The visitor writes or fills a form: their contact and contact-inbox rows, made now with the
    page details of their visit (or found, when another tab made them first). Their other tabs
    are told (the session group), so that they join the visitor's stream."""
    if contact_inbox.pk is not None:
        return contact_inbox
    inbox = contact_inbox.inbox
    now = timezone.now()
    try:
        with transaction.atomic():
            contact = Contact.objects.create(
                additional_attributes=contact_inbox.contact.additional_attributes, last_activity_at=now
            )
            stored = ContactInbox.objects.create(
                contact=contact,
                inbox=inbox,
                source_id=contact_inbox.source_id,
                pubsub_token=contact_inbox.pubsub_token,
            )
            execute(contact_event_statements(contact=contact, inbox_id=inbox.pk, created=True, changes=[], now=now))
    except IntegrityError:
        found = stored_visitor_by_token(contact_inbox.pubsub_token, inbox)
        if found is None:
            raise
        return found
    cache.delete(_attributes_key(stored.source_id))
    stored.inbox = inbox
    broadcast_on_commit([visitor_session_group(stored.source_id)], events.session_contact_frame())
    return stored


def check_become_contact(
    contact_inbox: ContactInbox, limits: VisitorLimits, *, conversation_id: Any = None
) -> ContactInbox:
    """A visitor without rows starts a conversation (their first message or file, its input
    checked already): the gates of a first conversation that need no row (the honeypot, the
    address's send rate, the pre-chat form, the CAPTCHA, which ``limits`` then remembers as
    passed) are checked before the rows are made, so that a refused first word makes none. The
    rows another tab made are used; without them, a message to a ``conversation_id`` names none
    of the visitor's."""
    stored = stored_visitor(contact_inbox)
    if stored is not None:
        return stored
    if conversation_id is not None:
        raise NotFound("No such conversation.")
    limits.check_honeypot()
    limits.check_send_ip_open()
    check_pre_chat_complete(contact_inbox=contact_inbox)
    limits.check_new_conversation()
    return do_become_contact(contact_inbox)


def stored_visitor(contact_inbox: ContactInbox) -> ContactInbox | None:
    """The rows of a visitor who had none when their socket opened, once another tab made them."""
    if contact_inbox.pk is not None:
        return contact_inbox
    return stored_visitor_by_token(contact_inbox.pubsub_token, contact_inbox.inbox)
