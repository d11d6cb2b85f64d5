"""Inbound frames: parsing, error codes, close codes and the per-socket frame limiter."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any, Protocol

from messenger.errors import MessengerError

CLOSE_DISABLED = 4000
CLOSE_UNAUTHENTICATED = 4001
# An operator socket whose session ended (logout, password change, deactivation, staff role
# removed): the dashboard goes to the login page instead of reconnecting.
CLOSE_SESSION_ENDED = 4003
CLOSE_UNKNOWN_INBOX = 4004
# An operator socket whose role or branch changed: its groups are stale, the dashboard reloads.
CLOSE_ACCESS_CHANGED = 4005
CLOSE_THROTTLED = 4008
CLOSE_TOO_MANY_ERRORS = 4009
# The database is unavailable during the handshake: try again later. RFC 6455's 1013 says the
# same, but daphne (autobahn) can only send 1000 and 3000–4999.
CLOSE_UNAVAILABLE = 4013

MAX_CONSECUTIVE_ERRORS = 20
# The refusals that make a frame malformed: only these count towards CLOSE_TOO_MANY_ERRORS. A
# well-formed command refused for its state (not_found, forbidden, rate_limited …) is an answer the
# client may meet in normal use, and it ends a run of malformed ones.
MALFORMED_CODES = frozenset({"bad_json", "too_large", "unknown_type", "invalid"})

# Commands both sides send.
COMMON_COMMANDS = frozenset(
    {"ping", "resume", "message.send", "typing.start", "typing.stop", "message.delivered", "conversation.read"}
)
VISITOR_COMMANDS = COMMON_COMMANDS | {
    "conversation.rate",
    "conversation.new",
    "contact.update",
    "conversation.transcript",
    "widget.close",
}
OPERATOR_COMMANDS = COMMON_COMMANDS | {
    "conversation.open",
    "conversation.close_view",
    "conversation.assign",
    "conversation.transfer",
    "conversation.status",
    "conversation.priority",
    "conversation.labels",
    "status.set",
    "visitor.invite",
}


class FrameError(MessengerError):
    """The frame is malformed."""

    code = "invalid"


@dataclass(frozen=True)
class Command:
    type: str
    ref: Any
    fields: dict[str, Any]

    def int_field(self, name: str, *, required: bool = True, minimum: int | None = None) -> int | None:
        value = self.fields.get(name)
        if value is None and not required:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            raise FrameError(f"{name}: an integer is required")
        if minimum is not None and value < minimum:
            raise FrameError(f"{name}: must be ≥ {minimum}")
        return value

    def str_field(self, name: str, *, required: bool = True, max_length: int = 1000) -> str | None:
        value = self.fields.get(name)
        if value is None and not required:
            return None
        if not isinstance(value, str):
            raise FrameError(f"{name}: a string is required")
        if len(value) > max_length:
            raise FrameError(f"{name}: at most {max_length} characters")
        return value

    def bool_field(self, name: str, default: bool = False) -> bool:
        value = self.fields.get(name, default)
        if not isinstance(value, bool):
            raise FrameError(f"{name}: true or false")
        return value


NUL_REFUSED = "NUL characters (\\u0000) are not allowed."
SURROGATE_REFUSED = "Unpaired surrogates (\\ud800–\\udfff) are not allowed."
NON_FINITE_REFUSED = "Numbers must be finite (no NaN, Infinity or overflowing numbers)."
HUGE_INTEGER_REFUSED = "Integers must fit in 64 bits (-2^63 to 2^63 - 1)."


def unstorable(value: Any) -> str | None:
    """Why a decoded JSON value cannot be stored, or None: a NUL character (PostgreSQL stores it in
    neither text nor jsonb), a lone surrogate (JSON can escape one, UTF-8 cannot encode it, so
    psycopg fails on it), a number that is not finite (Python's decoder turns ``NaN`` and ``1e400``
    into floats that jsonb refuses) or an integer beyond 64 bits (no id or counter column holds
    one, and SQLite cannot even be queried with one), anywhere in it, keys included. Input carrying
    one is refused before any write, with this reason. A loop, not recursion: JSON nests deeper
    than Python's stack."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return NUL_REFUSED
            if not item.isascii():
                try:
                    item.encode("utf-8")  # fails on a lone surrogate only; 4× a regex's speed here
                except UnicodeEncodeError:
                    return SURROGATE_REFUSED
        elif isinstance(item, float):
            if not math.isfinite(item):
                return NON_FINITE_REFUSED
        elif isinstance(item, int):
            if not -(2**63) <= item < 2**63:
                return HUGE_INTEGER_REFUSED
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return None


def parse_frame(text: str | None, *, allowed: frozenset[str], max_bytes: int) -> Command:
    """Raise FrameError (code bad_json / too_large / unknown_type / invalid) or return the command."""
    if text is None:
        raise FrameError("Binary frames are not supported.", code="bad_json")
    # surrogatepass: a str handed over in-process may hold a raw lone surrogate (one decoded from
    # the wire cannot); it is refused below like an escaped one.
    if len(text) > max_bytes or len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise FrameError(f"The frame exceeds {max_bytes} bytes.", code="too_large")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise FrameError("The frame is not valid JSON.", code="bad_json") from None
    if not isinstance(data, dict):
        raise FrameError("The frame must be a JSON object.", code="bad_json")
    ref = data.pop("ref", None)
    if ref is not None and not (isinstance(ref, str | int) and not isinstance(ref, bool) and len(str(ref)) <= 64):
        raise FrameError("ref: a string or integer of at most 64 characters")
    reason = unstorable(ref)
    if reason:  # not echoed: the error frame could not be encoded with it
        raise FrameError(f"ref: {reason}")
    reason = unstorable(data)
    if reason:
        raise FrameError(reason, ref=ref)
    frame_type = data.pop("type", None)
    if not isinstance(frame_type, str):
        raise FrameError("type: a string is required", ref=ref)
    if frame_type not in allowed:
        raise FrameError(f"Unknown frame type {frame_type[:40]!r}.", code="unknown_type", ref=ref)
    return Command(type=frame_type, ref=ref, fields=data)


class SharedFrameBudget(Protocol):
    async def take(self) -> bool: ...


class FrameLimiter:
    """Token bucket per socket: ``rate`` frames per ``period`` seconds, bursts up to ``rate``.

    A socket that belongs to a session also counts its frames against the session's budget,
    shared by all its sockets (``share``; see ``messenger.realtime.frame_budget``).
    """

    def __init__(self, rate: int, period: float) -> None:
        self.capacity = float(max(rate, 1))
        self.refill_per_second = self.capacity / max(period, 0.001)
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self.shared: SharedFrameBudget | None = None

    def share(self, budget: SharedFrameBudget) -> None:
        self.shared = budget

    async def admit(self) -> bool:
        """This socket's bucket first (no I/O), then the shared budget when there is one."""
        if not self.allow():
            return False
        return self.shared is None or await self.shared.take()

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.refill_per_second)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def parse_rate(rate: str) -> tuple[int, float]:
    """'30/min' → (30, 60.0). Periods: s, sec, m, min, h, hour, d, day."""
    count, _, period = rate.partition("/")
    seconds = {
        "s": 1,
        "sec": 1,
        "second": 1,
        "m": 60,
        "min": 60,
        "minute": 60,
        "h": 3600,
        "hour": 3600,
        "d": 86400,
        "day": 86400,
    }
    return int(count), float(seconds[period.strip() or "s"])
