"""Pinned query counts of every conversation action, as the socket runs it (access, lock, change,
audit row, event, and what runs after the commit): a regression here is a slower dashboard.
Sends are pinned in tests/test_realtime_queries.py.

The test wraps each action's transaction in a savepoint (SAVEPOINT, RELEASE) that production does
not pay; BEGIN and COMMIT are not counted. Each event is two statements (its numbers, then its
row) on every database; where PostgreSQL and SQLite differ, SQLite takes no row locks, and runs
the webhook outbox's INSERT (messenger.webhooks) as a statement of its own: one more for each
event reported to webhooks (and for a contact's update), where PostgreSQL sends it with the
event's row."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from messenger.access import staff_scope
from messenger.actions.assignment import do_escalate_due
from messenger.actions.commands import OperatorContext, VisitorContext, check_operator_command, check_visitor_command
from messenger.models import Conversation
from messenger.protocol import Command
from tests.test_events import World, make_world, operator_send
from tests.test_routing_helpers import connect, heartbeat_all
from tests.verify import after_commit

pytestmark = pytest.mark.django_db


@pytest.fixture
def world() -> World:
    return make_world()


def assert_queries(expected: dict[str, int], action: Callable[[], Any]) -> Any:
    """``action`` runs ``expected[vendor]`` queries, those after its commit included."""
    with CaptureQueriesContext(connection) as queries, after_commit():
        result = action()
    statements = [query["sql"] for query in queries.captured_queries]
    assert len(statements) == expected[connection.vendor], "\n".join(statements)
    return result


def operator(world: World, type_: str, **fields: Any) -> Callable[[], Any]:
    context = OperatorContext(user=world.operator, scope=staff_scope(world.operator))
    command = Command(type=type_, ref="r1", fields={"conversation_id": world.conversation_id, **fields})
    return lambda: check_operator_command(context, command)


def visitor(world: World, type_: str, **fields: Any) -> Callable[[], Any]:
    context = VisitorContext(contact_inbox=world.contact_inbox(), ip="127.0.0.9")
    command = Command(type=type_, ref="r1", fields=fields)
    return lambda: check_visitor_command(context, command)


def test_assign(world):
    # the locked read, the operator, the UPDATE, the audit row, the event (+ savepoint)
    assert_queries(
        {"postgresql": 8, "sqlite": 9}, operator(world, "conversation.assign", assignee_id=world.colleague.pk)
    )


def test_transfer(world):
    connect(world.helper)
    # the move and its audit row; ranking, claiming and assigning the first free operator there;
    # the branch event; the system note (its own savepoint)
    assert_queries(
        {"postgresql": 20, "sqlite": 24}, operator(world, "conversation.transfer", branch_id=world.other_branch.pk)
    )


def test_status(world):
    # the change, its audit row and event, the rating request; after the commit, the queue sweep
    assert_queries({"postgresql": 10, "sqlite": 11}, operator(world, "conversation.status", status="resolved"))


def test_priority(world):
    assert_queries({"postgresql": 7, "sqlite": 8}, operator(world, "conversation.priority", priority=2))


def test_labels(world):
    # two new labels, each created in a savepoint of its own (get_or_create)
    assert_queries({"postgresql": 17, "sqlite": 18}, operator(world, "conversation.labels", labels=["vip", "billing"]))


def test_escalation(world):
    connect(world.colleague)
    conversation = Conversation.objects.get(pk=world.conversation_id)
    now = conversation.escalation_deadline + timedelta(seconds=1)
    heartbeat_all(now)
    # the due list, then per conversation: the lock, the ranking and claim, the assignment, the note
    assert assert_queries({"postgresql": 16, "sqlite": 19}, lambda: do_escalate_due(now=now)) == 1


def test_open(world):
    # opened (UPDATE, audit row, event), then the snapshot: labels, a page of messages, attachments
    assert_queries({"postgresql": 10, "sqlite": 11}, operator(world, "conversation.open"))


def test_read(world):
    up_to = world.last_message().pk
    # access, the message exists, read and delivered UPDATEs, bump, event, the badge totals
    assert_queries({"postgresql": 9, "sqlite": 9}, operator(world, "conversation.read", up_to_message_id=up_to))


def test_visitor_read(world):
    operator_send(world, "thread")
    up_to = world.last_message().pk
    assert_queries(
        {"postgresql": 8, "sqlite": 8},
        visitor(world, "conversation.read", conversation_id=world.conversation_id, up_to_message_id=up_to),
    )


def test_delivered(world):
    up_to = world.last_message().pk
    assert_queries({"postgresql": 6, "sqlite": 6}, operator(world, "message.delivered", up_to_message_id=up_to))


def test_rate(world):
    operator(world, "conversation.status", status="resolved")()
    assert_queries(
        {"postgresql": 7, "sqlite": 8},
        visitor(world, "conversation.rate", conversation_id=world.conversation_id, score=4, comment="fine"),
    )


def test_contact_update(world):
    assert_queries(
        {"postgresql": 4, "sqlite": 5}, visitor(world, "contact.update", name="Anna", email="anna@example.com")
    )
