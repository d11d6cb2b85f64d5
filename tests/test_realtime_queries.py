"""Pinned query counts of the hot paths: a regression here is a slower chat."""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from messenger.actions.base import Actor
from messenger.actions.intake import send_visitor_message
from messenger.actions.messages import mark_read, send_operator_message
from messenger.errors import Forbidden, RateLimited
from messenger.events import Event, PublicPart
from messenger.models import (
    ActivityEvent,
    AgentConnection,
    Contact,
    ContactInbox,
    Conversation,
    ConversationEvent,
    Message,
)
from messenger.realtime.eventlog import record_event
from messenger.throttle import VisitorLimits
from tests.conftest import bootstrap, new_client_id, visitor_rows
from tests.factories import make_branch, make_inbox, make_user

pytestmark = pytest.mark.django_db

# The test wraps each action's transaction in a savepoint: +2 queries (SAVEPOINT, RELEASE) that
# production does not pay (BEGIN/COMMIT are not counted).
SAVEPOINT = 2


def bump_and_inserts(rows: int) -> int:
    """The sequence bump, then the INSERTs: one statement on PostgreSQL, one each elsewhere. Every
    send's rows include the webhook outbox's ``INSERT … SELECT`` (messenger.webhooks), which
    inserts nothing without a subscribed webhook."""
    return 1 + (1 if connection.vendor == "postgresql" else rows)


@pytest.fixture
def chat():
    branch = make_branch()
    inbox = make_inbox(branch)
    operator = make_user(branch=branch)
    AgentConnection.objects.create(user=operator, channel_name="test!1", last_heartbeat=timezone.now())
    boot = bootstrap(inbox)
    contact_inbox = visitor_rows(boot)
    first = send_visitor_message(
        contact_inbox=contact_inbox, client_id=new_client_id(), body="first", actor=Actor(contact=contact_inbox.contact)
    )
    return {
        "inbox": inbox,
        "operator": operator,
        "contact_inbox": contact_inbox,
        "conversation_id": first.conversation.pk,
    }


def test_visitor_send_in_an_open_conversation(chat, django_assert_num_queries):
    ci = ContactInbox.objects.select_related("contact", "inbox").get(pk=chat["contact_inbox"].pk)
    # resend + block check, active conversation, sequence bump (+counters, message id), the inserts
    with django_assert_num_queries(2 + bump_and_inserts(3) + SAVEPOINT):
        send_visitor_message(contact_inbox=ci, client_id=new_client_id(), body="hello", actor=Actor(contact=ci.contact))


def _known(chat):
    """The contact inbox and the conversation as a visitor's socket holds them."""
    ci = ContactInbox.objects.select_related("contact", "inbox").get(pk=chat["contact_inbox"].pk)
    conversation = Conversation.objects.select_related(
        "inbox", "branch", "region", "contact", "assignee", "contact_inbox"
    ).get(pk=chat["conversation_id"])
    return ci, conversation


def send_on_socket(ci, conversation, client_id: str, body: str = "hello", limits=None):
    """A visitor send as the socket makes it: with its known conversation."""
    return send_visitor_message(
        contact_inbox=ci,
        client_id=client_id,
        body=body,
        actor=Actor(contact=ci.contact),
        known_conversation=conversation,
        limits=limits,
    )


def test_visitor_send_on_a_socket_that_knows_its_conversation(chat, django_assert_num_queries):
    ci, conversation = _known(chat)
    # sequence bump (+counters, the status re-checked under the lock, resend and block checks), inserts
    with django_assert_num_queries(bump_and_inserts(3) + SAVEPOINT):
        send_on_socket(ci, conversation, new_client_id())


def test_a_stale_known_conversation_is_detected_under_the_lock(chat):
    ci = ContactInbox.objects.select_related("contact", "inbox").get(pk=chat["contact_inbox"].pk)
    stale = Conversation.objects.select_related(
        "inbox", "branch", "region", "contact", "assignee", "contact_inbox"
    ).get(pk=chat["conversation_id"])
    Conversation.objects.filter(pk=stale.pk).update(status="resolved")
    result = send_visitor_message(
        contact_inbox=ci,
        client_id=new_client_id(),
        body="after resolve",
        actor=Actor(contact=ci.contact),
        known_conversation=stale,
    )
    assert result.conversation.pk != stale.pk, "a resolved conversation is never silently reopened"
    assert not stale.messages.filter(body="after resolve").exists()


@pytest.mark.rate_window
def test_a_resend_on_the_socket_path_is_answered_before_the_throttles(chat, settings):
    # The checks ride on the sequence bump, the throttles come after them: a resend is not counted.
    settings.MESSENGER_WIDGET_SEND_RATE_PER_SESSION = "1/min"
    ci, conversation = _known(chat)
    limits = VisitorLimits(ip="127.0.0.5")

    def send(client_id: str, body: str = "hello"):
        return send_on_socket(ci, conversation, client_id, body, limits=limits)

    client_id = new_client_id()
    first = send(client_id)
    last_seq = Conversation.objects.get(pk=conversation.pk).last_seq
    again = send(client_id)
    assert again.created is False and again.message.pk == first.message.pk
    assert Conversation.objects.get(pk=conversation.pk).last_seq == last_seq  # the bump was rolled back
    with pytest.raises(RateLimited):
        send(new_client_id(), "a new one")
    assert Conversation.objects.get(pk=conversation.pk).last_seq == last_seq
    assert not Message.objects.filter(conversation=conversation, body="a new one").exists()


def test_a_contact_blocked_after_connecting_is_refused_on_the_socket_path(chat):
    ci, conversation = _known(chat)
    Contact.objects.filter(pk=ci.contact_id).update(blocked=True)
    last_seq = Conversation.objects.get(pk=conversation.pk).last_seq
    with pytest.raises(Forbidden) as refused:
        send_on_socket(ci, conversation, new_client_id(), "let me in")
    assert refused.value.code == "blocked"
    assert Conversation.objects.get(pk=conversation.pk).last_seq == last_seq
    assert not Message.objects.filter(body="let me in").exists()


def test_a_resend_finds_its_message_in_an_earlier_conversation_of_the_same_visitor(chat):
    # The message was stored, its ack lost, the conversation resolved and a new one started: the
    # resend, arriving on the new conversation, is answered with the stored message, not stored again.
    ci, earlier = _known(chat)
    client_id = new_client_id()
    stored = send_on_socket(ci, earlier, client_id, "sent before the resolve")
    Conversation.objects.filter(pk=earlier.pk).update(status="resolved")
    newer = send_visitor_message(
        contact_inbox=ci, client_id=new_client_id(), body="a new question", actor=Actor(contact=ci.contact)
    ).conversation
    assert newer.pk != earlier.pk
    last_seq = Conversation.objects.get(pk=newer.pk).last_seq
    again = send_on_socket(ci, newer, client_id, "sent before the resolve")
    assert again.created is False and again.message.pk == stored.message.pk
    assert Message.objects.filter(client_id=client_id).count() == 1
    assert Conversation.objects.get(pk=newer.pk).last_seq == last_seq


def test_another_visitors_client_id_is_not_a_resend(chat):
    ci, conversation = _known(chat)
    client_id = new_client_id()
    send_on_socket(ci, conversation, client_id, "mine")
    other = visitor_rows(bootstrap(chat["inbox"]))
    theirs = send_visitor_message(
        contact_inbox=other, client_id=client_id, body="theirs", actor=Actor(contact=other.contact)
    )
    assert theirs.created is True
    assert sorted(Message.objects.filter(client_id=client_id).values_list("body", flat=True)) == ["mine", "theirs"]


def test_a_first_message_asks_for_the_visitors_conversation_in_its_check(chat):
    # The resend check also answers whether the visitor has an active conversation: a first message
    # reads nothing more before it starts one (on PostgreSQL it locks its contact against the purge
    # of contacts that never wrote).
    other = visitor_rows(bootstrap(chat["inbox"]))
    with CaptureQueriesContext(connection) as queries:
        sent = send_visitor_message(
            contact_inbox=other, client_id=new_client_id(), body="hello", actor=Actor(contact=other.contact)
        )
    assert sent.created and sent.conversation.contact_inbox_id == other.pk
    statements = [q["sql"] for q in queries.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]
    started = next(i for i, sql in enumerate(statements) if sql.startswith('INSERT INTO "messenger_conversation"'))
    locks = ["FOR NO KEY UPDATE" in sql for sql in statements[1:started]]
    assert locks == ([True] if connection.vendor == "postgresql" else []), statements[:started]


def test_a_message_without_a_known_conversation_finds_the_active_one(chat):
    ci = ContactInbox.objects.select_related("contact", "inbox", "inbox__branch").get(pk=chat["contact_inbox"].pk)
    sent = send_visitor_message(
        contact_inbox=ci, client_id=new_client_id(), body="again", actor=Actor(contact=ci.contact)
    )
    assert sent.conversation.pk == chat["conversation_id"]
    Conversation.objects.filter(pk=chat["conversation_id"]).update(status="resolved")
    after = send_visitor_message(
        contact_inbox=ci, client_id=new_client_id(), body="anew", actor=Actor(contact=ci.contact)
    )
    assert after.conversation.pk != chat["conversation_id"]


def test_visitor_resend_is_one_query(chat, django_assert_num_queries):
    ci = ContactInbox.objects.select_related("contact", "inbox").get(pk=chat["contact_inbox"].pk)
    client_id = new_client_id()
    send_visitor_message(contact_inbox=ci, client_id=client_id, body="hello", actor=Actor(contact=ci.contact))
    with django_assert_num_queries(2):  # id lookup, then the stored row
        result = send_visitor_message(
            contact_inbox=ci, client_id=client_id, body="hello", actor=Actor(contact=ci.contact)
        )
    assert result.created is False


def test_operator_send(chat, django_assert_num_queries):
    conversation = Conversation.objects.select_related(
        "inbox", "branch", "region", "contact", "assignee", "contact_inbox"
    ).get(pk=chat["conversation_id"])
    # sequence bump (+counters, message id, the resend check), message + event + outbox + audit inserts
    with django_assert_num_queries(bump_and_inserts(4) + SAVEPOINT):
        send_operator_message(conversation=conversation, user=chat["operator"], client_id=new_client_id(), body="reply")


def test_operator_resend_answers_the_stored_message_and_writes_nothing(chat):
    conversation = Conversation.objects.get(pk=chat["conversation_id"])
    client_id = new_client_id()
    first = send_operator_message(conversation=conversation, user=chat["operator"], client_id=client_id, body="reply")
    before = Conversation.objects.get(pk=conversation.pk)
    audits = ActivityEvent.objects.filter(verb="message.sent").count()
    again = send_operator_message(conversation=conversation, user=chat["operator"], client_id=client_id, body="reply")
    after = Conversation.objects.get(pk=conversation.pk)
    assert again.created is False and again.message.pk == first.message.pk
    assert Message.objects.filter(conversation=conversation, client_id=client_id).count() == 1
    # The sequence bump that found the resend was rolled back: no event, no counter, no audit row.
    assert (after.last_seq, after.last_public_seq, after.unread_for_contact) == (
        before.last_seq,
        before.last_public_seq,
        before.unread_for_contact,
    )
    assert ConversationEvent.objects.filter(conversation=conversation).count() == after.last_seq
    assert ActivityEvent.objects.filter(verb="message.sent").count() == audits


def test_mark_read(chat, django_assert_num_queries):
    conversation = Conversation.objects.select_related(
        "inbox", "branch", "region", "contact", "assignee", "contact_inbox"
    ).get(pk=chat["conversation_id"])
    last = conversation.messages.order_by("-id").first()
    # message exists, read_at update, delivered_at update, sequence bump, event insert, unread totals
    with django_assert_num_queries(6 + SAVEPOINT):
        mark_read(conversation=conversation, reader="agent", up_to_message_id=last.pk, user=chat["operator"])


def test_bootstrap_query_count_does_not_grow_with_history(chat, django_assert_num_queries):
    ci = chat["contact_inbox"]
    for index in range(20):
        send_visitor_message(
            contact_inbox=ci, client_id=new_client_id(), body=f"m{index}", actor=Actor(contact=ci.contact)
        )
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as first:
        bootstrap(chat["inbox"], pubsub_token=ci.pubsub_token)
    for index in range(20):
        send_visitor_message(
            contact_inbox=ci, client_id=new_client_id(), body=f"n{index}", actor=Actor(contact=ci.contact)
        )
    with CaptureQueriesContext(connection) as second:
        bootstrap(chat["inbox"], pubsub_token=ci.pubsub_token)
    assert len(second) == len(first)
    assert len(first) <= 16


@pytest.mark.postgres
def test_repeated_statements_are_prepared_on_postgresql(chat):
    """Server-side binding with prepared statements (settings): PostgreSQL plans the send path's
    statements once per connection, not once per message."""
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    ci = ContactInbox.objects.select_related("contact", "inbox").get(pk=chat["contact_inbox"].pk)
    for _ in range(6):
        send_visitor_message(contact_inbox=ci, client_id=new_client_id(), body="hello", actor=Actor(contact=ci.contact))
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    # The sequence bump, then the message and event INSERTs as one statement: both prepared.
    assert any(statement.startswith("UPDATE messenger_conversation SET last_seq") for statement in prepared), prepared
    assert any(statement.startswith("WITH w0 AS (INSERT INTO") for statement in prepared), prepared


@pytest.mark.parametrize("public", [True, False])
def test_an_event_is_numbered_then_stored(chat, public):
    # The UPDATE that allocates the numbers, then the event's INSERT with the webhook outbox's: one
    # statement on PostgreSQL, two on SQLite (which runs them one by one).
    conversation = Conversation.objects.get(pk=chat["conversation_id"])
    before = Conversation.objects.get(pk=conversation.pk)
    part = PublicPart(type="conversation.updated", data={"status": "open"}) if public else None
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        sequences = record_event(conversation, Event("conversation.updated", {"changed": ["status"]}, part))
    statements = [q["sql"] for q in queries.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]
    assert len(statements) == (2 if connection.vendor == "postgresql" else 3), statements
    after = Conversation.objects.get(pk=conversation.pk)
    assert sequences.seq == before.last_seq + 1 == after.last_seq == conversation.last_seq
    assert sequences.public_seq == (before.last_public_seq + 1 if public else None)
    assert after.last_public_seq == before.last_public_seq + (1 if public else 0)
    event = ConversationEvent.objects.get(conversation=conversation, seq=sequences.seq)
    assert (event.type, event.payload, event.public_seq) == (
        "conversation.updated",
        {"changed": ["status"]},
        sequences.public_seq,
    )
    assert event.public_payload == ({"type": "conversation.updated", "data": {"status": "open"}} if public else None)


def test_an_event_of_a_deleted_conversation_is_refused(chat):
    conversation = Conversation.objects.get(pk=chat["conversation_id"])
    Conversation.objects.filter(pk=conversation.pk).delete()
    with pytest.raises(Conversation.DoesNotExist), transaction.atomic():
        record_event(conversation, Event("conversation.updated", {}))
