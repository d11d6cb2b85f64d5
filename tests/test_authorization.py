"""Authorization matrix over every socket command and the widget bootstrap.

A forbidden row answers exactly like a missing one (``not_found``), and a denied command changes
nothing: the conversation's state, its events and its messages are compared before and after.
"""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async as db
from django.core import signing
from django.test import Client, override_settings

from messenger.models import ActivityEvent, Contact, Conversation, ConversationEvent, Message
from messenger.protocol import CLOSE_UNAUTHENTICATED, OPERATOR_COMMANDS, VISITOR_COMMANDS
from tests.conftest import Socket, bootstrap, new_client_id, operator_socket, visitor_socket
from tests.factories import VISITOR_ORIGIN, make_branch, make_inbox, make_user

pytestmark = pytest.mark.django_db(transaction=True)

MISSING = 987_654_321


def _world() -> dict[str, Any]:
    north, south = make_branch("North"), make_branch("South")
    inbox_north, inbox_south = make_inbox(north), make_inbox(south)
    return {
        "north": north,
        "south": south,
        "inbox_north": inbox_north,
        "inbox_south": inbox_south,
        "op_north": make_user(branch=north),
        "op_south": make_user(branch=south),
        "supervisor": make_user(role="supervisor", branch=None),
        "admin": make_user(role="admin", branch=None),
    }


def _state(conversation_id: int) -> tuple:
    conversation = Conversation.objects.get(pk=conversation_id)
    return (
        conversation.status,
        conversation.priority,
        conversation.assignee_id,
        conversation.branch_id,
        conversation.last_seq,
        conversation.rating_score,
        conversation.assignee_opened_at,
        sorted(conversation.labels.values_list("name", flat=True)),
        ConversationEvent.objects.filter(conversation_id=conversation_id).count(),
        list(Message.objects.filter(conversation_id=conversation_id).values_list("id", "read_at", "delivered_at")),
    )


async def _visitor(inbox) -> tuple[Socket, dict]:
    boot = await db(bootstrap)(inbox)
    socket = visitor_socket(inbox, boot)
    connected, _ = await socket.connect()
    assert connected
    await socket.expect("hello")
    return socket, boot


async def _operator(user) -> Socket:
    socket = await operator_socket(user)
    connected, _ = await socket.connect()
    assert connected
    await socket.expect("hello")
    return socket


async def _start(visitor: Socket, body: str = "hi") -> tuple[int, int]:
    ack = await visitor.command("message.send", client_id=new_client_id(), body=body)
    assert ack["type"] == "ack", ack
    return ack["data"]["conversation_id"], ack["data"]["message"]["id"]


def visitor_frames(conversation_id: int, message_id: int) -> list[dict[str, Any]]:
    return [
        {"type": "resume", "conversation_id": conversation_id, "after": 0},
        {"type": "message.send", "conversation_id": conversation_id, "client_id": new_client_id(), "body": "x"},
        {"type": "typing.start", "conversation_id": conversation_id},
        {"type": "typing.stop", "conversation_id": conversation_id},
        {"type": "message.delivered", "conversation_id": conversation_id, "up_to_message_id": message_id},
        {"type": "conversation.read", "conversation_id": conversation_id, "up_to_message_id": message_id},
        {"type": "conversation.rate", "conversation_id": conversation_id, "score": 5, "comment": "x"},
        {"type": "conversation.transcript", "conversation_id": conversation_id, "email": "visitor@example.com"},
    ]


def operator_frames(conversation_id: int, message_id: int, *, other_branch_id: int, user_id: int) -> list[dict]:
    return [
        {"type": "conversation.open", "conversation_id": conversation_id},
        {"type": "resume", "conversation_id": conversation_id, "after": 0},
        {"type": "message.send", "conversation_id": conversation_id, "client_id": new_client_id(), "body": "x"},
        {
            "type": "message.send",
            "conversation_id": conversation_id,
            "client_id": new_client_id(),
            "body": "x",
            "private": True,
        },
        {"type": "typing.start", "conversation_id": conversation_id},
        {"type": "typing.stop", "conversation_id": conversation_id},
        {"type": "message.delivered", "conversation_id": conversation_id, "up_to_message_id": message_id},
        {"type": "conversation.read", "conversation_id": conversation_id, "up_to_message_id": message_id},
        {"type": "conversation.assign", "conversation_id": conversation_id, "assignee_id": user_id},
        {"type": "conversation.assign", "conversation_id": conversation_id, "assignee_id": None},
        {"type": "conversation.transfer", "conversation_id": conversation_id, "branch_id": other_branch_id},
        {"type": "conversation.status", "conversation_id": conversation_id, "status": "resolved"},
        {"type": "conversation.priority", "conversation_id": conversation_id, "priority": 3},
        {"type": "conversation.labels", "conversation_id": conversation_id, "labels": ["vip"]},
    ]


def test_matrix_covers_every_conversation_command():
    world_free = {"ping", "status.set", "conversation.new", "contact.update", "conversation.close_view"}
    # Not about a conversation: tests/test_live_visitors.py (another branch's visitor answers not_found).
    world_free |= {"widget.close", "visitor.invite"}
    covered_visitor = {f["type"] for f in visitor_frames(1, 1)}
    covered_operator = {f["type"] for f in operator_frames(1, 1, other_branch_id=1, user_id=1)}
    assert VISITOR_COMMANDS - world_free == covered_visitor
    assert OPERATOR_COMMANDS - world_free == covered_operator


async def _answers(socket: Socket, frames: list[dict]) -> list[tuple[str, dict]]:
    replies = []
    for frame in frames:
        frame = dict(frame)
        kind = frame.pop("type")
        if kind == "resume":
            # A replay answers with resume.done (no ref), a refusal with a ref'd error.
            await socket.send({"type": kind, "ref": "resume", **frame})
            while True:
                reply = await socket.recv()
                if reply["type"] == "resume.done" or reply.get("ref") == "resume":
                    break
            replies.append((kind, reply))
            continue
        replies.append((kind, await socket.command(kind, **frame)))
    return replies


async def test_visitor_cannot_touch_another_visitors_conversation():
    world = await db(_world)()
    alice, _ = await _visitor(world["inbox_north"])
    bob, _ = await _visitor(world["inbox_north"])
    conversation_id, message_id = await _start(bob)
    before = await db(_state)(conversation_id)
    for kind, reply in await _answers(alice, visitor_frames(conversation_id, message_id)):
        assert reply["type"] == "error" and reply["code"] == "not_found", (kind, reply)
    # A conversation that does not exist answers the same.
    for kind, reply in await _answers(alice, visitor_frames(MISSING, message_id)):
        assert reply["type"] == "error" and reply["code"] == "not_found", (kind, reply)
        assert reply["message"] == "No such conversation.", (kind, reply)
    assert await db(_state)(conversation_id) == before
    assert await db(Conversation.objects.filter(contact_inbox__contact__in=Contact.objects.all()).count)() == 1
    await alice.close()
    await bob.close()


async def test_operator_of_another_branch_gets_not_found_for_everything():
    world = await db(_world)()
    visitor, _ = await _visitor(world["inbox_north"])
    conversation_id, message_id = await _start(visitor)
    south = await _operator(world["op_south"])
    before = await db(_state)(conversation_id)
    frames = operator_frames(
        conversation_id, message_id, other_branch_id=world["south"].pk, user_id=world["op_south"].pk
    )
    for kind, reply in await _answers(south, frames):
        assert reply["type"] == "error" and reply["code"] == "not_found", (kind, reply)
    missing = operator_frames(MISSING, message_id, other_branch_id=world["south"].pk, user_id=world["op_south"].pk)
    for kind, reply in await _answers(south, missing):
        assert reply["type"] == "error" and reply["code"] == "not_found", (kind, reply)
    assert await db(_state)(conversation_id) == before
    await south.close()
    await visitor.close()


@pytest.mark.parametrize("role", ["supervisor", "admin", "op_north"])
async def test_own_branch_operator_supervisor_and_admin_may_act(role):
    world = await db(_world)()
    visitor, _ = await _visitor(world["inbox_north"])
    conversation_id, message_id = await _start(visitor)
    staff = await _operator(world[role])
    frames = operator_frames(
        conversation_id, message_id, other_branch_id=world["north"].pk, user_id=world["op_north"].pk
    )
    typing = [f for f in frames if f["type"].startswith("typing.")]
    for kind, reply in await _answers(staff, [f for f in frames if f not in typing]):
        assert reply["type"] in ("ack", "conversation.snapshot", "resume.done"), (role, kind, reply)
    for frame in typing:  # ephemeral: no ack, and no error either
        await staff.send({**frame, "ref": "t"})
    assert not [f for f in await staff.drain(0.5) if f["type"] == "error"]
    await staff.close()
    await visitor.close()


async def test_watch_mode_is_read_only_and_audited():
    world = await db(_world)()
    visitor, _ = await _visitor(world["inbox_north"])
    conversation_id, message_id = await _start(visitor)
    supervisor = await _operator(world["supervisor"])
    snapshot = await supervisor.command("conversation.open", conversation_id=conversation_id, watch=True)
    assert snapshot["type"] == "conversation.snapshot" and snapshot["data"]["watch"] is True
    before = await db(_state)(conversation_id)
    writes = [
        f
        for f in operator_frames(
            conversation_id, message_id, other_branch_id=world["north"].pk, user_id=world["op_north"].pk
        )
        if f["type"] not in ("conversation.open", "resume", "message.delivered", "conversation.read")
    ]
    for kind, reply in await _answers(supervisor, writes):
        assert reply["type"] == "error" and reply["code"] == "forbidden", (kind, reply)
    assert await db(_state)(conversation_id) == before
    assert (
        await db(
            ActivityEvent.objects.filter(
                verb="conversation.watched", actor_user=world["supervisor"], conversation_id=conversation_id
            ).count
        )()
        == 1
    )
    # A plain operator may not watch.
    north = await _operator(world["op_north"])
    reply = await north.command("conversation.open", conversation_id=conversation_id, watch=True)
    assert reply["type"] == "error" and reply["code"] == "forbidden"
    await north.close()
    await supervisor.close()
    await visitor.close()


async def _closed(socket: Socket) -> int | None:
    connected, _ = await socket.connect()
    assert connected
    while True:
        frame = await socket.recv()
        if frame["type"] == "__closed__":
            return frame["code"]
        assert frame["type"] == "error", frame


async def test_anonymous_and_non_staff_operator_sockets_are_closed_4001():
    from channels.testing import WebsocketCommunicator

    from project.asgi import application

    anonymous = Socket(
        WebsocketCommunicator(
            application, "/ws/operator/", headers=[(b"origin", b"http://testserver"), (b"host", b"testserver")]
        )
    )
    assert await _closed(anonymous) == CLOSE_UNAUTHENTICATED
    from django.contrib.auth import get_user_model

    plain = await db(get_user_model().objects.create_user)(username="plain", password="x")
    assert await _closed(await operator_socket(plain)) == CLOSE_UNAUTHENTICATED


async def test_operator_socket_needs_a_live_session_whose_password_still_matches():
    """The socket reads the Django session once, at connect (``realtime.session``): a logged-out
    session or one from before a password change is refused, a live one is served."""
    from channels.testing import WebsocketCommunicator
    from django.contrib.sessions.backends.db import SessionStore

    from project.asgi import application
    from tests.conftest import session_cookie

    world = await db(_world)()
    operator = world["op_north"]

    def socket_with(cookie: str) -> Socket:
        headers = [
            (b"cookie", f"sessionid={cookie}".encode()),
            (b"origin", b"http://testserver"),
            (b"host", b"testserver"),
        ]
        return Socket(WebsocketCommunicator(application, "/ws/operator/", headers=headers))

    live = await db(session_cookie)(operator)
    socket = socket_with(live)
    assert (await socket.connect())[0]
    hello = await socket.recv()
    assert hello["type"] == "hello" and hello["user"]["id"] == operator.pk, hello
    await socket.close()

    logged_out = await db(session_cookie)(operator)
    await db(SessionStore(session_key=logged_out).delete)()
    assert await _closed(socket_with(logged_out)) == CLOSE_UNAUTHENTICATED

    def change_password() -> None:
        operator.set_password("a new one")
        operator.save()

    await db(change_password)()
    assert await _closed(socket_with(live)) == CLOSE_UNAUTHENTICATED


async def test_forged_expired_and_foreign_session_tokens_are_closed_4001():
    world = await db(_world)()
    boot = await db(bootstrap)(world["inbox_north"])
    other = await db(bootstrap)(world["inbox_south"])
    inbox = world["inbox_north"]
    token = boot["session_token"]
    payload, _, signature = token.rpartition(":")
    forged = signing.dumps({"ci": 1, "i": inbox.pk, "p": "guess"}, salt="wrong-salt", compress=True)
    for bad in ("", "garbage", payload + ":" + signature[::-1], forged, other["session_token"], "x" * 600):
        assert await _closed(visitor_socket(inbox, boot, token=bad)) == CLOSE_UNAUTHENTICATED, bad
    with override_settings(MESSENGER_SESSION_TOKEN_MAX_AGE=-1):
        assert await _closed(visitor_socket(inbox, boot)) == CLOSE_UNAUTHENTICATED
    # The genuine token still works.
    visitor = visitor_socket(inbox, boot)
    assert (await visitor.connect())[0]
    assert (await visitor.expect("hello"))["role"] == "visitor"
    await visitor.close()


async def test_wrong_origin_handshake_is_rejected_and_audited():
    world = await db(_world)()
    boot = await db(bootstrap)(world["inbox_north"])
    socket = visitor_socket(world["inbox_north"], boot, origin="https://evil.example")
    connected, _ = await socket.connect()
    assert not connected  # closed before accept: the HTTP handshake answers 403
    events = await db(lambda: list(ActivityEvent.objects.filter(verb="widget.origin_denied").values("payload")))()
    assert events == [{"payload": {"origin": "https://evil.example", "channel": "websocket"}}]


def _bootstrap_http(inbox, origin: str, **data):
    return Client().post(
        "/api/widget/bootstrap/",
        {"widget_token": inbox.widget_token, **data},
        content_type="application/json",
        HTTP_ORIGIN=origin,
    )


def test_bootstrap_authorization():
    world = _world()
    inbox = world["inbox_north"]
    denied = _bootstrap_http(inbox, "https://evil.example")
    assert denied.status_code == 403
    assert ActivityEvent.objects.filter(verb="widget.origin_denied", payload__channel="http").count() == 1
    assert _bootstrap_http(world["inbox_north"], VISITOR_ORIGIN, widget_token="nope").status_code == 404
    first = _bootstrap_http(inbox, VISITOR_ORIGIN).json()
    # Another inbox's visitor secret never restores a session here: a fresh contact is made.
    foreign = _bootstrap_http(world["inbox_south"], VISITOR_ORIGIN).json()
    again = _bootstrap_http(inbox, VISITOR_ORIGIN, pubsub_token=foreign["pubsub_token"]).json()
    assert again["visitor_id"] not in (first["visitor_id"], foreign["visitor_id"])
    resumed = _bootstrap_http(inbox, VISITOR_ORIGIN, pubsub_token=first["pubsub_token"]).json()
    assert resumed["visitor_id"] == first["visitor_id"]
