"""Whether this process's channel layer delivers, and what its sockets are told when that changes.

A Redis outage loses frames without anyone seeing a gap: the pub/sub subscriptions come back by
themselves, heartbeats keep flowing, and a message stored during the outage stays invisible until
a later event of its conversation reveals the missing id. So each server process watches its own
layer and tells its sockets (docs/protocol.md, "Live delivery"):

* ``live`` ``interrupted`` when a probe round trip through the layer fails, a publish of this
  process raises or the pub/sub connection reconnects: clients show a degraded state (sends still
  work: the database is the truth);
* ``live`` ``restored`` when a probe comes back again: the subscriptions of this process are back
  (the probe's channel is re-subscribed in the same command as every group), so whatever a client
  reads from the database now, and every frame after, reaches it. Clients resume every
  conversation they hold.

A process whose publish failed also sends ``restored`` through the layer, once it works again, to
the groups it failed to reach: a socket on another process whose own layer never noticed (a stale
connection of only the publisher) resumes too.

Invariants:
* One watch per event loop (the server's), started by the first socket that connects.
* The in-memory layer cannot lose frames: no watch runs there.
* The probe task ends at its first cancel: its waits are bounded with ``asyncio.timeout``, never
  ``asyncio.wait_for``, which on Python 3.11 drops a cancel that comes as the awaited call
  completes (tests/test_liveness.py) — a server shutting down would wait on it forever.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections import deque
from typing import Any, Protocol

from channels.layers import InMemoryChannelLayer, get_channel_layer

from messenger import events
from messenger.realtime import redis_adapter
from messenger.realtime.groups import FANOUT_HANDLER

logger = logging.getLogger(__name__)

# Probes find a Redis that cannot be reached (the publish fails at once) and a subscriber that
# cannot get its connection back (its probes never return). A probe is given two seconds, counted
# only while this event loop gets its turns (a turn later than LATE_TURN restarts the clock), so
# that a busy process — late, not lost — is not taken for an outage: each false alarm would make
# every client of the process resume at once.
PROBE_INTERVAL = 0.5
PROBE_TIMEOUT = 2.0
LATE_TURN = 0.5


class LiveSocket(Protocol):
    async def send(
        self, text_data: str | None = None, bytes_data: bytes | None = None, close: bool = False
    ) -> None: ...


class LayerWatch:
    """The probe task of one event loop, the sockets it tells, and the groups it owes a resume."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.delivering = True
        self.sockets: weakref.WeakSet[Any] = weakref.WeakSet()
        self.unreached: set[str] = set()
        self.sent = 0
        # Probes published and not echoed yet: (number, loop time of the publish), oldest first.
        self.outstanding: deque[tuple[int, float]] = deque()
        # Only a probe published after the interruption proves that publishing works again.
        self.interrupted_at_probe = 0
        self.task = asyncio.ensure_future(self.run())

    async def run(self) -> None:
        """A probe every ``PROBE_INTERVAL``, without waiting for the previous one to come back: the
        first probe published after the subscriptions are back returns at once."""
        loop = asyncio.get_running_loop()
        channel = None
        receiver = None
        last_turn = loop.time()
        try:
            while True:
                if loop.time() - last_turn > PROBE_INTERVAL + LATE_TURN:
                    # This loop was starved (a busy process, a busy machine): echoes may be waiting
                    # unread in the socket. The probes in flight get their full time again.
                    self.outstanding = deque((number, loop.time()) for number, _ in self.outstanding)
                try:
                    if channel is None:
                        async with asyncio.timeout(PROBE_TIMEOUT):
                            channel = await self.layer.new_channel("live.")
                        receiver = asyncio.ensure_future(self.receive_echoes(channel))
                        redis_adapter.on_pubsub_reconnect(self.layer, self.subscriber_reconnected)
                    self.sent += 1
                    # Counted before the publish: its echo may come back before the publish returns.
                    self.outstanding.append((self.sent, loop.time()))
                    async with asyncio.timeout(PROBE_TIMEOUT):
                        await self.layer.send(channel, {"type": "live.probe", "n": self.sent})
                    lost = bool(self.outstanding) and loop.time() - self.outstanding[0][1] > PROBE_TIMEOUT
                except Exception:  # noqa: BLE001 — the layer is down; a later probe tells when it is back
                    logger.debug("channel layer probe failed", exc_info=True)
                    if self.outstanding and self.outstanding[-1][0] == self.sent:
                        self.outstanding.pop()
                    lost = True
                if lost and self.delivering:
                    self.interrupted()
                last_turn = loop.time()
                await asyncio.sleep(PROBE_INTERVAL)
        finally:
            if receiver is not None:
                receiver.cancel()

    async def receive_echoes(self, channel: str) -> None:
        # Never cancelled while the watch runs: channels-redis drops the channel's subscription
        # when a receive is cancelled, and the probe must ride the subscriptions' connection.
        while True:
            number = int((await self.layer.receive(channel)).get("n", 0))
            # Probes are published one after the other and Redis delivers them in that order: an
            # echo that skips an older probe means the subscription was deaf for a moment (a blink
            # shorter than PROBE_TIMEOUT) and is back — frames of that moment may be lost too.
            skipped = bool(self.outstanding) and self.outstanding[0][0] < number
            while self.outstanding and self.outstanding[0][0] <= number:
                self.outstanding.popleft()
            if (not self.delivering and number > self.interrupted_at_probe) or (self.delivering and skipped):
                await self.restored()

    def subscriber_reconnected(self, connection: Any) -> None:
        """The pub/sub connection was lost and is back (its subscriptions were just renewed): frames
        published in between reached nobody, however short the gap — redis-py reconnects inside the
        read that failed, within milliseconds, too fast for a probe to be lost
        (``redis_adapter.on_pubsub_reconnect``). The next probe confirms."""
        if self.delivering:
            self.interrupted()

    def interrupted(self) -> None:
        """Synchronous, so that a failed publish marks the layer down before anything else runs."""
        self.delivering = False
        self.interrupted_at_probe = self.sent
        self.outstanding.clear()  # lost with the outage: they must not interrupt the recovery
        logger.warning("channel layer not delivering; clients are told live delivery is interrupted")
        asyncio.ensure_future(self.tell_sockets(_text(events.live_frame(delivering=False))))

    async def restored(self) -> None:
        self.delivering = True
        logger.warning("channel layer delivering again; clients resume from the database")
        text = _text(events.live_frame(delivering=True))
        await self.tell_sockets(text)
        groups, self.unreached = sorted(self.unreached), set()
        for group in groups:
            try:
                await self.layer.group_send(group, {"type": FANOUT_HANDLER, "frame": text})
            except Exception:  # noqa: BLE001 — down again: owed until the next recovery
                self.unreached.add(group)
        if self.unreached and self.delivering:
            self.interrupted()

    async def tell_sockets(self, text: str) -> None:
        for socket in list(self.sockets):
            try:
                await socket.send(text_data=text)
            except Exception:  # noqa: BLE001 — a socket closing meanwhile
                logger.debug("live frame not sent", exc_info=True)


_watches: dict[asyncio.AbstractEventLoop, LayerWatch] = {}


def _watch() -> LayerWatch | None:
    """This loop's watch, started on first use; None on a layer that cannot lose frames."""
    layer = get_channel_layer()
    if layer is None or isinstance(layer, InMemoryChannelLayer):
        return None
    loop = asyncio.get_running_loop()
    watch = _watches.get(loop)
    if watch is None or watch.task.done():
        for stale in [other for other in _watches if other.is_closed()]:
            del _watches[stale]
        watch = _watches[loop] = LayerWatch(layer)
    return watch


async def attach(socket: LiveSocket) -> None:
    """A socket that has joined its groups and sent ``hello``: it hears of outages from now on."""
    watch = _watch()
    if watch is None:
        return
    watch.sockets.add(socket)
    if not watch.delivering:
        await socket.send(text_data=_text(events.live_frame(delivering=False)))


def detach(socket: LiveSocket) -> None:
    try:
        watch = _watches.get(asyncio.get_running_loop())
    except RuntimeError:
        return
    if watch is not None:
        watch.sockets.discard(socket)


def publish_failed(groups: list[str]) -> None:
    """On the event loop: a publish to ``groups`` raised. The sockets of this process are told at
    once, and the groups get ``restored`` when the layer delivers again."""
    try:
        watch = _watches.get(asyncio.get_running_loop())
    except RuntimeError:
        return  # a worker's one-off loop: the servers' probes see the same outage
    if watch is None:
        return
    watch.unreached.update(groups)
    if watch.delivering:
        watch.interrupted()


def _text(frame: dict[str, Any]) -> str:
    return json.dumps(frame, separators=(",", ":"))
