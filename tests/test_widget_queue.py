"""The widget's queue place: position and expected wait, computed from the database and pushed
live (``queue`` frames) by the scheduler tick as the branch queue moves (docs/widget.md, "Queue")."""

from __future__ import annotations

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.db import transaction
from django.utils import timezone

from messenger.actions.assignment import do_assign
from messenger.actions.base import Actor
from messenger.actions.conversations import do_change_status, do_start_conversation
from messenger.actions.intake import send_visitor_message
from messenger.actions.locks import lock_conversation
from messenger.actions.messages import send_operator_message
from messenger.actions.widget import QUEUE_PLACES_REFRESH, do_publish_queue_places
from messenger.models import Conversation
from messenger.routing.queue import QUEUE_WAIT_SAMPLE, queue_position
from tests.conftest import bootstrap, new_client_id, visitor_rows, visitor_socket
from tests.factories import make_branch, make_inbox, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def _visitor_writes(inbox) -> tuple[Conversation, dict]:
    boot = bootstrap(inbox)
    contact_inbox = visitor_rows(boot)
    result = send_visitor_message(
        contact_inbox=contact_inbox, client_id=new_client_id(), body="hello", actor=Actor(contact=contact_inbox.contact)
    )
    return result.conversation, boot


def _answered(inbox, operator, *, started_ago: timedelta, answered_ago: timedelta = timedelta(0)) -> Conversation:
    """A conversation of the branch answered ``started_ago - answered_ago`` after it started."""
    conversation, _ = _visitor_writes(inbox)
    send_operator_message(conversation=conversation, user=operator, client_id=new_client_id(), body="Hi")
    now = timezone.now()
    Conversation.objects.filter(pk=conversation.pk).update(
        created_at=now - started_ago, first_reply_created_at=now - answered_ago
    )
    return conversation


def _queue(branch=None, **features):
    """A branch whose only operator is offline (nobody takes the queue), its inbox and operator."""
    branch = branch or make_branch()
    inbox = make_inbox(branch, settings={"features": {"queue_position": True, **features}})
    return branch, inbox, make_user(branch=branch, status="offline")


def _assign(conversation: Conversation, user) -> None:
    with transaction.atomic():
        do_assign(conversation=lock_conversation(conversation.pk), assignee=user, actor=Actor.system("test"))


def test_expected_wait_is_the_median_recent_first_response_times_the_position():
    branch, inbox, operator = _queue()
    for minutes in (2, 4, 30):
        _answered(inbox, operator, started_ago=timedelta(minutes=minutes))
    # Outside the window: answered three hours ago, however slowly.
    _answered(inbox, operator, started_ago=timedelta(hours=5), answered_ago=timedelta(hours=3))
    # Another branch's answers do not count.
    _, other_inbox, other_operator = _queue()
    _answered(other_inbox, other_operator, started_ago=timedelta(minutes=50))
    first, _ = _visitor_writes(inbox)
    second, _ = _visitor_writes(inbox)
    assert queue_position(first) == {"position": 1, "expected_wait_seconds": 240}
    assert queue_position(second) == {"position": 2, "expected_wait_seconds": 480}


def test_expected_wait_uses_the_last_answers_only():
    branch, inbox, operator = _queue()
    for index in range(QUEUE_WAIT_SAMPLE):
        _answered(
            inbox,
            operator,
            started_ago=timedelta(minutes=10),
            answered_ago=timedelta(minutes=9) - timedelta(seconds=index),
        )
    # Answered before the last QUEUE_WAIT_SAMPLE: left out although within the window.
    _answered(inbox, operator, started_ago=timedelta(hours=1, minutes=40), answered_ago=timedelta(minutes=20))
    waiting, _ = _visitor_writes(inbox)
    assert queue_position(waiting)["expected_wait_seconds"] == pytest.approx(60, abs=15)


def test_no_recent_answer_no_expected_wait():
    branch, inbox, operator = _queue()
    _answered(inbox, operator, started_ago=timedelta(hours=4), answered_ago=timedelta(hours=3))
    waiting, _ = _visitor_writes(inbox)
    assert queue_position(waiting) == {"position": 1, "expected_wait_seconds": None}


def test_the_tick_and_bootstrap_agree_on_every_position():
    branch, inbox, operator = _queue()
    waiting = [_visitor_writes(inbox)[0] for _ in range(4)]
    # Answered, then unassigned again: no waiting_since, last in the queue (as the sweep offers it).
    send_operator_message(conversation=waiting[0], user=operator, client_id=new_client_id(), body="One moment")
    now = timezone.now()
    Conversation.objects.filter(pk=waiting[2].pk).update(waiting_since=now - timedelta(hours=1))
    expected = {waiting[2].pk: 1, waiting[1].pk: 2, waiting[3].pk: 3, waiting[0].pk: 4}
    for conversation in waiting:
        conversation.refresh_from_db()
        assert queue_position(conversation)["position"] == expected[conversation.pk]
    # The tick computes the same places (sent to each visitor: asserted over sockets below).
    from messenger.routing.queue import branch_places, waiting_conversations

    places = branch_places(waiting_conversations().filter(branch=branch).values("pk", "branch_id"))
    assert {pk: place["position"] for pk, place in places.items()} == expected


async def _connected(inbox, boot):
    socket = visitor_socket(inbox, boot)
    connected, _ = await socket.connect()
    assert connected
    hello = await socket.expect("hello")
    return socket, hello


async def test_waiting_visitors_learn_their_new_place_when_the_queue_moves():
    branch, inbox, operator = await database_sync_to_async(_queue)()
    first, _ = await database_sync_to_async(_visitor_writes)(inbox)
    second, second_boot = await database_sync_to_async(_visitor_writes)(inbox)
    third, third_boot = await database_sync_to_async(_visitor_writes)(inbox)
    second_socket, hello = await _connected(inbox, second_boot)
    third_socket, _ = await _connected(inbox, third_boot)
    assert hello["queue"] == {"position": 2, "expected_wait_seconds": None}
    try:
        # The first tick tells every waiting visitor their place.
        assert await database_sync_to_async(do_publish_queue_places)() == 3
        frame = await second_socket.expect("queue")
        assert frame == {
            "type": "queue",
            "conversation_id": second.pk,
            "data": {"position": 2, "expected_wait_seconds": None},
        }
        assert (await third_socket.expect("queue"))["data"]["position"] == 3
        # Nothing moved: nothing sent.
        assert await database_sync_to_async(do_publish_queue_places)() == 0
        assert await second_socket.nothing()

        # The first is taken and answered: both move up, with the branch's answer time as the wait.
        await database_sync_to_async(_assign)(first, operator)
        await database_sync_to_async(send_operator_message)(
            conversation=await database_sync_to_async(Conversation.objects.get)(pk=first.pk),
            user=operator,
            client_id=new_client_id(),
            body="Hello",
        )
        await database_sync_to_async(Conversation.objects.filter(pk=first.pk).update)(
            created_at=timezone.now() - timedelta(minutes=3)
        )
        assert await database_sync_to_async(do_publish_queue_places)() == 2
        frame = await second_socket.expect("queue")
        assert frame["data"]["position"] == 1
        assert frame["data"]["expected_wait_seconds"] == pytest.approx(180, abs=5)
        frame = await third_socket.expect("queue")
        assert frame["data"]["position"] == 2
        assert frame["data"]["expected_wait_seconds"] == pytest.approx(360, abs=10)

        # The second leaves (resolved): the third is next.
        def resolve() -> None:
            with transaction.atomic():
                do_change_status(
                    conversation=lock_conversation(second.pk), status="resolved", actor=Actor.system("test")
                )

        await database_sync_to_async(resolve)()
        assert await database_sync_to_async(do_publish_queue_places)() == 1
        assert (await third_socket.expect("queue"))["data"]["position"] == 1

        # A dropped frame heals: after QUEUE_PLACES_REFRESH seconds every place is sent again.
        later = timezone.now() + timedelta(seconds=QUEUE_PLACES_REFRESH)
        assert await database_sync_to_async(do_publish_queue_places)(now=later) == 1
        assert (await third_socket.expect("queue"))["data"]["position"] == 1
    finally:
        await second_socket.close()
        await third_socket.close()


async def test_no_queue_frame_for_an_inbox_that_turned_queue_position_off():
    branch, inbox, operator = await database_sync_to_async(_queue)(queue_position=False)
    _, boot = await database_sync_to_async(_visitor_writes)(inbox)
    socket, hello = await _connected(inbox, boot)
    try:
        assert hello["queue"] is None
        assert await database_sync_to_async(do_publish_queue_places)() == 0
        assert await socket.nothing()
    finally:
        await socket.close()


def test_the_tick_costs_one_query_per_branch_whatever_the_number_of_visitors(django_assert_num_queries):
    branches = [_queue() for _ in range(2)]
    for _, inbox, _ in branches:
        for _ in range(4):
            _visitor_writes(inbox)
    # All waiting, two branches: the waiting list, their inboxes, one expected wait per branch.
    with django_assert_num_queries(4):
        assert do_publish_queue_places() == 8
    with django_assert_num_queries(4):
        assert do_publish_queue_places() == 0


def test_a_conversation_whose_first_message_is_not_stored_yet_is_not_told_a_place():
    branch, inbox, operator = _queue()
    _visitor_writes(inbox)
    contact_inbox = visitor_rows(bootstrap(inbox))
    started, _ = do_start_conversation(contact_inbox=contact_inbox, actor=Actor(contact=contact_inbox.contact))
    assert started.waiting_since is None
    assert do_publish_queue_places() == 1  # the one that wrote
    send_visitor_message(
        contact_inbox=contact_inbox, client_id=new_client_id(), body="here", actor=Actor(contact=contact_inbox.contact)
    )
    assert do_publish_queue_places() == 1  # now it has its place: second
    started.refresh_from_db()
    assert queue_position(started)["position"] == 2
