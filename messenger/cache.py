"""The Redis cache backend: Django's, with one Redis client per process.

Django keeps a cache backend per thread and, under ASGI, per asyncio task, and each backend
instance builds its own client with its own connection pool. A socket's commands run in tasks and
``sync_to_async`` threads of their own, so every one that touched the cache (a throttle, the frame
budget) opened a pool and a Redis connection, and the throttle's script (made once per client)
kept each of them alive: measured, about two Redis connections per open socket, growing with
every socket the process had served (docs/benchmarks.md, "Nothing per message for the garbage
collector"). redis-py's client and pool are
thread-safe; here every backend instance with the same servers and options shares one, and the
client is built once per pool instead of on every call.
"""

from __future__ import annotations

import threading
from typing import Any

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient
from django.utils.functional import cached_property

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
