"""The operator socket's user: read from the Django session when the socket opens, and the
session re-validated while it stays open (``SessionWatch``).

Channels' ``AuthMiddlewareStack`` finds the same user, and on top of that wraps every frame the
socket sends (to save a session that a socket never changes) and serves the user through a lazy
proxy. An operator's socket receives every event of its branch, so that was paid per frame:
2–3 % of a server's CPU at 100 messages/s (docs/benchmarks.md, "The operator socket's session").
Here the socket's scope holds the session and the user themselves, and its frames go straight to
the server.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Iterable
from importlib import import_module
from typing import Any

from asgiref.sync import sync_to_async
from channels.auth import get_user
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.models import AnonymousUser
from django.db import close_old_connections
from django.http.cookie import parse_cookie
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from messenger.access import StaffScope, staff_scope
from messenger.db.outage import DATABASE_OUTAGE_ERRORS
from messenger.protocol import CLOSE_ACCESS_CHANGED, CLOSE_SESSION_ENDED

logger = logging.getLogger(__name__)

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


# --- Sessions that end while their socket is open ----------------------------------------------


def staff_scopes_now(sockets: Iterable[tuple[str, int]]) -> dict[tuple[str, int], StaffScope | None]:
    """The staff scope each (session key, user id) of an open socket grants now — what a request
    carrying that session would get from Django's ``get_user``, then ``staff_scope``.

    None when the session ended (logout, expiry, flush), names another user or an unknown backend,
    predates a password change (its hash no longer matches), or the user is inactive or no longer
    staff. Two queries for any number of sockets (database-backed sessions).
    """
    pairs = set(sockets)
    sessions = _live_sessions({key for key, _ in pairs})
    users = get_user_model()._default_manager.select_related("agent").in_bulk({user_id for _, user_id in pairs})
    return {(key, user_id): _scope(sessions.get(key, {}), users.get(user_id)) for key, user_id in pairs}


def _live_sessions(keys: set[str]) -> dict[str, dict[str, Any]]:
    """The data of the sessions that still exist and have not expired, by key."""
    store = import_module(settings.SESSION_ENGINE).SessionStore
    if not hasattr(store, "get_model_class"):
        return {key: store(key).load() for key in keys}
    # Database-backed sessions (the default, and cached_db, which writes through): one query for
    # all, where loading each session is a query per socket (bench/staff_sessions.py).
    rows = store.get_model_class().objects.filter(session_key__in=keys, expire_date__gt=timezone.now())
    return {row.session_key: store().decode(row.session_data) for row in rows}


def _scope(session: dict[str, Any], user: Any) -> StaffScope | None:
    if user is None or session.get(BACKEND_SESSION_KEY) not in settings.AUTHENTICATION_BACKENDS:
        return None
    if session.get(SESSION_KEY) != user._meta.pk.value_to_string(user):
        return None
    session_hash = session.get(HASH_SESSION_KEY) or ""
    hashes = [user.get_session_auth_hash(), *user.get_session_auth_fallback_hash()]
    if not any(constant_time_compare(session_hash, known) for known in hashes):
        return None
    return staff_scope(user)


class SessionWatch:
    """The open operator sockets of one event loop, re-validated together every
    ``MESSENGER_STAFF_SESSION_CHECK_SECONDS`` in one database hop.

    A timer rather than a broadcast from each place that ends a session: logout, a password change
    (Django's own views and the admin), deactivation and a role change in the admin all end up in
    the database, and one check there catches every one of them, including those made by hand —
    and a broadcast could be lost while Redis blinks. Measured in ``bench/staff_sessions.py``.
    """

    def __init__(self) -> None:
        self.sockets: dict[Any, tuple[str, StaffScope]] = {}
        self.task: asyncio.Future[None] | None = None

    def add(self, consumer: Any, *, session_key: str, scope: StaffScope) -> None:
        self.sockets[consumer] = (session_key, scope)
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self.run())

    def discard(self, consumer: Any) -> None:
        # The timer is not cancelled with the last socket: it may be closing others at that
        # moment. It ends by itself at its next turn.
        self.sockets.pop(consumer, None)

    async def run(self) -> None:
        while self.sockets:
            await asyncio.sleep(settings.MESSENGER_STAFF_SESSION_CHECK_SECONDS)
            try:
                await self.check()
            except Exception:  # the watch of every socket of this process must outlive one bad check
                logger.exception("operator session check failed")

    async def check(self) -> None:
        watched = dict(self.sockets)
        try:
            now = await sync_to_async(_staff_scopes_now, thread_sensitive=False)(
                [(key, scope.user_id) for key, scope in watched.values()]
            )
        except Exception:  # noqa: BLE001 — the database is down: nothing can be served, check again later
            logger.warning("operator session check failed", exc_info=True)
            return
        for consumer, (key, scope) in watched.items():
            current = now[(key, scope.user_id)]
            if current == scope or consumer not in self.sockets:
                continue
            self.discard(consumer)
            try:
                await consumer.close(code=CLOSE_SESSION_ENDED if current is None else CLOSE_ACCESS_CHANGED)
            except Exception:  # noqa: BLE001 — the connection went away meanwhile
                logger.debug("closing an operator socket failed", exc_info=True)


def _staff_scopes_now(sockets: list[tuple[str, int]]) -> dict[tuple[str, int], StaffScope | None]:
    try:
        return staff_scopes_now(sockets)
    finally:
        # Inside the worker thread's own context, where Django keeps its connections.
        close_old_connections()


_watches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SessionWatch] = weakref.WeakKeyDictionary()


def session_watch() -> SessionWatch:
    """The running event loop's watch (a server process has one loop; each test has its own)."""
    loop = asyncio.get_running_loop()
    watch = _watches.get(loop)
    if watch is None:
        watch = _watches[loop] = SessionWatch()
    return watch
