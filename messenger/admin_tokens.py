"""REST API tokens in the admin: created through the action (the plaintext shown once, on the
page that answers the form, never stored, not even in a message cookie) and revoked by an admin
action. Nothing else of a token can be edited."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _

from messenger.access import staff_scope
from messenger.actions.api_tokens import do_create_api_token, do_revoke_api_token
from messenger.actions.base import Actor
from messenger.client_address import request_client_address
from messenger.models import ApiToken

SHOWN_FIELDS = ("user", "name", "prefix", "created_at", "last_used_at", "revoked_at")


def _actor(request: HttpRequest) -> Actor:
    return Actor(user=request.user, ip=request_client_address(request))


class ApiTokenAddForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ("user", "name")

    def clean_user(self) -> Any:
        user = self.cleaned_data["user"]
        if staff_scope(user) is None:
            raise ValidationError(_("This user is not active staff of the messenger (no agent profile)."))
        return user


@admin.action(description=_("Revoke selected tokens"), permissions=["change"])
def revoke_tokens(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
    count = sum(do_revoke_api_token(token=token, actor=_actor(request)) for token in queryset)
    modeladmin.message_user(request, _("%(count)d token(s) revoked.") % {"count": count}, messages.SUCCESS)


class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("__str__", "user", "name", "created_at", "last_used_at", "revoked_at")
    list_filter = ("created_at", "revoked_at")
    search_fields = ("prefix", "name", "user__username")
    list_select_related = ("user",)
    autocomplete_fields = ("user",)
    actions = (revoke_tokens,)

    def get_form(self, request: HttpRequest, obj: ApiToken | None = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = ApiTokenAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> tuple[str, ...]:
        return ("user", "name") if obj is None else SHOWN_FIELDS

    def get_readonly_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> tuple[str, ...]:
        return () if obj is None else SHOWN_FIELDS

    def has_delete_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        return False  # revoked, not deleted: the audit log keeps naming it

    def save_model(self, request: HttpRequest, obj: ApiToken, form: forms.ModelForm, change: bool) -> None:
        if change:
            return
        token, plaintext = do_create_api_token(user=obj.user, name=obj.name, actor=_actor(request))
        obj.__dict__.update({field.attname: getattr(token, field.attname) for field in ApiToken._meta.concrete_fields})
        obj._state.adding = False
        request._messenger_api_token = plaintext  # the admin instance is shared; the request is not

    def response_add(self, request: HttpRequest, obj: ApiToken, post_url_continue: str | None = None) -> HttpResponse:
        plaintext = getattr(request, "_messenger_api_token", None)
        if plaintext is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "title": _("API token created"),
            "opts": self.opts,
            "token": obj,
            "plaintext": plaintext,
        }
        response = TemplateResponse(request, "admin/messenger/apitoken/created.html", context)
        response["Cache-Control"] = "no-store"
        return response


def install(site: admin.AdminSite) -> None:
    site.register(ApiToken, ApiTokenAdmin)
