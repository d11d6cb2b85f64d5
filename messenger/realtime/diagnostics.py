"""Timings of the real-time path, for benchmarks (``MESSENGER_DB_HOP_LOG``; off by default).

When the setting holds a path prefix, each server process appends lines ``name value value value``
(seconds) to ``<prefix>.<pid>``:

* ``check_visitor_command`` and the other database hops of socket commands: the wait for a
  database thread, the time in it, the thread's CPU (``timed``, around ``messenger.consumers``' hops);
* ``loop_lag``: how late the event loop woke a 50 ms timer — how far it is behind its frames;
* ``publish_delay``: from a commit's hand-off to the event loop until its frame was published;
* ``fanout_delay``: from the publish until a consumer of this process forwarded the frame;
* ``gc_pause``: each collection of the cyclic garbage collector (its duration, its generation) —
  it stops the whole process, event loop and database threads alike.

Lines are buffered and written by the loop-lag task every 50 ms, so recording costs a list append.
``bench/run.py --hop-times`` sets the prefix and summarises the lines.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from typing import Any

from django.conf import settings

_lines: list[str] = []
_task: asyncio.Future[None] | None = None
_gc_started: float | None = None
PERIOD = 0.05


def enabled() -> bool:
    return bool(settings.MESSENGER_DB_HOP_LOG)


def record(name: str, *values: float) -> None:
    """Buffer one line (any thread); written within ``PERIOD`` by the loop's task."""
    padded = [*values, 0.0, 0.0, 0.0][:3]
    _lines.append(f"{name} {padded[0]:.6f} {padded[1]:.6f} {padded[2]:.6f}\n")


def timed(name: str, run: Any) -> Any:
    """``run`` (a database hop, about to be submitted to its thread), recording how long it waited
    for the thread, how long it took there and the thread's CPU. The gap between the last two is
    time spent waiting — for PostgreSQL, Redis or the GIL."""
    submitted = time.perf_counter()

    def hop(*args: Any, **kwargs: Any) -> Any:
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            return run(*args, **kwargs)
        finally:
            record(name, started - submitted, time.perf_counter() - started, time.thread_time() - cpu)

    return hop


def start() -> None:
    """Start the loop-lag task of this event loop, once (called on every socket connect)."""
    global _task
    if _gc_timer not in gc.callbacks:
        gc.callbacks.append(_gc_timer)
    task = _task
    if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
        _task = asyncio.ensure_future(_sample_and_flush())


def _gc_timer(phase: str, info: dict[str, int]) -> None:
    global _gc_started
    if phase == "start":
        _gc_started = time.perf_counter()
    elif _gc_started is not None and settings.MESSENGER_DB_HOP_LOG:
        record("gc_pause", time.perf_counter() - _gc_started, info["generation"] / 1000)
        _gc_started = None


async def _sample_and_flush() -> None:
    while True:
        due = time.perf_counter() + PERIOD
        await asyncio.sleep(PERIOD)
        prefix = settings.MESSENGER_DB_HOP_LOG
        if not prefix:
            _lines.clear()
            return  # turned off (tests override it)
        record("loop_lag", time.perf_counter() - due)
        pending = _lines[:]
        del _lines[: len(pending)]
        with open(f"{prefix}.{os.getpid()}", "a") as log:
            log.writelines(pending)
