from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

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
