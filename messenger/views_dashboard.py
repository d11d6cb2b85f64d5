"""The operator dashboard page: one template; everything else comes from the REST reads and the
operator socket."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from messenger import events, selectors
from messenger.access import staff_scope
from messenger.models import AgentProfile


@require_GET
@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    scope = staff_scope(request.user)
    if scope is None:
        raise PermissionDenied("Operators only.")
    profile = AgentProfile.objects.filter(user_id=request.user.pk).select_related("branch").first()
    language = (getattr(request, "LANGUAGE_CODE", "") or settings.LANGUAGE_CODE)[:2]
    config = {
        "user": {
            "id": request.user.pk,
            "name": events.user_name(request.user),
            "role": scope.role,
            "sees_all": scope.sees_all,
            "branch_id": scope.branch_id,
            "branch": profile.branch.name if profile and profile.branch_id else None,
            "status": profile.status if profile else "offline",
        },
        "language": "ru" if language == "ru" else "en",
        "csrf_token": get_token(request),
        "socket_path": "/ws/operator/",
        "heartbeat": settings.MESSENGER_HEARTBEAT_SECONDS,
        "statuses": selectors.status_choices(),
        "urls": {
            "conversations": reverse("operator-conversations"),
            "canned": reverse("operator-canned"),
            "operators": reverse("operator-operators"),
            "branches": reverse("operator-branches"),
            "labels": reverse("operator-labels"),
            "fairness": reverse("operator-fairness"),
            "attachments": "/api/operator/attachments/",
            "logout": reverse("logout"),
            "login": reverse("login"),
        },
    }
    return render(request, "messenger/dashboard.html", {"config": config, "scope": scope})
