"""How a consumer receives: Channels' consumer loop, without a loop turn per message."""

from __future__ import annotations

import asyncio
import functools
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
    --hop-times; docs/benchmarks.md). Here one pump task per source moves messages into a queue as
    they come, and the consumer dispatches everything already waiting before it waits again.
    """
    inbox: asyncio.Queue[Any] = asyncio.Queue()

    async def pump(source: Any) -> None:
        while True:
            inbox.put_nowait(await source())

    pumps = [asyncio.ensure_future(pump(source)) for source in sources]
    getter: asyncio.Future[Any] | None = None
    try:
        while True:
            while not inbox.empty():
                await dispatch(inbox.get_nowait())
            getter = asyncio.ensure_future(inbox.get())
            done, _ = await asyncio.wait([getter, *pumps], return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                await dispatch(getter.result())
                continue
            for task in pumps:
                if task.done():
                    task.result()  # a source failed: raise its error, as channels does
    finally:
        waiting = [*pumps, getter] if getter is not None else pumps
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)
