"""The socket-frame budget is the visitor session's, shared by its sockets and server processes:
``MESSENGER_WIDGET_POLL_RATE_PER_SESSION`` does not multiply with the number of open tabs."""

from __future__ import annotations

import asyncio
import json
import logging
import os

import pytest
import websockets
from channels.db import database_sync_to_async
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from django.test import override_settings

from messenger.cache import redis_client
from messenger.protocol import CLOSE_THROTTLED
from messenger.realtime import frame_budget
from messenger.realtime.frame_budget import SessionFrameBudget
from tests.conftest import Socket, bootstrap, visitor_socket
from tests.factories import VISITOR_ORIGIN, make_branch, make_inbox
from tests.live import run_async

# --- the budget alone ------------------------------------------------------------------------------


pytestmark = pytest.mark.rate_window


def _take(budget: SessionFrameBudget, times: int, *, now: float = 600.0) -> list[bool]:
    async def run() -> list[bool]:
        return [await budget.take(now=now) for _ in range(times)]

    return asyncio.run(run())


def test_sockets_of_one_session_share_the_window_in_chunks(monkeypatch):
    calls: list[int] = []
    real = frame_budget.increment_window

    def counting(key: str, amount: int, timeout: int) -> int:
        calls.append(amount)
        return real(key, amount, timeout)

    monkeypatch.setattr(frame_budget, "increment_window", counting)
    first = SessionFrameBudget(7, limit=100, period=60)
    second = SessionFrameBudget(7, limit=100, period=60)
    assert first.chunk == 5
    assert all(_take(first, 50))
    # One cache round trip per chunk, not per frame.
    assert calls == [5] * 10
    assert all(_take(second, 50))
    assert _take(second, 1) == [False]
    assert _take(first, 1) == [False]
    # Another session has its own counter; the next window starts afresh.
    assert all(_take(SessionFrameBudget(8, limit=100, period=60), 100))
    assert _take(first, 1, now=660.0) == [True]


def test_a_lease_never_grants_past_the_limit():
    # 12 frames, chunks of 5: the third lease gets the 2 frames left, not 5.
    first = SessionFrameBudget(9, limit=12, period=60, chunk=5)
    second = SessionFrameBudget(9, limit=12, period=60, chunk=5)
    assert all(_take(first, 5)) and all(_take(second, 5))
    assert _take(first, 3) == [True, True, False]
    assert _take(second, 1) == [False]


def test_cache_down_fails_open_for_the_window_with_one_warning(monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(frame_budget, "increment_window", broken)
    budget = SessionFrameBudget(3, limit=2, period=60)
    with caplog.at_level(logging.WARNING, logger="messenger.realtime.frame_budget"):
        assert all(_take(budget, 10))
    assert len([r for r in caplog.records if "frame budget cache unavailable" in r.message]) == 1


@pytest.mark.redis
@pytest.mark.skipif(not isinstance(caches["default"], RedisCache), reason="the Redis cache backend")
def test_redis_counter_is_created_with_its_window_expiry():
    assert frame_budget.increment_window("frames:test:1", 5, 61) == 5
    assert frame_budget.increment_window("frames:test:1", 5, 61) == 10
    backend = caches["default"]
    key = backend.make_and_validate_key("frames:test:1")
    assert 0 < redis_client().ttl(key) <= 61
    # The counter reads back through the ordinary cache API.
    assert cache.get("frames:test:1") == 10


# --- real sockets --------------------------------------------------------------------------------

socket_test = pytest.mark.django_db(transaction=True)


def _session():
    inbox = make_inbox(make_branch())
    return inbox, bootstrap(inbox)


async def _open(inbox, boot) -> Socket:
    socket = visitor_socket(inbox, boot)
    connected, _ = await socket.connect()
    assert connected
    await socket.expect("hello")
    return socket


async def _pings(socket: Socket, count: int) -> tuple[int, list[dict]]:
    """Send ``count`` pings; the pongs that came back, and the other frames up to the close if any."""
    for _ in range(count):
        await socket.send({"type": "ping"})
    pongs, others = 0, []
    while pongs < count:
        frame = await socket.recv()
        if frame["type"] == "pong":
            pongs += 1
            continue
        others.append(frame)
        if frame["type"] == "__closed__":
            break
    return pongs, others


@socket_test
@override_settings(MESSENGER_WIDGET_POLL_RATE_PER_SESSION="10/min")
async def test_two_sockets_of_one_session_share_one_budget():
    inbox, boot = await database_sync_to_async(_session)()
    first = await _open(inbox, boot)
    second = await _open(inbox, boot)
    # Each socket alone stays well within its own bucket of 10...
    assert await _pings(first, 6) == (6, [])
    pongs, others = await _pings(second, 6)
    # ...but together they are past the session's 10: the 11th frame closes the socket.
    assert pongs == 4
    assert [f.get("code") for f in others] == ["rate_limited", CLOSE_THROTTLED]
    # The session stays refused for the window, whichever of its sockets asks.
    _, others = await _pings(first, 1)
    assert others[0]["code"] == "rate_limited"
    third = await _open(inbox, boot)
    _, others = await _pings(third, 1)
    assert [f.get("code") for f in others] == ["rate_limited", CLOSE_THROTTLED]


@socket_test
@override_settings(MESSENGER_WIDGET_POLL_RATE_PER_SESSION="10/min")
async def test_different_sessions_each_within_budget_are_not_refused():
    inbox, boot = await database_sync_to_async(_session)()
    other_boot = await database_sync_to_async(bootstrap)(inbox)
    assert other_boot["pubsub_token"] != boot["pubsub_token"]
    first = await _open(inbox, boot)
    second = await _open(inbox, other_boot)
    assert await _pings(first, 8) == (8, [])
    assert await _pings(second, 8) == (8, [])
    assert await first.nothing() and await second.nothing()
    await first.close()
    await second.close()


@socket_test
@override_settings(MESSENGER_WIDGET_POLL_RATE_PER_SESSION="10/min")
async def test_a_socket_still_has_its_own_bucket_when_the_cache_is_down(monkeypatch):
    def broken(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(frame_budget, "increment_window", broken)
    inbox, boot = await database_sync_to_async(_session)()
    first = await _open(inbox, boot)
    second = await _open(inbox, boot)
    # Fail open across sockets...
    assert await _pings(first, 8) == (8, [])
    assert await _pings(second, 8) == (8, [])
    # ...but never past one socket's own bucket.
    pongs, others = await _pings(first, 4)
    assert pongs == 2
    assert [f.get("code") for f in others] == ["rate_limited", CLOSE_THROTTLED]
    await second.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.redis
@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis: processes share only Redis")
def test_sockets_on_two_server_processes_share_the_session_budget(live_server_factory):
    inbox, boot = _session()
    servers = [live_server_factory({"MESSENGER_WIDGET_POLL_RATE_PER_SESSION": "40/min"}) for _ in range(2)]
    query = f"/ws/widget/?widget_token={inbox.widget_token}&token={boot['session_token']}"

    async def pings(socket, count: int) -> tuple[int, int | None]:
        for _ in range(count):
            await socket.send(json.dumps({"type": "ping"}))
        pongs = 0
        try:
            while pongs < count:
                frame = json.loads(await asyncio.wait_for(socket.recv(), 10))
                pongs += frame["type"] == "pong"
        except websockets.ConnectionClosed as closed:
            return pongs, closed.rcvd.code if closed.rcvd else None
        return pongs, None

    async def scenario() -> None:
        async with (
            websockets.connect(f"ws://127.0.0.1:{servers[0].port}{query}", origin=VISITOR_ORIGIN) as first,
            websockets.connect(f"ws://127.0.0.1:{servers[1].port}{query}", origin=VISITOR_ORIGIN) as second,
        ):
            for socket in (first, second):
                assert json.loads(await socket.recv())["type"] == "hello"
            # Chunks of 2: 20 + 20 frames use the 40 exactly; one more is refused on either process.
            assert await pings(first, 20) == (20, None)
            assert await pings(second, 21) == (20, CLOSE_THROTTLED)

    run_async(scenario())
