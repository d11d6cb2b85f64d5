"""The operator socket's user: read from the Django session once, when the socket opens.

Channels' ``AuthMiddlewareStack`` finds the same user, and on top of that wraps every frame the
socket sends (to save a session that a socket never changes) and serves the user through a lazy
proxy. An operator's socket receives every event of its branch, so that was paid per frame:
2–3 % of a server's CPU at 200 messages/s (docs/benchmarks.md, item 19). Here the socket's scope
holds the session and the user themselves, and its frames go straight to the server.
"""

from __future__ import annotations

import asyncio
from importlib import import_module
from typing import Any

from channels.auth import get_user
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http.cookie import parse_cookie

from messenger.db.outage import DATABASE_OUTAGE_ERRORS

# Part of the handshake's database budget (``consumers.HANDSHAKE_DATABASE_SECONDS``): the
# session is read before the consumer starts.
HANDSHAKE_SESSION_SECONDS = 3


class SessionUserMiddleware:
    """Puts ``cookies``, ``session`` and ``user`` (``AnonymousUser`` without a valid session) in
    the scope, as ``AuthMiddlewareStack`` does; the session is read-only here."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        cookies: dict[str, str] = {}
        for name, value in scope.get("headers", []):
            if name == b"cookie":
                cookies = parse_cookie(value.decode("latin1"))
                break
        store = import_module(settings.SESSION_ENGINE).SessionStore
        session = store(cookies.get(settings.SESSION_COOKIE_NAME))
        extra: dict[str, Any] = {}
        try:
            # Channels' own lookup: the user of the session, whose password hash it must still match.
            async with asyncio.timeout(HANDSHAKE_SESSION_SECONDS):
                user = await get_user({"session": session})
        except (TimeoutError, *DATABASE_OUTAGE_ERRORS):
            # The consumer answers the handshake (4013), which it must accept first to do.
            user, extra["session_unavailable"] = AnonymousUser(), True
        return await self.inner(dict(scope, cookies=cookies, session=session, user=user, **extra), receive, send)
