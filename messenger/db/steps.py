"""Write paths as steps, and the two drivers that run them.

A write path (the message send: ``messages._message_steps``) is a generator of steps: ``Fetch``
a row, ``Run`` writes, ``Sync`` a call that needs Django's connection, or any other ``Step``
(``throttle.CountHits``: the visitor's limits in Redis). It is written once, and two drivers
run it:

* ``run`` — in a database thread, through Django's connection; the caller holds the
  transaction (``transaction.atomic``) and frames leave from ``transaction.on_commit``.
* ``arun`` — on the event loop, through an asynchronous PostgreSQL connection of the loop's
  own, so that a send waits for PostgreSQL without holding one of the few database threads
  (docs/benchmarks.md, "Database threads and sends on the event loop"). It opens the transaction at the first step that needs
  one, commits when the steps are done, then publishes the frames they broadcast.

A path that meets a step only Django's connection can run (``Sync``), touches Django's
connection from the loop, or loses its connection, is rolled back on the loop and ``arun``
returns ``FALLBACK``: the caller runs it again in a thread, where nothing was written yet.

Invariants:
* A step does the same thing under both drivers (``run`` and ``arun`` of one class, side by
  side); the parity test (tests/test_send_parity.py) compares what they store and send.
* A loop connection goes back to its loop's free list only when it is idle (no transaction open).
* ``close_all`` closes every connection of every loop (tests, before the database is dropped).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Generator
from typing import Any, Protocol, TypeVar

from django.conf import settings
from django.core.exceptions import SynchronousOnlyOperation
from django.db import connection
from psycopg import IntegrityError, OperationalError

from messenger.db import offline
from messenger.dbwrite import Statement, execute, one_statement
from messenger.realtime import broadcast, diagnostics

logger = logging.getLogger(__name__)

T = TypeVar("T", covariant=True)

# What ``arun`` returns when the path must run in a thread instead (rolled back, nothing written).
FALLBACK: Any = object()


class Step(Protocol[T]):
    """One step of a write path. ``transactional``: the loop's driver opens the transaction
    before running it (a step that talks to something else, or to nothing, needs none)."""

    transactional: bool

    def run(self) -> T:
        """In a database thread, through Django's connection."""

    async def arun(self, cursor: Any) -> T:
        """On the event loop, through ``cursor`` of the loop's connection."""


Steps = Generator[Step[Any], Any, T]


class NeedsThread(Exception):
    """The loop's driver met a step only Django's connection can run: start again in a thread."""


class Fetch:
    """One statement; the driver sends back its first row (or None)."""

    transactional = True

    def __init__(self, sql: str, params: list[Any]) -> None:
        self.sql, self.params = sql, params

    def run(self) -> Any:
        with connection.cursor() as cursor:
            cursor.execute(self.sql, self.params)
            return cursor.fetchone()

    async def arun(self, cursor: Any) -> Any:
        await cursor.execute(self.sql, self.params)
        return await cursor.fetchone()


class Run:
    """Writes that do not read each other's rows (``dbwrite.execute``: one round trip on
    PostgreSQL); the driver sends back None."""

    transactional = True

    def __init__(self, statements: list[Statement]) -> None:
        self.statements = statements

    def run(self) -> None:
        execute(self.statements)

    async def arun(self, cursor: Any) -> None:
        if self.statements:
            await cursor.execute(*one_statement(self.statements))


class Sync:
    """A call that needs Django's connection (the ORM): in a thread only."""

    transactional = False

    def __init__(self, call: Any) -> None:
        self.call = call

    def run(self) -> Any:
        return self.call()

    async def arun(self, cursor: Any) -> Any:
        raise NeedsThread


# --- in a database thread --------------------------------------------------------------------------


def run(steps: Steps[Any]) -> Any:
    """Drive ``steps`` through Django's connection (the caller holds the transaction); their
    return value."""
    value = None
    while True:
        try:
            step = steps.send(value)
        except StopIteration as done:
            return done.value
        value = step.run()


# --- on the event loop -----------------------------------------------------------------------------


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


async def _drive(steps: Steps[Any], conn: Any, cursor: Any) -> Any:
    """Run ``steps``; the transaction opens with the first step that needs one and commits when
    they are done (an exception rolls it back)."""
    async with contextlib.AsyncExitStack() as stack:
        opened = False
        value = None
        while True:
            try:
                step = steps.send(value)
            except StopIteration as done:
                return done.value
            if step.transactional and not opened:
                await stack.enter_async_context(conn.transaction())
                opened = True
            value = await step.arun(cursor)


async def arun(steps: Steps[Any], *, name: str = "") -> Any:
    """Drive ``steps`` in one transaction on this loop's connection; their return value, or
    ``FALLBACK`` when they must run in a thread instead (rolled back, nothing written). Errors
    the steps raise (a refusal, a resend) roll back and propagate."""
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
        # into a unique client_id) the thread's attempt finds the stored message by its
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
