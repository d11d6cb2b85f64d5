"""Failure tests with real processes: a private Redis stopped and restarted under connected clients.

The machine's shared Redis is never touched: the test starts its own ``redis-server`` on a free
loopback port, and a live server (daphne subprocess) that uses it for its channel layer and cache.
While that Redis is down, messages must still be stored (the database is the truth; broadcasts and
throttles fail softly); after it is back, a reconnecting client resumes and sees every message
exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from messenger.models import Message
from tests.conftest import new_client_id, session_cookie
from tests.factories import VISITOR_ORIGIN, make_branch, make_inbox, make_user
from tests.live import free_port, run_async

REDIS_SERVER = "/usr/bin/redis-server"

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.redis,
    pytest.mark.skipif(not os.path.exists(REDIS_SERVER), reason="redis-server is not installed"),
]


class PrivateRedis:
    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        cli = shutil.which("redis-cli")
        deadline = time.time() + 10
        while time.time() < deadline:
            if (
                cli
                and subprocess.run([cli, "-p", str(self.port), "ping"], capture_output=True).stdout.strip() == b"PONG"
            ):
                return
            if not cli:
                time.sleep(0.5)
                return
            time.sleep(0.1)
        raise RuntimeError("private redis did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    redis = PrivateRedis()
    redis.start()
    yield redis
    redis.stop()


async def command(ws: Any, frame: dict[str, Any], *, timeout: float = 15) -> dict[str, Any]:
    ref = new_client_id()[:12]
    await ws.send(json.dumps({**frame, "ref": ref}))
    async with asyncio.timeout(timeout):
        while True:
            reply = json.loads(await ws.recv())
            if reply.get("ref") == ref and reply["type"] in ("ack", "error", "conversation.snapshot"):
                return reply


async def replay(ws: Any, conversation_id: int) -> list[dict[str, Any]]:
    await ws.send(json.dumps({"type": "resume", "conversation_id": conversation_id, "after": 0}))
    frames = []
    async with asyncio.timeout(15):
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == "resume.done" and frame["conversation_id"] == conversation_id:
                return frames
            if frame.get("conversation_id") == conversation_id and "id" in frame:
                frames.append(frame)


async def hello(ws: Any) -> dict[str, Any]:
    async with asyncio.timeout(15):
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == "hello":
                return frame


def test_redis_stopped_and_restarted_under_connected_clients(private_redis, live_server_factory):
    from websockets.asyncio.client import connect

    branch = make_branch()
    inbox = make_inbox(branch)
    operator = make_user(branch=branch)
    cookie = session_cookie(operator)
    server = live_server_factory({"REDIS_URL": private_redis.url})
    ws_base = f"ws://127.0.0.1:{server.port}"

    import urllib.request

    request = urllib.request.Request(  # noqa: S310 — a loopback test server
        server.url + "/api/widget/bootstrap/",
        data=json.dumps({"widget_token": inbox.widget_token}).encode(),
        headers={"Content-Type": "application/json", "Origin": VISITOR_ORIGIN},
        method="POST",
    )
    boot = json.loads(urllib.request.urlopen(request, timeout=10).read())  # noqa: S310
    visitor_url = f"{ws_base}/ws/widget/?widget_token={inbox.widget_token}&token={boot['session_token']}"
    operator_headers = {"Cookie": f"sessionid={cookie}"}
    operator_origin = server.url

    async def scenario() -> dict[str, Any]:
        sent: dict[str, int] = {}
        async with (
            connect(visitor_url, origin=VISITOR_ORIGIN) as visitor,
            connect(f"{ws_base}/ws/operator/", origin=operator_origin, additional_headers=operator_headers) as op,
        ):
            await hello(visitor)
            await hello(op)
            first = new_client_id()
            ack = await command(visitor, {"type": "message.send", "client_id": first, "body": "before"})
            assert ack["type"] == "ack", ack
            conversation_id = ack["data"]["conversation_id"]
            sent[first] = ack["data"]["message"]["id"]
            assert (await command(op, {"type": "conversation.open", "conversation_id": conversation_id}))[
                "type"
            ] == "conversation.snapshot"

            private_redis.stop()
            resent = None
            for body in ("during one", "during two"):
                client_id = new_client_id()
                ack = await command(visitor, {"type": "message.send", "client_id": client_id, "body": body})
                assert ack["type"] == "ack" and ack["data"]["created"], ack
                sent[client_id] = ack["data"]["message"]["id"]
                resent = (client_id, body)
            reply_id = new_client_id()
            ack = await command(
                op,
                {"type": "message.send", "conversation_id": conversation_id, "client_id": reply_id, "body": "reply"},
            )
            assert ack["type"] == "ack", ack
            sent[reply_id] = ack["data"]["message"]["id"]
            private_redis.start()

        # Reconnect after the restart: resend (no duplicate), then resume from the database.
        async with (
            connect(visitor_url, origin=VISITOR_ORIGIN) as visitor,
            connect(f"{ws_base}/ws/operator/", origin=operator_origin, additional_headers=operator_headers) as op,
        ):
            greeting = await hello(visitor)
            await hello(op)
            again = await command(visitor, {"type": "message.send", "client_id": resent[0], "body": resent[1]})
            assert again["type"] == "ack" and again["data"]["created"] is False
            after_id = new_client_id()
            ack = await command(visitor, {"type": "message.send", "client_id": after_id, "body": "after"})
            assert ack["type"] == "ack", ack
            sent[after_id] = ack["data"]["message"]["id"]
            return {
                "conversation_id": conversation_id,
                "sent": sent,
                "hello": greeting,
                "visitor_replay": await replay(visitor, conversation_id),
                "staff_replay": await replay(op, conversation_id),
            }

    outcome = run_async(scenario())
    sent = outcome["sent"]
    stored = list(
        Message.objects.filter(conversation_id=outcome["conversation_id"], client_id__in=sent).values_list(
            "client_id", "id"
        )
    )
    assert sorted(stored) == sorted(sent.items())  # every message once, none lost
    for stream in ("visitor_replay", "staff_replay"):
        frames = outcome[stream]
        ids = [frame["id"] for frame in frames]
        assert ids == list(range(1, len(ids) + 1)), (stream, ids)  # gapless, in order, no duplicates
        created = [
            frame["data"]["message"]["id"]
            for frame in frames
            if frame["type"] == "message.created" and frame["data"]["message"].get("client_id") in sent
        ]
        assert sorted(created) == sorted(sent.values()), stream
        assert len(created) == len(set(created))
