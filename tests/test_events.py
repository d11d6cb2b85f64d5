"""Every action's broadcasts, exactly: the groups, the types and the fields of each frame that leaves
after commit (``tests/verify.py``), on the thread's path and, for sends, on the event loop's; and
every field the server can send documented in docs/protocol.md."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.db import connection, transaction
from django.utils import timezone

from messenger import events
from messenger.access import staff_scope
from messenger.actions.assignment import do_escalate_due
from messenger.actions.base import Actor
from messenger.actions.commands import OperatorContext, VisitorContext, check_operator_command, check_visitor_command
from messenger.actions.conversations import do_change_priority, do_change_status
from messenger.actions.intake import send_visitor_message
from messenger.actions.locks import lock_conversation
from messenger.actions.messages import asend_operator_message, asend_visitor_message, send_operator_message
from messenger.actions.presence import do_set_status
from messenger.actions.schedule import do_wake_snoozed
from messenger.models import ContactInbox, Conversation, Message
from messenger.protocol import Command
from messenger.realtime.groups import STAFF_ALL, branch_group, inbox_group, user_group, visitor_group
from tests.conftest import bootstrap, new_client_id, visitor_rows
from tests.factories import make_branch, make_inbox, make_user
from tests.test_routing_helpers import connect, heartbeat_all
from tests.verify import Sent, check_frame, every_shape, summary, verify_action

pytestmark = pytest.mark.django_db

PROTOCOL = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"
CONVERSATION = ["changes", "conversation"]
ASSIGNMENT = ["conversation", "from", "reason", "to"]
MESSAGE_STAFF = ["conversation", "message"]
MESSAGE_PUBLIC = ["message", "unread_for_contact"]


@dataclass
class World:
    """A branch with one connected operator and a visitor whose conversation they were given."""

    branch: Any
    other_branch: Any
    inbox: Any
    operator: Any
    colleague: Any
    helper: Any
    contact_inbox_id: int
    conversation_id: int

    @property
    def staff(self) -> list[str]:
        return [branch_group(self.branch.pk)]

    @property
    def visitor(self) -> list[str]:
        return [visitor_group(self.contact_inbox_id)]

    def contact_inbox(self) -> ContactInbox:
        return ContactInbox.objects.select_related("contact", "inbox").get(pk=self.contact_inbox_id)

    def conversation(self) -> Conversation:
        """As the sockets hold it (``access_*``)."""
        return Conversation.objects.select_related(
            "inbox", "branch", "region", "contact", "assignee", "contact_inbox"
        ).get(pk=self.conversation_id)

    def last_message(self) -> Message:
        return Message.objects.filter(conversation_id=self.conversation_id).order_by("-id").first()


def make_world() -> World:
    branch, other_branch = make_branch("Sales"), make_branch("Support")
    inbox = make_inbox(branch)
    operator, colleague, helper = make_user(branch=branch), make_user(branch=branch), make_user(branch=other_branch)
    connect(operator)
    contact_inbox = visitor_rows(bootstrap(inbox))
    first = send_visitor_message(
        contact_inbox=contact_inbox, client_id=new_client_id(), body="first", actor=Actor(contact=contact_inbox.contact)
    )
    assert first.conversation.assignee_id == operator.pk
    return World(branch, other_branch, inbox, operator, colleague, helper, contact_inbox.pk, first.conversation.pk)


@pytest.fixture
def world() -> World:
    return make_world()


def operator_command(user: Any, type_: str, **fields: Any) -> list[dict[str, Any]]:
    """One operator socket command, as the consumer runs it; its reply frames are checked too."""
    context = OperatorContext(user=user, scope=staff_scope(user))
    return check_operator_command(context, Command(type=type_, ref="r1", fields=fields))


def visitor_command(world: World, type_: str, **fields: Any) -> list[dict[str, Any]]:
    context = VisitorContext(contact_inbox=world.contact_inbox(), ip="127.0.0.9")
    return check_visitor_command(context, Command(type=type_, ref="r1", fields=fields))


def verify(action: Any) -> tuple[Any, list[Sent]]:
    """``verify_action``, and the reply frames the action returned (if any) checked as well."""
    replies, sent = verify_action(action)
    for frame in replies if isinstance(replies, list) else []:
        check_frame(Sent(groups=["reply"], frame=frame, driver="reply"))
    return replies, sent


# --- the documentation ----------------------------------------------------------------------------


def documented_fields() -> dict[str, tuple[set[str], set[str]]]:
    """docs/protocol.md, "Field reference": each shape's heading, its (fields, optional fields)."""
    text = PROTOCOL.read_text()
    reference = text[text.index("\n## Field reference") :]
    sections = re.split(r"^#### `(\w+)`\s*$", reference, flags=re.M)
    documented: dict[str, tuple[set[str], set[str]]] = {}
    bases: dict[str, str] = {}
    for name, body in zip(sections[1::2], sections[2::2], strict=True):
        rows = re.findall(r"^\| `([^`]+)` \| ([^|]*) \|", body, flags=re.M)
        documented[name] = ({field for field, _ in rows}, {field for field, kind in rows if "optional" in kind})
        base = re.search(r"All the fields of \[`(\w+)`\]", body)
        if base:
            bases[name] = base.group(1)
    for name, base in bases.items():
        fields, optional = documented[name]
        base_fields, base_optional = documented[base]
        documented[name] = (fields | base_fields, optional | base_optional)
    return documented


def test_every_field_the_server_sends_is_documented():
    documented = documented_fields()
    problems = []
    for shape in every_shape():
        fields, optional = documented.get(shape.__name__, (set(), set()))
        keys = shape.__required_keys__ | shape.__optional_keys__
        if shape.__name__ not in documented:
            problems.append(f"{shape.__name__}: no table")
            continue
        if keys - fields:
            problems.append(f"{shape.__name__}: {sorted(keys - fields)} not documented")
        if fields - keys:
            problems.append(f"{shape.__name__}: {sorted(fields - keys)} documented but never sent")
        if shape.__name__ != "SnapshotConversation" and optional != set(shape.__optional_keys__):
            problems.append(
                f"{shape.__name__}: optional {sorted(shape.__optional_keys__)}, documented {sorted(optional)}"
            )
    assert not problems, problems


def test_every_type_is_documented_with_its_shapes():
    text = PROTOCOL.read_text()
    table = text[text.index("### Frame types") : text.index("### Frames\n")]
    rows = dict(re.findall(r"^\| `([\w.]+)` \| \w+ \| (.*) \|$", table, flags=re.M))
    expected: dict[str, set[str]] = {}
    for event_type in events.EVENT_TYPES:
        expected[event_type.type] = {event_type.staff.__name__} | (
            {event_type.public.__name__} if event_type.public else set()
        )
    for frame_type in events.FRAME_TYPES:
        expected[frame_type.type] = {shape.__name__ for shape in frame_type.shapes}
    assert set(rows) == set(expected)
    for type_, shapes in expected.items():
        assert set(re.findall(r"\[`(\w+)`\]", rows[type_])) == shapes, type_


def test_types_are_unique_and_never_built_elsewhere():
    types_ = [event_type.type for event_type in events.EVENT_TYPES] + [frame.type for frame in events.FRAME_TYPES]
    assert len(types_) == len(set(types_))
    root = Path(events.__file__).resolve().parent
    # A frame written as a literal: {"type": "ack", …}
    literal = re.compile(r"""["']type["']\s*:\s*["'](?:""" + "|".join(map(re.escape, types_)) + r""")["']""")
    offenders = []
    for path in root.rglob("*.py"):
        if path.name == "events.py" or "migrations" in path.parts:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if literal.search(line):
                offenders.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    assert not offenders, "frames are built in messenger/events.py only"


def test_the_shape_check_refuses_a_missing_or_unknown_field(world):
    frame = events.durable_frame(
        type="conversation.read",
        conversation_id=1,
        event_id=1,
        ts=timezone.now(),
        data={"reader": "agent", "up_to_message_id": 3, "read_at": None},
    )
    check_frame(Sent(groups=world.staff, frame=frame, driver="thread"))
    with pytest.raises(AssertionError, match="missing"):
        check_frame(Sent(groups=world.staff, frame={**frame, "data": {"reader": "agent"}}, driver="thread"))
    with pytest.raises(AssertionError, match="not in"):
        check_frame(Sent(groups=world.staff, frame={**frame, "data": {**frame["data"], "x": 1}}, driver="thread"))
    with pytest.raises(AssertionError, match="staff only"):
        assigned = {**frame, "type": "assignment.assigned"}
        check_frame(Sent(groups=world.visitor, frame=assigned, driver="thread"))


# --- after commit ---------------------------------------------------------------------------------


def test_nothing_leaves_when_the_transaction_rolls_back(world):
    class Undone(Exception):
        pass

    def action():
        with pytest.raises(Undone), transaction.atomic():
            conversation = lock_conversation(world.conversation_id)
            do_change_priority(conversation=conversation, priority=3, actor=Actor(user=world.operator))
            raise Undone

    _, sent = verify(action)
    assert sent == []


# --- messages (both drivers) ----------------------------------------------------------------------


DRIVERS = [
    "thread",
    pytest.param("loop", marks=[pytest.mark.postgres, pytest.mark.django_db(transaction=True)]),
]


def _on_driver(driver: str) -> None:
    if driver == "loop" and connection.vendor != "postgresql":
        pytest.skip("the event loop's driver is PostgreSQL's")


def visitor_send(world: World, driver: str, body: str = "hello") -> Any:
    contact_inbox, conversation = world.contact_inbox(), world.conversation()
    fields = {"contact_inbox": contact_inbox, "client_id": new_client_id(), "body": body}
    if driver == "loop":
        result = async_to_sync(asend_visitor_message)(known_conversation=conversation, **fields)
        assert result is not None, "sent on the event loop"
        return result
    return send_visitor_message(actor=Actor(contact=contact_inbox.contact), known_conversation=conversation, **fields)


def operator_send(world: World, driver: str, *, private: bool = False) -> Any:
    fields = {
        "conversation": world.conversation(),
        "user": world.operator,
        "client_id": new_client_id(),
        "body": "a note" if private else "a reply",
        "private": private,
    }
    if driver == "loop":
        result = async_to_sync(asend_operator_message)(**fields)
        assert result is not None, "sent on the event loop"
        return result
    return send_operator_message(**fields)


@pytest.mark.parametrize("driver", DRIVERS)
def test_visitor_message(world, driver):
    _on_driver(driver)
    result, sent = verify(lambda: visitor_send(world, driver))
    assert summary(sent) == [
        (world.staff, "message.created", MESSAGE_STAFF),
        (world.visitor, "message.created", MESSAGE_PUBLIC),
    ]
    assert {one.driver for one in sent} == {driver}
    staff, public = sent[0].data, sent[1].data
    assert staff["message"]["id"] == public["message"]["id"] == result.message.pk
    sender = {"type": "contact", "id": result.message.sender_contact_id, "name": str(world.contact_inbox().contact)}
    assert staff["message"]["sender"] == public["message"]["sender"] == sender
    assert staff["conversation"]["unread_for_agent"] == 2
    assert public["unread_for_contact"] == 0


@pytest.mark.parametrize("driver", DRIVERS)
def test_operator_reply(world, driver):
    _on_driver(driver)
    result, sent = verify(lambda: operator_send(world, driver))
    assert summary(sent) == [
        (world.staff, "message.created", MESSAGE_STAFF),
        (world.visitor, "message.created", MESSAGE_PUBLIC),
    ]
    staff, public = sent[0].data, sent[1].data
    assert staff["message"]["sender"] == {
        "type": "user",
        "name": events.user_name(world.operator),
        "id": world.operator.pk,
    }
    assert public["message"]["sender"] == {"type": "user", "name": events.user_name(world.operator)}
    assert public["unread_for_contact"] == 1
    assert staff["conversation"]["waiting_since"] is None


@pytest.mark.parametrize("driver", DRIVERS)
def test_internal_note(world, driver):
    _on_driver(driver)
    _, sent = verify(lambda: operator_send(world, driver, private=True))
    assert summary(sent) == [(world.staff, "message.created", MESSAGE_STAFF)]
    assert sent[0].data["message"]["direction"] == "internal"


def test_a_visitors_first_message(world):
    other = visitor_rows(bootstrap(world.inbox))
    visitor = [visitor_group(other.pk)]
    # The only operator is connected: the new conversation is theirs.
    result, sent = verify(
        lambda: send_visitor_message(
            contact_inbox=other, client_id=new_client_id(), body="hi", actor=Actor(contact=other.contact)
        )
    )
    assert summary(sent) == [
        (world.staff, "conversation.created", CONVERSATION),
        (visitor, "conversation.created", CONVERSATION),
        (world.staff, "assignment.assigned", ASSIGNMENT),
        (visitor, "conversation.updated", CONVERSATION),
        (world.staff, "message.created", MESSAGE_STAFF),
        (visitor, "message.created", MESSAGE_PUBLIC),
    ]
    assert {one.frame["conversation_id"] for one in sent} == {result.conversation.pk}
    assert sent[0].data["changes"] == ["created"] and sent[3].data["changes"] == ["assignee"]


def test_a_visitor_message_via_the_socket_acks_its_message(world):
    replies, sent = verify(lambda: visitor_command(world, "message.send", client_id=new_client_id(), body="via"))
    assert [frame["type"] for frame in replies] == ["ack"]
    assert sorted(replies[0]["data"]) == ["conversation_id", "created", "message"]
    assert [one.type for one in sent] == ["message.created", "message.created"]


def test_a_visitor_message_wakes_a_snoozed_conversation(world):
    with transaction.atomic():
        do_change_status(
            conversation=lock_conversation(world.conversation_id),
            status="snoozed",
            snoozed_until=timezone.now() + timedelta(hours=1),
            actor=Actor(user=world.operator),
        )
    _, sent = verify(lambda: visitor_send(world, "thread", "wake up"))
    assert summary(sent) == [
        (world.staff, "message.created", MESSAGE_STAFF),
        (world.visitor, "message.created", MESSAGE_PUBLIC),
    ]
    conversation = sent[0].data["conversation"]
    assert (conversation["status"], conversation["snoozed_until"]) == ("open", None)


@pytest.mark.parametrize("change", ["message", "status"])
def test_the_summarys_last_seq_is_the_events_id(world, change):
    if change == "message":
        _, sent = verify(lambda: visitor_send(world, "thread"))
    else:
        _, sent = verify(
            lambda: operator_command(
                world.operator, "conversation.status", conversation_id=world.conversation_id, status="pending"
            )
        )
    staff = sent[0]
    assert staff.data["conversation"]["last_seq"] == staff.frame["id"]
    if change == "status":  # the visitor's summary names the visitor's stream's event
        public = sent[1]
        assert public.data["conversation"]["last_id"] == public.frame["id"]


# --- conversation changes -------------------------------------------------------------------------


def test_assign(world):
    replies, sent = verify(
        lambda: operator_command(
            world.operator, "conversation.assign", conversation_id=world.conversation_id, assignee_id=world.colleague.pk
        )
    )
    assert summary(sent) == [
        (world.staff, "assignment.assigned", ASSIGNMENT),
        (world.visitor, "conversation.updated", CONVERSATION),
    ]
    staff, public = sent[0].data, sent[1].data
    assert (staff["from"]["id"], staff["to"]["id"]) == (world.operator.pk, world.colleague.pk)
    assert "step" not in staff and staff["reason"] == {"reason": "manual"}
    assert public == {"changes": ["assignee"], "conversation": public["conversation"]}
    assert public["conversation"]["assignee"] == {"name": events.user_name(world.colleague)}
    assert sorted(replies[0]["data"]) == ["conversation"]


def test_unassign(world):
    _, sent = verify(
        lambda: operator_command(
            world.operator, "conversation.assign", conversation_id=world.conversation_id, assignee_id=None
        )
    )
    assert summary(sent) == [
        (world.staff, "assignment.unassigned", ASSIGNMENT),
        (world.visitor, "conversation.updated", CONVERSATION),
    ]
    assert sent[0].data["to"] is None and sent[1].data["conversation"]["assignee"] is None


def test_transfer(world):
    connect(world.helper)
    _, sent = verify(
        lambda: operator_command(
            world.operator,
            "conversation.transfer",
            conversation_id=world.conversation_id,
            branch_id=world.other_branch.pk,
        )
    )
    there = [branch_group(world.other_branch.pk)]
    assert summary(sent) == [
        (there, "assignment.transferred", ASSIGNMENT),
        (world.visitor, "conversation.updated", CONVERSATION),
        (there + world.staff, "conversation.updated", CONVERSATION),
        (there, "message.created", MESSAGE_STAFF),
    ]
    assert sent[0].data["to"]["id"] == world.helper.pk
    assert sent[2].data["changes"] == ["branch"]
    assert sent[3].data["message"]["direction"] == "internal"


def test_resolve_asks_for_a_rating(world):
    _, sent = verify(
        lambda: operator_command(
            world.operator, "conversation.status", conversation_id=world.conversation_id, status="resolved"
        )
    )
    assert summary(sent) == [
        (world.staff, "conversation.updated", CONVERSATION),
        (world.visitor, "conversation.updated", CONVERSATION),
        (world.staff, "rating.requested", ["scale"]),
        (world.visitor, "rating.requested", ["scale"]),
    ]
    assert sent[0].data["changes"] == ["status"] and sent[0].data["conversation"]["status"] == "resolved"
    assert sent[1].data["conversation"]["rating_requested"] is True
    assert sent[2].data == {"scale": "stars"}


def test_snooze_and_wake_up(world):
    until = timezone.now() + timedelta(hours=1)
    _, sent = verify(
        lambda: operator_command(
            world.operator,
            "conversation.status",
            conversation_id=world.conversation_id,
            status="snoozed",
            snoozed_until=until.isoformat(),
        )
    )
    assert summary(sent) == [
        (world.staff, "conversation.updated", CONVERSATION),
        (world.visitor, "conversation.updated", CONVERSATION),
    ]
    assert sent[0].data["conversation"]["snoozed_until"] == events.iso(until)

    later = until + timedelta(seconds=1)
    heartbeat_all(later)
    woken, sent = verify(lambda: do_wake_snoozed(now=later))
    assert woken == 1
    assert summary(sent) == [
        (world.staff, "conversation.updated", CONVERSATION),
        (world.visitor, "conversation.updated", CONVERSATION),
    ]
    conversation = sent[0].data["conversation"]
    assert (conversation["status"], conversation["snoozed_until"]) == ("open", None)


def test_priority_is_staff_only(world):
    _, sent = verify(
        lambda: operator_command(
            world.operator, "conversation.priority", conversation_id=world.conversation_id, priority=3
        )
    )
    assert summary(sent) == [(world.staff, "conversation.updated", CONVERSATION)]
    assert sent[0].data["changes"] == ["priority"] and sent[0].data["conversation"]["priority"] == 3


def test_labels_are_staff_only(world):
    _, sent = verify(
        lambda: operator_command(
            world.operator, "conversation.labels", conversation_id=world.conversation_id, labels=["vip", "billing"]
        )
    )
    assert summary(sent) == [(world.staff, "conversation.updated", CONVERSATION)]
    assert sent[0].data["changes"] == ["labels"] and sent[0].data["conversation"]["labels"] == ["vip", "billing"]


def _due(world: World):
    conversation = Conversation.objects.get(pk=world.conversation_id)
    now = conversation.escalation_deadline + timedelta(seconds=1)
    heartbeat_all(now)
    return now


def test_escalation_to_the_next_operator(world):
    connect(world.colleague)
    now = _due(world)
    _, sent = verify(lambda: do_escalate_due(now=now))
    assert summary(sent) == [
        (world.staff, "assignment.escalated", sorted([*ASSIGNMENT, "step"])),
        (world.visitor, "conversation.updated", CONVERSATION),
        (world.staff, "message.created", MESSAGE_STAFF),
    ]
    assert sent[0].data["step"] == 1 and sent[0].data["to"]["id"] == world.colleague.pk
    assert sent[2].data["message"]["content_attributes"] == {
        "kind": "escalation",
        "notice": {
            "type": "escalated",
            "from": world.operator.get_full_name(),
            "to": world.colleague.get_full_name(),
            "timeout": 240,
        },
    }


def test_escalation_with_nobody_to_take_it(world):
    now = _due(world)
    _, sent = verify(lambda: do_escalate_due(now=now))
    assert summary(sent) == [
        (world.staff, "assignment.escalation_queued", sorted([*ASSIGNMENT, "step"])),
        (world.visitor, "conversation.updated", CONVERSATION),
        ([STAFF_ALL], "supervisor.alert", ["branch_id", "conversation_id", "kind", "reason", "step"]),
        (world.staff, "message.created", MESSAGE_STAFF),
    ]
    assert sent[0].data["to"] is None and sent[2].data["step"] == 1


def test_open(world):
    replies, sent = verify(
        lambda: operator_command(world.operator, "conversation.open", conversation_id=world.conversation_id)
    )
    assert summary(sent) == [
        (world.staff, "conversation.updated", CONVERSATION),
        (world.visitor, "conversation.updated", CONVERSATION),
    ]
    assert sent[0].data["changes"] == ["opened"] and sent[1].data["conversation"]["opened"] is True
    assert [frame["type"] for frame in replies] == ["conversation.snapshot"]
    # Opened once: nothing more to tell.
    _, again = verify(
        lambda: operator_command(world.operator, "conversation.open", conversation_id=world.conversation_id)
    )
    assert again == []


def test_operator_reads(world):
    up_to = world.last_message().pk
    _, sent = verify(
        lambda: operator_command(
            world.operator, "conversation.read", conversation_id=world.conversation_id, up_to_message_id=up_to
        )
    )
    assert summary(sent) == [
        (world.staff, "conversation.read", ["read_at", "reader", "up_to_message_id"]),
        (world.visitor, "conversation.read", ["read_at", "reader", "up_to_message_id"]),
        ([user_group(world.operator.pk)], "unread", ["conversations", "messages"]),
    ]
    assert sent[0].data["reader"] == "agent" and sent[0].data["up_to_message_id"] == up_to
    assert sent[2].data == {"conversations": 0, "messages": 0}


def test_visitor_reads(world):
    operator_send(world, "thread")
    up_to = world.last_message().pk
    _, sent = verify(
        lambda: visitor_command(
            world, "conversation.read", conversation_id=world.conversation_id, up_to_message_id=up_to
        )
    )
    assert summary(sent) == [
        (world.staff, "conversation.read", ["read_at", "reader", "up_to_message_id"]),
        (world.visitor, "conversation.read", ["read_at", "reader", "up_to_message_id"]),
    ]
    assert sent[0].data["reader"] == "contact"


def test_delivered(world):
    up_to = world.last_message().pk
    _, sent = verify(
        lambda: operator_command(
            world.operator, "message.delivered", conversation_id=world.conversation_id, up_to_message_id=up_to
        )
    )
    assert summary(sent) == [
        (world.staff, "message.updated", ["changes", "direction", "up_to_message_id"]),
        (world.visitor, "message.updated", ["changes", "direction", "up_to_message_id"]),
    ]
    assert sent[0].data["direction"] == "in" and sorted(sent[0].data["changes"]) == ["delivered_at"]
    # Delivered already: no event.
    _, again = verify(
        lambda: operator_command(
            world.operator, "message.delivered", conversation_id=world.conversation_id, up_to_message_id=up_to
        )
    )
    assert again == []


def test_rating(world):
    operator_command(world.operator, "conversation.status", conversation_id=world.conversation_id, status="resolved")
    replies, sent = verify(
        lambda: visitor_command(
            world, "conversation.rate", conversation_id=world.conversation_id, score=5, comment="ok"
        )
    )
    assert summary(sent) == [
        (world.staff, "conversation.updated", CONVERSATION),
        (world.visitor, "conversation.updated", CONVERSATION),
    ]
    assert sent[0].data["changes"] == ["rating"]
    assert sent[1].data["conversation"]["rating"]["score"] == 5
    assert [frame.data["conversation"]["rating"]["scale"] for frame in sent] == ["stars", "stars"]
    assert replies[0]["data"] == {"rating": {"score": 5}}


def test_contact_update_broadcasts_nothing(world):
    replies, sent = verify(lambda: visitor_command(world, "contact.update", name="Anna", email="anna@example.com"))
    assert sent == []
    assert replies[0]["data"] == {"contact": {"name": "Anna", "email": "anna@example.com", "phone": ""}}


def test_transcript_request_broadcasts_nothing(world):
    replies, sent = verify(
        lambda: visitor_command(
            world, "conversation.transcript", conversation_id=world.conversation_id, email="anna@example.com"
        )
    )
    assert sent == []
    assert replies[0]["data"] == {"transcript": {"email": "anna@example.com"}}


def test_status_set_tells_staff_and_the_widgets(world):
    other_inbox = make_inbox(None)
    _, sent = verify(lambda: do_set_status(user=world.operator, status="away", actor=Actor(user=world.operator)))
    assert summary(sent)[0] == (world.staff, "presence", ["connected", "status", "user_id"])
    assert sorted(summary(sent)[1:]) == sorted(
        ([inbox_group(inbox.pk)], "presence", ["operators_available", "within_working_hours"])
        for inbox in (world.inbox, other_inbox)
    )
    assert sent[0].data == {"user_id": world.operator.pk, "status": "away", "connected": True}


# --- what the sockets answer ----------------------------------------------------------------------


def test_replayed_events_keep_their_shapes(world):
    operator_send(world, "thread")
    operator_send(world, "thread", private=True)
    operator_command(world.operator, "conversation.labels", conversation_id=world.conversation_id, labels=["vip"])
    operator_command(world.operator, "conversation.status", conversation_id=world.conversation_id, status="resolved")
    staff = operator_command(world.operator, "resume", conversation_id=world.conversation_id, after=0)
    public = visitor_command(world, "resume", conversation_id=world.conversation_id, after=0)
    for frames, groups in ((staff, world.staff), (public, world.visitor)):
        assert frames[-1]["type"] == "resume.done" and frames[-1]["last_id"] == frames[-2]["id"]
        for frame in frames:
            check_frame(Sent(groups=groups, frame=frame, driver="reply"))
    assert len(staff) > len(public)


def test_ephemeral_frames_keep_their_shapes(world):
    from messenger.actions.widget import VisitorConnect

    frames = [
        VisitorConnect(contact_inbox=world.contact_inbox()).hello(),
        events.operator_hello(
            world.operator, name="Olga", role="operator", branch_id=None, status="online", heartbeat=20
        ),
        events.typing_frame(started=True, conversation_id=1, who="contact", name="Anna", preview="I would"),
        events.typing_frame(started=False, conversation_id=1, who="agent", name="Olga"),
        events.live_frame(delivering=False),
        events.error_frame(
            "captcha_required", "Solve it", ref="r2", challenge={"provider": "altcha"}, reason="missing"
        ),
        events.error_frame("rate_limited", "Slow down", retry_after=3),
        events.error_frame("pre_chat_required", "Fill in the form", fields=["name"]),
        events.pong_frame(),
    ]
    for frame in frames:
        check_frame(Sent(groups=["reply"], frame=frame, driver="reply"))
