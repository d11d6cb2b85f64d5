from __future__ import annotations

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _


class AgentRole(models.TextChoices):
    OPERATOR = "operator", _("Operator")
    SUPERVISOR = "supervisor", _("Supervisor")
    ADMIN = "admin", _("Administrator")


class AgentStatus(models.TextChoices):
    ONLINE = "online", _("Online")
    AWAY = "away", _("Away")
    BUSY = "busy", _("Busy")
    OFFLINE = "offline", _("Offline")


class AgentProfile(models.Model):
    """Staff side of a user. ``status`` is the manual switch; presence also needs a live socket."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), on_delete=models.CASCADE, related_name="agent"
    )
    branch = models.ForeignKey(
        "messenger.Branch",
        verbose_name=_("branch"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="agents",
    )
    role = models.CharField(_("role"), max_length=16, choices=AgentRole.choices, default=AgentRole.OPERATOR)
    status = models.CharField(_("status"), max_length=16, choices=AgentStatus.choices, default=AgentStatus.OFFLINE)
    max_concurrent = models.PositiveIntegerField(_("max concurrent conversations"), default=5)
    last_seen = models.DateTimeField(_("last seen"), null=True, blank=True)
    # Time of the last assignment, for the round-robin tie-break when no shared store is available.
    last_assigned_at = models.DateTimeField(null=True, blank=True)
    language = models.CharField(_("language"), max_length=8, blank=True)
    email_when_unread = models.BooleanField(
        _("e-mail me about unread conversations"),
        default=False,
        help_text=_("An e-mail when a conversation assigned to me stays unread while I am offline."),
    )
    email_unread_minutes = models.PositiveSmallIntegerField(
        _("unread for (minutes)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=_("Empty: 10 minutes."),
    )

    class Meta:
        verbose_name = _("agent profile")
        verbose_name_plural = _("agent profiles")
        indexes = [models.Index(fields=["branch", "status"], name="agent_branch_status")]

    def __str__(self) -> str:
        return f"{self.user} ({self.get_role_display()})"

    @property
    def sees_all_branches(self) -> bool:
        return self.role in {AgentRole.SUPERVISOR, AgentRole.ADMIN}


class AgentConnection(models.Model):
    """One live operator socket. A row older than the presence timeout is a dead socket."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agent_connections")
    channel_name = models.CharField(max_length=200, unique=True)
    connected_at = models.DateTimeField(auto_now_add=True)
    last_heartbeat = models.DateTimeField()

    class Meta:
        verbose_name = _("operator connection")
        verbose_name_plural = _("operator connections")
        indexes = [models.Index(fields=["user", "last_heartbeat"], name="agentconn_user_hb")]


class PresencePeriod(models.Model):
    """A stretch of time an operator was reachable with one status (docs/analytics.md, "Time online /
    away / busy"): opened when they have a socket and a manual status other than offline, closed when
    either ends. At most one open period per user (``ended_at`` null); periods of a user never overlap.
    Written by ``messenger.actions.presence`` only, in the transaction of the presence change."""

    STATUSES = (
        (AgentStatus.ONLINE, AgentStatus.ONLINE.label),
        (AgentStatus.AWAY, AgentStatus.AWAY.label),
        (AgentStatus.BUSY, AgentStatus.BUSY.label),
    )

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="presence_periods")
    status = models.CharField(_("status"), max_length=16, choices=STATUSES)
    started_at = models.DateTimeField(_("started at"))
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)

    class Meta:
        verbose_name = _("presence period")
        verbose_name_plural = _("presence periods")
        indexes = [
            models.Index(fields=["user", "started_at"], name="presence_user_start"),
            models.Index(fields=["ended_at"], name="presence_ended"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["user"], condition=models.Q(ended_at__isnull=True), name="presence_one_open_per_user"
            ),
            models.CheckConstraint(
                condition=models.Q(ended_at__isnull=True) | models.Q(ended_at__gte=models.F("started_at")),
                name="presence_ends_after_start",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.status} {self.started_at:%Y-%m-%d %H:%M}–{self.ended_at or ''}"
