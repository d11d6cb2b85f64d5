"""Property-based fuzz of socket frames: whatever a client sends, the server answers with at most
error/ack frames, never a server error, keeps the connection open, and rejected input stores nothing.

Hypothesis drives a synchronous property in a worker thread; each example is sent through sockets
that live on the test's event loop (one visitor, one operator, connected once), so a few hundred
frames take seconds. A ``ping`` follows every fuzz frame: its ``pong`` marks the end of the
frame's replies and resets the too-many-errors counter (close 4009), which is documented and
tested elsewhere.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from channels.db import database_sync_to_async as db
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messenger.models import ActivityEvent, Contact, Conversation, ConversationEvent, Message
from messenger.protocol import OPERATOR_COMMANDS, VISITOR_COMMANDS
from tests.conftest import Socket, bootstrap, new_client_id, operator_socket, visitor_socket
from tests.factories import make_branch, make_inbox, make_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

COMMANDS = sorted(VISITOR_COMMANDS | OPERATOR_COMMANDS)  # every known type, plus junk below
FIELDS = [
    "conversation_id",
    "client_id",
    "body",
    "after",
    "up_to_message_id",
    "score",
    "comment",
    "status",
    "priority",
    "labels",
    "assignee_id",
    "branch_id",
    "watch",
    "private",
    "attachment_ids",
    "captcha",
    "website",
    "name",
    "email",
    "phone",
    "custom",
    "preview",
    "snoozed_until",
    "ref",
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


def field_values(ids: dict[str, int]) -> st.SearchStrategy[Any]:
    plausible = st.sampled_from(
        [ids["conversation"], ids["message"], ids["other_conversation"], 0, -1, 2**63, "1", "open", "resolved", "me"]
    )
    huge = st.integers(min_value=1_000, max_value=800_000).map(lambda n: "ж" * n)
    return st.one_of(json_values, plausible, huge)


def frames(ids: dict[str, int]) -> st.SearchStrategy[str]:
    structured = st.fixed_dictionaries(
        {"type": st.one_of(st.sampled_from(COMMANDS), json_values)},
        optional={name: field_values(ids) for name in FIELDS},
    ).map(json.dumps)
    raw = st.one_of(
        json_values.map(json.dumps),
        st.text(max_size=200),
        st.sampled_from(["", "{", "[]", "null", '{"type": "ping"', "{}" * 10_000, "[" * 5_000 + "]" * 5_000]),
    )
    return st.one_of(structured, structured, raw)


def counts() -> tuple[int, ...]:
    return tuple(model.objects.count() for model in (Message, Conversation, ConversationEvent, Contact, ActivityEvent))


async def exchange(socket: Socket, text: str) -> list[dict[str, Any]]:
    """Send one fuzz frame, then a ping; the frames received up to the pong."""
    # Straight onto the ASGI queue: the communicator's helper refuses an empty text frame.
    await socket.communicator.send_input({"type": "websocket.receive", "text": text})
    await socket.send({"type": "ping", "ref": "fuzz-end"})
    got = []
    while True:
        frame = await socket.recv(timeout=10)
        if frame["type"] == "pong":
            return got
        got.append(frame)


def _world() -> dict[str, Any]:
    branch = make_branch()
    inbox = make_inbox(branch)
    return {"inbox": inbox, "operator": make_user(branch=branch), "supervisor": make_user(role="supervisor")}


async def test_random_frames_never_break_the_server():
    world = await db(_world)()
    boot = await db(bootstrap)(world["inbox"])
    visitor = visitor_socket(world["inbox"], boot)
    assert (await visitor.connect())[0]
    await visitor.expect("hello")
    ack = await visitor.command("message.send", client_id=new_client_id(), body="hello")
    other_visitor = visitor_socket(world["inbox"], await db(bootstrap)(world["inbox"]))
    assert (await other_visitor.connect())[0]
    await other_visitor.expect("hello")
    other = await other_visitor.command("message.send", client_id=new_client_id(), body="other")
    operators = []
    for user in (world["operator"], world["supervisor"]):
        socket = await operator_socket(user)
        assert (await socket.connect())[0]
        await socket.expect("hello")
        operators.append(socket)
    ids = {
        "conversation": ack["data"]["conversation_id"],
        "message": ack["data"]["message"]["id"],
        "other_conversation": other["data"]["conversation_id"],
    }
    loop = asyncio.get_running_loop()
    sockets = [visitor, *operators]
    allowed = {"ack", "error", "conversation.snapshot", "resume.done", "message.created", "message.updated"}
    # Broadcasts caused by the fuzzer's own valid commands may interleave with the replies.
    allowed |= {"conversation.updated", "conversation.read", "conversation.created", "typing.started"}
    allowed |= {"typing.stopped", "presence", "unread", "rating.requested", "supervisor.alert"}
    allowed |= {"assignment.assigned", "assignment.reassigned", "assignment.unassigned", "assignment.transferred"}

    @settings(
        max_examples=150,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(text=frames(ids), target=st.integers(min_value=0, max_value=len(sockets) - 1))
    def property_(text: str, target: int) -> None:
        before = counts()
        replies = asyncio.run_coroutine_threadsafe(exchange(sockets[target], text), loop).result(timeout=30)
        for frame in replies:
            assert frame["type"] != "__closed__", (text[:200], replies)
            assert frame["type"] in allowed, (text[:200], frame)
            if frame["type"] == "error":
                assert frame["code"] != "server_error", (text[:200], frame)
                assert "Traceback" not in frame.get("message", "")
        answers = [f for f in replies if f["type"] in ("ack", "error", "conversation.snapshot", "resume.done")]
        if answers and all(f["type"] == "error" for f in answers):
            assert counts() == before, (text[:200], replies)

    def run() -> None:
        from django.db import connections

        try:
            property_()
        finally:
            connections.close_all()

    await loop.run_in_executor(None, run)
    for socket in (*sockets, other_visitor):
        await socket.send({"type": "ping"})
        assert (await socket.expect("pong"))["type"] == "pong"
        await socket.close()
