"""The adapter to channels-redis's internals (messenger/realtime/redis_adapter.py) still fits the
installed channels-redis: its version, every private name it uses with its signature, and both of
its operations end to end against Redis. Each fails when channels-redis changes underneath."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from importlib.metadata import version
from typing import Any

import pytest
import redis.asyncio
from channels.layers import InMemoryChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer, RedisPubSubLoopLayer, RedisSingleShardConnection
from django.conf import settings
from redis.asyncio.client import PubSub
from redis.asyncio.connection import AbstractConnection

from messenger.realtime import redis_adapter


def _parameters(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_channels_redis_is_the_release_the_adapter_was_read_in():
    assert version("channels-redis") == redis_adapter.CHECKED_VERSION, (
        "channels-redis changed: re-read the private names listed in messenger/realtime/redis_adapter.py "
        "in the new release, then update CHECKED_VERSION"
    )


async def test_the_private_names_the_adapter_uses_are_there():
    # No connection is made: the layer connects on first use, and _ensure_redis only builds clients.
    layer = RedisPubSubChannelLayer(hosts=[{"address": "redis://127.0.0.1:1/0"}], prefix="adapter")
    assert _parameters(RedisPubSubChannelLayer._get_layer) == ["self"]
    inner = layer._get_layer()
    assert isinstance(inner, RedisPubSubLoopLayer)
    assert inner is layer._get_layer()  # one per event loop
    assert _parameters(RedisPubSubLoopLayer._get_group_channel_name) == ["self", "group"]
    assert isinstance(inner._get_group_channel_name("g"), str)
    assert [type(shard) for shard in inner._shards] == [RedisSingleShardConnection]
    shard = inner._shards[0]
    assert _parameters(RedisSingleShardConnection._ensure_redis) == ["self"]
    assert shard._redis is None and shard._pubsub is None
    shard._ensure_redis()
    assert isinstance(shard._redis, redis.asyncio.Redis)
    assert isinstance(shard._pubsub, PubSub)
    assert shard._pubsub.connection is None  # until the first subscribe
    assert _parameters(shard._redis.pipeline)[:1] == ["transaction"]
    assert _parameters(AbstractConnection.register_connect_callback) == ["self", "callback"]
    assert isinstance(layer.serialize({"type": "t"}), bytes)
    await layer.flush()


async def test_other_layers_take_the_public_path():
    layer = InMemoryChannelLayer()
    assert await redis_adapter.publish_pipelined(layer, [(["g"], {"type": "t"})]) is False
    assert redis_adapter.on_pubsub_reconnect(layer, print) is False


class Heard:
    def __init__(self) -> None:
        self.connections: list[Any] = []

    def reconnected(self, connection: Any) -> None:
        self.connections.append(connection)


@pytest.mark.redis
async def test_pipelined_publish_and_reconnect_hook_work_against_redis():
    if not settings.CHANNEL_LAYERS["default"]["BACKEND"].startswith("channels_redis"):
        pytest.skip("needs Redis (REDIS_URL)")
    url = settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"][0]["address"]
    name = f"adapter-{uuid.uuid4().hex[:12]}"
    layer = RedisPubSubChannelLayer(
        hosts=[{"address": url, "socket_timeout": None, "client_name": name}], prefix=f"t{uuid.uuid4().hex[:8]}"
    )
    admin = redis.asyncio.Redis.from_url(url)
    try:
        channel = await layer.new_channel("adapter.")
        await layer.group_add("first", channel)
        await layer.group_add("second", channel)

        async def received(count: int) -> list[int]:
            return [(await asyncio.wait_for(layer.receive(channel), 5))["n"] for _ in range(count)]

        items = [(["first"], {"type": "t", "n": 1}), (["first", "second"], {"type": "t", "n": 2})]
        assert await redis_adapter.publish_pipelined(layer, items) is True
        assert await received(3) == [1, 2, 2]  # in order, once per group, as group_send would

        heard = Heard()
        assert redis_adapter.on_pubsub_reconnect(layer, heard.reconnected) is True
        subscriber = [client for client in await admin.client_list(_type="pubsub") if client["name"] == name]
        assert len(subscriber) == 1
        assert await admin.client_kill_filter(_id=subscriber[0]["id"]) == 1
        for _ in range(50):
            if heard.connections:
                break
            await asyncio.sleep(0.1)
        assert len(heard.connections) == 1
        # The subscriptions are back: a publish reaches the channel again.
        assert await redis_adapter.publish_pipelined(layer, [(["second"], {"type": "t", "n": 3})]) is True
        assert await received(1) == [3]
    finally:
        await admin.aclose()
        await layer.flush()
