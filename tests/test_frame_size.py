"""What the server sends fits in one WebSocket frame of daphne's (1 MiB both ways): a message whose
rendered form would not fit is refused before it is stored, and a page of history ends before it
would pass the limit. Through a live daphne with its default limit and a client with the same one."""

import asyncio
import json
import uuid

import pytest
import websockets
from django.test import Client

from messenger.actions.widget import do_bootstrap
from messenger.models import Message
from tests.factories import make_branch, make_inbox, make_user
from tests.live import run_async

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

MIB = 1024 * 1024
# 144 000 characters of short links: about 1.5 MB once each is an <a> tag.
LINKS = "http://a " * 16_000
# 100 000 quotes: 200 KB in the inbound frame, about 800 KB with their rendered &quot; form.
QUOTES = '"' * 100_000


async def _until(socket, predicate, timeout=20.0):
    async def loop():
        while True:
            frame = json.loads(await socket.recv())
            if predicate(frame):
                return frame

    return await asyncio.wait_for(loop(), timeout)


def test_long_rendered_messages_and_their_history_fit_in_a_frame(live_server_factory):
    branch = make_branch()
    inbox = make_inbox(branch)
    operator = make_user(branch=branch)
    client = Client()
    client.force_login(operator)
    cookie = client.cookies["sessionid"].value
    boot = do_bootstrap(
        widget_token=inbox.widget_token, pubsub_token=None, page={}, origin="http://localhost", ip="127.0.0.1"
    )
    server = live_server_factory()

    async def scenario():
        visitor_url = (
            f"ws://127.0.0.1:{server.port}/ws/widget/?widget_token={inbox.widget_token}&token={boot['session_token']}"
        )
        async with (
            websockets.connect(visitor_url, origin="http://localhost", max_size=MIB) as visitor,
            websockets.connect(
                f"ws://127.0.0.1:{server.port}/ws/operator/",
                origin=f"http://127.0.0.1:{server.port}",
                additional_headers={"Cookie": f"sessionid={cookie}"},
                max_size=MIB,
            ) as staff,
        ):
            await _until(visitor, lambda f: f["type"] == "hello")
            await _until(staff, lambda f: f["type"] == "hello")

            await visitor.send(json.dumps({"type": "message.send", "ref": "big", "client_id": "c0", "body": LINKS}))
            refused = await _until(visitor, lambda f: f.get("ref") == "big")
            assert refused["type"] == "error" and refused["code"] == "too_large", refused

            conversation_id = None
            for index in range(4):
                ref = f"q{index}"
                await visitor.send(
                    json.dumps({"type": "message.send", "ref": ref, "client_id": uuid.uuid4().hex, "body": QUOTES})
                )
                ack = await _until(visitor, lambda f, ref=ref: f.get("ref") == ref)
                assert ack["type"] == "ack", ack
                conversation_id = ack["data"]["conversation_id"]
                created = await _until(staff, lambda f: f["type"] == "message.created")
                assert created["data"]["message"]["body"] == QUOTES

            await staff.send(
                json.dumps({"type": "conversation.open", "ref": "open", "conversation_id": conversation_id})
            )
            snapshot = await _until(staff, lambda f: f.get("ref") == "open")
            assert snapshot["type"] == "conversation.snapshot", snapshot
            page = snapshot["data"]["messages"]
            assert 1 <= len(page) < 4 and snapshot["data"]["has_more"] is True
            assert all(message["body"] == QUOTES for message in page)
            return conversation_id, page[0]["id"], len(page)

    conversation_id, oldest_shown, shown = run_async(scenario())
    assert Message.objects.filter(conversation_id=conversation_id).count() == 4
    assert not Message.objects.filter(client_id="c0").exists()

    # The older messages come page by page over HTTP, each page within the same budget.
    seen, before = [], oldest_shown
    while True:
        response = client.get(f"/api/operator/conversations/{conversation_id}/messages/", {"before": before})
        assert response.status_code == 200, response.content
        data = response.json()
        seen.extend(data["messages"])
        if not data["has_more"]:
            break
        before = data["messages"][0]["id"]
    assert len(seen) + shown == 4

    # The widget's history (bootstrap) keeps the newest messages within the same budget.
    again = do_bootstrap(
        widget_token=inbox.widget_token,
        pubsub_token=boot["pubsub_token"],
        page={},
        origin="http://localhost",
        ip="127.0.0.1",
    )
    (conversation,) = again["history"]
    assert 1 <= len(conversation["messages"]) < 4
    assert all(message["body"] == QUOTES for message in conversation["messages"])
