"""The Redis cache backend: Django's, with one Redis client per process; and the only code that
reaches into Django's Redis cache internals.

Django keeps a cache backend per thread and, under ASGI, per asyncio task, and each backend
instance builds its own client with its own connection pool. A socket's commands run in tasks and
``sync_to_async`` threads of their own, so every one that touched the cache (a throttle, the frame
budget) opened a pool and a Redis connection, and the throttle's script (made once per client)
kept each of them alive: measured, about two Redis connections per open socket, growing with
every socket the process had served (docs/benchmarks.md, "Nothing per message for the garbage
collector"). redis-py's client and pool are
thread-safe; here every backend instance with the same servers and options shares one, and the
client is built once per pool instead of on every call.

Django's cache API has no way to run a Lua script, which the throttle needs (one round trip and
an atomic create-with-expiry for any number of counters): ``redis_script`` and
``async_redis_script`` register one on the cache's own Redis server, or answer None when the cache
is not Redis (the caller then uses the cache API).

Private names used, as of Django ``CHECKED_VERSION``: ``RedisCache._cache`` (a cached property),
``._servers`` and ``._options``; ``RedisCacheClient._get_connection_pool(write)``, ``._client``
(the redis-py class), ``._servers`` and ``._pool_options``; and ``RedisCacheClient.get_client``,
public in name but undocumented. tests/test_cache_adapter.py checks the installed version, each
name with its signature, and the scripts end to end against Redis.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from typing import Any

from django.core.cache import cache
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient
from django.utils.functional import cached_property

# The Django feature release these internals were read in (requirements.txt pins Django).
# Upgrading: re-read them in the new release, then update this.
CHECKED_VERSION = (5, 2)

_shared: dict[tuple[Any, ...], SharedRedisCacheClient] = {}
_lock = threading.Lock()


class SharedRedisCacheClient(RedisCacheClient):
    """Django's client, keeping one ``redis.Redis`` per connection pool."""

    def __init__(self, servers: list[str], **options: Any) -> None:
        super().__init__(servers, **options)
        self._clients: dict[int, Any] = {}  # by id() of the pool, which the client keeps alive

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients.setdefault(id(pool), self._client(connection_pool=pool))
        return client


class RedisCache(DjangoRedisCache):
    """``django.core.cache.backends.redis.RedisCache`` whose instances share their client."""

    @cached_property
    def _cache(self) -> SharedRedisCacheClient:
        key = (tuple(self._servers), repr(sorted(self._options.items())))
        with _lock:
            client = _shared.get(key)
            if client is None:
                client = _shared[key] = SharedRedisCacheClient(self._servers, **self._options)
        return client


def _cache_client() -> RedisCacheClient | None:
    """The default cache's Django client when that cache is Redis (``cache`` is a per-thread proxy:
    its ``_cache`` is the backend's client; locmem's ``_cache`` is its dict)."""
    client = getattr(cache, "_cache", None)
    return client if isinstance(client, RedisCacheClient) else None


def redis_client() -> Any | None:
    """The redis-py client of the default cache (its write side); None when that cache is not Redis."""
    client = _cache_client()
    return None if client is None else client.get_client(write=True)


_scripts: weakref.WeakKeyDictionary[RedisCacheClient, dict[str, Any]] = weakref.WeakKeyDictionary()
_async_scripts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Any]] = weakref.WeakKeyDictionary()
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()


def redis_script(source: str) -> Any | None:
    """The Lua ``source`` as a redis-py ``Script`` on the default cache's Redis (its write side),
    made once per cache client; None when the cache is not Redis. Keys passed to it must be made
    with ``cache.make_and_validate_key``."""
    client = _cache_client()
    if client is None:
        return None
    scripts = _scripts.get(client)
    script = scripts.get(source) if scripts is not None else None
    if script is None:
        with _lock:
            scripts = _scripts.setdefault(client, {})
            script = scripts.get(source)
            if script is None:
                script = scripts[source] = client.get_client(write=True).register_script(source)
    return script


def async_redis_script(source: str) -> Any | None:
    """``redis_script`` for the running event loop: the script on an asynchronous client of that
    loop (redis-py's asyncio clients belong to one loop), to the same server with the same options;
    None when the cache is not Redis."""
    client = _cache_client()
    if client is None:
        return None
    loop = asyncio.get_running_loop()
    scripts = _async_scripts.setdefault(loop, {})
    script = scripts.get(source)
    if script is None:
        script = scripts[source] = _async_client(client, loop).register_script(source)
    return script


def _async_client(client: RedisCacheClient, loop: asyncio.AbstractEventLoop) -> Any:
    connection = _async_clients.get(loop)
    if connection is None:
        from redis.asyncio import Redis

        # Django's options name a synchronous parser class: the asynchronous client keeps its own.
        options = {name: value for name, value in client._pool_options.items() if name != "parser_class"}
        connection = _async_clients[loop] = Redis.from_url(client._servers[0], **options)
    return connection


def async_redis_client() -> Any | None:
    """An asynchronous redis-py client of the running event loop to the default cache's Redis (the
    same server and options as ``async_redis_script``'s); None when the cache is not Redis."""
    client = _cache_client()
    if client is None:
        return None
    return _async_client(client, asyncio.get_running_loop())
