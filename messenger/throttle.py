"""Rate limits shared by every server process: fixed-window counters in the Django cache.

A counter lives under ``throttle:<scope>:<identity>:<window>`` and expires with its window, so
nothing needs sweeping. With Redis (production) all processes share the counters; with the
embedded default (locmem) each process counts alone, which is what a single process needs.

Invariants:
* A denied hit stores nothing anywhere but the counter.
* When the cache is unreachable the limits fail open (with a warning): Redis blinking must not
  stop visitors from writing, the database stays the source of truth.
* An empty rate or a count of 0 switches a limit off.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache

from messenger.errors import Forbidden, InvalidInput, RateLimited
from messenger.protocol import parse_rate

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hit:
    allowed: bool
    count: int
    limit: int
    retry_after: int


def _key(scope: str, identity: str, window: int) -> str:
    # Identities are IPs, tokens, ids: hashed so that arbitrary client input makes a valid key.
    digest = hashlib.blake2b(identity.encode("utf-8", "replace"), digest_size=12).hexdigest()
    return f"throttle:{scope}:{digest}:{window}"


def hit(scope: str, identity: Any, rate: str, *, now: float | None = None) -> Hit:
    """Count one hit of ``identity`` in ``scope`` against ``rate`` ("N/period")."""
    if not rate or identity is None or identity == "":
        return Hit(allowed=True, count=0, limit=0, retry_after=0)
    limit, period = parse_rate(rate)
    if limit <= 0:
        return Hit(allowed=True, count=0, limit=0, retry_after=0)
    now = time.time() if now is None else now
    window = int(now // period)
    key = _key(scope, str(identity), window)
    timeout = int(period) + 1
    try:
        # One round trip in the common case (the window's counter exists); INCR keeps its expiry.
        try:
            count = cache.incr(key)
        except ValueError:
            count = 1 if cache.add(key, 1, timeout=timeout) else cache.incr(key)
    except Exception as error:  # noqa: BLE001 — the cache is down: fail open, the database is the truth
        # One line per hit, no traceback: an outage must not flood the log.
        logger.warning("throttle cache unavailable; %s not limited: %s", scope, error)
        return Hit(allowed=True, count=0, limit=limit, retry_after=0)
    retry_after = max(1, math.ceil((window + 1) * period - now))
    return Hit(allowed=count <= limit, count=count, limit=limit, retry_after=retry_after)


def check(scope: str, identity: Any, rate: str, *, message: str = "Too many requests; slow down.") -> None:
    """Count a hit; raise ``RateLimited`` (with ``retry_after``) when over the limit."""
    result = hit(scope, identity, rate)
    if not result.allowed:
        raise RateLimited(message, retry_after=result.retry_after)


def count(scope: str, identity: Any, rate: str, *, now: float | None = None) -> int:
    """The hits of ``identity`` in the current window of ``rate``, without counting one."""
    if not rate or identity is None or identity == "":
        return 0
    _limit, period = parse_rate(rate)
    now = time.time() if now is None else now
    try:
        return int(cache.get(_key(scope, str(identity), int(now // period))) or 0)
    except Exception as error:  # noqa: BLE001 — fail open
        logger.warning("throttle cache unavailable; %s not read: %s", scope, error)
        return 0


# --- the visitor's side ---------------------------------------------------------------------------

NEW_CONVERSATION_WINDOW = "1/hour"


def check_bootstrap(*, ip: str | None, widget_token: str) -> None:
    """Per IP and per widget token (one inbox's whole audience)."""
    check("bootstrap-ip", ip, settings.MESSENGER_WIDGET_BOOTSTRAP_RATE_PER_IP)
    check("bootstrap-token", widget_token, settings.MESSENGER_WIDGET_BOOTSTRAP_RATE_PER_TOKEN)


@dataclass
class VisitorLimits:
    """What a visitor's transport knows about the sender: its IP, and the abuse fields of the frame.

    Passed to ``send_visitor_message`` by the widget's socket; trusted server-side callers
    (automation, imports, the public API) pass nothing and are not throttled.
    """

    ip: str | None
    captcha: Any = None
    honeypot: Any = None

    def check_send(self, *, contact_inbox_id: int, contact_id: int) -> None:
        """Honeypot, a block made after the socket connected, then the per-session and per-IP rates."""
        from messenger.models import Contact

        if self.honeypot not in (None, ""):
            # Only a robot fills the field a person never sees; answered like any invalid input.
            raise InvalidInput("website: must be empty")
        # The socket read its contact at connect: a block made since must stop it too.
        if Contact.objects.filter(pk=contact_id, blocked=True).exists():
            raise Forbidden("You cannot send messages.", code="blocked")
        check(
            "send-session",
            contact_inbox_id,
            settings.MESSENGER_WIDGET_SEND_RATE_PER_SESSION,
            message="You are sending messages too fast.",
        )
        check("send-ip", self.ip, settings.MESSENGER_WIDGET_SEND_RATE_PER_IP, message="Too many messages from here.")

    def check_flood(self, *, conversation_id: int) -> None:
        check(
            "flood",
            conversation_id,
            settings.MESSENGER_CONVERSATION_FLOOD_LIMIT,
            message="Too many messages in this conversation; wait a moment.",
        )

    def check_new_conversation(self) -> None:
        """The CAPTCHA threshold: past it, starting a conversation needs a solved challenge."""
        from messenger import captcha

        threshold = settings.MESSENGER_CAPTCHA_AFTER_CONVERSATIONS_PER_IP
        if self.ip and threshold > 0 and count("conversations-ip", self.ip, NEW_CONVERSATION_WINDOW) >= threshold:
            captcha.require(self.captcha)
        hit("conversations-ip", self.ip, NEW_CONVERSATION_WINDOW)
