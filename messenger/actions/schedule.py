"""Time-driven state changes: snooze wake-up and retention.

Invariants:
* Each job selects candidate ids without locks, then handles every row in its own short
  transaction with the row locked and the condition re-checked under the lock, so concurrent
  runs (several workers, the embedded ticker and q2 at once) change each row exactly once.
* State changes go through the same doors as the dashboard (``do_change_status``); purging is
  audited with the counts only (the rows it describes are gone).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from messenger.actions.base import Actor, audit
from messenger.models import Contact, Conversation, ConversationStatus


def do_wake_snoozed(*, now: datetime | None = None, limit: int = 500) -> int:
    """Snoozed conversations whose ``snoozed_until`` has passed are open again (audited, broadcast)."""
    from messenger.actions.conversations import do_change_status, lock_conversation

    now = now or timezone.now()
    due = list(
        Conversation.objects.filter(status=ConversationStatus.SNOOZED, snoozed_until__lte=now)
        .order_by("snoozed_until")
        .values_list("pk", flat=True)[:limit]
    )
    woken = 0
    for conversation_id in due:
        with transaction.atomic():
            conversation = lock_conversation(conversation_id)
            if conversation.status != ConversationStatus.SNOOZED or (
                conversation.snoozed_until is not None and conversation.snoozed_until > now
            ):
                continue
            do_change_status(conversation=conversation, status=ConversationStatus.OPEN, actor=Actor.system("snooze"))
            woken += 1
    return woken


def do_close_resolved(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Resolved conversations older than ``MESSENGER_RETENTION_CLOSE_AFTER_DAYS`` become closed."""
    from messenger.actions.conversations import do_change_status, lock_conversation

    days = settings.MESSENGER_RETENTION_CLOSE_AFTER_DAYS
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    due = list(
        Conversation.objects.filter(status=ConversationStatus.RESOLVED, resolved_at__lte=cutoff).values_list(
            "pk", flat=True
        )[:limit]
    )
    closed = 0
    for conversation_id in due:
        with transaction.atomic():
            conversation = lock_conversation(conversation_id)
            if conversation.status != ConversationStatus.RESOLVED or (
                conversation.resolved_at is not None and conversation.resolved_at > cutoff
            ):
                continue
            do_change_status(
                conversation=conversation, status=ConversationStatus.CLOSED, actor=Actor.system("retention")
            )
            closed += 1
    return closed


def anonymous_contacts() -> Q:
    """Visitors who never left a name, e-mail or phone (relative to Conversation)."""
    return Q(contact__name="", contact__email="", contact__phone="")


def do_purge_anonymous(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Delete closed conversations of anonymous visitors older than ``MESSENGER_RETENTION_PURGE_AFTER_MONTHS``.

    Messages, events and attachments go with them (files too); a contact left without any
    conversation is deleted as well. Named contacts are kept: their data is exported or
    anonymised through the GDPR actions, not by age.
    """
    months = settings.MESSENGER_RETENTION_PURGE_AFTER_MONTHS
    if months <= 0:
        return 0
    cutoff = (now or timezone.now()) - relativedelta(months=months)
    old = Q(last_activity_at__lte=cutoff) | Q(last_activity_at__isnull=True, updated_at__lte=cutoff)
    due = list(
        Conversation.objects.filter(anonymous_contacts(), old, status=ConversationStatus.CLOSED).values_list(
            "pk", "contact_id"
        )[:limit]
    )
    purged = 0
    contact_ids: set[int] = set()
    for conversation_id, contact_id in due:
        with transaction.atomic():
            conversation = (
                Conversation.objects.select_for_update()
                .filter(anonymous_contacts(), old, pk=conversation_id, status=ConversationStatus.CLOSED)
                .first()
            )
            if conversation is None:
                continue
            files = [attachment.file for attachment in conversation.attachments.all() if attachment.file]
            conversation.delete()
            # Files are removed only once the rows are gone for good.
            transaction.on_commit(lambda files=files: [file.delete(save=False) for file in files])
            purged += 1
            contact_ids.add(contact_id)
    if contact_ids:
        orphans = Contact.objects.filter(pk__in=contact_ids, name="", email="", phone="", conversations__isnull=True)
        orphans.delete()
    if purged:
        audit(
            Actor.system("retention"),
            "retention.purged",
            payload={"conversations": purged, "older_than_months": months},
        )
    return purged
