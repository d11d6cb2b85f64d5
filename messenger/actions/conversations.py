"""Conversation lifecycle: start, status (snooze, resolve, reopen, close), priority, labels, rating.

Invariants:
* Every change locks the conversation row (``access_*(lock=True)`` or ``locks.lock_conversation``),
  writes with ``save(update_fields=…)`` (never clobbering the event counters), writes its audit
  row and records exactly one durable event.
* A visitor never gets a silent reopen: after resolve, the next visitor message starts a new
  conversation (see ``intake.send_visitor_message``).
* A visitor (contact inbox) has at most one active conversation, held by the partial unique index
  ``conversation_one_active_per_visitor``: a start that loses a race joins the winner's
  conversation, and a status change that would make a second one active is a ``Conflict``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from messenger import events
from messenger.access import CONVERSATION_RELATED
from messenger.actions import assignment
from messenger.actions.base import Actor, audit
from messenger.errors import Conflict, InvalidInput
from messenger.models import (
    Contact,
    ContactInbox,
    Conversation,
    ConversationPriority,
    ConversationStatus,
    Label,
)
from messenger.models.conversation import ACTIVE_STATUSES
from messenger.realtime.eventlog import record_event

STAFF_STATUSES = {s.value for s in ConversationStatus}


def record_conversation_change(
    conversation: Conversation,
    changes: list[str],
    *,
    created: bool = False,
    extra_groups: tuple[str, ...] = (),
) -> None:
    """One durable event describing the conversation after ``changes`` (staff and visitor)."""
    record_event(
        conversation,
        lambda: events.conversation_changed(conversation, changes, created=created),
        public=True,
        extra_groups=extra_groups,
    )


def active_conversation(contact_inbox_id: int) -> Conversation | None:
    """The visitor's active conversation (at most one: ``conversation_one_active_per_visitor``)."""
    return (
        Conversation.objects.select_related(*CONVERSATION_RELATED)
        .filter(contact_inbox_id=contact_inbox_id, status__in=ACTIVE_STATUSES)
        .first()
    )


def do_start_conversation(
    *,
    contact_inbox: ContactInbox,
    actor: Actor,
    page: dict[str, Any] | None = None,
    ip: str | None = None,
    invited_by: Any = None,
    invitation: str | None = None,
) -> tuple[Conversation, bool]:
    """Create a conversation, route it (region → branch) and offer it to an operator: (it, True).
    ``invited_by``: the operator whose invitation (``invitation``, its text) the visitor answers,
    assigned at once instead.

    Trusts its caller: a visitor's transport reaches it through ``intake.visitor_conversation``,
    once the visitor was found to have no active conversation. When another start for the same visitor (a second tab) committed first, the
    unique index refuses this one: nothing is written and the answer is (the winner's, False).
    """
    from messenger.routing import route_new_conversation

    now = timezone.now()
    inbox = contact_inbox.inbox
    with transaction.atomic():
        if connection.features.has_select_for_update:
            # Holds the contact against the purge of contacts that never wrote (``schedule``), which
            # locks it, then looks for conversations: a first message racing it keeps its contact.
            # (SQLite runs one writer at a time.)
            Contact.objects.select_for_update(no_key=True).filter(pk=contact_inbox.contact_id).values_list("pk").first()
        decision = route_new_conversation(inbox=inbox, ip=ip, now=now)
        conversation = Conversation(
            inbox=inbox,
            contact=contact_inbox.contact,
            contact_inbox=contact_inbox,
            region=decision.region,
            status=ConversationStatus.OPEN,
            last_activity_at=now,
            additional_attributes={
                "page": page or {},
                "ip": ip or "",
                **({"invitation": invitation} if invitation is not None else {}),
            },
            routing_log=[decision.log],
        )
        conversation.branch = decision.branch
        conversation.allow_branch_change()
        try:
            with transaction.atomic():  # a savepoint: losing the race below leaves the rest usable
                conversation.save()
        except IntegrityError:
            # Another start for this visitor committed first (PostgreSQL: it held the contact's
            # lock above until then); its conversation is the visitor's.
            winner = active_conversation(contact_inbox.pk)
            if winner is None:
                raise
            return winner, False
        if decision.region is not None and contact_inbox.contact.region_id != decision.region.pk:
            contact_inbox.contact.region = decision.region
            contact_inbox.contact.save(update_fields=["region"])
        audit(
            actor,
            "conversation.created",
            target=conversation,
            conversation=conversation,
            payload={"routing": decision.log},
        )
        record_conversation_change(conversation, ["created"], created=True)
        if invited_by is not None:
            assignment.do_assign(
                conversation=conversation,
                assignee=invited_by,
                actor=Actor.system("invitation"),
                reason={"reason": "the visitor answered this operator's invitation"},
                now=now,
            )
        else:
            assignment.do_auto_assign(conversation=conversation, actor=Actor.system("routing"), now=now)
    return conversation, True


def do_change_status(
    *, conversation: Conversation, status: str, actor: Actor, snoozed_until: datetime | None = None
) -> Conversation:
    """Expects ``conversation`` locked. Resolving asks for a rating (each time) when enabled.

    Making a resolved or closed conversation active again (reopen) while its visitor has another
    active one is a ``Conflict`` naming that one (``conversation_id``): nothing changes.
    """
    if status not in STAFF_STATUSES:
        raise InvalidInput(f"status: unknown value {status!r}")
    if status == ConversationStatus.SNOOZED:
        if snoozed_until is None or snoozed_until <= timezone.now():
            raise InvalidInput("snoozed_until: a future time is required to snooze")
    previous = conversation.status
    if previous == status and status != ConversationStatus.SNOOZED:
        return conversation
    now = timezone.now()
    conversation.status = status
    fields = ["status", "snoozed_until", "updated_at"]
    conversation.snoozed_until = snoozed_until if status == ConversationStatus.SNOOZED else None
    changes = ["status"]
    if status == ConversationStatus.RESOLVED:
        conversation.resolved_at = now
        conversation.escalation_deadline = None
        conversation.waiting_since = None
        fields += ["resolved_at", "escalation_deadline", "waiting_since"]
        if conversation.first_resolved_at is None:
            conversation.first_resolved_at = now  # the reports' resolution time ends
            fields.append("first_resolved_at")
        if conversation.inbox.effective_settings["rating"]["enabled"]:
            # A rating is asked after every resolution: the old score belongs to the old one.
            conversation.rating_requested_at = now
            conversation.rating_score = None
            conversation.rating_comment = ""
            conversation.rating_scale = ""
            conversation.rated_at = None
            fields += ["rating_requested_at", "rating_score", "rating_comment", "rating_scale", "rated_at"]
    elif status == ConversationStatus.CLOSED:
        conversation.escalation_deadline = None
        conversation.waiting_since = None
        fields += ["escalation_deadline", "waiting_since"]
    elif status == ConversationStatus.OPEN and previous in (ConversationStatus.RESOLVED, ConversationStatus.CLOSED):
        conversation.resolved_at = None
        conversation.rating_requested_at = None
        fields += ["resolved_at", "rating_requested_at"]
    if status in ACTIVE_STATUSES and previous not in ACTIVE_STATUSES:
        _save_reactivated(conversation, fields)
    else:
        conversation.save(update_fields=fields)
    audit(
        actor,
        "conversation.status",
        target=conversation,
        conversation=conversation,
        payload={"from": previous, "to": status},
    )
    record_conversation_change(conversation, changes)
    if status == ConversationStatus.RESOLVED and conversation.rating_requested_at == now:
        record_event(
            conversation, events.rating_requested(scale=conversation.inbox.effective_settings["rating"]["scale"])
        )
    if status == ConversationStatus.OPEN and previous != ConversationStatus.OPEN:
        assignment.do_reassign_if_assignee_away(conversation=conversation, actor=actor)
    elif previous in assignment.OPEN_LOAD_STATUSES and status not in assignment.OPEN_LOAD_STATUSES:
        # The assignee has room again: offer the branch queue once this commits.
        assignment.schedule_backlog_sweep(conversation.branch_id)
    return conversation


def _save_reactivated(conversation: Conversation, fields: list[str]) -> None:
    """Save a conversation that becomes active again; the unique index decides whether it may."""
    try:
        with transaction.atomic():  # a savepoint: the caller's transaction stays usable
            conversation.save(update_fields=fields)
    except IntegrityError:
        other = active_conversation(conversation.contact_inbox_id) if conversation.contact_inbox_id else None
        if other is None:
            raise
        conversation.refresh_from_db(fields=fields)
        raise Conflict(
            f"The visitor has another active conversation (#{other.pk}); resolve it before reopening this one.",
            conversation_id=other.pk,
        ) from None


def do_change_priority(*, conversation: Conversation, priority: Any, actor: Actor) -> Conversation:
    if not isinstance(priority, int) or isinstance(priority, bool) or priority not in ConversationPriority.values:
        raise InvalidInput("priority: an integer from 0 to 4")
    if conversation.priority == priority:
        return conversation
    previous = conversation.priority
    conversation.priority = priority
    conversation.save(update_fields=["priority", "updated_at"])
    audit(
        actor,
        "conversation.priority",
        target=conversation,
        conversation=conversation,
        payload={"from": previous, "to": priority},
    )
    record_event(
        conversation, lambda: events.conversation_changed(conversation, ["priority"], staff_only=True), public=False
    )
    return conversation


def do_set_labels(*, conversation: Conversation, labels: Any, actor: Actor) -> Conversation:
    if not isinstance(labels, list) or not all(isinstance(name, str) and 0 < len(name) <= 60 for name in labels):
        raise InvalidInput("labels: a list of label names")
    wanted = list(dict.fromkeys(name.strip() for name in labels if name.strip()))
    existing = {label.name: label for label in Label.objects.filter(name__in=wanted)}
    for name in wanted:
        if name not in existing:
            existing[name], _ = Label.objects.get_or_create(name=name)
    conversation.labels.set([existing[name] for name in wanted])
    audit(actor, "conversation.labels", target=conversation, conversation=conversation, payload={"labels": wanted})
    record_event(
        conversation,
        lambda: events.conversation_changed(conversation, ["labels"], staff_only=True, labels=wanted),
        public=False,
    )
    return conversation


def do_rate(*, conversation: Conversation, score: Any, comment: Any, actor: Actor) -> Conversation:
    """Expects ``conversation`` locked and belonging to the rating visitor."""
    scale = conversation.inbox.effective_settings["rating"]["scale"]
    low, high = (0, 10) if scale == "nps" else (1, 5)
    if not isinstance(score, int) or isinstance(score, bool) or not low <= score <= high:
        raise InvalidInput(f"score: an integer from {low} to {high}")
    if comment is None:
        comment = ""
    if not isinstance(comment, str) or len(comment) > 2000:
        raise InvalidInput("comment: text of at most 2000 characters")
    if (
        conversation.status not in (ConversationStatus.RESOLVED, ConversationStatus.CLOSED)
        or conversation.rating_requested_at is None
    ):
        raise Conflict("Only a resolved conversation can be rated.")
    conversation.rating_score = score
    conversation.rating_comment = comment.strip()
    conversation.rating_scale = scale
    conversation.rated_at = timezone.now()
    conversation.save(update_fields=["rating_score", "rating_comment", "rating_scale", "rated_at", "updated_at"])
    audit(
        actor,
        "conversation.rated",
        target=conversation,
        conversation=conversation,
        payload={"score": score, "scale": scale},
    )
    record_conversation_change(conversation, ["rating"])
    return conversation


def do_mark_opened(*, conversation: Conversation, user: Any) -> bool:
    """The assignee opened the conversation: escalation stops for good. Expects the row locked."""
    if conversation.assignee_id != user.pk or conversation.assignee_opened_at is not None:
        return False
    conversation.assignee_opened_at = timezone.now()
    conversation.escalation_deadline = None
    conversation.save(update_fields=["assignee_opened_at", "escalation_deadline", "updated_at"])
    audit(Actor(user=user), "conversation.opened", target=conversation, conversation=conversation)
    record_conversation_change(conversation, ["opened"])
    return True
