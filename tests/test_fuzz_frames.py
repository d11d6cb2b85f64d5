"""Property-based fuzz of socket frames: whatever a client sends, the server answers with at most
error/ack frames, never a server error, keeps the connection open, and a refused command changes
nothing stored.

Two properties: arbitrary frames (structured, raw, huge) on any socket, and every command of both
sockets sent well-formed but for arbitrary JSON values in some of its fields — so the values reach
the command's own checks and the database, not only the frame parser. The values include what no
column can store: NUL, lone surrogates, NaN and Infinity, integers beyond 64 bits, deep nesting.

Hypothesis drives a synchronous property in a worker thread; each example is sent through sockets
that live on the test's event loop (one visitor, one operator, one supervisor, connected once), so
hundreds of frames take seconds. A ``ping`` in the same lane (docs/protocol.md, "Commands from the
client") follows every fuzz frame: its ``pong`` marks the end of the frame's replies and resets
the too-many-errors counter (close 4009), which is documented and tested elsewhere.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from typing import Any

import pytest
from channels.db import database_sync_to_async as db
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messenger.consumers import lane_of
from messenger.models import (
    ActivityEvent,
    AgentProfile,
    Contact,
    Conversation,
    ConversationEvent,
    Message,
)
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
    "email",
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

# Any text, a third of it holding a character no column can store: NUL or half of a surrogate
# pair (st.text never draws a surrogate, whatever its alphabet, so one is put in by hand).
plain_texts = st.text(max_size=20)
unstorable_texts = st.tuples(
    plain_texts, st.sampled_from(["\x00", "\ud800", "\udbff", "\udc00", "\udfff"]), plain_texts
).map("".join)
texts = st.one_of(plain_texts, plain_texts, unstorable_texts)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()  # NaN and ±Infinity too: json.dumps writes them, json.loads reads them
    | texts,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=12,
)
# What a fuzzed field gets: a string more often than json_values alone gives one (most fields are).
field_json = st.one_of(texts, json_values)


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


def stored() -> tuple:
    """Every row a socket command writes, with the columns it changes (heartbeats aside)."""
    return (
        list(Message.objects.order_by("pk").values_list("pk", "body", "client_id", "delivered_at", "read_at")),
        list(
            Conversation.objects.order_by("pk").values_list(
                "pk",
                "status",
                "priority",
                "assignee_id",
                "branch_id",
                "assignee_opened_at",
                "snoozed_until",
                "rating_score",
                "rating_comment",
                "unread_for_agent",
                "unread_for_contact",
                "last_seq",
                "last_public_seq",
                "custom_attributes",
            )
        ),
        list(Conversation.labels.through.objects.order_by("pk").values_list("conversation_id", "label_id")),
        list(Contact.objects.order_by("pk").values_list("pk", "name", "email", "phone", "custom_attributes")),
        list(AgentProfile.objects.order_by("pk").values_list("pk", "status")),
        list(ConversationEvent.objects.order_by("pk").values_list("pk", "type")),
        list(ActivityEvent.objects.order_by("pk").values_list("pk", "verb")),
    )


async def exchange(socket: Socket, text: str) -> list[dict[str, Any]]:
    """Send one fuzz frame, then a ping in the frame's lane; the frames received up to its pong.

    A command runs after the commands of its lane that came before it: the pong follows every
    reply to the fuzz frame (docs/protocol.md, "Commands from the client"). A fuzz frame that is
    itself a ping is answered by a pong of its own first, unless it was refused.
    """
    # Straight onto the ASGI queue: the communicator's helper refuses an empty text frame.
    await socket.communicator.send_input({"type": "websocket.receive", "text": text})
    try:
        sent = json.loads(text)
        conversation_id, is_ping = sent.get("conversation_id"), sent.get("type") == "ping"
    except (ValueError, AttributeError, RecursionError):
        conversation_id, is_ping = None, False
    ping: dict[str, Any] = {"type": "ping"}
    if lane_of(conversation_id) >= 0 and conversation_id < 2**63:  # a larger one refuses the frame at once
        ping["conversation_id"] = conversation_id
    await socket.send(ping)
    got: list[dict[str, Any]] = []
    while True:
        frame = await socket.recv(timeout=10)
        if frame["type"] == "pong":
            if is_ping and not any(f["type"] == "error" for f in got):
                is_ping = False  # the fuzz frame's own pong
                continue
            return got
        got.append(frame)
        if frame["type"] == "__closed__":
            return got


def check_replies(text: str, replies: list[dict[str, Any]], before: tuple) -> None:
    """No server error, no closed socket, only expected frames; a refused frame stored nothing."""
    for frame in replies:
        assert frame["type"] != "__closed__", (text[:200], replies)
        assert frame["type"] in ALLOWED, (text[:200], frame)
        if frame["type"] == "error":
            assert frame["code"] != "server_error", (text[:200], frame)
            assert "Traceback" not in frame.get("message", "")
    answers = [f for f in replies if f["type"] in ("ack", "error", "conversation.snapshot", "resume.done")]
    if answers and all(f["type"] == "error" for f in answers):
        after = stored()
        changed = [
            ([row for row in old if row not in new], [row for row in new if row not in old])
            for old, new in zip(before, after, strict=True)
            if old != new
        ]
        assert not changed, (text[:300], replies, changed)


ALLOWED = {"ack", "error", "conversation.snapshot", "resume.done", "message.created", "message.updated"}
# Broadcasts caused by the fuzzer's own valid commands may interleave with the replies.
ALLOWED |= {"conversation.updated", "conversation.read", "conversation.created", "typing.started"}
ALLOWED |= {"typing.stopped", "presence", "unread", "rating.requested", "supervisor.alert"}
ALLOWED |= {"assignment.assigned", "assignment.reassigned", "assignment.unassigned", "assignment.transferred"}
ALLOWED |= {"visitors.changed", "visitors.reset", "invitation"}


def _world() -> dict[str, Any]:
    branch = make_branch()
    inbox = make_inbox(branch)
    return {
        "inbox": inbox,
        "branch": branch,
        "other_branch": make_branch(),
        "operator": make_user(branch=branch),
        "supervisor": make_user(role="supervisor"),
    }


async def connect_world() -> tuple[dict[str, Any], dict[str, Socket]]:
    """A visitor with a conversation, another visitor with one, an operator and a supervisor."""
    world = await db(_world)()
    sockets: dict[str, Socket] = {}
    ids: dict[str, Any] = {}
    for name in ("visitor", "other_visitor"):
        socket = visitor_socket(world["inbox"], await db(bootstrap)(world["inbox"]))
        assert (await socket.connect())[0]
        await socket.expect("hello")
        ack = await socket.command("message.send", client_id=new_client_id(), body=f"hello from {name}")
        sockets[name] = socket
        ids[name] = ack["data"]
    for name in ("operator", "supervisor"):
        socket = await operator_socket(world[name])
        assert (await socket.connect())[0]
        await socket.expect("hello")
        sockets[name] = socket
    world["ids"] = {
        "conversation": ids["visitor"]["conversation_id"],
        "message": ids["visitor"]["message"]["id"],
        "other_conversation": ids["other_visitor"]["conversation_id"],
        "operator": world["operator"].pk,
        "branch": world["branch"].pk,
        "other_branch": world["other_branch"].pk,
    }
    return world, sockets


async def close_all(sockets: dict[str, Socket]) -> None:
    for socket in sockets.values():
        await socket.send({"type": "ping"})
        assert (await socket.expect("pong"))["type"] == "pong"
        await socket.close()


def run_property(loop: asyncio.AbstractEventLoop, property_: Any) -> Any:
    def run() -> None:
        from django.db import connections

        try:
            property_()
        finally:
            connections.close_all()

    return loop.run_in_executor(None, run)


async def test_random_frames_never_break_the_server():
    world, sockets = await connect_world()
    ids = world["ids"]
    loop = asyncio.get_running_loop()
    targets = [sockets["visitor"], sockets["operator"], sockets["supervisor"]]

    @settings(
        max_examples=150,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(text=frames(ids), target=st.integers(min_value=0, max_value=len(targets) - 1))
    def property_(text: str, target: int) -> None:
        before = stored()
        replies = asyncio.run_coroutine_threadsafe(exchange(targets[target], text), loop).result(timeout=30)
        check_replies(text, replies, before)

    await run_property(loop, property_)
    await close_all(sockets)


# --- every field of every command ------------------------------------------------------------------


def well_formed(command: str, ids: dict[str, Any]) -> dict[str, Any]:
    """A frame of ``command`` that its socket accepts (docs/protocol.md, "Commands from the client")."""
    conversation = {"conversation_id": ids["conversation"]}
    frames = {
        "ping": {},
        "resume": {**conversation, "after": 0},
        "message.send": {**conversation, "client_id": uuid.uuid4().hex, "body": "fuzz", "attachment_ids": []},
        "typing.start": {**conversation, "preview": "fu"},
        "typing.stop": conversation,
        "message.delivered": {**conversation, "up_to_message_id": ids["message"]},
        "conversation.read": {**conversation, "up_to_message_id": ids["message"]},
        "conversation.rate": {**conversation, "score": 5, "comment": "good"},
        "conversation.transcript": {**conversation, "email": "visitor@example.com"},
        "conversation.new": {},
        "contact.update": {"name": "Ann", "email": "ann@example.com", "phone": "+1 555", "custom": {"order": "7"}},
        "conversation.open": {**conversation, "watch": False},
        "conversation.close_view": conversation,
        "conversation.assign": {**conversation, "assignee_id": ids["operator"]},
        "conversation.transfer": {**conversation, "branch_id": ids["branch"]},
        "conversation.status": {**conversation, "status": "snoozed", "snoozed_until": "2030-01-01T00:00:00Z"},
        "conversation.priority": {**conversation, "priority": 2},
        "conversation.labels": {**conversation, "labels": ["vip"]},
        "status.set": {"status": "online"},
        "widget.close": {},
        "visitor.invite": {"visitor_id": "fuzz-visitor", "body": "fuzz"},
    }
    return {"type": command, **frames[command]}


refs = itertools.count()
# Fields a command does not take are fuzzed too: a handler must ignore or refuse them.
EXTRA_FIELDS = ["conversation_id", "private", "website", "captcha", "assignee_id", "branch_id", "watch"]
COMMAND_SOCKETS = [(command, "visitor") for command in sorted(VISITOR_COMMANDS)] + [
    (command, side) for command in sorted(OPERATOR_COMMANDS) for side in ("operator", "supervisor")
]


@st.composite
def fuzzed_commands(draw: Any, ids: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    command, side = draw(st.sampled_from(COMMAND_SOCKETS))
    frame = well_formed(command, ids)
    names = sorted({*frame.keys(), *EXTRA_FIELDS} - {"type"})
    fuzzed = draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True))
    plausible = st.sampled_from([*ids.values(), 0, -1, 2**31, 2**63, "", "open", "me", True])
    for name in fuzzed:
        frame[name] = draw(st.one_of(field_json, plausible))
    return side, frame


# Limits would soon refuse every send (or close the socket), and then the fuzz would reach no
# deeper than them.
NO_LIMITS = override_settings(
    MESSENGER_WIDGET_SEND_RATE_PER_SESSION="100000/min",
    MESSENGER_WIDGET_SEND_RATE_PER_IP="100000/min",
    MESSENGER_WIDGET_POLL_RATE_PER_SESSION="100000/min",
    MESSENGER_CONVERSATION_FLOOD_LIMIT="100000/min",
    MESSENGER_CAPTCHA_AFTER_CONVERSATIONS_PER_IP=100000,
)


@NO_LIMITS
async def test_any_json_value_in_any_field_of_any_command_is_answered_cleanly():
    world, sockets = await connect_world()
    loop = asyncio.get_running_loop()

    @settings(
        max_examples=400,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(sent=fuzzed_commands(world["ids"]))
    def property_(sent: tuple[str, dict[str, Any]]) -> None:
        side, frame = sent
        text = json.dumps({**frame, "ref": f"fuzz-{next(refs)}"})  # a stray reply would show whose it is
        before = stored()
        replies = asyncio.run_coroutine_threadsafe(exchange(sockets[side], text), loop).result(timeout=30)
        check_replies(text, replies, before)

    await run_property(loop, property_)
    await close_all(sockets)
