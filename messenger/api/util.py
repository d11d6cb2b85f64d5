from __future__ import annotations

from urllib.parse import urlparse

from django.http import HttpRequest


def request_origin(request: HttpRequest) -> str | None:
    """The Origin header, else the scheme://host of the Referer."""
    origin = request.META.get("HTTP_ORIGIN")
    if origin and origin != "null":
        return origin
    referer = request.META.get("HTTP_REFERER")
    if referer:
        parsed = urlparse(referer)
        if parsed.scheme and parsed.netloc:
            return f"{parsed.scheme}://{parsed.netloc}"
    return None
