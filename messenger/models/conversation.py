from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _


class ConversationStatus(models.TextChoices):
    OPEN = "open", _("Open")
    PENDING = "pending", _("Pending")
    SNOOZED = "snoozed", _("Snoozed")
    RESOLVED = "resolved", _("Resolved")
    CLOSED = "closed", _("Closed")


ACTIVE_STATUSES = (ConversationStatus.OPEN, ConversationStatus.PENDING, ConversationStatus.SNOOZED)


class ConversationPriority(models.IntegerChoices):
    NONE = 0, _("None")
    LOW = 1, _("Low")
    MEDIUM = 2, _("Medium")
    HIGH = 3, _("High")
    URGENT = 4, _("Urgent")


def new_identifier() -> str:
    return secrets.token_hex(6)


class Conversation(models.Model):
    """One thread between a contact and the staff of an inbox.

    ``inbox`` never changes. ``branch`` is derived (inbox, routing or transfer) and changes only
    through ``messenger.actions``, which call ``allow_branch_change`` first.
    ``last_seq`` numbers every event of the conversation (the staff stream); ``last_public_seq``
    numbers the events a visitor may see.
    """

    identifier = models.CharField(max_length=16, unique=True, default=new_identifier)
    inbox = models.ForeignKey(
        "messenger.Inbox", verbose_name=_("inbox"), on_delete=models.PROTECT, related_name="conversations"
    )
    contact = models.ForeignKey(
        "messenger.Contact", verbose_name=_("contact"), on_delete=models.CASCADE, related_name="conversations"
    )
    contact_inbox = models.ForeignKey(
        "messenger.ContactInbox", on_delete=models.CASCADE, related_name="conversations", null=True, blank=True
    )
    branch = models.ForeignKey(
        "messenger.Branch",
        verbose_name=_("branch"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="conversations",
    )
    region = models.ForeignKey(
        "messenger.Region", verbose_name=_("region"), null=True, blank=True, on_delete=models.SET_NULL
    )
    status = models.CharField(
        _("status"), max_length=16, choices=ConversationStatus.choices, default=ConversationStatus.OPEN
    )
    priority = models.PositiveSmallIntegerField(
        _("priority"), choices=ConversationPriority.choices, default=ConversationPriority.NONE
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("assignee"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_conversations",
    )
    assignee_assigned_at = models.DateTimeField(null=True, blank=True)
    assignee_opened_at = models.DateTimeField(null=True, blank=True)
    assignee_last_read_at = models.DateTimeField(null=True, blank=True)
    escalation_deadline = models.DateTimeField(null=True, blank=True)
    escalation_count = models.PositiveIntegerField(default=0)
    waiting_since = models.DateTimeField(null=True, blank=True)
    first_reply_created_at = models.DateTimeField(null=True, blank=True)
    last_activity_at = models.DateTimeField(null=True, blank=True)
    contact_last_seen_at = models.DateTimeField(null=True, blank=True)
    agent_last_seen_at = models.DateTimeField(null=True, blank=True)
    snoozed_until = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    additional_attributes = models.JSONField(default=dict, blank=True)
    custom_attributes = models.JSONField(default=dict, blank=True)
    # Why the conversation is where it is: region, rule, candidates, tie-break, escalation steps.
    routing_log = models.JSONField(default=list, blank=True)
    rating_score = models.PositiveSmallIntegerField(null=True, blank=True)
    rating_comment = models.TextField(blank=True)
    # The inbox's scale when the visitor rated ("stars" 1–5, "nps" 0–10): the setting may change later.
    rating_scale = models.CharField(max_length=5, blank=True)
    rated_at = models.DateTimeField(null=True, blank=True)
    rating_requested_at = models.DateTimeField(null=True, blank=True)
    # What the reports measure (docs/analytics.md), kept by the actions as things happen: the send
    # path sets the first two and the counter in its sequence bump, assignment and status changes
    # the next two; the scheduler's ``report_facts`` job fills the working-hours first response.
    # ``do_rebuild_report_facts`` recomputes all of them from the messages and the audit log.
    first_visitor_message_at = models.DateTimeField(null=True, blank=True)
    counted_messages = models.PositiveIntegerField(default=0)
    first_assigned_at = models.DateTimeField(null=True, blank=True)
    first_resolved_at = models.DateTimeField(null=True, blank=True)
    first_response_working_seconds = models.FloatField(null=True, blank=True)
    labels = models.ManyToManyField("messenger.Label", blank=True, related_name="conversations")
    # Denormalised counters kept by the message and read actions (F() updates).
    unread_for_agent = models.PositiveIntegerField(default=0)
    unread_for_contact = models.PositiveIntegerField(default=0)
    last_message_preview = models.CharField(max_length=200, blank=True)
    last_seq = models.PositiveBigIntegerField(default=0)
    last_public_seq = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("conversation")
        verbose_name_plural = _("conversations")
        ordering = ["-last_activity_at", "-id"]
        indexes = [
            models.Index(fields=["inbox", "status", "assignee"], name="conv_inbox_status_assignee"),
            models.Index(fields=["branch", "status", "-last_activity_at"], name="conv_branch_status_activity"),
            models.Index(fields=["assignee", "status"], name="conv_assignee_status"),
            models.Index(fields=["status", "-last_activity_at"], name="conv_status_activity"),
            # The supervisors' list across statuses (keyset on last_activity_at, id).
            models.Index(fields=["-last_activity_at", "-id"], name="conv_activity_id"),
            models.Index(fields=["waiting_since"], name="conv_waiting_since"),
            models.Index(fields=["first_reply_created_at"], name="conv_first_reply"),
            models.Index(fields=["first_resolved_at"], name="conv_first_resolved"),
            # The working-hours first responses still to compute (``actions.report_facts``).
            models.Index(
                fields=["id"],
                name="conv_working_pending",
                condition=models.Q(
                    first_response_working_seconds__isnull=True,
                    first_reply_created_at__isnull=False,
                    first_visitor_message_at__isnull=False,
                ),
            ),
            models.Index(fields=["escalation_deadline"], name="conv_escalation_deadline"),
            models.Index(fields=["snoozed_until"], name="conv_snoozed_until"),
            models.Index(fields=["contact_inbox", "-created_at"], name="conv_contactinbox_created"),
            models.Index(fields=["status", "resolved_at"], name="conv_status_resolved"),
            # Reports: the conversations created in a range (docs/analytics.md).
            models.Index(fields=["created_at"], name="conv_created"),
        ]
        constraints = [
            # One active conversation per visitor: two tabs starting at once get one conversation
            # (the start that loses the race joins the winner's: ``do_start_conversation``), and a
            # reopen beside a newer active conversation is refused (``do_change_status``).
            models.UniqueConstraint(
                fields=["contact_inbox"],
                condition=models.Q(status__in=ACTIVE_STATUSES),
                name="conversation_one_active_per_visitor",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.contact}"

    @classmethod
    def from_db(cls, db, field_names, values):  # type: ignore[no-untyped-def]
        instance = super().from_db(db, field_names, values)
        instance._loaded_inbox_id = instance.__dict__.get("inbox_id")
        instance._loaded_branch_id = instance.__dict__.get("branch_id")
        return instance

    def allow_branch_change(self) -> None:
        """Called by the routing and transfer actions only."""
        self._branch_change_allowed = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk and hasattr(self, "_loaded_inbox_id") and self._loaded_inbox_id != self.inbox_id:
            raise ValidationError({"inbox": _("The inbox of a conversation cannot be changed.")})
        if (
            self.pk
            and hasattr(self, "_loaded_branch_id")
            and self._loaded_branch_id != self.branch_id
            and not getattr(self, "_branch_change_allowed", False)
        ):
            raise ValidationError({"branch": _("The branch of a conversation is derived and cannot be edited.")})
        if self._state.adding and self.branch_id is None and not getattr(self, "_branch_change_allowed", False):
            self.branch_id = self.inbox.branch_id if self.inbox_id else None
        super().save(*args, **kwargs)
        self._loaded_inbox_id = self.inbox_id
        self._loaded_branch_id = self.branch_id
        self._branch_change_allowed = False

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES


class ConversationEvent(models.Model):
    """The durable event log of a conversation: what a reconnecting client replays.

    ``seq`` is gapless per conversation for staff; ``public_seq`` is gapless per conversation over
    the events a visitor may see (NULL for staff-only events such as internal notes).
    """

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveBigIntegerField()
    public_seq = models.PositiveBigIntegerField(null=True, blank=True)
    type = models.CharField(max_length=40)
    payload = models.JSONField(default=dict)
    public_payload = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        verbose_name = _("conversation event")
        verbose_name_plural = _("conversation events")
        constraints = [
            models.UniqueConstraint(fields=["conversation", "seq"], name="convevent_seq_unique"),
            models.UniqueConstraint(fields=["conversation", "public_seq"], name="convevent_public_seq_unique"),
        ]
        ordering = ["conversation", "seq"]
