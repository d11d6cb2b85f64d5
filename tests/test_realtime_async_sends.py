"""Sends on the event loop (PostgreSQL, messenger/db/steps.py): a message to a conversation the
socket knows does not wait for a database thread, and is stored, numbered, limited and delivered
as on the thread's path."""

import asyncio
import threading

import pytest
from channels.db import database_sync_to_async as db
from django.conf import settings
from django.test import override_settings

from messenger.consumers import _database_executor
from messenger.models import ActivityEvent, ConversationEvent, Message
from tests.conftest import new_client_id
from tests.test_realtime_protocol import _operator, _start, _visitor, _world

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


class _BusyThreads:
    """Every database thread of the consumers held until ``release``."""

    def __enter__(self) -> "_BusyThreads":
        self.release = threading.Event()
        started = threading.Semaphore(0)

        def hold() -> None:
            started.release()
            self.release.wait(20)

        self.jobs = [_database_executor().submit(hold) for _ in range(settings.MESSENGER_DB_THREADS)]
        for _ in self.jobs:
            assert started.acquire(timeout=5), "a database thread did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        for job in self.jobs:
            job.result(timeout=20)


async def _conversation_both_sides_know(world):
    operator = await _operator(world["operator"])
    visitor, _, _ = await _visitor(world["inbox"])
    conversation_id, _ = await _start(visitor, "first")  # starts it: a thread's work
    await operator.expect("message.created", conversation_id=conversation_id)
    first_reply = await operator.command(
        "message.send", conversation_id=conversation_id, client_id=new_client_id(), body="hello"
    )
    assert first_reply["type"] == "ack", first_reply
    await visitor.expect("message.created", conversation_id=conversation_id)
    return operator, visitor, conversation_id


async def _message_frame(socket, body):
    while True:
        frame = await socket.expect("message.created")
        if frame["data"]["message"]["body"] == body:
            return frame


async def test_sends_to_a_known_conversation_do_not_wait_for_a_database_thread():
    world = await db(_world)()
    operator, visitor, conversation_id = await _conversation_both_sides_know(world)

    with _BusyThreads():
        ack = await asyncio.wait_for(visitor.command("message.send", client_id=new_client_id(), body="again"), 5)
        assert ack["type"] == "ack" and ack["data"]["created"] is True, ack
        frame = await asyncio.wait_for(_message_frame(operator, "again"), 5)
        assert frame["data"]["message"]["id"] == ack["data"]["message"]["id"]
        assert frame["data"]["conversation"]["unread_for_agent"] == 2

        reply = await asyncio.wait_for(
            operator.command("message.send", conversation_id=conversation_id, client_id=new_client_id(), body="yes"),
            5,
        )
        assert reply["type"] == "ack", reply
        await asyncio.wait_for(_message_frame(visitor, "yes"), 5)

    stored = await db(
        lambda: list(
            Message.objects.filter(conversation_id=conversation_id).order_by("id").values_list("body", flat=True)
        )
    )()
    assert stored == ["first", "hello", "again", "yes"]
    events = await db(
        lambda: list(
            ConversationEvent.objects.filter(conversation_id=conversation_id, type="message.created")
            .order_by("seq")
            .values_list("seq", "public_seq")
        )
    )()
    seqs = [seq for seq, _ in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4
    audited = await db(
        lambda: ActivityEvent.objects.filter(verb="message.sent", target_id=str(reply["data"]["message"]["id"])).count()
    )()
    assert audited == 1  # the reply's audit row went with it
    await operator.close()
    await visitor.close()


@pytest.mark.rate_window
async def test_a_resend_and_a_refused_send_on_the_loop_store_nothing_twice():
    world = await db(_world)()
    operator, visitor, conversation_id = await _conversation_both_sides_know(world)
    client_id = new_client_id()
    first = await visitor.command("message.send", client_id=client_id, body="once")
    again = await visitor.command("message.send", client_id=client_id, body="once")
    assert again["data"]["created"] is False and again["data"]["message"]["id"] == first["data"]["message"]["id"]

    with override_settings(MESSENGER_CONVERSATION_FLOOD_LIMIT="1/min"):
        refused = await visitor.command("message.send", client_id=new_client_id(), body="too much")
    assert refused["type"] == "error" and refused["code"] == "rate_limited", refused
    count = await db(
        lambda: Message.objects.filter(conversation_id=conversation_id, body__in=["once", "too much"]).count()
    )()
    assert count == 1
    await operator.close()
    await visitor.close()


async def test_a_conversation_transferred_under_the_operator_is_sent_through_the_thread():
    from messenger.models import Conversation

    world = await db(_world)()
    operator, visitor, conversation_id = await _conversation_both_sides_know(world)
    # Moved to another branch and operator behind the socket's cache: the send re-checks access
    # under the row lock, and the thread's path reads the conversation afresh and refuses.
    await db(
        lambda: Conversation.objects.filter(pk=conversation_id).update(
            branch=world["other_branch"], assignee=world["outsider"]
        )
    )()
    refused = await operator.command(
        "message.send", conversation_id=conversation_id, client_id=new_client_id(), body="x"
    )
    assert refused["type"] == "error", refused
    stored = await db(lambda: Message.objects.filter(conversation_id=conversation_id, body="x").count())()
    assert stored == 0
    await operator.close()
    await visitor.close()
