"""CAPTCHA after a per-IP threshold of new conversations: server-side answers, single use."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.core.cache import cache
from django.test import override_settings

from messenger import captcha
from messenger.models import Conversation, Message
from tests.conftest import new_client_id
from tests.factories import make_branch, make_inbox, make_user
from tests.test_throttle import _visitor


def solve(challenge: dict) -> int:
    left, _, right = challenge["question"].removesuffix(" = ?").partition(" + ")
    return int(left) + int(right)


def test_challenge_answer_stays_on_the_server_and_is_single_use():
    challenge = captcha.new_challenge()
    assert set(challenge) == {"id", "question"}
    answer = solve(challenge)
    assert captcha.verify({"id": challenge["id"], "answer": answer})
    assert not captcha.verify({"id": challenge["id"], "answer": answer})


def test_wrong_answer_burns_the_challenge():
    challenge = captcha.new_challenge()
    assert not captcha.verify({"id": challenge["id"], "answer": solve(challenge) + 1})
    assert not captcha.verify({"id": challenge["id"], "answer": solve(challenge)})


@pytest.mark.parametrize(
    "solution", [None, "7", [], {}, {"id": 1, "answer": 2}, {"id": "x" * 100, "answer": 1}, {"id": "a", "answer": True}]
)
def test_malformed_solutions_are_refused(solution):
    assert not captcha.verify(solution)


def test_expired_challenge_is_refused():
    challenge = captcha.new_challenge()
    cache.delete(f"captcha:{challenge['id']}")
    assert not captcha.verify({"id": challenge["id"], "answer": solve(challenge)})


def test_string_answer_is_accepted():
    challenge = captcha.new_challenge()
    assert captcha.verify({"id": challenge["id"], "answer": f" {solve(challenge)} "})


def _counts() -> tuple[int, int]:
    return Conversation.objects.count(), Message.objects.count()


@pytest.mark.django_db(transaction=True)
@override_settings(MESSENGER_CAPTCHA_AFTER_CONVERSATIONS_PER_IP=2)
async def test_new_conversation_past_threshold_needs_a_solved_challenge():
    branch = await database_sync_to_async(make_branch)()
    inbox = await database_sync_to_async(make_inbox)(branch)
    await database_sync_to_async(make_user)(branch=branch)
    for _ in range(2):
        visitor = await _visitor(inbox, ip="10.9.9.9")
        assert (await visitor.command("message.send", client_id=new_client_id(), body="hi"))["type"] == "ack"
        # Further messages in an existing conversation never ask.
        assert (await visitor.command("message.send", client_id=new_client_id(), body="again"))["type"] == "ack"
        await visitor.close()

    visitor = await _visitor(inbox, ip="10.9.9.9")
    before = await database_sync_to_async(_counts)()
    error = await visitor.command("message.send", client_id=new_client_id(), body="third")
    assert error["type"] == "error" and error["code"] == "captcha_required"
    challenge = error["challenge"]
    assert set(challenge) == {"id", "question"} and challenge["question"].endswith(" = ?")
    assert await database_sync_to_async(_counts)() == before

    wrong = await visitor.command(
        "message.send", client_id=new_client_id(), body="third", captcha={"id": challenge["id"], "answer": -1}
    )
    assert wrong["code"] == "captcha_required" and wrong["challenge"]["id"] != challenge["id"]
    # The first challenge was burnt by the wrong guess.
    stale = await visitor.command(
        "message.send",
        client_id=new_client_id(),
        body="third",
        captcha={"id": challenge["id"], "answer": solve(challenge)},
    )
    assert stale["code"] == "captcha_required"
    assert await database_sync_to_async(_counts)() == before

    fresh = stale["challenge"]
    ack = await visitor.command(
        "message.send", client_id=new_client_id(), body="third", captcha={"id": fresh["id"], "answer": solve(fresh)}
    )
    assert ack["type"] == "ack", ack
    assert await database_sync_to_async(Conversation.objects.count)() == before[0] + 1
    await visitor.close()

    # Another IP is below the threshold.
    other = await _visitor(inbox, ip="10.9.9.10")
    assert (await other.command("message.send", client_id=new_client_id(), body="hi"))["type"] == "ack"
    await other.close()
