"""The demo page: a host page on one origin embedding the widget from another."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from messenger.captcha import PROVIDERS

DEMO_WIDGET_TOKEN = "demo-widget-token"


def widget_origin(request: HttpRequest) -> str:
    """The widget's origin: the other name of this server, so that the page and the widget are two
    origins and the inbox's allowlist is really exercised (localhost page → 127.0.0.1 widget)."""
    host = request.get_host()
    if host.startswith("localhost"):
        host = "127.0.0.1" + host[len("localhost") :]
    return f"{request.scheme}://{host}"


def demo(request: HttpRequest) -> HttpResponse:
    token = request.GET.get("token") or DEMO_WIDGET_TOKEN
    origin = widget_origin(request)
    loader = request.GET.get("loader") == "1"
    ws_origin = origin.replace("http", "ws", 1)
    response = render(
        request,
        "messenger/demo.html",
        {
            "widget_token": token,
            "widget_origin": origin,
            "loader": loader,
            "load_after": request.GET.get("load_after", ""),
            "load_on_scroll": request.GET.get("load_on_scroll") == "1",
        },
    )
    # A host page as strict as a careful customer's: no inline script, only the widget's origin,
    # and the CAPTCHA provider's script and frames when one is chosen.
    provider = PROVIDERS.get(settings.MESSENGER_CAPTCHA, {}).get("csp_sources", "")
    extra = f" {provider}" if provider else ""
    frames = f"frame-src 'self'{extra}; " if provider else ""
    response["Content-Security-Policy"] = (
        f"default-src 'self'; script-src 'self' {origin}{extra}; "
        f"connect-src 'self' {origin} {ws_origin}{extra}; {frames}"
        f"img-src 'self' data: blob: {origin}; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; "
        "base-uri 'self'; form-action 'self'; object-src 'none'"
    )
    return response
