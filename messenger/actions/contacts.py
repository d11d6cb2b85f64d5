"""Contacts: the visitor's own details (pre-chat and offline forms)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from messenger.actions.base import Actor, audit
from messenger.errors import InvalidInput
from messenger.models import Contact, ContactInbox


def do_update_contact_from_visitor(*, contact_inbox: ContactInbox, fields: dict[str, Any], actor: Actor) -> Contact:
    contact = contact_inbox.contact
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
            or len(custom) > 30
            or not all(isinstance(k, str) and isinstance(v, str | int | float | bool) for k, v in custom.items())
        ):
            raise InvalidInput("custom: an object of at most 30 simple values")
        if any(len(str(v)) > 500 for v in custom.values()):
            raise InvalidInput("custom: values of at most 500 characters")
    if not changes and custom is None:
        return contact
    with transaction.atomic():
        for name, value in changes.items():
            setattr(contact, name, value)
        update_fields = list(changes)
        if custom is not None:
            contact.custom_attributes = {**contact.custom_attributes, **custom}
            update_fields.append("custom_attributes")
        contact.save(update_fields=update_fields)
        audit(actor, "contact.updated", target=contact, payload={"fields": sorted(update_fields)})
    return contact
