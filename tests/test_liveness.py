"""The layer watch's probe task (messenger/realtime/liveness.py) ends at the first cancel, whenever
it comes: a server that shuts down, or an event loop that closes, must not wait on it forever."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from messenger.realtime import liveness


class CancellingLayer:
    """A layer whose publish of probe ``at`` cancels the watch's task as the publish completes:
    the moment a cancel used to be lost (on Python 3.11 ``asyncio.wait_for`` returned the result
    of an awaited call that was done, and dropped the cancel)."""

    def __init__(self, at: int) -> None:
        self.at = at
        self.watch: liveness.LayerWatch | None = None
        self.published = 0

    async def new_channel(self, prefix: str) -> str:
        return prefix + "probe"

    async def receive(self, channel: str) -> dict[str, Any]:
        await asyncio.Event().wait()  # no echo: this test is about the probe task only
        raise AssertionError("unreachable")

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        self.published += 1
        if self.published == self.at and self.watch is not None:
            self.watch.task.cancel()


def test_one_cancel_ends_the_probe_task_even_as_a_publish_completes():
    async def scenario() -> tuple[bool, int]:
        layer = CancellingLayer(at=2)
        watch = liveness.LayerWatch(layer)
        layer.watch = watch
        done, _pending = await asyncio.wait([watch.task], timeout=liveness.PROBE_INTERVAL * 6)
        ended = watch.task in done
        if not ended:
            watch.task.cancel()  # the loop ignored the first one: let the test end either way
            await asyncio.wait([watch.task], timeout=1)
        return ended, layer.published

    ended, published = asyncio.run(scenario())
    assert ended, "the probe task went on after it was cancelled"
    assert published == 2


def test_the_server_bounds_its_waits_with_asyncio_timeout():
    """``asyncio.wait_for`` loses a cancel on Python 3.11 (above): the server's code does not use it."""
    root = Path(__file__).resolve().parent.parent / "messenger"
    users = [str(path.relative_to(root)) for path in root.rglob("*.py") if "wait_for(" in path.read_text()]
    assert users == []
