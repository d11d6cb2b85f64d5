from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _


class TriggerKind(models.TextChoices):
    TIME_ON_PAGE = "time_on_page", _("After N seconds on a page")
    PAGE_COUNT = "page_count", _("On the N-th page of a visit")


class ProactiveTrigger(models.Model):
    """An automatic invitation of an inbox (docs/widget.md, "Invitations"): sent at most once per
    visitor per day, never after the visitor closed the widget, and, when
    ``only_within_working_hours``, never while the inbox is closed."""

    inbox = models.ForeignKey("messenger.Inbox", on_delete=models.CASCADE, related_name="proactive_triggers")
    name = models.CharField(_("name"), max_length=100)
    is_active = models.BooleanField(_("active"), default=True)
    kind = models.CharField(_("when"), max_length=20, choices=TriggerKind.choices, default=TriggerKind.TIME_ON_PAGE)
    seconds = models.PositiveIntegerField(
        _("seconds on the page"), default=30, help_text=_("After N seconds on a page: N (1–3600).")
    )
    page_number = models.PositiveIntegerField(
        _("page of the visit"), default=3, help_text=_("On the N-th page of a visit: N (1–100).")
    )
    url_pattern = models.CharField(
        _("URL pattern"),
        max_length=500,
        blank=True,
        help_text=_("The page's full URL must match: * stands for anything (*/pricing*). Empty: every page."),
    )
    message = models.TextField(_("message"), max_length=2000)
    only_within_working_hours = models.BooleanField(_("only within working hours"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("proactive invitation")
        verbose_name_plural = _("proactive invitations")
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors = {}
        if not 1 <= self.seconds <= 3600:
            errors["seconds"] = _("Between 1 and 3600 seconds.")
        if not 1 <= self.page_number <= 100:
            errors["page_number"] = _("Between 1 and 100.")
        if not (self.message or "").strip():
            errors["message"] = _("Write the invitation.")
        if errors:
            raise ValidationError(errors)

    def matches(self, url: str) -> bool:
        """Only ``*`` is special (anything, also nothing); the rest is literal, ``?`` included.

        Matched without a regular expression: ``.*a.*a.*a.*b`` backtracks for minutes on a
        visitor's URL of a thousand ``a``; here the literal parts are found left to right, each
        at its first place after the previous one, which is a match whenever one exists."""
        if not self.url_pattern:
            return True
        parts = self.url_pattern.split("*")
        if len(parts) == 1:
            return url == self.url_pattern
        first, *middle, last = parts
        end = len(url) - len(last)
        if end < len(first) or not url.startswith(first) or not url.endswith(last):
            return False
        position = len(first)
        for part in middle:
            found = url.find(part, position, end)
            if found < 0:
                return False
            position = found + len(part)
        return True
