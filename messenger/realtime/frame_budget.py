"""The socket-frame budget one visitor session shares across its sockets and server processes.

``MESSENGER_WIDGET_POLL_RATE_PER_SESSION`` belongs to the session (one ``ContactInbox``), not to a
socket: five tabs share one budget. Each socket keeps its own token bucket (``FrameLimiter``) as a
first line that costs no I/O; behind it, frames are leased in small chunks from a fixed-window
counter in the Django cache (Redis in production, shared by every process; locmem in the embedded
default, where one process is the whole server). A socket pays one cache round trip per chunk,
never one per frame.

Invariants:
* A lease never grants more than the window has left: once the counter has reached the limit,
  every socket of the session is refused until the window turns.
* Frames a socket leased but did not use are lost to the session for that window (fewer than one
  chunk per socket): the budget errs on the strict side by a few frames, never on the lax one.
* When the cache is unreachable the shared budget fails open for the rest of the window, with one
  warning per socket; the per-socket bucket alone limits the socket meanwhile.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings

from messenger.protocol import parse_rate
from messenger.throttle import increment_counters

logger = logging.getLogger(__name__)

# A chunk is a twentieth of the limit, between 1 and 20 frames: 600/min leases 20 at a time (one
# round trip per 20 frames), while a tight limit stays exact.
CHUNK_DIVISOR = 20
MAX_CHUNK = 20


def _key(session: Any, window: int) -> str:
    return f"frames:{session}:{window}"


def increment_window(key: str, amount: int, timeout: int) -> int:
    """Add ``amount`` to the window counter ``key`` (created with ``timeout``); the new total."""
    return increment_counters([(key, amount, timeout)])[0]


class SessionFrameBudget:
    """``limit`` frames per fixed window of ``period`` seconds for ``session``, whichever socket sends them.

    One instance per socket: it holds that socket's unused lease. ``take`` is called once per
    inbound frame, from one task at a time (the consumer's receive).
    """

    def __init__(self, session: Any, *, limit: int, period: float, chunk: int | None = None) -> None:
        self.session = session
        self.limit = limit
        self.period = max(period, 1.0)
        self.chunk = chunk if chunk is not None else max(1, min(MAX_CHUNK, limit // CHUNK_DIVISOR))
        self.window: int | None = None
        self.leased = 0
        self.failed_open = False

    async def take(self, *, now: float | None = None) -> bool:
        """Count one frame; False once the session has used up its window."""
        if self.limit <= 0:
            return True
        now = time.time() if now is None else now
        window = int(now // self.period)
        if window != self.window:
            self.window, self.leased, self.failed_open = window, 0, False
        if self.leased == 0 and not self.failed_open:
            # Off the event loop and off the shared sync thread: a cache round trip must not hold
            # up other sockets' frames.
            self.leased = await sync_to_async(self._lease, thread_sensitive=False)(window)
        if self.failed_open:
            return True
        if self.leased == 0:
            return False
        self.leased -= 1
        return True

    def _lease(self, window: int) -> int:
        """Frames granted to this socket from the window's counter (0: the session is over its limit)."""
        try:
            total = increment_window(_key(self.session, window), self.chunk, int(self.period) + 1)
        except Exception as error:  # noqa: BLE001 — the cache is down: fail open, the socket's own bucket still holds
            logger.warning(
                "frame budget cache unavailable; session %s not limited this window: %s", self.session, error
            )
            self.failed_open = True
            return 0
        before = total - self.chunk
        return max(0, min(self.chunk, self.limit - before))


def session_frame_budget(session: Any) -> SessionFrameBudget:
    """The visitor session's budget from ``MESSENGER_WIDGET_POLL_RATE_PER_SESSION`` (empty: unlimited)."""
    rate = settings.MESSENGER_WIDGET_POLL_RATE_PER_SESSION
    limit, period = parse_rate(rate) if rate else (0, 60.0)
    return SessionFrameBudget(session, limit=limit, period=period)
