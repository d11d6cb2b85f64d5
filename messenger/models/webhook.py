"""Webhooks (docs/integrations.md, "Webhooks"): an inbox's subscriptions and their outbox.

Invariants:
* ``event_filter`` is ``events`` normalised for SQL (``,a,b,``; ``*`` for every event), kept by
  ``save``: the outbox INSERT of ``messenger.webhooks`` tests a subscription with one LIKE, on
  PostgreSQL and SQLite alike.
* A delivery's ``delivery_id`` and ``payload`` (the JSON text sent, without its ``id``) never
  change after the row is written: a retry sends the same bytes under the same id.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

# The event types a webhook subscribes to: the one list, in the order docs/integrations.md gives
# them. ``messenger.webhooks`` maps the durable events onto these (and checks at import that
# every assignment event of ``events.ASSIGNMENT_EVENTS`` is here: models cannot import events).
WEBHOOK_EVENTS = (
    "message.created",
    "conversation.created",
    "conversation.updated",
    "conversation.status_changed",
    "assignment.assigned",
    "assignment.reassigned",
    "assignment.escalated",
    "assignment.escalation_queued",
    "assignment.transferred",
    "assignment.unassigned",
    "rating.created",
    "contact.created",
    "contact.updated",
)
# Sent only by the admin's "send a test event"; no subscription needed, none possible.
TEST_EVENT = "webhook.test"
ALL_EVENTS_FILTER = "*"


def new_webhook_secret() -> str:
    return secrets.token_urlsafe(32)


def validate_webhook_events(value: Any) -> None:
    """``events``: a list of names of ``WEBHOOK_EVENTS`` (empty: every event)."""
    if not isinstance(value, list):
        raise ValidationError(_("A list of event names is required."), code="not_a_list")
    errors = []
    not_names = [repr(item) for item in value if not isinstance(item, str)]
    if not_names:
        errors.append(
            ValidationError(
                _("Event names are text; not: %(items)s."), code="not_a_name", params={"items": ", ".join(not_names)}
            )
        )
    unknown = [item for item in value if isinstance(item, str) and item not in WEBHOOK_EVENTS]
    if unknown:
        errors.append(
            ValidationError(
                _("Unknown event types: %(unknown)s. Known: %(known)s."),
                code="unknown_event",
                params={"unknown": ", ".join(unknown), "known": ", ".join(WEBHOOK_EVENTS)},
            )
        )
    if errors:
        raise ValidationError(errors)


def event_filter_of(events: list[str]) -> str:
    if not events:
        return ALL_EVENTS_FILTER
    return "," + ",".join(sorted(set(events))) + ","


class Webhook(models.Model):
    inbox = models.ForeignKey("messenger.Inbox", on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(_("URL"), max_length=500)
    secret = models.CharField(_("secret"), max_length=128, default=new_webhook_secret)
    previous_secret = models.CharField(_("previous secret"), max_length=128, blank=True, editable=False)
    previous_secret_expires_at = models.DateTimeField(_("previous secret valid until"), null=True, blank=True)
    events = models.JSONField(
        _("events"),
        default=list,
        blank=True,
        validators=[validate_webhook_events],
        help_text=_('A list of event types, e.g. ["message.created"]. Empty = every event.'),
    )
    event_filter = models.CharField(max_length=1000, default=ALL_EVENTS_FILTER, editable=False)
    is_active = models.BooleanField(_("active"), default=True)
    # Deliveries failed for good in a row (reset by a success or a re-enable).
    consecutive_failures = models.PositiveIntegerField(_("failed deliveries in a row"), default=0)
    disabled_at = models.DateTimeField(_("disabled at"), null=True, blank=True)
    disabled_reason = models.CharField(_("disabled because"), max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("webhook")
        verbose_name_plural = _("webhooks")
        indexes = [models.Index(fields=["inbox", "is_active"], name="webhook_inbox_active")]

    def __str__(self) -> str:
        return self.url

    def clean(self) -> None:
        validate_webhook_events(self.events)

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.event_filter = event_filter_of(self.events if isinstance(self.events, list) else [])
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "events" in update_fields:
            kwargs["update_fields"] = {*update_fields, "event_filter"}
        super().save(*args, **kwargs)


class WebhookDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        DELIVERED = "delivered", _("Delivered")
        FAILED = "failed", _("Failed")

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    delivery_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    event = models.CharField(max_length=60)
    # The JSON text sent, without the leading ``"id"`` member (added at send: ``webhooks.body_of``).
    payload = models.TextField(default="{}")
    # No foreign key: the log outlives a purged conversation or contact.
    conversation_id = models.BigIntegerField(null=True, blank=True)
    event_seq = models.BigIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # The lease of a claimed row: the tick skips it until then (a worker that died lets it go).
    locked_until = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    response_status = models.PositiveIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="delivery_status_next")]

    def __str__(self) -> str:
        return f"{self.event} → {self.webhook} ({self.status})"
