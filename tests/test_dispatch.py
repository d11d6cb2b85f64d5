"""The consumers' dispatch loop: every message already waiting is dispatched without a loop turn each."""

import asyncio

import pytest

from messenger.realtime.dispatch import dispatch_all


async def _run_until(task: asyncio.Task, condition, turns: int) -> int:
    for turn in range(turns):
        if condition():
            return turn
        await asyncio.sleep(0)
    return turns


async def test_a_backlog_is_dispatched_in_a_few_loop_turns_in_order():
    layer: asyncio.Queue = asyncio.Queue()
    client: asyncio.Queue = asyncio.Queue()
    for index in range(200):
        layer.put_nowait({"type": "fanout", "n": index})
    seen: list[int] = []

    async def dispatch(message):
        seen.append(message["n"])

    task = asyncio.ensure_future(dispatch_all([client.get, layer.get], dispatch))
    turns = await _run_until(task, lambda: len(seen) == 200, 50)
    # Channels' await_many_dispatch takes two turns per message (400 here).
    assert turns <= 5, (turns, len(seen))
    assert seen == list(range(200))
    layer.put_nowait({"type": "fanout", "n": 200})  # and it still waits for more
    await _run_until(task, lambda: len(seen) == 201, 10)
    assert seen[-1] == 200
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_failing_source_ends_the_loop_with_its_error():
    async def broken():
        raise ConnectionError("layer down")

    async def dispatch(message):
        raise AssertionError("nothing to dispatch")

    never: asyncio.Queue = asyncio.Queue()
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(dispatch_all([never.get, broken], dispatch), 2)


async def test_a_dispatch_error_ends_the_loop_and_stops_the_pumps():
    source: asyncio.Queue = asyncio.Queue()
    source.put_nowait({"type": "websocket.disconnect"})

    class Stop(Exception):
        pass

    async def dispatch(message):
        raise Stop

    with pytest.raises(Stop):
        await asyncio.wait_for(dispatch_all([source.get], dispatch), 2)


async def test_cancelling_the_consumer_leaves_no_task_behind():
    idle: asyncio.Queue = asyncio.Queue()

    async def dispatch(message):
        pass

    before = asyncio.all_tasks()
    task = asyncio.ensure_future(dispatch_all([idle.get, idle.get], dispatch))
    for _ in range(3):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert asyncio.all_tasks() == before


async def test_an_idle_loop_holds_one_task_per_source_and_nothing_else():
    """Every open socket holds this loop: waiting, it is its pumps and a bare future (docs/benchmarks.md,
    "The consumers' dispatch loop"), not a queue with a task for its ``get`` besides."""
    idle: asyncio.Queue = asyncio.Queue()
    seen: list[int] = []

    async def dispatch(message):
        seen.append(message)

    before = asyncio.all_tasks()
    task = asyncio.ensure_future(dispatch_all([idle.get, idle.get], dispatch))
    for _ in range(3):
        await asyncio.sleep(0)
    assert len(asyncio.all_tasks() - before) == 3  # the loop itself and one pump per source
    idle.put_nowait(7)  # and a message that comes while it waits is dispatched
    await _run_until(task, lambda: seen == [7], 10)
    assert seen == [7]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
