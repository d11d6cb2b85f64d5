"""The only code that reaches into channels-redis's private internals.

The pub/sub layer's public API (``send``, ``group_send``, ``receive``, ``new_channel``,
``group_add``/``group_discard``, ``flush``, ``serialize``) cannot do two things this project needs:

* ``publish_pipelined``: publish a batch of frames in one pipelined round trip. The layer publishes
  one group at a time behind a per-process lock, each waiting for its reply on the (busy) event
  loop: measured here, that serialised every broadcast of a process and capped delivery well
  below what the database sustained.
* ``on_pubsub_reconnect``: hear the pub/sub connection reconnect. redis-py renews a dropped
  subscriber connection and its subscriptions within milliseconds, inside the read that failed;
  frames published in that gap are lost, and nothing in the layer's API says so.

Private names used, as of ``CHECKED_VERSION``: ``RedisPubSubChannelLayer._get_layer()``;
``RedisPubSubLoopLayer._shards`` and ``._get_group_channel_name(group)``;
``RedisSingleShardConnection._ensure_redis()``, ``._redis`` and ``._pubsub``. Everything reached
through them (a redis-py client, pipeline, PubSub and its connection's connect callbacks) is
redis-py's public API.

Both answer False on another layer, or when these internals are not found, and the caller takes
the public path (one ``group_send`` at a time; the probes alone notice an outage). So that an
upgrade cannot switch them off unnoticed, tests/test_redis_adapter.py checks the installed
version, every name above with its signature, and both operations end to end against Redis.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# The channels-redis release these internals were read in (requirements.txt pins it). Upgrading:
# re-read them in the new release, then update this.
CHECKED_VERSION = "4.3.0"


def _shards(layer: Any) -> list[Any]:
    """The pub/sub shard connections of the layer on this event loop ([] for another layer)."""
    get_layer = getattr(type(layer), "_get_layer", None)
    if get_layer is None:
        return []
    return list(getattr(get_layer(layer), "_shards", None) or ())


async def publish_pipelined(layer: Any, items: list[tuple[list[str], dict[str, Any]]]) -> bool:
    """Publish every ``(groups, message)`` of ``items`` in one Redis round trip, in order, without
    the layer's lock, as ``group_send`` would to each group; False (nothing sent) when the layer is
    not channels-redis's pub/sub layer with one shard."""
    get_layer = getattr(type(layer), "_get_layer", None)
    if get_layer is None:
        return False
    inner = get_layer(layer)
    shards = getattr(inner, "_shards", None)
    if not shards or len(shards) != 1:
        return False
    shard = shards[0]
    shard._ensure_redis()
    pipeline = shard._redis.pipeline(transaction=False)
    for groups, message in items:
        payload = layer.serialize(message)
        for group in groups:
            pipeline.publish(inner._get_group_channel_name(group), payload)
    await pipeline.execute()
    return True


def on_pubsub_reconnect(layer: Any, callback: Callable[[Any], Any]) -> bool:
    """Have ``callback`` (a method: redis-py keeps it weakly) called with the connection each time
    the layer's pub/sub connection of this event loop reconnects; False when there is none (another
    layer, or nothing subscribed yet)."""
    found = False
    for shard in _shards(layer):
        pubsub = getattr(shard, "_pubsub", None)
        connection = getattr(pubsub, "connection", None)
        if connection is not None:
            connection.register_connect_callback(callback)
            found = True
    return found
