"""Time-driven state changes: snooze wake-up and retention.

Invariants:
* Each job selects candidate ids without locks, then handles every row in its own short
  transaction with the row locked and the condition re-checked under the lock, so concurrent
  runs (several workers, the embedded ticker and q2 at once) change each row exactly once.
* State changes go through the same doors as the dashboard (``do_change_status``); purging is
  audited with the counts only (the rows it describes are gone).
* Every page view with the widget makes a contact (the widget's session hangs on it); one that
  never wrote, never filled a form and was not blocked is deleted once idle for
  ``MESSENGER_RETENTION_UNUSED_CONTACT_DAYS``, its contact inboxes with it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from messenger.actions.base import Actor, audit
from messenger.actions.conversations import do_change_status
from messenger.actions.locks import lock_conversation
from messenger.models import ActivityEvent, Contact, Conversation, ConversationStatus


def do_wake_snoozed(*, now: datetime | None = None, limit: int = 500) -> int:
    """Snoozed conversations whose ``snoozed_until`` has passed are open again (audited, broadcast)."""
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


def unused_contacts(cutoff: datetime) -> QuerySet[Contact]:
    """Visitors who only viewed pages, last seen (bootstrap) before ``cutoff``: no conversation (so
    no message or attachment), no form filled, not blocked."""
    return Contact.objects.filter(
        Q(last_activity_at__lte=cutoff) | Q(last_activity_at__isnull=True, created_at__lte=cutoff),
        ~Exists(Conversation.objects.filter(contact_id=OuterRef("pk"))),
        name="",
        email="",
        phone="",
        external_id="",
        custom_attributes={},
        blocked=False,
    )


def do_purge_unused_contacts(*, now: datetime | None = None, batch: int = 1000) -> int:
    """Delete contacts (and their contact inboxes) that never wrote, idle for
    ``MESSENGER_RETENTION_UNUSED_CONTACT_DAYS``, in batches until none is left: page views come by
    the thousand a day. A widget still holding such a session is refused on its next connect
    (4001) and bootstraps a fresh one, as after any lost session."""
    days = settings.MESSENGER_RETENTION_UNUSED_CONTACT_DAYS
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    purged, after = 0, 0
    while True:
        candidates = list(
            unused_contacts(cutoff).filter(pk__gt=after).order_by("pk").values_list("pk", flat=True)[:batch]
        )
        if not candidates:
            break
        after = candidates[-1]
        with transaction.atomic():
            # Locked first, re-checked in a statement of its own: on PostgreSQL a conversation
            # committed while the lock waited is seen by the new statement, not by one begun before.
            list(Contact.objects.select_for_update().filter(pk__in=candidates).values_list("pk", flat=True))
            unused = list(unused_contacts(cutoff).filter(pk__in=candidates).values_list("pk", flat=True))
            Contact.objects.filter(pk__in=unused).delete()
            # Page views were once audited as "contact.created", with the visitor's IP: gone with them.
            ActivityEvent.objects.filter(
                verb="contact.created", target_type="contact", target_id__in=[str(pk) for pk in unused]
            ).delete()
        purged += len(unused)
    if purged:
        audit(
            Actor.system("retention"),
            "retention.unused_contacts_purged",
            payload={"contacts": purged, "idle_days": days},
        )
    return purged
