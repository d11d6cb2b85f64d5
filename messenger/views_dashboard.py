"""The operator dashboard page: one template; everything else comes from the REST reads and the
operator socket."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordResetForm
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from messenger import events, reports, selectors
from messenger.access import staff_scope
from messenger.actions import mail
from messenger.client_address import request_client_address
from messenger.errors import RateLimited
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


@require_GET
@login_required
def reports_page(request: HttpRequest) -> HttpResponse:
    """The reports page (docs/dashboard.md): filters, charts and tables drawn by reports.js from
    /api/operator/reports/…; supervisors and admins see everything in reach, an operator their own."""
    scope = staff_scope(request.user)
    if scope is None:
        raise PermissionDenied("Operators only.")
    choices = reports.filter_choices(scope)
    language = (getattr(request, "LANGUAGE_CODE", "") or settings.LANGUAGE_CODE)[:2]
    config = {
        "user": {"id": request.user.pk, "name": events.user_name(request.user), "sees_all": scope.sees_all},
        "language": "ru" if language == "ru" else "en",
        "tz": choices.pop("tz"),
        "start": choices.pop("start"),
        "end": choices.pop("end"),
        "choices": choices,
        # The "now" panel listens on the operator socket (with ?presence=0: not presence).
        "socket_path": "/ws/operator/",
        "heartbeat": settings.MESSENGER_HEARTBEAT_SECONDS,
        "urls": {
            **{
                name: reverse(f"operator-reports-{name}")
                for name in ("summary", "operators", "branches", "regions", "series", "heatmap", "ratings", "now")
            },
            "login": reverse("login"),
        },
    }
    return render(request, "messenger/reports.html", {"config": config, "scope": scope})


class OutboxPasswordResetForm(PasswordResetForm):
    """Django's form, its e-mail written to the outbox instead of sent during the request."""

    def send_mail(  # type: ignore[override]
        self,
        subject_template_name: str,
        email_template_name: str,
        context: dict[str, Any],
        from_email: str | None,
        to_email: str,
        html_email_template_name: str | None = None,
    ) -> None:
        mail.do_queue_password_reset(
            to_email=to_email,
            context=context,
            subject_template_name=subject_template_name,
            email_template_name=email_template_name,
            html_email_template_name=html_email_template_name,
        )


class StaffPasswordResetView(auth_views.PasswordResetView):
    """The staff login page's "Forgot your password?": throttled per client and per address, and
    answered the same whether or not the address belongs to someone (docs/integrations.md)."""

    form_class = OutboxPasswordResetForm
    email_template_name = "registration/password_reset_email.txt"
    html_email_template_name = "registration/password_reset_email.html"
    subject_template_name = "registration/password_reset_subject.txt"

    def form_valid(self, form: PasswordResetForm) -> HttpResponse:
        try:
            allowed = mail.check_password_reset(
                ip=request_client_address(self.request), email=form.cleaned_data["email"]
            )
        except RateLimited as refused:
            form.add_error(None, refused.message)
            response = self.form_invalid(form)
            response.status_code = 429
            if refused.retry_after:
                response["Retry-After"] = str(refused.retry_after)
            return response
        if not allowed:
            return HttpResponseRedirect(self.get_success_url())
        return super().form_valid(form)
