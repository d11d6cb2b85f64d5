from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class ActivityEvent(models.Model):
    """Audit log. Written by actions only; read-only everywhere else."""

    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_contact = models.ForeignKey(
        "messenger.Contact", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(
        max_length=60, blank=True, help_text=_("'system', 'scheduler', 'api' when no person acted")
    )
    verb = models.CharField(_("verb"), max_length=60)
    target_type = models.CharField(max_length=60, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    conversation = models.ForeignKey(
        "messenger.Conversation", null=True, blank=True, on_delete=models.SET_NULL, related_name="activity"
    )
    payload = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("audit event")
        verbose_name_plural = _("audit log")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["-created_at"], name="activity_created"),
            models.Index(fields=["verb", "-created_at"], name="activity_verb_created"),
            models.Index(fields=["conversation", "-created_at"], name="activity_conv_created"),
        ]

    def __str__(self) -> str:
        actor = self.actor_user or self.actor_contact or self.actor_label or "?"
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {actor} {self.verb} {self.target_type}:{self.target_id}"
