"""Admin actions on contacts for GDPR requests; they call the same actions as the management commands."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext_lazy as _

from messenger.actions.base import Actor
from messenger.actions.privacy import do_anonymise_contact, do_export_contact
from messenger.client_address import request_client_address
from messenger.models import Contact


def _actor(request: HttpRequest) -> Actor:
    return Actor(user=request.user, ip=request_client_address(request))


@admin.action(description=_("Export data as JSON (GDPR)"), permissions=["view"])
def export_contacts(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Contact]) -> HttpResponse:
    data = [do_export_contact(contact_id=pk, actor=_actor(request)) for pk in queryset.values_list("pk", flat=True)]
    response = HttpResponse(json.dumps(data, ensure_ascii=False, indent=2), content_type="application/json")
    response["Content-Disposition"] = 'attachment; filename="contacts-export.json"'
    return response


@admin.action(description=_("Anonymise (GDPR): remove personal data, keep conversations"), permissions=["change"])
def anonymise_contacts(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Contact]) -> None:
    count = 0
    for pk in queryset.values_list("pk", flat=True):
        do_anonymise_contact(contact_id=pk, actor=_actor(request))
        count += 1
    modeladmin.message_user(request, _("%(count)d contact(s) anonymised.") % {"count": count}, messages.SUCCESS)


def install(model_admin: type[admin.ModelAdmin]) -> None:
    model_admin.actions = [*(model_admin.actions or []), export_contacts, anonymise_contacts]
