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

from messenger.cache import async_redis_script, redis_script
from messenger.errors import InvalidInput, RateLimited
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


# Per counter: create it with its expiry when missing, then add; the new totals. One command, run
# atomically by Redis (a key cannot expire between the two and come back without a TTL), where
# the cache API pays two round trips (EXISTS, INCRBY) per counter and a MULTI/EXEC pipeline twice
# the client's CPU of this script (measured: 0.22 against 0.11 ms for three counters).
_COUNT_SCRIPT = """
local totals = {}
for i, key in ipairs(KEYS) do
  redis.call('SET', key, 0, 'NX', 'EX', ARGV[2 * i])
  totals[i] = redis.call('INCRBY', key, ARGV[2 * i - 1])
end
return totals
"""


def _script_arguments(counters: list[tuple[str, int, int]]) -> dict[str, list[Any]]:
    return {
        "keys": [cache.make_and_validate_key(key) for key, _, _ in counters],
        "args": [value for _, amount, timeout in counters for value in (amount, timeout)],
    }


def increment_counters(counters: list[tuple[str, int, int]]) -> list[int]:
    """Add ``amount`` to each ``(key, amount, timeout)`` counter, creating it with its expiry when
    missing; the new totals. One round trip on Redis however many counters."""
    script = redis_script(_COUNT_SCRIPT)
    if script is not None:
        return [int(value) for value in script(**_script_arguments(counters))]
    totals = []
    for key, amount, timeout in counters:
        try:
            totals.append(cache.incr(key, amount))
        except ValueError:
            totals.append(amount if cache.add(key, amount, timeout=timeout) else cache.incr(key, amount))
    return totals


def hit_many(requests: list[tuple[str, Any, str]], *, now: float | None = None) -> list[Hit]:
    """Count one hit for each ``(scope, identity, rate)`` in one cache round trip.

    Every counter of the batch is counted, the allowed and the denied alike: callers batch the
    limits of one request, which is refused as a whole when any of them is over.
    """
    plan = _Plan(requests, now)
    if not plan.counters:
        return plan.hits([])
    try:
        counts = increment_counters(plan.counters)
    except Exception as error:  # noqa: BLE001 — the cache is down: fail open, the database is the truth
        counts = plan.failed(error)
    return plan.hits(counts)


async def ahit_many(requests: list[tuple[str, Any, str]], *, now: float | None = None) -> list[Hit]:
    """``hit_many`` on the event loop: Redis through an asynchronous client, no thread held."""
    plan = _Plan(requests, now)
    if not plan.counters:
        return plan.hits([])
    try:
        counts = await _aincrement_counters(plan.counters)
    except Exception as error:  # noqa: BLE001 — fail open, as hit_many does
        counts = plan.failed(error)
    return plan.hits(counts)


class _Plan:
    """The counters a batch of hits needs, and the verdicts once they are counted."""

    def __init__(self, requests: list[tuple[str, Any, str]], now: float | None) -> None:
        self.requests = requests
        self.now = time.time() if now is None else now
        self.results: list[Hit | None] = []
        self.pending: list[tuple[int, int, int, float]] = []
        self.counters: list[tuple[str, int, int]] = []
        for scope, identity, rate in requests:
            limit, period = parse_rate(rate) if rate else (0, 1.0)
            if limit <= 0 or identity is None or identity == "":
                self.results.append(Hit(allowed=True, count=0, limit=0, retry_after=0))
                continue
            window = int(self.now // period)
            self.pending.append((len(self.results), limit, window, period))
            self.counters.append((_key(scope, str(identity), window), 1, int(period) + 1))
            self.results.append(None)

    def failed(self, error: Exception) -> list[int]:
        # One line per hit, no traceback: an outage must not flood the log.
        logger.warning("throttle cache unavailable; %s not limited: %s", self.requests[self.pending[0][0]][0], error)
        return [0] * len(self.pending)

    def hits(self, counts: list[int]) -> list[Hit]:
        for (index, limit, window, period), count in zip(self.pending, counts, strict=True):
            retry_after = max(1, math.ceil((window + 1) * period - self.now))
            self.results[index] = Hit(allowed=count <= limit, count=count, limit=limit, retry_after=retry_after)
        return [result for result in self.results if result is not None]


async def _aincrement_counters(counters: list[tuple[str, int, int]]) -> list[int]:
    """``increment_counters`` through an asynchronous Redis client of this event loop (the same
    script); another cache backend is in-process and is counted directly."""
    script = async_redis_script(_COUNT_SCRIPT)
    if script is None:
        return increment_counters(counters)
    return [int(value) for value in await script(**_script_arguments(counters))]


def hit(scope: str, identity: Any, rate: str, *, now: float | None = None) -> Hit:
    """Count one hit of ``identity`` in ``scope`` against ``rate`` ("N/period")."""
    return hit_many([(scope, identity, rate)], now=now)[0]


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


SEND_REFUSALS = {
    "send-session": "You are sending messages too fast.",
    "send-ip": "Too many messages from here.",
    "flood": "Too many messages in this conversation; wait a moment.",
}


def _raise_first_denied(limits: list[tuple[str, Any, str]]) -> None:
    refuse_denied(limits, hit_many(limits))


def refuse_denied(limits: list[tuple[str, Any, str]], hits: list[Hit]) -> None:
    """Raise ``RateLimited`` for the first of ``limits`` whose hit was over."""
    for (scope, _identity, _rate), result in zip(limits, hits, strict=True):
        if not result.allowed:
            raise RateLimited(SEND_REFUSALS[scope], retry_after=result.retry_after)


class CountHits:
    """A step of a write path (``messenger.db.steps``): count ``limits``' hits, sending back the
    ``Hit``s."""

    transactional = False

    def __init__(self, limits: list[tuple[str, Any, str]]) -> None:
        self.limits = limits
        self.now = time.time()

    def run(self) -> list[Hit]:
        return hit_many(self.limits, now=self.now)

    async def arun(self, cursor: Any) -> list[Hit]:
        return await ahit_many(self.limits, now=self.now)


@dataclass
class VisitorLimits:
    """What a visitor's transport knows about the sender: its IP, and the abuse fields of the frame.

    Passed to the intake (``messenger.actions.intake``) by the widget's socket and upload view;
    trusted server-side callers (automation, imports, the public API) pass nothing and are not
    throttled.
    """

    ip: str | None
    captcha: Any = None
    honeypot: Any = None
    captcha_passed: bool = False

    def check_send(self, *, contact_inbox_id: int, conversation_id: int | None = None) -> None:
        """Honeypot, then the per-session and per-IP send rates and, once the conversation is
        known, its flood limit: all counted in one cache round trip."""
        _raise_first_denied(self.send_limits(contact_inbox_id=contact_inbox_id, conversation_id=conversation_id))

    def send_limits(self, *, contact_inbox_id: int, conversation_id: int | None = None) -> list[tuple[str, Any, str]]:
        """What ``check_send`` counts (after the honeypot), for a caller that counts them itself."""
        self.check_honeypot()
        limits = [
            ("send-session", contact_inbox_id, settings.MESSENGER_WIDGET_SEND_RATE_PER_SESSION),
            ("send-ip", self.ip, settings.MESSENGER_WIDGET_SEND_RATE_PER_IP),
        ]
        if conversation_id is not None:
            limits.append(("flood", conversation_id, settings.MESSENGER_CONVERSATION_FLOOD_LIMIT))
        return limits

    def check_honeypot(self) -> None:
        """Only a robot fills the field a person never sees; answered like any invalid input."""
        if self.honeypot not in (None, ""):
            raise InvalidInput("website: must be empty")

    def check_send_ip_open(self) -> None:
        """Before a new visitor's rows are made: refused when this IP's send rate is at its limit
        already (read, not counted; ``check_send`` counts the send itself), so that a first word
        the limit refuses makes no row."""
        rate = settings.MESSENGER_WIDGET_SEND_RATE_PER_IP
        if not rate or not self.ip:
            return
        limit, period = parse_rate(rate)
        now = time.time()
        if 0 < limit <= count("send-ip", self.ip, rate, now=now):
            retry_after = max(1, math.ceil((now // period + 1) * period - now))
            raise RateLimited(SEND_REFUSALS["send-ip"], retry_after=retry_after)

    def check_flood(self, *, conversation_id: int) -> None:
        """The flood limit alone: for a conversation the visitor has just started."""
        _raise_first_denied([("flood", conversation_id, settings.MESSENGER_CONVERSATION_FLOOD_LIMIT)])

    def check_new_conversation(self) -> None:
        """The CAPTCHA threshold: past it, starting a conversation needs a solved challenge.
        Counts nothing: ``count_new_conversation`` does, once one was started."""
        from messenger import captcha

        threshold = settings.MESSENGER_CAPTCHA_AFTER_CONVERSATIONS_PER_IP
        if (
            not self.captcha_passed
            and self.ip
            and threshold > 0
            and count("conversations-ip", self.ip, NEW_CONVERSATION_WINDOW) >= threshold
        ):
            captcha.require(self.captcha, ip=self.ip)
            # A send that retries its start (the conversation resolved meanwhile) asks again with
            # the same solution, which is single use: it has passed for this send.
            self.captcha_passed = True

    def count_new_conversation(self) -> None:
        """One more conversation started from this IP (a start that joined another tab's does not count)."""
        hit("conversations-ip", self.ip, NEW_CONVERSATION_WINDOW)
