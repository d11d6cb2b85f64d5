"""The operator socket's Origin check: Django's CSRF origin rule, applied to the handshake.

The socket carries the staff session cookie, so any page a browser opens could try to use it
(cross-site WebSocket hijacking). Its handshake is served only when ``Origin`` is exactly the
``scheme://host[:port]`` the socket itself was requested on — the host one of ``ALLOWED_HOSTS``,
the scheme ``https`` when the socket is secure (``wss``, or ``SECURE_PROXY_SSL_HEADER`` says so)
— or one of ``CSRF_TRUSTED_ORIGINS`` (a ``*.`` entry admits subdomains, same scheme and port).
Any other scheme, host or port, a missing or unreadable Origin: HTTP 403, before accept.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import is_same_domain, split_domain_port, validate_host


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            try:
                return value.decode("ascii")
            except UnicodeDecodeError:
                return None
    return None


def _is_secure(scope: dict[str, Any]) -> bool:
    if scope.get("scheme") in ("wss", "https"):
        return True
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if not proxy_header:
        return False
    meta_name, secure_value = proxy_header
    # Django's META name (HTTP_X_FORWARDED_PROTO) → the header as it arrives (x-forwarded-proto).
    name = meta_name.removeprefix("HTTP_").lower().replace("_", "-").encode("latin-1")
    value = _header(scope, name)
    return value is not None and value.split(",")[0].strip() == secure_value


def origin_allowed(scope: dict[str, Any]) -> bool:
    """Whether the handshake's Origin is this site's own (see the module docstring)."""
    origin = _header(scope, b"origin")
    if not origin or origin == "null":
        return False
    host = _header(scope, b"host")
    if host:
        domain, _ = split_domain_port(host)
        allowed_hosts = settings.ALLOWED_HOSTS
        if settings.DEBUG and not allowed_hosts:
            allowed_hosts = [".localhost", "127.0.0.1", "[::1]"]
        if domain and validate_host(domain, allowed_hosts):
            own = f"{'https' if _is_secure(scope) else 'http'}://{host}"
            if origin.lower() == own.lower():
                return True
    trusted = [entry.lower() for entry in settings.CSRF_TRUSTED_ORIGINS]
    if origin.lower() in trusted:
        return True
    try:
        parsed = urlsplit(origin.lower())
    except ValueError:
        return False
    for entry in trusted:
        scheme, _, rest = entry.partition("://")
        if rest.startswith("*.") and scheme == parsed.scheme and is_same_domain(parsed.netloc, rest[1:]):
            return True
    return False


class OperatorOriginValidator:
    """ASGI middleware: refuses the handshake (HTTP 403) unless ``origin_allowed``."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if origin_allowed(scope):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)
