from __future__ import annotations

import secrets
import uuid

from django.db import models
from django.utils.translation import gettext_lazy as _


def new_pubsub_token() -> str:
    return secrets.token_urlsafe(32)


def new_source_id() -> str:
    return uuid.uuid4().hex


class Contact(models.Model):
    """A visitor. Personal fields are blanked by anonymisation; conversations stay."""

    name = models.CharField(_("name"), max_length=200, blank=True)
    email = models.EmailField(_("e-mail"), blank=True)
    phone = models.CharField(_("phone"), max_length=40, blank=True)
    external_id = models.CharField(_("external id"), max_length=200, blank=True, db_index=True)
    region = models.ForeignKey(
        "messenger.Region", verbose_name=_("region"), null=True, blank=True, on_delete=models.SET_NULL
    )
    blocked = models.BooleanField(_("blocked"), default=False)
    last_activity_at = models.DateTimeField(_("last activity"), null=True, blank=True)
    # browser, os, ip, referrer, page, language …
    additional_attributes = models.JSONField(_("additional attributes"), default=dict, blank=True)
    custom_attributes = models.JSONField(_("custom attributes"), default=dict, blank=True)
    anonymized_at = models.DateTimeField(_("anonymised at"), null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")
        indexes = [
            models.Index(fields=["email"], name="contact_email"),
            models.Index(fields=["phone"], name="contact_phone"),
        ]

    def __str__(self) -> str:
        return self.name or self.email or self.phone or self._anonymous_label()

    def _anonymous_label(self) -> str:
        """The "Visitor #12" label, translated once per instance (in the language active then).

        Every payload of a send names its contact, three times for a visitor's message, and a lazy
        translation cost more than the rest of the payload (docs/benchmarks.md, "The operator socket's
        session").
        """
        label = self.__dict__.get("_anonymous_label_of")
        if label is None or label[0] != self.pk:
            label = self.__dict__["_anonymous_label_of"] = (self.pk, f"{_('Visitor')} #{self.pk}")
        return label[1]


class ContactInbox(models.Model):
    """A contact as seen by one inbox. ``pubsub_token`` is the secret that authorises the widget."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="contact_inboxes")
    inbox = models.ForeignKey("messenger.Inbox", on_delete=models.CASCADE, related_name="contact_inboxes")
    source_id = models.CharField(_("visitor id"), max_length=64, default=new_source_id)
    pubsub_token = models.CharField(max_length=64, unique=True, default=new_pubsub_token)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("contact inbox")
        verbose_name_plural = _("contact inboxes")
        constraints = [models.UniqueConstraint(fields=["inbox", "source_id"], name="contactinbox_source_unique")]

    def __str__(self) -> str:
        return f"{self.contact} @ {self.inbox}"
