"""Several server processes sharing Redis and PostgreSQL, and long-lived sockets on the Redis layer."""

import asyncio
import json
import os
import uuid

import pytest
import websockets
from django.test import Client

from messenger.actions.widget import do_bootstrap
from tests.factories import make_branch, make_inbox, make_user
from tests.live import run_async

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.redis,
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis: processes share only the Redis layer"),
]


class Peer:
    def __init__(self, socket):
        self.socket = socket

    async def recv_until(self, predicate, timeout=10.0):
        async def loop():
            while True:
                frame = json.loads(await self.socket.recv())
                if predicate(frame):
                    return frame

        return await asyncio.wait_for(loop(), timeout)

    async def send(self, frame):
        await self.socket.send(json.dumps(frame))


def _setup():
    branch = make_branch()
    inbox = make_inbox(branch)
    operator = make_user(branch=branch)
    client = Client()
    client.force_login(operator)
    boot = do_bootstrap(
        widget_token=inbox.widget_token, pubsub_token=None, page={}, origin="http://localhost", ip="127.0.0.1"
    )
    return inbox, boot, client.cookies["sessionid"].value


def test_visitor_on_one_process_and_operator_on_another_talk_live(live_server_factory):
    inbox, boot, cookie = _setup()
    server_a = live_server_factory()
    server_b = live_server_factory()

    async def scenario():
        visitor_url = (
            f"ws://127.0.0.1:{server_a.port}/ws/widget/?widget_token={inbox.widget_token}&token={boot['session_token']}"
        )
        operator_url = f"ws://127.0.0.1:{server_b.port}/ws/operator/"
        async with (
            websockets.connect(visitor_url, origin="http://localhost") as vs,
            websockets.connect(
                operator_url,
                origin=f"http://127.0.0.1:{server_b.port}",
                additional_headers={"Cookie": f"sessionid={cookie}"},
            ) as os_,
        ):
            visitor, operator = Peer(vs), Peer(os_)
            await visitor.recv_until(lambda f: f["type"] == "hello")
            await operator.recv_until(lambda f: f["type"] == "hello")
            await visitor.send({"type": "message.send", "ref": "1", "client_id": uuid.uuid4().hex, "body": "from A"})
            ack = await visitor.recv_until(lambda f: f.get("ref") == "1")
            conversation_id = ack["data"]["conversation_id"]
            message_id = ack["data"]["message"]["id"]
            got = await operator.recv_until(lambda f: f["type"] == "message.created")
            assert got["data"]["message"]["body"] == "from A"

            await visitor.send({"type": "typing.start", "conversation_id": conversation_id})
            await operator.recv_until(lambda f: f["type"] == "typing.started")
            await operator.send(
                {"type": "conversation.read", "conversation_id": conversation_id, "up_to_message_id": message_id}
            )
            read = await visitor.recv_until(lambda f: f["type"] == "conversation.read")
            assert read["data"]["reader"] == "agent"
            await operator.send(
                {
                    "type": "message.send",
                    "ref": "2",
                    "conversation_id": conversation_id,
                    "client_id": uuid.uuid4().hex,
                    "body": "from B",
                }
            )
            reply = await visitor.recv_until(
                lambda f: f["type"] == "message.created" and f["data"]["message"]["direction"] == "out"
            )
            assert reply["data"]["message"]["body"] == "from B"

    run_async(scenario())


def test_socket_on_the_redis_layer_stays_open_past_redis_py_default_timeout(live_server_factory):
    """redis-py 8 defaults socket_timeout to 5 s, which tears idle consumers down: not here."""
    inbox, boot, _ = _setup()
    server = live_server_factory()

    async def scenario():
        url = f"ws://127.0.0.1:{server.port}/ws/widget/?widget_token={inbox.widget_token}&token={boot['session_token']}"
        async with websockets.connect(url, origin="http://localhost") as socket:
            peer = Peer(socket)
            await peer.recv_until(lambda f: f["type"] == "hello")
            await asyncio.sleep(11)
            await peer.send({"type": "message.send", "ref": "x", "client_id": uuid.uuid4().hex, "body": "still here"})
            ack = await peer.recv_until(lambda f: f.get("ref") == "x")
            assert ack["type"] == "ack"
            # The group fan-out (through Redis) still reaches this socket after 11 idle seconds.
            await peer.recv_until(lambda f: f["type"] == "message.created")

    run_async(scenario())


def test_live_visitors_are_shared_by_every_process(live_server_factory):
    """A visitor on process A: staff on process B list them, get the frame, and invite them."""
    inbox, boot, cookie = _setup()
    server_a = live_server_factory()
    server_b = live_server_factory()

    def listed() -> dict:
        import urllib.request

        request = urllib.request.Request(  # noqa: S310 — the test's own server
            f"http://127.0.0.1:{server_b.port}/api/operator/visitors/", headers={"Cookie": f"sessionid={cookie}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return json.loads(response.read())

    async def scenario():
        operator_url = f"ws://127.0.0.1:{server_b.port}/ws/operator/"
        visitor_url = (
            f"ws://127.0.0.1:{server_a.port}/ws/widget/?widget_token={inbox.widget_token}&token={boot['session_token']}"
        )
        async with websockets.connect(
            operator_url,
            origin=f"http://127.0.0.1:{server_b.port}",
            additional_headers={"Cookie": f"sessionid={cookie}"},
        ) as os_:
            operator = Peer(os_)
            await operator.recv_until(lambda f: f["type"] == "hello")
            async with websockets.connect(visitor_url, origin="http://localhost") as vs:
                visitor = Peer(vs)
                await visitor.recv_until(lambda f: f["type"] == "hello")
                changed = await operator.recv_until(lambda f: f["type"] == "visitors.changed")
                assert [entry["id"] for entry in changed["data"]["upserts"]] == [boot["visitor_id"]]
                assert [entry["id"] for entry in (await asyncio.to_thread(listed))["results"]] == [boot["visitor_id"]]
                await operator.send(
                    {"type": "visitor.invite", "ref": "i1", "visitor_id": boot["visitor_id"], "body": "Hello from B"}
                )
                ack = await operator.recv_until(lambda f: f.get("ref") == "i1")
                assert ack["type"] == "ack", ack
                invitation = await visitor.recv_until(lambda f: f["type"] == "invitation")
                assert invitation["data"]["body"] == "Hello from B"
            left = await operator.recv_until(lambda f: f["type"] == "visitors.changed")
            assert left["data"]["removed"] == [boot["visitor_id"]]
            assert (await asyncio.to_thread(listed))["count"] == 0

    run_async(scenario())
