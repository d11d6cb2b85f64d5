from __future__ import annotations

import re
import secrets
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import models
from django.utils.translation import gettext_lazy as _

from messenger.inbox_settings import effective_settings, validate_settings


def parse_email_list(value: str) -> list[str]:
    """Addresses separated by commas, semicolons, spaces or lines."""
    return [item for item in re.split(r"[\s,;]+", value or "") if item]


def validate_email_list(value: str) -> None:
    """Names every address that is not one (Django's own message names none of a list)."""
    wrong = []
    for address in parse_email_list(value):
        try:
            validate_email(address)
        except ValidationError:
            wrong.append(address)
    if wrong:
        raise ValidationError(
            _("Not e-mail addresses: %(addresses)s."), code="invalid", params={"addresses": ", ".join(wrong)}
        )


def new_widget_token() -> str:
    return secrets.token_urlsafe(24)


class Inbox(models.Model):
    """One website or channel. ``branch`` is chosen at creation and never changes afterwards."""

    name = models.CharField(_("name"), max_length=120)
    branch = models.ForeignKey(
        "messenger.Branch",
        verbose_name=_("branch"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="inboxes",
        help_text=_("Empty for a global inbox routed by region. Cannot be changed after creation."),
    )
    widget_token = models.CharField(_("widget token"), max_length=64, unique=True, default=new_widget_token)
    settings = models.JSONField(_("settings"), default=dict, blank=True, validators=[validate_settings])
    is_active = models.BooleanField(_("active"), default=True)
    notification_emails = models.TextField(
        _("notification e-mails"),
        blank=True,
        validators=[validate_email_list],
        help_text=_("Addresses told of a conversation started when nobody could answer (comma or line separated)."),
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("inbox")
        verbose_name_plural = _("inboxes")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @classmethod
    def from_db(cls, db, field_names, values):  # type: ignore[no-untyped-def]
        instance = super().from_db(db, field_names, values)
        instance._loaded_branch_id = instance.__dict__.get("branch_id")
        return instance

    def clean(self) -> None:
        super().clean()
        if self.pk and hasattr(self, "_loaded_branch_id") and self._loaded_branch_id != self.branch_id:
            raise ValidationError({"branch": _("The branch of an inbox cannot be changed.")})

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk and hasattr(self, "_loaded_branch_id") and self._loaded_branch_id != self.branch_id:
            raise ValidationError({"branch": _("The branch of an inbox cannot be changed.")})
        validate_settings(self.settings)
        super().save(*args, **kwargs)
        self._loaded_branch_id = self.branch_id

    @property
    def effective_settings(self) -> dict[str, Any]:
        return effective_settings(self.settings)

    @property
    def notification_addresses(self) -> list[str]:
        return parse_email_list(self.notification_emails)

    @property
    def allowed_domains(self) -> list[str]:
        return list(self.effective_settings["security"]["allowed_domains"])
