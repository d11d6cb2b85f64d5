from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class EmailKind(models.TextChoices):
    PASSWORD_RESET = "password_reset", _("Password reset")
    TRANSCRIPT = "transcript", _("Conversation transcript")
    OFFLINE_MESSAGE = "offline_message", _("Offline message")
    UNREAD_CONVERSATION = "unread_conversation", _("Unread conversation")


class EmailStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    QUEUED = "queued", _("Queued")
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")


class OutgoingEmail(models.Model):
    """One e-mail of the outbox, written in the transaction of what causes it and sent by a job
    (``messenger.actions.mail``). ``dedupe_key`` makes the cause's retries write it once;
    ``lease_until`` and ``lease_token`` make one job at a time send it."""

    kind = models.CharField(_("kind"), max_length=32, choices=EmailKind.choices)
    to = models.JSONField(_("to"), default=list)
    subject = models.CharField(_("subject"), max_length=300)
    text = models.TextField(_("text"))
    html = models.TextField(_("HTML"), blank=True)
    dedupe_key = models.CharField(_("dedupe key"), max_length=200, unique=True)
    conversation = models.ForeignKey(
        "messenger.Conversation", null=True, blank=True, on_delete=models.SET_NULL, related_name="emails"
    )
    status = models.CharField(_("status"), max_length=16, choices=EmailStatus.choices, default=EmailStatus.PENDING)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt"), default=timezone.now)
    lease_until = models.DateTimeField(null=True, blank=True)
    lease_token = models.CharField(max_length=32, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("outgoing e-mail")
        verbose_name_plural = _("outgoing e-mails")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="email_status_next"),
            models.Index(fields=["status", "lease_until"], name="email_status_lease"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} → {', '.join(self.to)}"
