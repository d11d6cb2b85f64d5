"""Shared pieces of the actions: who acted, and the audit row."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import models

from messenger.models import ActivityEvent, Contact, Conversation


@dataclass(frozen=True)
class Actor:
    """Who did it: a user, a contact, or a named machine actor ("system", "scheduler", "api")."""

    user: AbstractBaseUser | None = None
    contact: Contact | None = None
    label: str = ""
    ip: str | None = None

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        return cls(label=label)

    def describe(self) -> dict[str, Any]:
        if self.user is not None:
            return {"type": "user", "id": self.user.pk}
        if self.contact is not None:
            return {"type": "contact", "id": self.contact.pk}
        return {"type": "system", "label": self.label or "system"}


def audit(actor: Actor, verb: str, **fields: Any) -> ActivityEvent:
    """Store one audit row now; ``fields`` as for ``audit_row``."""
    row = audit_row(actor, verb, **fields)
    row.save(force_insert=True)
    return row


def audit_row(
    actor: Actor,
    verb: str,
    *,
    target: models.Model | None = None,
    conversation: Conversation | None = None,
    payload: dict[str, Any] | None = None,
) -> ActivityEvent:
    """The audit row, unsaved: the message path sends it with its other INSERTs (``dbwrite``)."""
    return ActivityEvent(
        actor_user=actor.user,
        actor_contact=actor.contact,
        actor_label=actor.label,
        verb=verb,
        target_type=target._meta.model_name if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        conversation=conversation,
        payload=payload or {},
        ip=actor.ip,
    )
