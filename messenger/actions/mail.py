"""E-mail: the outbox (``OutgoingEmail``) and what fills it (docs/integrations.md).

Invariants:
* An e-mail is a row written in the transaction of what causes it; nothing is sent on a request or
  a socket command. ``dedupe_key`` is unique: a cause that runs twice writes one row.
* Sending is a job (``messenger.jobs.submit``) taking the row's id. The tick claims due rows with a
  conditional UPDATE (``queued``, with a lease); the job claims its row again (``sending``, a new
  lease and token), so of two jobs for one row only one sends. A sent row is ``sent`` and is never
  claimed again; a send that outlives its lease (the worker died) is tried again.
* A password reset's body (its link) is removed once sent, and never shown in the admin.
* A failed send waits 1, 2, 4 … up to 60 minutes and is tried again until
  ``MESSENGER_EMAIL_RETRY_HOURS`` of tries, then ``failed`` with its last error; a recipient refused
  for good (5xx) fails at once.
"""

from __future__ import annotations

import logging
import smtplib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.utils import timezone, translation

from messenger import jobs, throttle
from messenger.events import user_name
from messenger.models import (
    AgentStatus,
    Conversation,
    EmailKind,
    EmailStatus,
    MessageDirection,
    OutgoingEmail,
)
from messenger.models.conversation import ACTIVE_STATUSES
from messenger.routing.hours import conversation_is_open
from messenger.selectors import is_connected, operators_available, transcript_messages

logger = logging.getLogger(__name__)

SEND_JOB = "messenger.tasks.send_email"
# Time for a queued row's job to start (a busy q2 worker) before the tick queues it again.
QUEUE_LEASE = timedelta(minutes=5)
MAX_RETRY_DELAY_SECONDS = 3600
SECRET_REMOVED = "(removed once sent: it held a password reset link)"
# An operator's unread reminder when their profile names no other delay.
DEFAULT_UNREAD_MINUTES = 10


def _send_lease() -> timedelta:
    # Above the connection's timeout for each of the SMTP steps, so a slow send keeps its row.
    return timedelta(seconds=settings.EMAIL_TIMEOUT * 6 + 60)


# --- the outbox -----------------------------------------------------------------------------------


def render_email(template: str, context: dict[str, Any]) -> tuple[str, str]:
    """The text and HTML parts of ``templates/messenger/email/<template>.txt|.html``."""
    text = render_to_string(f"messenger/email/{template}.txt", context)
    html = render_to_string(f"messenger/email/{template}.html", context)
    return text, html


def do_queue_email(
    *,
    kind: str,
    to: list[str],
    subject: str,
    text: str,
    html: str = "",
    dedupe_key: str,
    conversation: Conversation | None = None,
) -> OutgoingEmail | None:
    """Write one e-mail to the outbox; None when ``dedupe_key`` was written before."""
    subject = " ".join(subject.split())[:300]
    try:
        with transaction.atomic():
            return OutgoingEmail.objects.create(
                kind=kind,
                to=list(to),
                subject=subject,
                text=text,
                html=html,
                dedupe_key=dedupe_key[:200],
                conversation=conversation,
            )
    except IntegrityError:
        if OutgoingEmail.objects.filter(dedupe_key=dedupe_key[:200]).exists():
            return None
        raise


def _claimable_by_tick(now: datetime) -> Q:
    return Q(status=EmailStatus.PENDING, next_attempt_at__lte=now) | Q(
        status__in=[EmailStatus.QUEUED, EmailStatus.SENDING], lease_until__lt=now
    )


def do_claim_due_emails(now: datetime | None = None) -> int:
    """The tick job: lease the due e-mails (and those whose job died) and hand each to a job."""
    now = now or timezone.now()
    due = _claimable_by_tick(now)
    ids = list(
        OutgoingEmail.objects.filter(due)
        .order_by("next_attempt_at", "id")
        .values_list("pk", flat=True)[: settings.MESSENGER_EMAIL_BATCH]
    )
    claimed = 0
    for email_id in ids:
        # The same condition again: of two ticks racing, one updates the row, the other 0 rows.
        won = OutgoingEmail.objects.filter(due, pk=email_id).update(
            status=EmailStatus.QUEUED, lease_until=now + QUEUE_LEASE, lease_token=""
        )
        if won:
            claimed += 1
            jobs.submit(SEND_JOB, email_id)
    return claimed


@dataclass(frozen=True)
class SendOutcome:
    status: str  # sent | retry | failed | skipped
    error: str = ""


def do_send_email(email_id: int, now: datetime | None = None) -> SendOutcome:
    """The job: claim the row for this run, send it, record the outcome. Safe to run twice and
    concurrently: a row another run holds (or has sent) is skipped."""
    now = now or timezone.now()
    token = uuid.uuid4().hex
    claimable = (
        Q(status=EmailStatus.QUEUED)
        | Q(status=EmailStatus.PENDING, next_attempt_at__lte=now)
        | Q(status=EmailStatus.SENDING, lease_until__lt=now)
    )
    won = OutgoingEmail.objects.filter(claimable, pk=email_id).update(
        status=EmailStatus.SENDING, lease_until=now + _send_lease(), lease_token=token, attempts=F("attempts") + 1
    )
    if not won:
        return SendOutcome("skipped")
    email = OutgoingEmail.objects.get(pk=email_id)
    message = EmailMultiAlternatives(
        subject=email.subject,
        body=email.text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=list(email.to),
        # RFC 3834: out-of-office replies and the like are not sent back to a machine.
        headers={"Auto-Submitted": "auto-generated"},
    )
    if email.html:
        message.attach_alternative(email.html, "text/html")
    try:
        message.send(fail_silently=False)
    except Exception as error:  # noqa: BLE001 — every failure is recorded on the row and retried
        return _record_failure(email, token, error)
    done: dict[str, Any] = {
        "status": EmailStatus.SENT,
        "sent_at": timezone.now(),
        "lease_until": None,
        "last_error": "",
    }
    if email.kind == EmailKind.PASSWORD_RESET:
        # A working reset link must not stay readable in the outbox once it has left.
        done.update(text=SECRET_REMOVED, html="")
    OutgoingEmail.objects.filter(pk=email_id, lease_token=token).update(**done)
    return SendOutcome("sent")


def retry_delay_seconds(attempts: int) -> int:
    """The pause after the ``attempts``-th failed try: 1, 2, 4 … minutes, at most an hour."""
    return min(60 * 2 ** max(attempts - 1, 0), MAX_RETRY_DELAY_SECONDS)


def gives_up_after(attempts: int) -> bool:
    """Whether the tries so far have spent ``MESSENGER_EMAIL_RETRY_HOURS``."""
    spent = sum(retry_delay_seconds(n) for n in range(1, attempts + 1))
    return spent >= settings.MESSENGER_EMAIL_RETRY_HOURS * 3600


def _permanent(error: Exception) -> bool:
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in error.recipients.values())
    return False


def _record_failure(email: OutgoingEmail, token: str, error: Exception) -> SendOutcome:
    text = f"{type(error).__name__}: {error}"[:2000]
    logger.warning("e-mail %s (%s) not sent, try %s: %s", email.pk, email.kind, email.attempts, text)
    if _permanent(error) or gives_up_after(email.attempts):
        OutgoingEmail.objects.filter(pk=email.pk, lease_token=token).update(
            status=EmailStatus.FAILED, last_error=text, lease_until=None
        )
        return SendOutcome("failed", text)
    OutgoingEmail.objects.filter(pk=email.pk, lease_token=token).update(
        status=EmailStatus.PENDING,
        last_error=text,
        lease_until=None,
        next_attempt_at=timezone.now() + timedelta(seconds=retry_delay_seconds(email.attempts)),
    )
    return SendOutcome("retry", text)


def do_send_again(email_ids: list[int]) -> int:
    """Admin: send these e-mails (again) at the next tick, with a fresh budget of tries. A row a
    job is sending right now is left alone."""
    return (
        OutgoingEmail.objects.filter(pk__in=email_ids)
        .exclude(status=EmailStatus.SENDING, lease_until__gte=timezone.now())
        .update(
            status=EmailStatus.PENDING,
            attempts=0,
            next_attempt_at=timezone.now(),
            lease_until=None,
            lease_token="",
            last_error="",
        )
    )


def do_purge_old_emails(now: datetime | None = None) -> int:
    """Retention: sent and failed e-mails older than ``MESSENGER_EMAIL_KEEP_DAYS`` (they hold
    transcripts: personal data) are deleted; 0 keeps them."""
    days = settings.MESSENGER_EMAIL_KEEP_DAYS
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    deleted, _ = OutgoingEmail.objects.filter(
        status__in=[EmailStatus.SENT, EmailStatus.FAILED], created_at__lt=cutoff
    ).delete()
    return deleted


# --- what is sent ---------------------------------------------------------------------------------


def check_password_reset(*, ip: str | None, email: str) -> bool:
    """The door of a password-reset request: ``RateLimited`` past the per-address-of-the-client
    limit; False (answer as usual, send nothing) past the per-e-mail limit, which is counted
    whether or not a user has that address, so the answer tells nothing about it."""
    throttle.check(
        "password-reset-ip",
        ip,
        settings.MESSENGER_PASSWORD_RESET_RATE_PER_IP,
        message="Too many password reset requests from your address; try again later.",
    )
    return throttle.hit(
        "password-reset-email", email.strip().lower(), settings.MESSENGER_PASSWORD_RESET_RATE_PER_EMAIL
    ).allowed


def do_queue_password_reset(
    *,
    to_email: str,
    context: dict[str, Any],
    subject_template_name: str,
    email_template_name: str,
    html_email_template_name: str | None,
) -> OutgoingEmail | None:
    """Django's password-reset e-mail (``PasswordResetForm.send_mail``'s arguments), through the
    outbox. One per reset link: the same link asked for twice in a second is written once."""
    subject = render_to_string(subject_template_name, context)
    text = render_to_string(email_template_name, context)
    html = render_to_string(html_email_template_name, context) if html_email_template_name else ""
    return do_queue_email(
        kind=EmailKind.PASSWORD_RESET,
        to=[to_email],
        subject=subject,
        text=text,
        html=html,
        dedupe_key=f"password-reset:{context['uid']}:{context['token']}",
    )


def public_link(path: str) -> str:
    """An absolute link for an e-mail, or "" when ``MESSENGER_PUBLIC_URL`` is not set."""
    return f"{settings.MESSENGER_PUBLIC_URL}{path}" if settings.MESSENGER_PUBLIC_URL else ""


def _inbox_language(conversation: Conversation) -> str:
    return conversation.inbox.effective_settings["widget"].get("language") or settings.LANGUAGE_CODE


def do_queue_transcript(*, conversation: Conversation, email: str) -> OutgoingEmail | None:
    """The conversation's transcript to ``email`` (already validated and limited by the door):
    visitor and staff messages with names and times, attachments by name (and link), never an
    internal note."""
    with translation.override(_inbox_language(conversation)):
        lines = transcript_messages(conversation)
        for line in lines:
            for attachment in line["attachments"]:
                attachment["link"] = public_link(attachment["url"])
        context = {"conversation": conversation, "inbox": conversation.inbox, "lines": lines}
        text, html = render_email("transcript", context)
        subject = render_to_string("messenger/email/transcript_subject.txt", context)
    return do_queue_email(
        kind=EmailKind.TRANSCRIPT,
        to=[email],
        subject=subject,
        text=text,
        html=html,
        dedupe_key=f"transcript:{conversation.pk}:{uuid.uuid4().hex}",
        conversation=conversation,
    )


def nobody_can_answer(conversation: Conversation) -> bool:
    """Outside the conversation's working hours, or no operator of its inbox available."""
    hours = conversation.inbox.effective_settings["working_hours"]
    if hours["enabled"] and not conversation_is_open(conversation):
        return True
    return not operators_available(conversation.inbox)


def do_notify_offline(*, conversation: Conversation, body: str, now: datetime | None = None) -> OutgoingEmail | None:
    """A conversation just started (its first visitor message, ``body``) that nobody could
    answer: one e-mail to the inbox's notification addresses. At most one per visitor per
    ``MESSENGER_OFFLINE_NOTIFY_MINUTES`` (a fixed window), whatever they start."""
    inbox = conversation.inbox
    addresses = inbox.notification_addresses
    if not addresses or not nobody_can_answer(conversation):
        return None
    now = now or timezone.now()
    window = int(now.timestamp() // max(settings.MESSENGER_OFFLINE_NOTIFY_MINUTES * 60, 1))
    dedupe_key = f"offline:{conversation.contact_inbox_id or conversation.contact_id}:{window}"
    if OutgoingEmail.objects.filter(dedupe_key=dedupe_key).exists():
        return None
    context = {
        "conversation": conversation,
        "inbox": inbox,
        "contact": conversation.contact,
        "body": body,
        "link": public_link("/dashboard/"),
    }
    with translation.override(settings.LANGUAGE_CODE):
        text, html = render_email("offline_message", context)
        subject = render_to_string("messenger/email/offline_message_subject.txt", context)
    return do_queue_email(
        kind=EmailKind.OFFLINE_MESSAGE,
        to=addresses,
        subject=subject,
        text=text,
        html=html,
        dedupe_key=dedupe_key,
        conversation=conversation,
    )


def operator_is_offline(user_id: int, status: str, now: datetime | None = None) -> bool:
    """No live socket, or the manual status says offline."""
    return status == AgentStatus.OFFLINE or not is_connected(user_id, now)


def do_notify_unread_due(now: datetime | None = None) -> int:
    """The tick job: an e-mail to each opted-in, offline assignee of a conversation whose oldest
    unread visitor message is older than their ``email_unread_minutes``; one per unread run (the
    key names the run's first message), so never again on the next tick."""
    now = now or timezone.now()
    candidates = (
        Conversation.objects.filter(
            status__in=ACTIVE_STATUSES,
            unread_for_agent__gt=0,
            assignee__is_active=True,
            assignee__agent__email_when_unread=True,
            last_activity_at__lte=now - timedelta(minutes=1),
        )
        .exclude(assignee__email="")
        .select_related("assignee__agent", "inbox", "contact")
    )
    queued = 0
    for conversation in candidates:
        profile = conversation.assignee.agent
        unread = conversation.messages.filter(direction=MessageDirection.IN, read_at__isnull=True)
        minutes = profile.email_unread_minutes or DEFAULT_UNREAD_MINUTES
        first = unread.order_by("created_at", "id").first()
        if first is None or first.created_at > now - timedelta(minutes=minutes):
            continue
        dedupe_key = f"unread:{conversation.pk}:{conversation.assignee_id}:{first.pk}"
        if OutgoingEmail.objects.filter(dedupe_key=dedupe_key).exists():
            continue
        if not operator_is_offline(conversation.assignee_id, profile.status, now):
            continue
        context = {
            "conversation": conversation,
            "inbox": conversation.inbox,
            "contact": conversation.contact,
            "operator": user_name(conversation.assignee),
            "first": first,
            "unread": conversation.unread_for_agent,
            "minutes": minutes,
            "link": public_link("/dashboard/"),
        }
        with translation.override(profile.language or settings.LANGUAGE_CODE):
            text, html = render_email("unread_conversation", context)
            subject = render_to_string("messenger/email/unread_conversation_subject.txt", context)
        if do_queue_email(
            kind=EmailKind.UNREAD_CONVERSATION,
            to=[conversation.assignee.email],
            subject=subject,
            text=text,
            html=html,
            dedupe_key=dedupe_key,
            conversation=conversation,
        ):
            queued += 1
    return queued
