"""The message path on the event loop: a write path's steps (``dbwrite``) through an asynchronous
PostgreSQL connection, so a send waits for PostgreSQL without holding one of the few database
threads (docs/benchmarks.md: at 200 messages/s those threads were busy all the time and the wait
for one was most of a message's latency).

Each event loop keeps a few connections of its own (``MESSENGER_ASYNC_DB_CONNECTIONS``), opened
with the parameters of Django's (database, adapters, prepared statements). A path that meets a
step only Django's connection can run (``dbwrite.Sync``), or touches Django's connection from the
loop, is rolled back and reported as ``FALLBACK``: the caller runs it again in a thread, where
nothing was written yet. Frames of the transaction are published after its COMMIT, as
``transaction.on_commit`` does for the thread path.

Invariants:
* A connection goes back to its loop's free list only when it is idle (no transaction open).
* ``close_all`` closes every connection of every loop (tests, before the database is dropped).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Generator
from typing import Any

from django.conf import settings
from django.core.exceptions import SynchronousOnlyOperation
from psycopg import IntegrityError, OperationalError

from messenger.db import offline
from messenger.dbwrite import NeedsThread
from messenger.realtime import broadcast, diagnostics

logger = logging.getLogger(__name__)

FALLBACK: Any = object()


def enabled() -> bool:
    """On for PostgreSQL unless ``MESSENGER_ASYNC_DB_CONNECTIONS`` is 0."""
    return offline().vendor == "postgresql" and settings.MESSENGER_ASYNC_DB_CONNECTIONS > 0


class _Connections:
    """One event loop's connections: a free list, and at most ``size`` open at once."""

    def __init__(self, size: int) -> None:
        self.free: list[Any] = []
        self.every: set[Any] = set()
        self.slots = asyncio.Semaphore(size)

    async def acquire(self) -> Any:
        await self.slots.acquire()
        try:
            while self.free:
                conn = self.free.pop()
                if not conn.closed:
                    return conn
                self.every.discard(conn)
            conn = await _connect()
            self.every.add(conn)
            return conn
        except BaseException:
            self.slots.release()
            raise

    def release(self, conn: Any) -> None:
        from psycopg.pq import TransactionStatus

        if not conn.closed and conn.info.transaction_status == TransactionStatus.IDLE:
            self.free.append(conn)
        else:
            self.every.discard(conn)
            _finish(conn)
        self.slots.release()


_loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Connections] = weakref.WeakKeyDictionary()


async def _connect() -> Any:
    from psycopg import AsyncConnection

    django_connection = offline()
    params = django_connection.get_connection_params()  # Django's own, built without connecting
    params.pop("cursor_factory", None)  # a sync class; the async default binds on the server too
    conn = await AsyncConnection.connect(autocommit=True, **params)
    timezone_name = django_connection.timezone_name
    if timezone_name and conn.info.parameter_status("TimeZone") != timezone_name:
        await conn.execute(django_connection.ops.set_time_zone_sql(), [timezone_name])
    return conn


def _finish(conn: Any) -> None:
    """Close without awaiting: the socket goes at once, whatever loop it belonged to."""
    try:
        conn.pgconn.finish()
    except Exception:  # noqa: BLE001 — already gone
        logger.debug("closing an async connection failed", exc_info=True)


def close_all() -> None:
    for connections in list(_loops.values()):
        for conn in list(connections.every):
            _finish(conn)
        connections.every.clear()
        connections.free.clear()
    _loops.clear()


async def _drive(steps: Generator[Any, Any, Any], conn: Any, cursor: Any) -> Any:
    """Run ``steps``; the transaction opens with the first step that needs one (a ``Fetch``
    marked ``alone`` before it runs without, in autocommit) and commits when they are done."""
    async with contextlib.AsyncExitStack() as transaction:
        opened = False
        value = None
        while True:
            try:
                step = steps.send(value)
            except StopIteration as done:
                return done.value
            if step.transactional and not opened:
                await transaction.enter_async_context(conn.transaction())
                opened = True
            value = await step.arun(cursor)


async def run(steps: Generator[Any, Any, Any], *, name: str = "") -> Any:
    """Drive ``steps`` in one transaction on this loop's connection (``_drive``); its return value, or
    ``FALLBACK`` when it must run in a thread instead (rolled back, nothing written). Errors the
    steps raise (a refusal, a resend) roll back and propagate."""
    loop = asyncio.get_running_loop()
    connections = _loops.get(loop)
    if connections is None:
        connections = _loops[loop] = _Connections(settings.MESSENGER_ASYNC_DB_CONNECTIONS)
    started = time.perf_counter()
    try:
        conn = await connections.acquire()
    except OperationalError as reason:  # PostgreSQL unreachable: the thread's path reports it
        steps.close()
        logger.debug("%s: no connection (%r)", name, reason)
        return FALLBACK
    acquired = time.perf_counter()
    try:
        with broadcast.collected() as frames:
            async with conn.cursor() as cursor:
                result = await _drive(steps, conn, cursor)
    except (NeedsThread, SynchronousOnlyOperation, OperationalError, IntegrityError) as reason:
        # Nothing was written, or (a COMMIT whose answer was lost, a resend racing its original
        # into the unique client_id) the thread's attempt finds the stored message by its
        # client_id and writes nothing twice.
        steps.close()
        logger.debug("%s: runs in a thread instead (%r)", name, reason)
        return FALLBACK
    finally:
        connections.release(conn)
        if diagnostics.enabled():
            diagnostics.record(f"{name}_async", acquired - started, time.perf_counter() - acquired)
    broadcast.publish_committed(frames)
    return result
