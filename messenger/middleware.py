from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

from messenger.db.outage import database_unavailable, is_database_outage

logger = logging.getLogger(__name__)

MESSENGER_PREFIXES = ("/api/", "/dashboard", "/demo", "/ws/", "/analytics")


class SecurityHeadersMiddleware:
    """The feature flag, plus CSP and the other headers every page carries."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not settings.MESSENGER_ENABLED and request.path.startswith(MESSENGER_PREFIXES):
            return JsonResponse({"detail": "Messenger disabled"}, status=404)
        response = self.get_response(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        content_type = response.headers.get("Content-Type", "")
        if content_type.startswith("text/html") and "Content-Security-Policy" not in response.headers:
            response.headers["Content-Security-Policy"] = (
                "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
                "script-src 'self'; connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'self'; "
                "form-action 'self'; object-src 'none'"
            )
        return response


def database_unavailable_response(request: HttpRequest) -> HttpResponse:
    """503 with ``Retry-After``: JSON ``{"detail", "code": "unavailable", "retry_after"}``, or a
    short page for a browser opening a page (the dashboard, the admin)."""
    logger.warning("%s: database unavailable (%r)", request.path, sys.exc_info()[1])
    error = database_unavailable()
    if not request.path.startswith("/api/") and "text/html" in request.headers.get("Accept", ""):
        response = HttpResponse(
            f"<!doctype html><title>Unavailable</title><h1>Temporarily unavailable</h1><p>{error.message}</p>",
            status=error.http_status,
            content_type="text/html; charset=utf-8",
        )
    else:
        body = {"detail": error.message, "code": error.code, "retry_after": error.retry_after}
        response = JsonResponse(body, status=error.http_status)
    response["Retry-After"] = str(error.retry_after)
    return response


class DatabaseUnavailableMiddleware:
    """A database outage met by any view (DRF's included: its handler passes such errors on)
    answers 503 instead of a 500 page. Errors raised outside views reach ``server_error``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if is_database_outage(exception):
            return database_unavailable_response(request)
        return None


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """``handler404`` (with ``DEBUG=0``): under ``/api/`` the JSON error body every API answer has
    (``messenger.api.schema.ErrorSerializer``), e.g. for a path whose id is not a number; elsewhere
    Django's page."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """``handler500`` (with ``DEBUG=0``): a database outage outside a view — a session saved by its
    middleware, say — answers 503 too; anything else Django's 500 page."""
    error = sys.exc_info()[1]
    if error is not None and is_database_outage(error):
        return database_unavailable_response(request)
    return defaults.server_error(request)
