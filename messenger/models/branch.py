from __future__ import annotations

import functools
import re
import zoneinfo
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from messenger.working_hours import schedule_problems


@functools.cache
def _iana_zones() -> frozenset[str]:
    # ``localtime`` is the host's own zone, a link some systems keep among the others.
    return frozenset(zoneinfo.available_timezones() - {"localtime"})


def is_time_zone(value: Any) -> bool:
    """An IANA time zone name (``Europe/Berlin``, ``UTC``, ``Etc/GMT+5``). Not the other files
    ``zoneinfo`` would open: ``localtime`` (whatever zone the host has), ``posixrules``, the
    ``posix/…`` copies and the ``right/…`` clocks with leap seconds, which browsers refuse."""
    return isinstance(value, str) and value in _iana_zones()


def validate_timezone(value: str) -> None:
    if not is_time_zone(value):
        raise ValidationError(_("Unknown time zone: %(tz)s"), params={"tz": value})


class Branch(models.Model):
    """An office of the company. Conversations belong to exactly one branch."""

    name = models.CharField(_("name"), max_length=120, unique=True)
    timezone = models.CharField(_("time zone"), max_length=64, default="UTC", validators=[validate_timezone])
    # Branch hours: {"mon": [["09:00", "18:00"]], ...}; empty = always open (messenger/working_hours.py).
    working_hours = models.JSONField(_("working hours"), default=dict, blank=True)
    # ISO country code of the production calendar (public holidays), e.g. "RU"; empty = none.
    holiday_calendar = models.CharField(_("holiday calendar"), max_length=8, blank=True)
    fallback_branch = models.ForeignKey(
        "self",
        verbose_name=_("fallback branch"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        help_text=_("Where chats go while this branch is closed or has no one free (optional)."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("branch")
        verbose_name_plural = _("branches")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        if problems := schedule_problems(self.working_hours):
            raise ValidationError({"working_hours": problems})

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Hours and time zone are checked on every save that writes them, whoever saves (the
        admin, a shell, a script): what the hours check reads was valid when stored."""
        update_fields = kwargs.get("update_fields")
        errors: dict[str, list[str]] = {}
        if update_fields is None or "working_hours" in update_fields:
            if problems := schedule_problems(self.working_hours):
                errors["working_hours"] = problems
        if update_fields is None or "timezone" in update_fields:
            try:
                validate_timezone(self.timezone)
            except ValidationError as error:
                errors["timezone"] = error.messages
        if errors:
            raise ValidationError(errors)
        super().save(*args, **kwargs)


# A country code ("RU") or a country-subdivision code ("RU-MOW"), as the GeoIP database gives them.
GEOIP_CODE = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")


class Region(models.Model):
    """A set of GeoIP codes: ISO country codes ("RU") or country-subdivision codes ("RU-MOW")."""

    name = models.CharField(_("name"), max_length=120, unique=True)
    geoip_codes = models.JSONField(_("GeoIP codes"), default=list, blank=True)

    class Meta:
        verbose_name = _("region")
        verbose_name_plural = _("regions")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """Each code well formed and in this region only: routing reads the regions by name, so a
        code in two of them would let the first one decide alone."""
        if not isinstance(self.geoip_codes, list) or not all(isinstance(c, str) and c for c in self.geoip_codes):
            raise ValidationError({"geoip_codes": _("A list of country or subdivision codes.")})
        codes = list(dict.fromkeys(code.strip().upper() for code in self.geoip_codes))
        wrong = [code for code in codes if not GEOIP_CODE.match(code)]
        if wrong:
            raise ValidationError(
                {
                    "geoip_codes": ValidationError(
                        _("%(codes)s: not a country code (RU) or a region code (RU-MOW)."),
                        params={"codes": ", ".join(wrong)},
                    )
                }
            )
        taken = []
        for region in Region.objects.exclude(pk=self.pk).order_by("name"):
            held = {str(code).upper() for code in region.geoip_codes} if isinstance(region.geoip_codes, list) else set()
            taken += [f"{code} ({region.name})" for code in codes if code in held]
        if taken:
            raise ValidationError(
                {
                    "geoip_codes": ValidationError(
                        _("Already in another region, which would decide alone: %(codes)s."),
                        params={"codes": ", ".join(taken)},
                    )
                }
            )
        self.geoip_codes = codes


class RoutingRule(models.Model):
    """Region → branch. The lowest priority number wins."""

    region = models.ForeignKey(Region, verbose_name=_("region"), on_delete=models.CASCADE, related_name="rules")
    branch = models.ForeignKey(Branch, verbose_name=_("branch"), on_delete=models.CASCADE, related_name="rules")
    priority = models.PositiveIntegerField(_("priority"), default=100)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("routing rule")
        verbose_name_plural = _("routing rules")
        ordering = ["priority", "id"]
        indexes = [models.Index(fields=["region", "is_active", "priority"], name="rule_region_prio")]

    def __str__(self) -> str:
        return f"{self.region} → {self.branch} ({self.priority})"
