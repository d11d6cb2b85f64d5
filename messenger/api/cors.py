"""CORS for the widget's endpoints: the page's origin is allowed when the inbox allows it.

Bootstrap and attachment calls come from the host page's origin. The Origin check itself is done
by the action (403 + audit); this only answers preflights and echoes the origin back.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

WIDGET_PATHS = ("/api/widget/",)


class WidgetCorsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(WIDGET_PATHS):
            return self.get_response(request)
        origin = request.META.get("HTTP_ORIGIN")
        if request.method == "OPTIONS":
            response = HttpResponse(status=204)
        else:
            response = self.get_response(request)
        if origin:
            response["Access-Control-Allow-Origin"] = origin
            response["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
            response["Access-Control-Allow-Headers"] = "Content-Type, X-Widget-Session"
            response["Access-Control-Max-Age"] = "600"
            response["Vary"] = "Origin"
        return response
