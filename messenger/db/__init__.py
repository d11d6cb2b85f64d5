"""Database helpers shared by the thread path and the event-loop path."""

from __future__ import annotations

import functools

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper


@functools.cache
def offline() -> BaseDatabaseWrapper:
    """The default database's wrapper for what needs no connection — its vendor, its operations
    (value adaptation, quoting), field preparation — the same object in every thread and task.

    ``django.db.connection`` is per thread and, on the event loop, per asyncio task: every socket
    command runs in a task of its own, and each one that touched it built a new wrapper (its
    features, operations, introspection…, all cyclic garbage for the collector): one per message
    (docs/benchmarks.md, "Nothing per message for the garbage collector"). This one is built once,
    shares Django's settings dictionary (so it follows the test database's name) and never
    connects: a use that would open a connection raises instead of opening one shared by every
    thread.
    """
    wrapper = connections.create_connection(DEFAULT_DB_ALIAS)
    wrapper.connect = _refuse  # type: ignore[method-assign]
    return wrapper


def _refuse() -> None:
    raise RuntimeError("messenger.db.offline() never connects: use django.db.connection for queries")
