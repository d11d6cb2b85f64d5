"""The adapter to Django's Redis cache internals (messenger/cache.py) still fits the installed
Django: its version, every private name it uses with its signature, and the shared client and the
scripts end to end against Redis. Each fails when Django changes underneath."""

from __future__ import annotations

import asyncio
import inspect
import threading
from typing import Any

import django
import pytest
import redis
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient
from django.utils.functional import cached_property

from messenger import cache as cache_adapter
from messenger.cache import RedisCache, SharedRedisCacheClient, async_redis_script, redis_client, redis_script

# Adds ARGV[1] to KEYS[1] and answers the new value.
ADD = "return redis.call('INCRBY', KEYS[1], ARGV[1])"


def _parameters(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_django_is_the_release_the_adapter_was_read_in():
    assert django.VERSION[:2] == cache_adapter.CHECKED_VERSION, (
        "Django changed: re-read the private names listed in messenger/cache.py in the new release, "
        "then update CHECKED_VERSION"
    )


def test_the_private_names_the_adapter_uses_are_there():
    assert isinstance(inspect.getattr_static(DjangoRedisCache, "_cache"), cached_property)
    assert _parameters(RedisCacheClient.__init__)[:2] == ["self", "servers"]
    assert _parameters(RedisCacheClient._get_connection_pool) == ["self", "write"]
    assert _parameters(RedisCacheClient.get_client) == ["self", "key", "write"]
    # No connection is made: a client connects on its first command.
    backend = DjangoRedisCache("redis://127.0.0.1:1/0", {"OPTIONS": {"socket_timeout": 1}})
    assert backend._servers == ["redis://127.0.0.1:1/0"] and backend._options == {"socket_timeout": 1}
    client = backend._cache
    assert isinstance(client, RedisCacheClient)
    assert client._client is redis.Redis
    assert client._servers == ["redis://127.0.0.1:1/0"]
    assert client._pool_options["socket_timeout"] == 1 and "parser_class" in client._pool_options
    assert isinstance(client._get_connection_pool(True), redis.ConnectionPool)


def test_backends_with_the_same_servers_share_one_client_and_one_connection_pool():
    first = RedisCache("redis://127.0.0.1:1/0", {"OPTIONS": {"socket_timeout": 1}})
    second = RedisCache("redis://127.0.0.1:1/0", {"OPTIONS": {"socket_timeout": 1}})
    assert isinstance(first._cache, SharedRedisCacheClient)
    assert first._cache is second._cache
    assert first._cache.get_client(write=True) is second._cache.get_client(write=True)


def test_another_cache_answers_no_script():
    if isinstance(caches["default"], DjangoRedisCache):
        pytest.skip("needs a cache other than Redis (the embedded default)")
    assert redis_client() is None and redis_script(ADD) is None


@pytest.mark.redis
def test_the_scripts_run_on_the_cache_redis_and_are_made_once():
    if not isinstance(caches["default"], DjangoRedisCache):
        pytest.skip("needs Redis (REDIS_URL)")
    key = cache.make_and_validate_key("adapter:counter")
    assert redis_script(ADD) is redis_script(ADD)
    assert redis_script(ADD)(keys=[key], args=[2]) == 2
    # The same client from another thread (Django keeps a backend per thread).
    from_thread: list[Any] = []
    thread = threading.Thread(target=lambda: from_thread.append((redis_client(), redis_script(ADD))))
    thread.start()
    thread.join()
    assert from_thread == [(redis_client(), redis_script(ADD))]

    async def on_the_loop() -> tuple[int, bool]:
        script = async_redis_script(ADD)
        return await script(keys=[key], args=[3]), script is async_redis_script(ADD)

    assert asyncio.run(on_the_loop()) == (5, True)
    # What the scripts wrote is the cache's own value, read through the cache API.
    assert cache.get("adapter:counter") == 5
    cache.delete("adapter:counter")
