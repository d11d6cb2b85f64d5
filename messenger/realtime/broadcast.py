"""The only module that talks to the channel layer.

Frames are serialised once, here, and consumers forward the text verbatim. Durable events leave
only after commit (``broadcast_on_commit``); typing frames leave at once from the consumers through
``abroadcast_ephemeral``, queued behind the durable frames of the same process.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

from messenger.realtime import diagnostics, liveness, redis_adapter
from messenger.realtime.groups import FANOUT_HANDLER

logger = logging.getLogger(__name__)


def dumps(frame: dict[str, Any]) -> str:
    return json.dumps(frame, cls=DjangoJSONEncoder, ensure_ascii=False, separators=(",", ":"))


_server_loop: asyncio.AbstractEventLoop | None = None


def remember_server_loop() -> None:
    """Called from the server's event loop (by every consumer on connect)."""
    global _server_loop
    _server_loop = asyncio.get_running_loop()


def _send(groups: Iterable[str], text: str) -> None:
    """Where every frame of a committed transaction goes, whichever driver ran it: a worker thread
    (``transaction.on_commit``) or an event loop (``publish_committed``)."""
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is not None:
        _enqueue(list(groups), text)  # on a loop: its own publisher, in commit order
        return
    loop = _server_loop
    if loop is not None and loop.is_running() and not loop.is_closed():
        # From a worker thread of the server: hand the frame to the loop's publisher and go
        # on. Waiting for the publish held the thread (and the next command) for a Redis
        # round trip on a busy loop: measured here, seconds of queueing at 200 messages/s.
        # call_soon_threadsafe runs hand-offs in the order they were made (commit order).
        loop.call_soon_threadsafe(_enqueue, list(groups), text)
        return
    try:
        async_to_sync(_publish)([(list(groups), text)])
    except Exception:  # noqa: BLE001 — the fast path may fail; clients resume from the database
        logger.warning("channel layer unavailable; clients will resume from the database", exc_info=True)


class _Publisher:
    """One per event loop: publishes queued frames in order, each batch in one round trip."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[list[str], str, float]] = asyncio.Queue()
        self.task = asyncio.ensure_future(self.run())

    async def run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while not self.queue.empty() and len(batch) < 500:
                batch.append(self.queue.get_nowait())
            try:
                unreached = await _publish([(groups, text) for groups, text, _ in batch])
            except Exception:  # noqa: BLE001 — never let the publisher die
                logger.warning("channel layer publish failed; clients will resume from the database", exc_info=True)
                unreached = [group for groups, _, _ in batch for group in groups]
            if unreached:
                liveness.publish_failed(unreached)
            if diagnostics.enabled():
                done = time.perf_counter()
                for _, _, queued in batch:
                    diagnostics.record("publish_delay", done - queued)


_publishers: dict[asyncio.AbstractEventLoop, _Publisher] = {}


def _enqueue(groups: list[str], text: str) -> None:
    """Runs on the loop: queue a frame for that loop's publisher (started on first use)."""
    loop = asyncio.get_running_loop()
    publisher = _publishers.get(loop)
    if publisher is None or publisher.task.done():
        for stale in [other for other in _publishers if other.is_closed()]:
            del _publishers[stale]
        publisher = _publishers[loop] = _Publisher()
    publisher.queue.put_nowait((groups, text, time.perf_counter()))


async def _publish(batch: list[tuple[list[str], str]]) -> list[str]:
    """Publish frames in order: one pipelined round trip on the Redis pub/sub layer. Returns the
    groups that a frame could not be published to."""
    layer = get_channel_layer()
    if layer is None:
        return []
    stamp = {"published": time.time()} if diagnostics.enabled() else {}
    items = [(list(dict.fromkeys(groups)), {"type": FANOUT_HANDLER, "frame": text, **stamp}) for groups, text in batch]
    try:
        if await redis_adapter.publish_pipelined(layer, items):
            return []
    except Exception:  # noqa: BLE001 — fall back to the layer's own path below
        logger.debug("pipelined publish failed", exc_info=True)
    unreached = []
    for groups, message in items:
        for group in groups:
            try:
                await layer.group_send(group, message)
            except Exception:  # noqa: BLE001
                logger.warning("channel layer send to %s failed", group, exc_info=True)
                unreached.append(group)
    return unreached


def broadcast_on_commit(groups: Iterable[str], frame: dict[str, Any]) -> None:
    """Send ``frame`` to ``groups`` once the surrounding transaction commits (at once outside one)."""
    broadcast_text_on_commit(groups, dumps(frame))


def broadcast_text_on_commit(groups: Iterable[str], text: str) -> None:
    """``broadcast_on_commit`` for a frame already serialised (the event log's hot path)."""
    group_list = list(groups)
    pending = _pending.get()
    if pending is not None:
        pending.append((group_list, text))
        return
    transaction.on_commit(lambda: _send(group_list, text), robust=True)


# Frames of a transaction that is not Django's (``messenger.db.steps``): held here until it commits.
_pending: ContextVar[list[tuple[list[str], str]] | None] = ContextVar("messenger_pending_frames", default=None)


def collecting() -> bool:
    return _pending.get() is not None


@contextmanager
def collected() -> Iterator[list[tuple[list[str], str]]]:
    """Within the block, ``broadcast_text_on_commit`` holds its frames in the list it yields; the
    caller publishes them (``publish_committed``) once its own transaction has committed."""
    frames: list[tuple[list[str], str]] = []
    token = _pending.set(frames)
    try:
        yield frames
    finally:
        _pending.reset(token)


def publish_committed(frames: list[tuple[list[str], str]]) -> None:
    """On the event loop: queue committed frames for the loop's publisher, in order."""
    for groups, text in frames:
        _send(groups, text)


async def abroadcast_ephemeral(groups: Iterable[str], frame: dict[str, Any]) -> None:
    """Async variant for consumers: typing frames, never durable events (queued behind them)."""
    _enqueue(list(groups), dumps(frame))


async def apublish_messages(items: list[tuple[str, dict[str, Any]]]) -> None:
    """Consumer messages that are not frames (``visitors.batch``: the consumer merges them into
    its own frames), each to one group; from the event loop. A failed send is logged and dropped:
    their receivers read the state again on reconnect."""
    layer = get_channel_layer()
    if layer is None:
        return
    for group, message in items:
        try:
            await layer.group_send(group, message)
        except Exception:  # noqa: BLE001 — the layer may be down
            logger.warning("channel layer send to %s failed", group, exc_info=True)


def channel_layer_round_trip() -> tuple[bool, str]:
    """Send a message to a fresh channel and read it back: (worked, backend name)."""
    layer = get_channel_layer()

    async def round_trip() -> bool:
        channel = await layer.new_channel("health.")
        nonce = uuid.uuid4().hex
        await layer.send(channel, {"type": "health.ping", "nonce": nonce})
        async with asyncio.timeout(5):
            message = await layer.receive(channel)
        return message.get("nonce") == nonce

    return async_to_sync(round_trip)(), type(layer).__name__
