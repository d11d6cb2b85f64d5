"""PostgreSQL writes a message without attachments in one statement (``messages._one_statement_steps``):
the payloads it stores, with the values its UPDATE decides set by PostgreSQL, are the frames the
clients get live; whatever it declines is written by the step-by-step path; the visitor's
throttles it counts first are taken back when it declines."""

import json
from datetime import UTC, datetime

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from messenger import events
from messenger.actions.messages import _check_queries, _iso_sql, send_operator_message
from messenger.models import Conversation, ConversationEvent, Message
from messenger.realtime import broadcast
from messenger.realtime.eventlog import replay_frames
from messenger.throttle import VisitorLimits
from tests.conftest import new_client_id
from tests.test_realtime_queries import _known, chat, send_on_socket  # noqa: F401 — the fixture

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


@pytest.fixture(autouse=True)
def _postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("the one-statement write is PostgreSQL's")


def _frames_of(call):
    """The frames ``call`` publishes (after its commit), by group, as JSON texts."""
    with broadcast.collected() as frames:
        result = call()
    return result, frames


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 12, 2, 7, 9, 22, 46600, tzinfo=UTC),
        datetime(2026, 12, 2, 7, 9, 22, 0, tzinfo=UTC),
        datetime(1999, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        None,
    ],
)
def test_timestamps_are_written_as_the_server_writes_them(moment):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT ({_iso_sql('t.x')})::text FROM (SELECT %s::timestamptz AS x) t", [moment])
        (text,) = cursor.fetchone()
    assert text == ("null" if moment is None else f'"{events.iso(moment)}"')


def test_one_statement_stores_what_the_clients_see(chat):  # noqa: F811
    ci, conversation = _known(chat)
    Conversation.objects.filter(pk=conversation.pk).update(status="snoozed", unread_for_agent=4)
    conversation.status = "snoozed"
    with CaptureQueriesContext(connection) as queries:
        sent = send_on_socket(ci, conversation, new_client_id(), "wake up")
    writes = [q["sql"] for q in queries.captured_queries if "messenger_message" in q["sql"]]
    assert len(writes) == 1 and writes[0].startswith("WITH c AS (UPDATE"), writes

    stored = Conversation.objects.get(pk=conversation.pk)
    assert stored.status == "open" and stored.unread_for_agent == 5  # decided in SQL, under the lock
    event = ConversationEvent.objects.get(conversation=conversation, seq=stored.last_seq)
    assert event.public_seq == stored.last_public_seq
    message = Message.objects.get(pk=sent.message.pk)
    assert event.payload["message"] == events.message_payload(message, public=False)
    assert event.payload["conversation"]["status"] == "open"
    assert event.payload["conversation"]["unread_for_agent"] == 5
    assert event.payload["conversation"]["waiting_since"] == events.iso(stored.waiting_since)
    assert event.public_payload == {
        "type": "message.created",
        "data": {
            "message": events.message_payload(message, public=True),
            "unread_for_contact": stored.unread_for_contact,
        },
    }
    # The caller's conversation follows the row.
    assert (sent.conversation.status, sent.conversation.unread_for_agent) == ("open", 5)
    assert sent.conversation.last_seq == stored.last_seq


def test_live_frames_are_the_stored_events(chat):  # noqa: F811
    conversation = Conversation.objects.select_related(
        "inbox", "branch", "region", "contact", "assignee", "contact_inbox"
    ).get(pk=chat["conversation_id"])
    sent, frames = _frames_of(
        lambda: send_operator_message(
            conversation=conversation, user=chat["operator"], client_id=new_client_id(), body="**hi**"
        )
    )
    stored = Conversation.objects.get(pk=conversation.pk)
    live = [json.loads(text) for _groups, text in frames]
    staff = next(f for f in live if f["id"] == stored.last_seq and "conversation" in f["data"])
    public = next(f for f in live if f["id"] == stored.last_public_seq and "unread_for_contact" in f["data"])
    (replayed_staff,) = replay_frames(conversation.pk, after=stored.last_seq - 1, public=False)
    (replayed_public,) = replay_frames(conversation.pk, after=stored.last_public_seq - 1, public=True)
    for frame, replayed in ((staff, replayed_staff), (public, replayed_public)):
        assert (frame["type"], frame["id"], frame["data"]) == (replayed["type"], replayed["id"], replayed["data"])
    assert staff["data"]["message"]["id"] == sent.message.pk
    assert public["data"]["unread_for_contact"] == stored.unread_for_contact
    assert staff["data"]["conversation"]["assignee_opened_at"] == events.iso(stored.assignee_opened_at)
    assert staff["data"]["message"]["content"] == sent.message.content  # rendered by the server


@pytest.mark.rate_window
def test_a_declined_statement_refunds_the_throttles(chat, settings):  # noqa: F811
    # Two per minute: the message, its resend (counted, then found to be a resend: refunded), and
    # a second message still fits. Without the refund the second would be the third hit.
    settings.MESSENGER_WIDGET_SEND_RATE_PER_SESSION = "2/min"
    ci, conversation = _known(chat)
    limits = VisitorLimits(ip="127.0.0.9")
    client_id = new_client_id()
    first = send_on_socket(ci, conversation, client_id, limits=limits)
    again = send_on_socket(ci, conversation, client_id, limits=limits)
    assert again.created is False and again.message.pk == first.message.pk
    second = send_on_socket(ci, conversation, new_client_id(), "second", limits=limits)
    assert second.created is True


def test_a_conversation_reassigned_behind_the_caller_is_written_the_long_way(chat):  # noqa: F811
    ci, conversation = _known(chat)
    Conversation.objects.filter(pk=conversation.pk).update(assignee=None)
    before = Conversation.objects.get(pk=conversation.pk).last_seq
    sent = send_on_socket(ci, conversation, new_client_id(), "after the move")
    after = Conversation.objects.get(pk=conversation.pk)
    assert after.last_seq == before + 1  # written once, by the step-by-step path
    assert sent.conversation.assignee_id is None
    assert ConversationEvent.objects.filter(conversation=conversation).count() == after.last_seq


def test_a_declined_statement_leaves_the_callers_conversation_as_it_was(chat):  # noqa: F811
    conversation = Conversation.objects.select_related(
        "inbox", "branch", "region", "contact", "assignee", "contact_inbox"
    ).get(pk=chat["conversation_id"])
    client_id = new_client_id()
    send_operator_message(conversation=conversation, user=chat["operator"], client_id=client_id, body="first")
    send_operator_message(conversation=conversation, user=chat["operator"], client_id=new_client_id(), body="second")
    before = (conversation.last_activity_at, conversation.last_message_preview)
    again = send_operator_message(conversation=conversation, user=chat["operator"], client_id=client_id, body="first")
    assert again.created is False
    assert (conversation.last_activity_at, conversation.last_message_preview) == before


def _scans(plan: dict, in_subplan: bool = False):
    """(relation, index, inside a subplan) of every scan node of an EXPLAIN (FORMAT JSON) plan."""
    inside = in_subplan or plan.get("Parent Relationship") == "SubPlan"
    if "Relation Name" in plan:
        yield plan["Relation Name"], plan.get("Index Name"), inside
    for child in plan.get("Plans", []):
        yield from _scans(child, inside)


def test_the_visitors_resend_check_reads_messages_first(chat):  # noqa: F811
    # Every message's UPDATE of its conversation leaves a dead version in the conversation's
    # indexes until a vacuum; a check that began with the contact inbox's conversations read them
    # all, on every send. It begins with the unique index on client_id, and reads a conversation
    # by its primary key only for a message found.
    ci, _conversation = _known(chat)
    ((sql, params), _blocked) = _check_queries(new_client_id(), contact_inbox_id=ci.pk, contact_id=ci.contact_id)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # as on a table of many rows
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        (plan,) = cursor.fetchone()[0]
    scans = list(_scans(plan["Plan"]))
    assert scans[0] == ("messenger_message", "message_client_id_unique", False), scans
    assert [scan for scan in scans if scan[0] == "messenger_conversation"] == [
        ("messenger_conversation", "messenger_conversation_pkey", True)
    ], scans
