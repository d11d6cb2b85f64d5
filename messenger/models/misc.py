from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class CannedResponse(models.Model):
    """``/short_code`` in the composer expands to ``text``. Branch-less ones are shared."""

    short_code = models.SlugField(_("short code"), max_length=60)
    text = models.TextField(_("text"))
    branch = models.ForeignKey(
        "messenger.Branch", null=True, blank=True, on_delete=models.CASCADE, related_name="canned_responses"
    )

    class Meta:
        verbose_name = _("canned response")
        verbose_name_plural = _("canned responses")
        ordering = ["short_code"]
        constraints = [models.UniqueConstraint(fields=["branch", "short_code"], name="canned_branch_code_unique")]

    def __str__(self) -> str:
        return f"/{self.short_code}"


class Label(models.Model):
    name = models.CharField(_("name"), max_length=60, unique=True)
    color = models.CharField(_("colour"), max_length=7, default="#64748b")

    class Meta:
        verbose_name = _("label")
        verbose_name_plural = _("labels")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
