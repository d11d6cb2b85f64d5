"""Throttles: bootstrap per IP / per widget token (HTTP 429), visitor sends per session / per IP,
the per-conversation flood limit; denied input stores nothing."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client, override_settings

from messenger import throttle
from messenger.models import Contact, Conversation, Message
from tests.conftest import Socket, bootstrap, new_client_id
from tests.factories import VISITOR_ORIGIN, make_branch, make_inbox, make_user

pytestmark = pytest.mark.rate_window


def test_hit_counts_in_fixed_windows():
    first = [throttle.hit("t", "me", "3/min", now=120.0) for _ in range(4)]
    assert [h.allowed for h in first] == [True, True, True, False]
    assert first[-1].retry_after == 60
    assert throttle.hit("t", "me", "3/min", now=150.0).retry_after == 30
    # The next window starts afresh; another identity never shares a counter.
    assert throttle.hit("t", "me", "3/min", now=180.0).allowed
    assert throttle.hit("t", "you", "3/min", now=150.0).allowed
    assert throttle.count("t", "me", "3/min", now=130.0) == 5


def test_empty_rate_or_identity_is_not_limited():
    assert all(throttle.hit("t", "me", "").allowed for _ in range(5))
    assert all(throttle.hit("t", None, "1/min").allowed for _ in range(5))
    assert all(throttle.hit("t", "me", "0/min").allowed for _ in range(5))


def test_cache_down_fails_open(monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(throttle, "increment_counters", broken)
    assert all(throttle.hit("t", "me", "1/min").allowed for _ in range(3))
    assert all(h.allowed for h in throttle.hit_many([("a", "me", "1/min"), ("b", "me", "1/min")] * 2))
    assert "throttle cache unavailable" in caplog.text


def test_a_real_dead_cache_fails_open(settings):
    # A cache server nobody listens on: the real client errors, the limit fails open.
    backend = settings.CACHES["default"]["BACKEND"]
    if not backend.endswith("RedisCache"):
        pytest.skip("the embedded default has no cache server to lose")
    settings.CACHES = {
        "default": {
            "BACKEND": backend,
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    assert all(throttle.hit("t", "me", "1/min").allowed for _ in range(3))


def test_redis_counters_are_created_with_their_window_and_keep_it(settings):
    # SET NX EX then INCRBY in one Lua script on Redis: a counter never lives without its TTL.
    if not settings.CACHES["default"]["BACKEND"].endswith("RedisCache"):
        pytest.skip("Redis only")
    from django.core.cache import cache

    from messenger.cache import redis_client

    cache.delete_many(["ttl-a", "ttl-b"])
    assert throttle.increment_counters([("ttl-a", 2, 30), ("ttl-b", 1, 90)]) == [2, 1]
    assert throttle.increment_counters([("ttl-a", 3, 5)]) == [5]
    redis = redis_client()
    ttl_a = redis.ttl(cache.make_and_validate_key("ttl-a"))
    ttl_b = redis.ttl(cache.make_and_validate_key("ttl-b"))
    assert 25 <= ttl_a <= 30  # the first window's expiry is kept, not reset to 5
    assert 85 <= ttl_b <= 90
    cache.delete_many(["ttl-a", "ttl-b"])


def test_batched_hits_count_each_limit_once_per_call():
    hits = throttle.hit_many([("x", "me", "2/min"), ("y", "me", "1/min")], now=600.0)
    assert [h.allowed for h in hits] == [True, True]
    hits = throttle.hit_many([("x", "me", "2/min"), ("y", "me", "1/min")], now=601.0)
    assert [h.allowed for h in hits] == [True, False]
    assert throttle.count("x", "me", "2/min", now=602.0) == 2


def _post_bootstrap(client: Client, inbox, ip: str = "10.0.0.1", **extra):
    return client.post(
        "/api/widget/bootstrap/",
        {"widget_token": inbox.widget_token, **extra},
        content_type="application/json",
        HTTP_ORIGIN=VISITOR_ORIGIN,
        REMOTE_ADDR=ip,
    )


@pytest.mark.django_db
@override_settings(MESSENGER_WIDGET_BOOTSTRAP_RATE_PER_IP="3/min")
def test_bootstrap_per_ip_answers_429_with_retry_after():
    inbox = make_inbox(make_branch())
    client = Client()
    for _ in range(3):
        assert _post_bootstrap(client, inbox).status_code == 200
    contacts = Contact.objects.count()
    response = _post_bootstrap(client, inbox)
    assert response.status_code == 429
    body = response.json()
    assert body["code"] == "rate_limited"
    assert body["detail"]
    assert 1 <= body["retry_after"] <= 60
    assert response["Retry-After"] == str(body["retry_after"])
    assert Contact.objects.count() == contacts
    # Another IP is not affected.
    assert _post_bootstrap(client, inbox, ip="10.0.0.2").status_code == 200


@pytest.mark.django_db
@override_settings(MESSENGER_WIDGET_BOOTSTRAP_RATE_PER_TOKEN="4/min")
def test_bootstrap_per_widget_token_across_ips():
    inbox = make_inbox(make_branch())
    other = make_inbox(make_branch())
    client = Client()
    for index in range(4):
        assert _post_bootstrap(client, inbox, ip=f"10.0.1.{index}").status_code == 200
    assert _post_bootstrap(client, inbox, ip="10.0.1.99").status_code == 429
    assert _post_bootstrap(client, other, ip="10.0.1.99").status_code == 200


@pytest.mark.django_db
def test_bootstrap_honeypot_is_rejected_and_stores_nothing():
    inbox = make_inbox(make_branch())
    response = _post_bootstrap(Client(), inbox, website="http://spam.example")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert Contact.objects.count() == 0
    assert _post_bootstrap(Client(), inbox, website="").status_code == 200


pytestmark_async = pytest.mark.django_db(transaction=True)


def from_ip(application, ip: str):
    """The ASGI app as reached from ``ip`` (the test communicator sets no client address)."""

    async def app(scope, receive, send):
        return await application({**scope, "client": (ip, 40000)}, receive, send)

    return app


def visitor_socket_from(inbox, boot, ip: str) -> Socket:
    from project.asgi import application

    path = f"/ws/widget/?widget_token={inbox.widget_token}&token={boot['session_token']}"
    return Socket(WebsocketCommunicator(from_ip(application, ip), path, headers=[(b"origin", VISITOR_ORIGIN.encode())]))


async def _visitor(inbox, *, ip: str = "127.0.0.1"):
    boot = await database_sync_to_async(bootstrap)(inbox, ip=ip)
    socket = visitor_socket_from(inbox, boot, ip)
    connected, _ = await socket.connect()
    assert connected
    await socket.expect("hello")
    return socket


async def _setup():
    branch = await database_sync_to_async(make_branch)()
    inbox = await database_sync_to_async(make_inbox)(branch)
    await database_sync_to_async(make_user)(branch=branch)
    return inbox


def _count(model=Message, **filters) -> int:
    return model.objects.filter(**filters).count()


@pytestmark_async
@override_settings(MESSENGER_WIDGET_SEND_RATE_PER_SESSION="3/min")
async def test_send_per_session_error_frame_and_nothing_stored():
    inbox = await _setup()
    visitor = await _visitor(inbox)
    for index in range(3):
        ack = await visitor.command("message.send", client_id=new_client_id(), body=f"m{index}")
        assert ack["type"] == "ack", ack
    before = await database_sync_to_async(_count)()
    error = await visitor.command("message.send", client_id=new_client_id(), body="one too many")
    assert error["type"] == "error"
    assert error["code"] == "rate_limited"
    assert 1 <= error["retry_after"] <= 60
    assert await database_sync_to_async(_count)() == before
    # The connection stays open.
    await visitor.send({"type": "ping"})
    assert (await visitor.expect("pong"))["type"] == "pong"
    await visitor.close()


@pytestmark_async
@override_settings(MESSENGER_WIDGET_SEND_RATE_PER_IP="4/min")
async def test_send_per_ip_across_sessions():
    inbox = await _setup()
    first = await _visitor(inbox)
    second = await _visitor(inbox)
    for index in range(2):
        assert (await first.command("message.send", client_id=new_client_id(), body=f"a{index}"))["type"] == "ack"
        assert (await second.command("message.send", client_id=new_client_id(), body=f"b{index}"))["type"] == "ack"
    error = await first.command("message.send", client_id=new_client_id(), body="too many")
    assert error["code"] == "rate_limited"
    assert await database_sync_to_async(_count)() == 4
    await first.close()
    await second.close()


@pytestmark_async
async def test_conversation_flood_limit_default_twenty_a_minute():
    inbox = await _setup()
    visitor = await _visitor(inbox)
    for index in range(20):
        ack = await visitor.command("message.send", client_id=new_client_id(), body=f"m{index}")
        assert ack["type"] == "ack", (index, ack)
    error = await visitor.command("message.send", client_id=new_client_id(), body="flood")
    assert error["code"] == "rate_limited"
    conversation_id = ack["data"]["conversation_id"]
    assert await database_sync_to_async(_count)(conversation_id=conversation_id, direction="in") == 20
    # A resend of a stored client id is not a new message: still acked.
    again = await visitor.command("message.send", client_id=ack["data"]["message"]["client_id"], body="m19")
    assert again["type"] == "ack" and again["data"]["created"] is False
    await visitor.close()


@pytestmark_async
async def test_send_honeypot_rejected_with_invalid_and_nothing_stored():
    inbox = await _setup()
    visitor = await _visitor(inbox)
    error = await visitor.command("message.send", client_id=new_client_id(), body="buy now", website="x")
    assert error["type"] == "error" and error["code"] == "invalid"
    assert await database_sync_to_async(_count)() == 0
    assert await database_sync_to_async(_count)(Conversation) == 0
    ack = await visitor.command("message.send", client_id=new_client_id(), body="hello", website="")
    assert ack["type"] == "ack"
    await visitor.close()


@pytestmark_async
@override_settings(MESSENGER_MESSAGE_MAX_LENGTH=100)
async def test_message_length_limit():
    inbox = await _setup()
    visitor = await _visitor(inbox)
    error = await visitor.command("message.send", client_id=new_client_id(), body="x" * 101)
    assert error["code"] == "invalid" and "100" in error["message"]
    assert await database_sync_to_async(_count)(Conversation) == 0
    assert (await visitor.command("message.send", client_id=new_client_id(), body="x" * 100))["type"] == "ack"
    await visitor.close()


@pytestmark_async
async def test_blocked_contact_cannot_write():
    inbox = await _setup()
    visitor = await _visitor(inbox)
    ack = await visitor.command("message.send", client_id=new_client_id(), body="first")
    conversation_id = ack["data"]["conversation_id"]
    await database_sync_to_async(Contact.objects.update)(blocked=True)
    error = await visitor.command("message.send", client_id=new_client_id(), body="second")
    assert error["type"] == "error" and error["code"] == "blocked"
    assert await database_sync_to_async(_count)(conversation_id=conversation_id) == 1
    await visitor.close()
