"""Inbound frames: parsing, error codes, close codes and the per-socket frame limiter."""

from __future__ import annotations

import json
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

# Commands both sides send.
COMMON_COMMANDS = frozenset(
    {"ping", "resume", "message.send", "typing.start", "typing.stop", "message.delivered", "conversation.read"}
)
VISITOR_COMMANDS = COMMON_COMMANDS | {"conversation.rate", "conversation.new", "contact.update"}
OPERATOR_COMMANDS = COMMON_COMMANDS | {
    "conversation.open",
    "conversation.close_view",
    "conversation.assign",
    "conversation.transfer",
    "conversation.status",
    "conversation.priority",
    "conversation.labels",
    "status.set",
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


def contains_nul(value: Any) -> bool:
    """Whether a decoded JSON value holds the NUL character anywhere, keys included: PostgreSQL
    stores it in neither text nor jsonb, so input carrying one is refused before any write."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(contains_nul(key) or contains_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(contains_nul(item) for item in value)
    return False


def parse_frame(text: str | None, *, allowed: frozenset[str], max_bytes: int) -> Command:
    """Raise FrameError (code bad_json / too_large / unknown_type / invalid) or return the command."""
    if text is None:
        raise FrameError("Binary frames are not supported.", code="bad_json")
    if len(text) > max_bytes or len(text.encode("utf-8")) > max_bytes:
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
    if "\\u0000" in text and contains_nul(data):  # JSON can only carry NUL escaped
        raise FrameError(NUL_REFUSED, ref=ref)
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
