"""A visitor socket counts its next send against the limits after its last one
(``throttle.SendAhead``): the send on the event loop then writes without waiting for the cache, the
limits stay exact near their end, and what a socket holds goes back when it closes or its time is up."""

import asyncio

import pytest
from channels.db import database_sync_to_async as db
from django.test import override_settings

from messenger import throttle
from messenger.models import ContactInbox, Message
from tests.conftest import new_client_id
from tests.test_realtime_protocol import _visitor, _world

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres, pytest.mark.rate_window]

RATE = "100/min"


@pytest.fixture(autouse=True)
def _redis_cache(settings):
    if not settings.CACHES["default"]["BACKEND"].endswith("RedisCache"):
        pytest.skip("the limits shared through Redis")


def _session_hits(session_id: int) -> int:
    return throttle.count("send-session", session_id, RATE)


async def _hits_become(session_id: int, expected: int) -> int:
    """The session's counter once the background counts have settled on ``expected`` (2 s at most)."""
    for _ in range(100):
        hits = await db(_session_hits)(session_id)
        if hits == expected:
            return hits
        await asyncio.sleep(0.02)
    return hits


async def _session(world):
    visitor, boot, _ = await _visitor(world["inbox"])
    session_id = await db(lambda: ContactInbox.objects.get(pubsub_token=boot["pubsub_token"]).pk)()
    return visitor, session_id


async def _all_at_once(visitor, count: int) -> list:
    """Send ``count`` messages without waiting; their answers in order (an ack's type, or the error)."""
    refs = [f"burst-{index}" for index in range(count)]
    for ref in refs:
        await visitor.send({"type": "message.send", "ref": ref, "client_id": new_client_id(), "body": ref})
    answers = {}
    while len(answers) < count:
        frame = await visitor.recv()
        if frame.get("ref") in refs:
            answers[frame["ref"]] = "ack" if frame["type"] == "ack" else frame
    return [answers[ref] for ref in refs]


async def _send(visitor, body):
    ack = await visitor.command("message.send", client_id=new_client_id(), body=body)
    assert ack["type"] == "ack", ack
    return ack


@override_settings(MESSENGER_WIDGET_SEND_RATE_PER_SESSION=RATE)
async def test_each_send_uses_the_count_made_after_the_last_one():
    world = await db(_world)()
    visitor, session_id = await _session(world)
    await _send(visitor, "first")  # starts the conversation: a thread's work, counted in place
    await _send(visitor, "second")  # on the loop: counts its own, then the next one's
    assert await _hits_become(session_id, 3) == 3
    await _send(visitor, "third")  # uses the pre-count: only the fourth's is added
    assert await _hits_become(session_id, 4) == 4
    await asyncio.sleep(0.2)
    assert await db(_session_hits)(session_id) == 4  # not 5: the third did not count twice
    await visitor.close()
    # The socket is gone: what it held goes back.
    assert await _hits_become(session_id, 3) == 3


@override_settings(MESSENGER_WIDGET_SEND_RATE_PER_SESSION=RATE)
async def test_sends_faster_than_the_count_wait_for_it_and_count_once():
    world = await db(_world)()
    visitor, session_id = await _session(world)
    await _send(visitor, "first")
    # All at once: each is written right after the one before, its count still on the way.
    answers = await _all_at_once(visitor, 6)
    assert answers == ["ack"] * 6, answers
    assert await _hits_become(session_id, 8) == 8  # seven sends and the next one's
    await asyncio.sleep(0.2)
    assert await db(_session_hits)(session_id) == 8
    await visitor.close()
    assert await _hits_become(session_id, 7) == 7


@override_settings(MESSENGER_WIDGET_SEND_RATE_PER_SESSION=RATE, MESSENGER_SEND_AHEAD_SECONDS=1)
async def test_a_count_held_too_long_goes_back():
    world = await db(_world)()
    visitor, session_id = await _session(world)
    await _send(visitor, "first")
    await _send(visitor, "second")
    assert await _hits_become(session_id, 3) == 3
    await asyncio.sleep(1.2)
    assert await _hits_become(session_id, 2) == 2  # the unused pre-count, refunded
    await _send(visitor, "third")  # counts its own again
    assert await _hits_become(session_id, 4) == 4
    await visitor.close()


@override_settings(MESSENGER_WIDGET_SEND_RATE_PER_SESSION=RATE, MESSENGER_SEND_AHEAD_SECONDS=0)
async def test_switched_off_every_send_counts_just_before_it_is_written():
    world = await db(_world)()
    visitor, session_id = await _session(world)
    for index in range(3):
        await _send(visitor, f"m{index}")
    await asyncio.sleep(0.2)
    assert await db(_session_hits)(session_id) == 3
    await visitor.close()


@override_settings(MESSENGER_WIDGET_SEND_RATE_PER_SESSION="5/min")
async def test_near_the_limit_every_send_counts_its_own_and_the_limit_is_exact(monkeypatch):
    # Redis answering counts slowly: a pre-count stays in the counter for a while before it is
    # found over half the limit and taken back.
    count = throttle._aincrement_counters

    async def slow_answer(counters):
        totals = await count(counters)
        if any(amount > 0 for _key, amount, _timeout in counters):
            await asyncio.sleep(0.1)
        return totals

    monkeypatch.setattr(throttle, "_aincrement_counters", slow_answer)
    world = await db(_world)()
    visitor, _session_id = await _session(world)
    await _send(visitor, "first")
    # The rest at once: a send waits for the count its predecessor started for it, so no count in
    # flight makes one look over the limit.
    answers = await _all_at_once(visitor, 5)
    assert answers[:4] == ["ack"] * 4, answers
    refused = answers[4]
    assert refused["type"] == "error" and refused["code"] == "rate_limited", refused
    assert 1 <= refused["retry_after"] <= 60
    stored = await db(lambda: Message.objects.filter(sender_contact__isnull=False).count())()
    assert stored == 5
    await visitor.close()


async def test_a_pre_count_serves_only_the_same_limits_in_the_same_windows():
    session = [("send-session", "s-1", "10/min"), ("flood", 7, "10/min")]
    other_conversation = [("send-session", "s-1", "10/min"), ("flood", 8, "10/min")]

    ahead = throttle.SendAhead(seconds=15)
    ahead.prepare(session)
    await _counted(ahead)
    assert await db(throttle.count)("flood", 7, "10/min") == 1
    assert ahead.take(other_conversation) is None  # another conversation: refunded
    assert await _settled(lambda: throttle.count("flood", 7, "10/min"), 0)

    ahead.prepare(session)
    await _counted(ahead)
    counted = ahead.counted
    assert ahead.take(session, now=counted.now + 60) is None  # the window has turned
    ahead.prepare(session)
    await _counted(ahead)
    assert ahead.take(session) is not None
    assert ahead.take(session) is None  # used once


async def _settled(read, expected) -> bool:
    for _ in range(100):
        if await db(read)() == expected:
            return True
        await asyncio.sleep(0.02)
    return False


async def test_a_send_before_the_count_is_back_waits_for_it():
    limits = [("send-session", "s-2", "10/min")]
    ahead = throttle.SendAhead(seconds=15)
    ahead.prepare(limits)
    while ahead.counting is None:  # started a moment after the send
        await asyncio.sleep(0.005)
    await throttle.WaitAhead(ahead.counting).arun(None)  # on its way: the next send waits
    assert ahead.take(limits) is not None
    assert await db(throttle.count)("send-session", "s-2", "10/min") == 1


async def test_a_send_before_the_count_started_counts_its_own_and_nothing_is_counted_twice():
    limits = [("send-session", "s-3", "10/min")]
    ahead = throttle.SendAhead(seconds=15)
    ahead.prepare(limits)
    assert ahead.counting is None and ahead.take(limits) is None  # the send at hand counts itself
    await asyncio.sleep(3 * throttle.SendAhead.START_AFTER)
    assert ahead.counting is None and ahead.counted is None  # the start was called off
    assert await db(throttle.count)("send-session", "s-3", "10/min") == 0


async def _counted(ahead) -> None:
    """Until the pre-count ``prepare`` started is back."""
    while ahead.counting is None and ahead.counted is None:
        await asyncio.sleep(0.005)
    if ahead.counting is not None:
        await ahead.counting
