"""The WebSocket protocol end to end through the ASGI stack (WebsocketCommunicator)."""

import asyncio
import json

import pytest
from channels.db import database_sync_to_async as db
from django.test import override_settings

from messenger.consumers import lane_of
from messenger.models import ActivityEvent, AgentProfile, Conversation, ConversationEvent, Message
from tests.conftest import bootstrap, new_client_id, operator_socket, visitor_socket
from tests.factories import make_branch, make_inbox, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def _world():
    branch = make_branch("North")
    other_branch = make_branch("South")
    inbox = make_inbox(branch)
    operator = make_user("olga", branch=branch)
    outsider = make_user("ivan", branch=other_branch)
    supervisor = make_user("sam", role="supervisor", branch=None)
    return {
        "branch": branch,
        "other_branch": other_branch,
        "inbox": inbox,
        "operator": operator,
        "outsider": outsider,
        "supervisor": supervisor,
    }


async def _visitor(inbox):
    boot = await db(bootstrap)(inbox)
    socket = visitor_socket(inbox, boot)
    connected, _ = await socket.connect()
    assert connected
    hello = await socket.expect("hello")
    return socket, boot, hello


async def _operator(user):
    socket = await operator_socket(user)
    connected, _ = await socket.connect()
    assert connected
    await socket.expect("hello")
    return socket


async def _start(visitor, body="hi"):
    ack = await visitor.command("message.send", client_id=new_client_id(), body=body)
    assert ack["type"] == "ack", ack
    return ack["data"]["conversation_id"], ack["data"]["message"]


async def test_visitor_message_reaches_branch_staff_and_supervisors_but_no_outsider():
    world = await db(_world)()
    op = await _operator(world["operator"])
    outsider = await _operator(world["outsider"])
    supervisor = await _operator(world["supervisor"])
    visitor, _, _ = await _visitor(world["inbox"])
    other_visitor, _, _ = await _visitor(world["inbox"])

    conversation_id, message = await _start(visitor, "Need help")
    created = await op.expect("conversation.created", conversation_id=conversation_id)
    assert created["id"] == 1
    frame = await op.expect("message.created", conversation_id=conversation_id)
    assert frame["data"]["message"]["id"] == message["id"]
    assert frame["data"]["conversation"]["unread_for_agent"] == 1
    await supervisor.expect("message.created", conversation_id=conversation_id)
    leaked = [f for f in await outsider.drain(0.5) if f.get("conversation_id") == conversation_id]
    assert leaked == [], leaked
    assert await other_visitor.nothing(0.3)
    for socket in (op, outsider, supervisor, visitor, other_visitor):
        await socket.close()


async def test_internal_note_never_reaches_the_visitor_and_ids_stay_gapless():
    world = await db(_world)()
    op = await _operator(world["operator"])
    visitor, _, _ = await _visitor(world["inbox"])
    conversation_id, _ = await _start(visitor)
    await visitor.drain()
    note = await op.command(
        "message.send", conversation_id=conversation_id, client_id=new_client_id(), body="VIP customer", private=True
    )
    assert note["data"]["message"]["direction"] == "internal"
    reply = await op.command("message.send", conversation_id=conversation_id, client_id=new_client_id(), body="Hello!")
    assert reply["type"] == "ack"
    frames = [f for f in await visitor.drain(0.5) if f.get("conversation_id") == conversation_id and "id" in f]
    bodies = [f["data"]["message"]["body"] for f in frames if f["type"] == "message.created"]
    assert bodies == ["Hello!"]
    ids = [f["id"] for f in frames]
    assert ids == list(range(ids[0], ids[0] + len(ids))), "visitor ids must be gapless over visible events"
    stored = await db(
        lambda: list(
            ConversationEvent.objects.filter(conversation_id=conversation_id, public_seq__isnull=True).values_list(
                "type", flat=True
            )
        )
    )()
    assert "message.created" in stored  # the note: staff stream only
    await op.close()
    await visitor.close()


async def test_resume_replays_missed_messages_and_status_changes_in_order_without_duplicates():
    world = await db(_world)()
    op = await _operator(world["operator"])
    visitor, boot, _ = await _visitor(world["inbox"])
    conversation_id, _ = await _start(visitor)
    echo = await visitor.expect("message.created", conversation_id=conversation_id)
    last_seen = echo["id"]
    await visitor.close()

    for text in ("one", "two", "three"):
        await op.command("message.send", conversation_id=conversation_id, client_id=new_client_id(), body=text)
    await op.command("conversation.priority", conversation_id=conversation_id, priority=3)  # staff-only
    await op.command("conversation.status", conversation_id=conversation_id, status="resolved")

    visitor = visitor_socket(world["inbox"], boot)
    await visitor.connect()
    hello = await visitor.expect("hello")
    assert hello["last_id"] > last_seen
    await visitor.send({"type": "resume", "conversation_id": conversation_id, "after": last_seen})
    replay = []
    while True:
        frame = await visitor.recv()
        if frame["type"] == "resume.done":
            break
        replay.append(frame)
    assert [f["id"] for f in replay] == list(range(last_seen + 1, last_seen + 1 + len(replay)))
    types = [f["type"] for f in replay]
    bodies = [f["data"]["message"]["body"] for f in replay if f["type"] == "message.created"]
    assert bodies == ["one", "two", "three"]
    assert "conversation.updated" in types and "rating.requested" in types
    assert frame["last_id"] == replay[-1]["id"] == hello["last_id"]
    # Resuming again from the end gives nothing more.
    await visitor.send({"type": "resume", "conversation_id": conversation_id, "after": frame["last_id"]})
    assert (await visitor.recv())["type"] == "resume.done"
    await visitor.close()
    await op.close()


async def test_resend_with_the_same_client_id_stores_one_message():
    world = await db(_world)()
    visitor, _, _ = await _visitor(world["inbox"])
    client_id = new_client_id()
    first = await visitor.command("message.send", client_id=client_id, body="once")
    second = await visitor.command("message.send", client_id=client_id, body="once")
    assert first["data"]["message"]["id"] == second["data"]["message"]["id"]
    assert second["data"]["created"] is False
    assert await db(Message.objects.filter(client_id=client_id).count)() == 1
    await visitor.close()


MALFORMED = [
    ("not json", "bad_json"),
    ("[1, 2]", "bad_json"),
    ('"text"', "bad_json"),
    ("{}", "invalid"),
    ('{"type": 5}', "invalid"),
    ('{"type": "nope"}', "unknown_type"),
    ('{"type": "message.send", "body": "no client id"}', "invalid"),
    ('{"type": "message.send", "client_id": "x", "body": 42}', "invalid"),
    ('{"type": "message.send", "client_id": "x", "body": ""}', "invalid"),
    ('{"type": "message.send", "client_id": "x", "body": "a", "attachment_ids": "1"}', "invalid"),
    ('{"type": "resume", "conversation_id": "1", "after": 0}', "invalid"),
    ('{"type": "resume", "conversation_id": 999999, "after": 0}', "not_found"),
    ('{"type": "conversation.read", "conversation_id": 999999, "up_to_message_id": 1}', "not_found"),
    ('{"type": "conversation.rate", "conversation_id": 999999, "score": 5}', "not_found"),
    ('{"type": "contact.update", "email": "not-an-email"}', "invalid"),
]


async def test_malformed_frames_get_error_frames_and_leave_connection_and_data_intact():
    world = await db(_world)()
    visitor, _, _ = await _visitor(world["inbox"])
    await _start(visitor, "kept")
    await visitor.drain()
    counts = await db(lambda: (Message.objects.count(), ConversationEvent.objects.count()))()
    for text, code in MALFORMED:
        await visitor.send_raw(text)
        frame = await visitor.expect("error")
        assert frame["code"] == code, (text, frame)
    with override_settings(MESSENGER_FRAME_MAX_BYTES=1000):
        await visitor.send_raw(json.dumps({"type": "message.send", "client_id": "big", "body": "x" * 2000}))
        assert (await visitor.expect("error"))["code"] == "too_large"
    await visitor.send({"type": "ping"})
    assert (await visitor.expect("pong"))["type"] == "pong"
    assert await db(lambda: (Message.objects.count(), ConversationEvent.objects.count()))() == counts
    await visitor.close()


async def test_receipts_one_tick_then_two_both_ways():
    world = await db(_world)()
    op = await _operator(world["operator"])
    visitor, _, _ = await _visitor(world["inbox"])
    conversation_id, visitor_message = await _start(visitor)
    await op.command("conversation.open", conversation_id=conversation_id)
    await op.command("message.delivered", conversation_id=conversation_id, up_to_message_id=visitor_message["id"])
    update = await visitor.expect("message.updated")
    assert update["data"]["direction"] == "in" and update["data"]["changes"]["delivered_at"]
    await op.command("conversation.read", conversation_id=conversation_id, up_to_message_id=visitor_message["id"])
    read = await visitor.expect("conversation.read")
    assert read["data"]["reader"] == "agent"
    message = await db(Message.objects.get)(pk=visitor_message["id"])
    assert message.delivered_at and message.read_at

    reply = await op.command("message.send", conversation_id=conversation_id, client_id=new_client_id(), body="answer")
    reply_id = reply["data"]["message"]["id"]
    await visitor.command("conversation.read", conversation_id=conversation_id, up_to_message_id=reply_id)
    seen = await op.expect("conversation.read", conversation_id=conversation_id)
    if seen["data"]["reader"] == "agent":  # the operator's own read, echoed to the staff stream
        seen = await op.expect("conversation.read", conversation_id=conversation_id)
    assert seen["data"]["reader"] == "contact"
    conversation = await db(Conversation.objects.get)(pk=conversation_id)
    assert conversation.unread_for_contact == 0 and conversation.unread_for_agent == 0
    await op.drain(0.3)
    badges = [f["data"] for f in op.frames if f["type"] == "unread"]
    assert badges and badges[-1] == {"conversations": 0, "messages": 0}
    await op.close()
    await visitor.close()


@override_settings(MESSENGER_TYPING_TIMEOUT_SECONDS=1)
async def test_typing_both_ways_and_stops_by_itself():
    world = await db(_world)()
    op = await _operator(world["operator"])
    visitor, _, _ = await _visitor(world["inbox"])
    conversation_id, _ = await _start(visitor)
    await visitor.send({"type": "typing.start", "conversation_id": conversation_id, "preview": "secret draft"})
    started = await op.expect("typing.started", conversation_id=conversation_id)
    assert "preview" not in started["data"], "typing preview is off for this inbox"
    stopped = await op.expect("typing.stopped", conversation_id=conversation_id, timeout=3)
    assert stopped["data"]["who"] == "contact"
    await op.send({"type": "typing.start", "conversation_id": conversation_id})
    assert (await visitor.expect("typing.started"))["data"]["who"] == "agent"
    await op.send({"type": "typing.stop", "conversation_id": conversation_id})
    await visitor.expect("typing.stopped")
    await op.close()
    await visitor.close()


async def test_supervisor_watch_is_invisible_and_read_only():
    world = await db(_world)()
    supervisor = await _operator(world["supervisor"])
    visitor, _, _ = await _visitor(world["inbox"])
    conversation_id, message = await _start(visitor)
    await visitor.drain()
    snapshot = await supervisor.command("conversation.open", conversation_id=conversation_id, watch=True)
    assert snapshot["data"]["watch"] is True
    await supervisor.command("conversation.read", conversation_id=conversation_id, up_to_message_id=message["id"])
    await supervisor.send({"type": "typing.start", "conversation_id": conversation_id})
    denied = await supervisor.command(
        "message.send", conversation_id=conversation_id, client_id=new_client_id(), body="x"
    )
    assert denied["type"] == "error" and denied["code"] == "forbidden"
    assert await visitor.nothing(0.5)
    assert (await db(Message.objects.get)(pk=message["id"])).read_at is None
    assert await db(ActivityEvent.objects.filter(verb="conversation.watched", conversation_id=conversation_id).exists)()
    await supervisor.close()
    await visitor.close()


async def test_opening_by_the_assignee_stops_escalation_and_visitor_is_told():
    world = await db(_world)()
    op = await _operator(world["operator"])
    visitor, _, _ = await _visitor(world["inbox"])
    conversation_id, _ = await _start(visitor)
    conversation = await db(Conversation.objects.get)(pk=conversation_id)
    assert conversation.assignee_id == world["operator"].pk and conversation.escalation_deadline is not None
    await visitor.drain()
    await op.command("conversation.open", conversation_id=conversation_id)
    update = await visitor.expect("conversation.updated")
    assert update["data"]["changes"] == ["opened"] and update["data"]["conversation"]["opened"] is True
    conversation = await db(Conversation.objects.get)(pk=conversation_id)
    assert conversation.assignee_opened_at is not None and conversation.escalation_deadline is None
    await op.close()
    await visitor.close()


async def test_outsider_operator_cannot_touch_another_branch_conversation():
    world = await db(_world)()
    outsider = await _operator(world["outsider"])
    visitor, _, _ = await _visitor(world["inbox"])
    conversation_id, _ = await _start(visitor)
    for frame in (
        {"type": "conversation.open", "conversation_id": conversation_id},
        {"type": "message.send", "conversation_id": conversation_id, "client_id": "c1", "body": "hi"},
        {"type": "resume", "conversation_id": conversation_id, "after": 0},
        {"type": "conversation.status", "conversation_id": conversation_id, "status": "resolved"},
    ):
        reply = await outsider.command(frame.pop("type"), **frame)
        assert reply["type"] == "error" and reply["code"] == "not_found", reply
    assert (await db(Conversation.objects.get)(pk=conversation_id)).status == "open"
    await outsider.close()
    await visitor.close()


async def test_new_conversation_after_resolve_is_fresh_and_rating_is_asked_each_time():
    world = await db(_world)()
    op = await _operator(world["operator"])
    visitor, _, _ = await _visitor(world["inbox"])
    first_id, _ = await _start(visitor)
    await op.command("conversation.status", conversation_id=first_id, status="resolved")
    await visitor.expect("rating.requested", conversation_id=first_id)
    rated = await visitor.command("conversation.rate", conversation_id=first_id, score=5, comment="great")
    assert rated["type"] == "ack"
    denied = await visitor.command("message.send", conversation_id=first_id, client_id=new_client_id(), body="again")
    assert denied["code"] == "conversation_resolved"
    second_id, _ = await _start(visitor, "new question")
    assert second_id != first_id
    await op.command("conversation.status", conversation_id=second_id, status="resolved")
    await visitor.expect("rating.requested", conversation_id=second_id)
    await op.close()
    await visitor.close()


async def test_widgets_are_told_when_operators_come_and_go():
    world = await db(_world)()
    await db(lambda: AgentProfile.objects.update(status="offline"))()
    visitor, _, hello = await _visitor(world["inbox"])
    assert hello["operators_available"] is False
    op = await _operator(world["operator"])
    await op.command("status.set", status="online")
    presence = await visitor.expect("presence")
    while presence["data"].get("operators_available") is not True:
        presence = await visitor.expect("presence")
    await op.close()
    presence = await visitor.expect("presence")
    while presence["data"].get("operators_available") is not False:
        presence = await visitor.expect("presence")
    await visitor.close()


async def test_heartbeat_keeps_the_operator_connection_fresh():
    from messenger.models import AgentConnection

    world = await db(_world)()
    op = await _operator(world["operator"])
    before = await db(lambda: AgentConnection.objects.get(user=world["operator"]).last_heartbeat)()
    await op.send({"type": "ping"})
    await op.expect("pong")
    after = await db(lambda: AgentConnection.objects.get(user=world["operator"]).last_heartbeat)()
    assert after > before
    await op.close()
    assert not await db(AgentConnection.objects.filter(user=world["operator"]).exists)()


@pytest.mark.rate_window
async def test_frame_flood_is_closed_with_4008():
    world = await db(_world)()
    with override_settings(MESSENGER_WIDGET_POLL_RATE_PER_SESSION="5/min"):
        visitor, _, _ = await _visitor(world["inbox"])
        for _ in range(8):
            await visitor.send({"type": "ping"})
        frames = []
        while True:
            frame = await visitor.recv()
            frames.append(frame)
            if frame["type"] == "__closed__":
                break
        assert frame["code"] == 4008
        assert any(f.get("code") == "rate_limited" for f in frames)


async def test_endless_malformed_frames_are_closed_with_4009():
    world = await db(_world)()
    visitor, _, _ = await _visitor(world["inbox"])
    for _ in range(25):
        await visitor.send_raw("garbage")
    codes = []
    while True:
        frame = await visitor.recv()
        if frame["type"] == "__closed__":
            break
        codes.append(frame["code"])
    assert frame["code"] == 4009
    assert codes.count("bad_json") == 20


@pytest.mark.postgres
async def test_a_blocked_conversation_does_not_hold_the_operators_other_conversations():
    """Commands run in order per conversation, side by side across conversations: an operator's
    send into a conversation whose row another transaction holds waits, while their send into
    another conversation is answered at once; the waiting one lands after the lock goes."""
    import asyncio
    import threading

    from django.db import connections, transaction

    world = await db(_world)()
    visitor_a, _, _ = await _visitor(world["inbox"])
    visitor_b, _, _ = await _visitor(world["inbox"])
    conversation_a, _ = await _start(visitor_a)
    conversation_b, _ = await _start(visitor_b)
    while lane_of(conversation_b) == lane_of(conversation_a):  # two conversations in two lanes
        await visitor_b.close()
        visitor_b, _, _ = await _visitor(world["inbox"])
        conversation_b, _ = await _start(visitor_b)
    operator = await _operator(world["operator"])

    locked, release = threading.Event(), threading.Event()

    def hold_row() -> None:
        with transaction.atomic():
            list(Conversation.objects.select_for_update().filter(pk=conversation_a))
            locked.set()
            release.wait(10)
        connections.close_all()

    holder = threading.Thread(target=hold_row)
    holder.start()
    assert await asyncio.to_thread(locked.wait, 10)
    try:
        first = new_client_id()
        await operator.send(
            {
                "type": "message.send",
                "ref": "a1",
                "conversation_id": conversation_a,
                "client_id": first,
                "body": "waits for the lock",
            }
        )
        await operator.send(
            {
                "type": "message.send",
                "ref": "a2",
                "conversation_id": conversation_a,
                "client_id": new_client_id(),
                "body": "after the first",
            }
        )
        ack_b = await operator.command(
            "message.send", conversation_id=conversation_b, client_id=new_client_id(), body="not held"
        )
        assert ack_b["type"] == "ack", ack_b
        assert not [f for f in operator.backlog if f.get("ref") in ("a1", "a2")], "a1/a2 cannot be done yet"
    finally:
        release.set()
        await asyncio.to_thread(holder.join, 10)
    acks = [f for f in operator.backlog if f.get("ref") in ("a1", "a2")]
    while len(acks) < 2:
        frame = await operator.recv()
        if frame.get("ref") in ("a1", "a2"):
            acks.append(frame)
    assert [f["ref"] for f in acks] == ["a1", "a2"] and all(f["type"] == "ack" for f in acks)
    bodies = await db(
        lambda: list(
            Message.objects.filter(conversation_id=conversation_a, sender_user__isnull=False)
            .order_by("id")
            .values_list("body", flat=True)
        )
    )()
    assert bodies == ["waits for the lock", "after the first"]
    for socket in (visitor_a, visitor_b, operator):
        await socket.close()


def test_lanes_spread_regular_conversation_ids():
    # An operator often sees every n-th conversation id (round-robin assignment): each such
    # pattern must still use every lane, or their sends queue behind each other.
    from messenger.consumers import LANES

    for step in (1, 2, 4, 8):
        assert {lane_of(100 + step * i) for i in range(64)} == set(range(LANES))
    assert lane_of(None) == lane_of("7") == lane_of(True) == -1


async def test_hop_log_records_each_socket_commands_database_hop_and_the_delivery(tmp_path):
    world = await db(_world)()
    prefix = tmp_path / "hops"
    with override_settings(MESSENGER_DB_HOP_LOG=str(prefix)):
        op = await _operator(world["operator"])
        visitor, _, _ = await _visitor(world["inbox"])
        conversation_id, _ = await _start(visitor, "timed")
        await op.expect("message.created", conversation_id=conversation_id)
        await asyncio.sleep(0.2)  # lines are written every 50 ms
        await visitor.close()
        await op.close()
    await asyncio.sleep(0.1)  # the writer sees the setting off and stops
    lines = [line.split() for log in tmp_path.glob("hops.*") for line in log.read_text().splitlines()]
    values = {}
    for name, *numbers in lines:
        values.setdefault(name, []).append([float(n) for n in numbers])
    assert len(values["check_visitor_command"]) == 1, lines
    queue, wall, cpu = values["check_visitor_command"][0]
    assert 0 <= queue < 10 and 0 < wall < 10 and 0 <= cpu < 10
    hops = {"visitor_connect", "hello_and_live", "loop_lag", "publish_delay", "fanout_delay"}
    assert hops <= set(values), set(values)
    for name in ("loop_lag", "publish_delay", "fanout_delay"):
        assert all(-0.01 < row[0] < 10 for row in values[name]), (name, values[name])
