"""The admin site: its index grouped by what people do there, not by Django application."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

# (key, title, models as "app_label.model_name" in the order shown). A model in no group stays
# under its application, after the groups (django-q's tasks, axes' login attempts).
GROUPS: tuple[tuple[str, Any, tuple[str, ...]], ...] = (
    (
        "configuration",
        _("Configuration"),
        (
            "messenger.inbox",
            "messenger.proactivetrigger",
            "messenger.branch",
            "messenger.region",
            "messenger.routingrule",
            "messenger.cannedresponse",
            "messenger.label",
            "messenger.webhook",
        ),
    ),
    (
        "staff",
        _("Staff and access"),
        ("auth.user", "auth.group", "messenger.agentprofile", "messenger.apitoken"),
    ),
    (
        "conversations",
        _("Conversations and contacts"),
        (
            "messenger.conversation",
            "messenger.message",
            "messenger.attachment",
            "messenger.contact",
            "messenger.contactinbox",
        ),
    ),
    (
        "logs",
        _("Logs"),
        (
            "messenger.activityevent",
            "messenger.conversationevent",
            "messenger.webhookdelivery",
            "messenger.outgoingemail",
            "messenger.presenceperiod",
            "messenger.agentconnection",
        ),
    ),
)


def group_app_list(app_list: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Django's per-application list → the groups above (empty ones left out), then the rest."""
    by_key = {}
    for app in app_list:
        for entry in app["models"]:
            meta = entry["model"]._meta
            by_key[f"{meta.app_label}.{meta.model_name}"] = entry
    grouped = []
    placed: set[str] = set()
    for key, title, members in GROUPS:
        models = [by_key[member] for member in members if member in by_key]
        placed.update(member for member in members if member in by_key)
        if models:
            grouped.append({"name": title, "app_label": key, "app_url": "", "has_module_perms": True, "models": models})
    for app in app_list:
        rest = [
            entry
            for entry in app["models"]
            if f"{entry['model']._meta.app_label}.{entry['model']._meta.model_name}" not in placed
        ]
        if rest:
            grouped.append({**app, "models": rest})
    return grouped


class MessengerAdminSite(admin.AdminSite):
    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list[dict[str, Any]]:
        app_list = super().get_app_list(request, app_label)
        if app_label is not None:
            return app_list  # an application's own page lists its models as Django does
        return group_app_list(app_list)
