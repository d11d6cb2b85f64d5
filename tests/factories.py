"""Plain factory functions for tests (no factory library: a few lines each)."""

from __future__ import annotations

import itertools
from typing import Any

from django.contrib.auth import get_user_model

from messenger.models import AgentProfile, AgentRole, AgentStatus, Branch, Inbox

_counter = itertools.count(1)

VISITOR_ORIGIN = "http://localhost"


def make_branch(name: str | None = None, **fields: Any) -> Branch:
    return Branch.objects.create(name=name or f"Branch {next(_counter)}", **fields)


def make_inbox(
    branch: Branch | None = None, *, allowed: list[str] | None = None, settings: dict | None = None, **fields: Any
) -> Inbox:
    merged = {"security": {"allowed_domains": allowed if allowed is not None else ["localhost"]}}
    for key, value in (settings or {}).items():
        merged[key] = value
    return Inbox.objects.create(
        name=fields.pop("name", f"Inbox {next(_counter)}"), branch=branch, settings=merged, **fields
    )


def make_user(
    username: str | None = None,
    *,
    role: str = AgentRole.OPERATOR,
    branch: Branch | None = None,
    status: str = AgentStatus.ONLINE,
    max_concurrent: int = 5,
    **fields: Any,
):
    username = username or f"user{next(_counter)}"
    user = get_user_model().objects.create_user(
        username=username, password="pw-" + username, first_name=fields.pop("first_name", username.title()), **fields
    )
    AgentProfile.objects.create(user=user, role=role, branch=branch, status=status, max_concurrent=max_concurrent)
    return user


def make_conversation(inbox: Inbox, *, at: Any, assignee: Any = None, status: str = "open", **fields: Any):
    """A conversation with its own visitor, created at ``at`` (an aware datetime)."""
    from messenger.models import Contact, ContactInbox, Conversation

    contact = Contact.objects.create(name=fields.pop("contact_name", f"Visitor {next(_counter)}"))
    contact_inbox = ContactInbox.objects.create(contact=contact, inbox=inbox)
    conversation = Conversation.objects.create(
        inbox=inbox, contact=contact, contact_inbox=contact_inbox, assignee=assignee, status=status, **fields
    )
    Conversation.objects.filter(pk=conversation.pk).update(created_at=at, last_activity_at=at)
    conversation.refresh_from_db()
    return conversation


def make_message(
    conversation: Any,
    *,
    at: Any,
    direction: str = "in",
    sender_type: str | None = None,
    user: Any = None,
    **fields: Any,
):
    """A message at ``at``: from the visitor (``in``), or ``out``/``internal`` by ``sender_type``."""
    from messenger.models import Message

    sender_type = sender_type or ("contact" if direction == "in" else "user")
    return Message.objects.create(
        conversation=conversation,
        direction=direction,
        sender_type=sender_type,
        sender_contact=conversation.contact if sender_type == "contact" else None,
        sender_user=user if sender_type == "user" else None,
        body=fields.pop("body", "text"),
        created_at=at,
        **fields,
    )


def make_audit(conversation: Any, verb: str, *, at: Any, payload: dict | None = None, user: Any = None):
    """An audit row of the conversation at ``at``, as the actions write them."""
    from messenger.models import ActivityEvent

    row = ActivityEvent.objects.create(
        actor_user=user,
        actor_label="" if user else "system",
        verb=verb,
        target_type="conversation",
        target_id=str(conversation.pk),
        conversation=conversation,
        payload=payload or {},
    )
    ActivityEvent.objects.filter(pk=row.pk).update(created_at=at)
    return row
