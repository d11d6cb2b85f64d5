"""What a server process holds does not grow with its sockets: the Redis cache is one client per
process (``messenger.cache``), and a send on the event loop builds no Django database wrapper
(``messenger.db.offline``) — each socket command runs in an asyncio task of its own, where both
used to be built anew."""

import pytest
import redis
from channels.db import database_sync_to_async as db
from django.conf import settings
from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper

from messenger.db import offline
from tests.conftest import new_client_id
from tests.test_realtime_protocol import _start, _visitor, _world

pytestmark = [pytest.mark.django_db(transaction=True)]


def _redis_connections() -> int:
    with redis.Redis.from_url(settings.CACHES["default"]["LOCATION"]) as client:
        return int(client.info("clients")["connected_clients"])


@pytest.mark.postgres
async def test_sockets_share_the_process_redis_connections():
    if not settings.CACHES["default"]["BACKEND"].endswith("RedisCache"):
        pytest.skip("the embedded default has no Redis")
    world = await db(_world)()
    first, _, _ = await _visitor(world["inbox"])
    await _start(first)  # the process's pools are open from here on
    before = await db(_redis_connections)()
    sockets = []
    for _ in range(8):
        socket, _, _ = await _visitor(world["inbox"])
        await _start(socket)  # the frame budget's lease and the send limits: the cache, in tasks and threads
        ack = await socket.command("message.send", client_id=new_client_id(), body="and again")
        assert ack["type"] == "ack", ack
        sockets.append(socket)
    after = await db(_redis_connections)()
    # It was two Redis connections per socket, kept as long as the process lived.
    assert after - before <= 3, (before, after)
    for socket in [first, *sockets]:
        await socket.close()


@pytest.mark.postgres
async def test_sends_on_the_event_loop_build_no_database_wrapper(monkeypatch):
    world = await db(_world)()
    visitor, _, _ = await _visitor(world["inbox"])
    await _start(visitor)  # the start runs in a thread, whose connection is its own
    built = []
    original = BaseDatabaseWrapper.__init__

    def counting(self, *args, **kwargs):
        built.append(type(self))
        original(self, *args, **kwargs)

    monkeypatch.setattr(BaseDatabaseWrapper, "__init__", counting)
    for index in range(5):
        ack = await visitor.command("message.send", client_id=new_client_id(), body=f"more {index}")
        assert ack["type"] == "ack", ack
    assert built == []  # it was one per send
    await visitor.close()


def test_the_offline_wrapper_never_connects():
    with pytest.raises(RuntimeError, match="never connects"):
        offline().cursor()
    assert offline().vendor == connection.vendor
