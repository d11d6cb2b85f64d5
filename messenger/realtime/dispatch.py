"""How a consumer receives: Channels' consumer loop, without a loop turn per message."""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from typing import Any

from channels.exceptions import StopConsumer
from channels.layers import get_channel_layer


async def serve(consumer: Any, scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``AsyncConsumer.__call__`` with ``dispatch_all`` in place of ``await_many_dispatch``."""
    consumer.scope = scope
    consumer.channel_layer = get_channel_layer(consumer.channel_layer_alias)
    sources = [receive]
    if consumer.channel_layer is not None:
        consumer.channel_name = await consumer.channel_layer.new_channel()
        consumer.channel_receive = functools.partial(consumer.channel_layer.receive, consumer.channel_name)
        sources.append(consumer.channel_receive)
    consumer.base_send = send
    try:
        await dispatch_all(sources, consumer.dispatch)
    except StopConsumer:
        pass


async def dispatch_all(sources: list[Any], dispatch: Any) -> None:
    """Channels' ``await_many_dispatch``, without a loop turn per message.

    Channels starts a new task for every message it waits for and wakes the consumer through
    ``asyncio.wait``: two turns of the event loop per frame. An operator's socket receives every
    event of a branch, and at 200 messages/s on a busy loop (a few ms per turn) that capped it
    near the arrival rate, so its frames queued for seconds (``fanout_delay`` in bench/run.py
    --hop-times). Here one pump task per source moves messages into a deque as
    they come, and the consumer dispatches everything already waiting before it waits again, on a
    bare future that a pump completes. Every socket holds this loop while it is open, so it is kept
    small: an ``asyncio.Queue`` (four deques and an event), a task for its ``get`` and the
    ``asyncio.wait`` around them cost 5 KiB per idle socket and 4 % of a server's CPU
    in the fan-out (docs/benchmarks.md, "The consumers' dispatch loop").
    """
    loop = asyncio.get_running_loop()
    inbox: deque[Any] = deque()
    wakeup: asyncio.Future[None] | None = None

    def wake(_: Any = None) -> None:
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    async def pump(source: Any) -> None:
        while True:
            inbox.append(await source())
            wake()

    pumps = [asyncio.ensure_future(pump(source)) for source in sources]
    for task in pumps:
        task.add_done_callback(wake)  # a source that fails wakes the loop to raise its error
    try:
        while True:
            while inbox:
                await dispatch(inbox.popleft())
            if not any(task.done() for task in pumps):
                wakeup = loop.create_future()
                await wakeup
                wakeup = None
            if not inbox:
                for task in pumps:
                    if task.done():
                        task.result()  # a source failed: raise its error, as channels does
    finally:
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
