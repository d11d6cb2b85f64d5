"""Live visitors and invitations (docs/dashboard.md, "Visitors"; docs/widget.md, "Invitations"):
the live list in the cache, ``visitors.*`` frames at most once a second per operator, the
``visitor.invite`` command and the inbox's proactive triggers."""

from __future__ import annotations

import time
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.core.cache import cache
from django.test import Client

from messenger.actions import visitors
from messenger.actions.widget import do_bootstrap, session_visitor
from messenger.models import (
    ActivityEvent,
    AgentRole,
    AgentStatus,
    Contact,
    Conversation,
    ProactiveTrigger,
)
from messenger.realtime import visitors as live
from tests.conftest import new_client_id, operator_socket, visitor_rows, visitor_socket
from tests.factories import VISITOR_ORIGIN, make_branch, make_inbox, make_user
from tests.verify import Sent, check_frame

pytestmark = pytest.mark.django_db(transaction=True)

CLOSED_ALL_WEEK = {
    "enabled": True,
    "timezone": "UTC",
    "days": {day: [] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
}


def boot(inbox, *, pubsub_token: str | None = None, url: str = VISITOR_ORIGIN + "/", title: str = "Home") -> dict:
    return do_bootstrap(
        widget_token=inbox.widget_token,
        pubsub_token=pubsub_token,
        page={"url": url, "title": title, "referrer": "https://search.example/?q=shoes"},
        origin=VISITOR_ORIGIN,
        ip="127.0.0.1",
    )


def checked(frame: dict[str, Any]) -> dict[str, Any]:
    check_frame(Sent(groups=["reply"], frame=frame, driver="reply"))
    return frame


async def visitor_on_page(inbox, **page: Any) -> tuple[Any, dict]:
    data = await database_sync_to_async(boot)(inbox, **page)
    socket = visitor_socket(inbox, data)
    assert (await socket.connect())[0]
    await socket.expect("hello")
    return socket, data


async def connected_operator(user) -> Any:
    socket = await operator_socket(user)
    assert (await socket.connect())[0]
    await socket.expect("hello")
    return socket


def listed(user, **params: Any) -> dict:
    client = Client()
    client.force_login(user)
    response = client.get("/api/operator/visitors/", params)
    assert response.status_code == 200, response.content
    return response.json()


async def test_a_visitor_appears_live_for_their_branch_and_vanishes_when_they_leave():
    branch, other_branch = await database_sync_to_async(make_branch)(), await database_sync_to_async(make_branch)()
    inbox = await database_sync_to_async(make_inbox)(branch)
    operator = await database_sync_to_async(make_user)(branch=branch)
    outsider = await database_sync_to_async(make_user)(branch=other_branch)
    supervisor = await database_sync_to_async(make_user)(role=AgentRole.SUPERVISOR)
    staff = [await connected_operator(user) for user in (operator, outsider, supervisor)]
    visitor, data = await visitor_on_page(inbox, url="https://shop.example/pricing", title="Pricing")

    for socket in (staff[0], staff[2]):
        frame = checked(await socket.expect("visitors.changed", timeout=5))
        [entry] = frame["data"]["upserts"]
        assert frame["data"]["removed"] == []
        assert entry["id"] == data["visitor_id"]
        assert entry["inbox"] == {"id": inbox.pk, "name": inbox.name}
        assert entry["branch_id"] == branch.pk
        assert (entry["url"], entry["title"]) == ("https://shop.example/pricing", "Pricing")
        assert entry["referrer"] == "https://search.example/?q=shoes"
        assert (entry["pages_seen"], entry["returning"], entry["chatting"]) == (1, False, False)
        assert entry["conversation_id"] is None
    # Another branch's operator.
    assert [frame for frame in await staff[1].drain(1.5) if frame["type"].startswith("visitors.")] == []

    as_operator = await database_sync_to_async(listed)(operator)
    assert as_operator["count"] == 1
    assert [entry["id"] for entry in as_operator["results"]] == [data["visitor_id"]]
    assert (await database_sync_to_async(listed)(supervisor))["count"] == 1
    assert await database_sync_to_async(listed)(outsider) == {"count": 0, "results": []}

    await visitor.close()
    for socket in (staff[0], staff[2]):
        frame = checked(await socket.expect("visitors.changed", timeout=5))
        assert frame["data"] == {"upserts": [], "removed": [data["visitor_id"]]}
    assert (await database_sync_to_async(listed)(operator))["count"] == 0
    for socket in staff:
        await socket.close()


async def test_an_operator_gets_at_most_one_frame_a_second_however_many_visitors_arrive():
    branch = await database_sync_to_async(make_branch)()
    inbox = await database_sync_to_async(make_inbox)(branch)
    operator = await connected_operator(await database_sync_to_async(make_user)(branch=branch))
    first, _ = await visitor_on_page(inbox)
    await operator.expect("visitors.changed", timeout=5)
    started = time.monotonic()
    arrivals = [await visitor_on_page(inbox) for _ in range(4)]
    frames = []
    while sum(len(frame["data"]["upserts"]) for frame in frames) < 4:
        frames.append(await operator.expect("visitors.changed", timeout=5))
        frames[-1]["at"] = time.monotonic()
    assert len(frames) <= 2  # the four arrived within about a second
    for earlier, later in zip(frames, frames[1:], strict=False):
        assert later["at"] - earlier["at"] >= 0.9
    assert {entry["id"] for frame in frames for entry in frame["data"]["upserts"]} == {
        data["visitor_id"] for _, data in arrivals
    }
    assert time.monotonic() - started < 5
    for socket in [first, operator, *(socket for socket, _ in arrivals)]:
        await socket.close()


def test_a_visit_counts_its_pages_and_tells_a_returning_visitor():
    inbox = make_inbox(make_branch())
    first = boot(inbox, url="https://shop.example/")
    contact_inbox = visitor_rows(first)
    boot(inbox, pubsub_token=first["pubsub_token"], url="https://shop.example/shoes", title="Shoes")
    entry = visitors.live_entry(contact_inbox)
    assert (entry["pages_seen"], entry["returning"], entry["url"], entry["title"]) == (
        2,
        False,
        "https://shop.example/shoes",
        "Shoes",
    )
    assert entry["page_started_at"] >= entry["started_at"]
    # An hour later: a new visit of a visitor who was here before.
    key = f"visitors:visit:{first['visitor_id']}"
    visit = cache.get(key)
    visit["last_at"] -= 3600
    cache.set(key, visit)
    boot(inbox, pubsub_token=first["pubsub_token"])
    entry = visitors.live_entry(contact_inbox)
    assert (entry["pages_seen"], entry["returning"]) == (1, True)


def test_the_list_refuses_a_bad_limit_and_outsiders():
    user = make_user(branch=make_branch())
    client = Client()
    client.force_login(user)
    assert client.get("/api/operator/visitors/", {"limit": "0"}).status_code == 400
    assert client.get("/api/operator/visitors/", {"limit": "many"}).status_code == 400
    assert Client().get("/api/operator/visitors/").status_code in (401, 403)


async def test_an_invitation_opens_the_widget_and_the_answer_goes_to_that_operator():
    branch = await database_sync_to_async(make_branch)()
    inbox = await database_sync_to_async(make_inbox)(branch)
    # Olga is away (automatic assignment would never pick her); Ivan is online.
    olga = await database_sync_to_async(make_user)(branch=branch, status=AgentStatus.AWAY, first_name="Olga")
    await database_sync_to_async(make_user)(branch=branch)
    operator = await connected_operator(olga)
    visitor, data = await visitor_on_page(inbox)
    await operator.expect("visitors.changed", timeout=5)

    ack = checked(
        await operator.command("visitor.invite", visitor_id=data["visitor_id"], body="Need help with **sizes**?")
    )
    assert ack["type"] == "ack", ack
    invitation = checked(await visitor.expect("invitation"))
    assert invitation["data"]["id"] == ack["data"]["invitation"]["id"]
    assert invitation["data"]["body"] == "Need help with **sizes**?"
    assert invitation["data"]["content"] == "Need help with <strong>sizes</strong>?"
    assert invitation["data"]["sender"] == {"type": "user", "name": "Olga"}
    assert invitation["data"]["automatic"] is False
    assert (
        await database_sync_to_async(ActivityEvent.objects.filter(verb="visitor.invited", actor_user=olga).count)() == 1
    )

    answer = await visitor.command("message.send", client_id=new_client_id(), body="Yes, please")
    assert answer["type"] == "ack", answer
    conversation = await database_sync_to_async(Conversation.objects.get)(pk=answer["data"]["conversation_id"])
    assert conversation.assignee_id == olga.pk
    assert conversation.additional_attributes["invitation"] == "Need help with **sizes**?"
    # Now chatting: the list says so, and another invitation is refused.
    frame = await operator.expect("visitors.changed", timeout=5)
    assert frame["data"]["upserts"][0]["chatting"] is True
    assert frame["data"]["upserts"][0]["conversation_id"] == conversation.pk
    refused = await operator.command("visitor.invite", visitor_id=data["visitor_id"], body="Hello again")
    assert refused["code"] == "conflict"
    await visitor.close()
    await operator.close()


def _block(data: dict, *, blocked: bool) -> None:
    """Staff block the visitor's contact: one who wrote (a visitor without rows cannot be blocked)."""
    Contact.objects.filter(pk=visitor_rows(data).contact_id).update(blocked=blocked)


async def test_bad_invitations_get_an_error_and_send_nothing():
    branch = await database_sync_to_async(make_branch)()
    inbox = await database_sync_to_async(make_inbox)(branch)
    user = await database_sync_to_async(make_user)(branch=branch)
    outsider = await connected_operator(
        await database_sync_to_async(make_user)(branch=await database_sync_to_async(make_branch)())
    )
    operator = await connected_operator(user)
    visitor, data = await visitor_on_page(inbox)
    await operator.expect("visitors.changed", timeout=5)
    visitor_id = data["visitor_id"]

    cases = [
        ({"visitor_id": "nobody-here", "body": "Hi"}, "not_found"),
        ({"visitor_id": visitor_id, "body": ""}, "invalid"),
        ({"visitor_id": visitor_id, "body": "   "}, "invalid"),
        ({"visitor_id": visitor_id, "body": "x" * 2001}, "invalid"),
        ({"visitor_id": visitor_id, "body": 5}, "invalid"),
        ({"visitor_id": 5, "body": "Hi"}, "invalid"),
        ({"body": "Hi"}, "invalid"),
    ]
    for fields, code in cases:
        reply = checked(await operator.command("visitor.invite", **fields))
        assert reply["type"] == "error" and reply["code"] == code, (fields, reply)
    reply = await outsider.command("visitor.invite", visitor_id=visitor_id, body="Hi")
    assert reply["code"] == "not_found"  # another branch's visitor answers like no visitor
    assert [frame for frame in await visitor.drain(0.5) if frame["type"] == "invitation"] == []

    # A blocked visitor is not invited.
    await database_sync_to_async(_block)(data, blocked=True)
    assert (await operator.command("visitor.invite", visitor_id=visitor_id, body="Hi"))["code"] == "blocked"
    await database_sync_to_async(_block)(data, blocked=False)

    # Three invitations an hour reach one visitor; the fourth is refused.
    for _ in range(3):
        assert (await operator.command("visitor.invite", visitor_id=visitor_id, body="Hi"))["type"] == "ack"
    reply = checked(await operator.command("visitor.invite", visitor_id=visitor_id, body="Hi"))
    assert reply["code"] == "rate_limited" and reply["retry_after"] > 0

    # Gone from the page: out of reach.
    await visitor.close()
    await operator.expect("visitors.changed", timeout=5)
    reply = await operator.command("visitor.invite", visitor_id=visitor_id, body="Still there?")
    assert reply["code"] == "not_found"
    await operator.close()
    await outsider.close()


def _trigger(inbox, **fields: Any) -> ProactiveTrigger:
    defaults = {"name": "Help", "message": "Can we help?", "kind": "page_count", "page_number": 1}
    trigger = ProactiveTrigger(inbox=inbox, **{**defaults, **fields})
    trigger.full_clean()
    trigger.save()
    return trigger


async def test_a_page_count_trigger_invites_once_a_day():
    inbox = await database_sync_to_async(make_inbox)(await database_sync_to_async(make_branch)())
    await database_sync_to_async(_trigger)(inbox, page_number=2, url_pattern="*/shop/*")
    first, data = await visitor_on_page(inbox, url="https://site.example/shop/a")
    assert await first.nothing(0.5)  # the first page
    await first.close()
    second = visitor_socket(
        inbox,
        await database_sync_to_async(boot)(inbox, pubsub_token=data["pubsub_token"], url="https://site.example/shop/b"),
    )
    await second.connect()
    invitation = checked(await second.expect("invitation", timeout=3))
    assert invitation["data"]["automatic"] is True
    assert invitation["data"]["sender"] == {"type": "bot", "name": ""}
    assert invitation["data"]["body"] == "Can we help?"
    await second.close()
    # The second page again (a reload): no second invitation today.
    third = visitor_socket(
        inbox,
        await database_sync_to_async(boot)(inbox, pubsub_token=data["pubsub_token"], url="https://site.example/shop/b"),
    )
    await third.connect()
    await third.expect("hello")
    assert await third.nothing(0.5)
    await third.close()


async def test_a_time_on_page_trigger_waits_and_matches_the_url():
    inbox = await database_sync_to_async(make_inbox)(await database_sync_to_async(make_branch)())
    await database_sync_to_async(_trigger)(inbox, kind="time_on_page", seconds=1, url_pattern="*/pricing?plan=*")
    elsewhere, _ = await visitor_on_page(inbox, url="https://site.example/pricing")
    socket, _ = await visitor_on_page(inbox, url="https://site.example/pricing?plan=pro")
    assert await socket.nothing(0.6)
    checked(await socket.expect("invitation", timeout=3))
    assert await elsewhere.nothing(1.0)
    await socket.close()
    await elsewhere.close()


async def test_no_automatic_invitation_after_the_visitor_closed_the_widget_nor_while_closed_or_chatting():
    inbox = await database_sync_to_async(make_inbox)(await database_sync_to_async(make_branch)())
    await database_sync_to_async(_trigger)(inbox, kind="time_on_page", seconds=1)
    socket, _ = await visitor_on_page(inbox)
    assert (await socket.command("widget.close"))["type"] == "ack"
    assert await socket.nothing(1.5)
    await socket.close()

    chatting, _ = await visitor_on_page(inbox)
    assert (await chatting.command("message.send", client_id=new_client_id(), body="Hi"))["type"] == "ack"
    assert all(frame["type"] != "invitation" for frame in await chatting.drain(1.5))
    await chatting.close()

    closed_inbox = await database_sync_to_async(make_inbox)(settings={"working_hours": CLOSED_ALL_WEEK})
    await database_sync_to_async(_trigger)(closed_inbox, kind="page_count", page_number=1)
    outside_hours, _ = await visitor_on_page(closed_inbox)
    assert await outside_hours.nothing(0.5)
    await outside_hours.close()


def test_a_trigger_is_validated_in_the_admin():
    inbox = make_inbox()
    for fields in ({"seconds": 0, "kind": "time_on_page"}, {"page_number": 0}, {"message": " "}):
        with pytest.raises(Exception) as refused:
            _trigger(inbox, **fields)
        assert "ValidationError" in type(refused.value).__name__
    trigger = _trigger(inbox, url_pattern="https://shop.example/*?ref=*")
    assert trigger.matches("https://shop.example/a?ref=1")
    assert not trigger.matches("https://shop.example/a")
    assert _trigger(inbox).matches("anything")


@pytest.mark.parametrize(
    ("pattern", "url", "matched"),
    [
        ("https://shop.example/pricing", "https://shop.example/pricing", True),
        ("https://shop.example/pricing", "https://shop.example/pricing?x", False),
        ("*/pricing*", "https://shop.example/pricing?plan=pro", True),
        ("*/pricing*", "https://shop.example/about", False),
        ("*/shop/*/item/*", "https://e.example/shop/42/item/7", True),
        ("*/shop/*/item/*", "https://e.example/item/7/shop/42", False),
        ("*a*a", "aa", True),
        ("*a*a", "a", False),
        ("ab*ba", "aba", False),  # the two ends may not share a character
        ("ab*ba", "abba", True),
        ("*", "", True),
        ("**x**", "line\nbreak x", True),
        ("*a*a*a*a*a*b", "a" * 1000, False),  # a regular expression backtracks here for hours
        ("*a*a*a*a*a*b", "a" * 999 + "b", True),
    ],
)
def test_a_url_pattern_matches_as_documented_and_in_linear_time(pattern, url, matched):
    trigger = ProactiveTrigger(url_pattern=pattern)
    assert trigger.matches(url) is matched


@pytest.mark.redis
async def test_an_entry_of_a_process_that_died_vanishes_within_its_ttl():
    if live.messenger_cache.redis_client() is None:
        pytest.skip("the embedded default has one process: its list is its own")
    inbox = await database_sync_to_async(make_inbox)(await database_sync_to_async(make_branch)())
    data = await database_sync_to_async(boot)(inbox)
    visitor = await database_sync_to_async(session_visitor)(data["session_token"], inbox)  # no rows yet
    entry = await database_sync_to_async(visitors.live_entry)(visitor)
    tracker = live.Tracker()
    tracker.attach("socket-1", entry)
    tracker.task.cancel()  # this test writes by hand

    async def listed_ids() -> list[str]:
        count, entries = await database_sync_to_async(live.live_visitors)([inbox.branch_id])
        assert count == len(entries)
        return [entry["id"] for entry in entries]

    await tracker._write(set(tracker.visitors), {}, refresh=False, now=time.time())
    assert await listed_ids() == [data["visitor_id"]]
    found = await database_sync_to_async(live.find)(data["visitor_id"])
    assert (found.inbox_id, found.branch_id, found.chatting) == (inbox.pk, inbox.branch_id, False)
    # The list shows the newest visits first, as many as asked; the count is every live one.
    later = await database_sync_to_async(boot)(inbox)
    later_visitor = await database_sync_to_async(session_visitor)(later["session_token"], inbox)
    later_entry = await database_sync_to_async(visitors.live_entry)(later_visitor)
    later_entry["started_at"] = "2100-01-01T00:00:00Z"
    tracker.attach("socket-2", later_entry)
    await tracker._write(set(tracker.visitors), {}, refresh=False, now=time.time())
    count, newest = await database_sync_to_async(live.live_visitors)([inbox.branch_id], limit=1)
    assert (count, [entry["id"] for entry in newest]) == (2, [later["visitor_id"]])
    tracker.detach("socket-2", later["visitor_id"])
    await tracker._write(set(), dict(tracker.removed), refresh=False, now=time.time())
    assert await listed_ids() == [data["visitor_id"]]
    # Written by a process that stopped refreshing it TTL seconds ago.
    await tracker._write(set(tracker.visitors), {}, refresh=False, now=time.time() - live.TTL_SECONDS - 1)
    assert await listed_ids() == []


def test_the_inbox_admin_edits_its_triggers():
    from django.contrib.auth import get_user_model

    inbox = make_inbox(make_branch())
    admin_user = get_user_model().objects.create_superuser("root", password="pw-root")
    client = Client()
    client.force_login(admin_user)
    page = client.get(f"/admin/messenger/inbox/{inbox.pk}/change/")
    assert page.status_code == 200
    assert b"proactive_triggers-TOTAL_FORMS" in page.content


async def test_no_automatic_invitation_for_a_blocked_contact():
    inbox = await database_sync_to_async(make_inbox)(await database_sync_to_async(make_branch)())
    await database_sync_to_async(_trigger)(inbox, page_number=2)
    data = await database_sync_to_async(boot)(inbox)
    await database_sync_to_async(_block)(data, blocked=True)
    socket = visitor_socket(inbox, await database_sync_to_async(boot)(inbox, pubsub_token=data["pubsub_token"]))
    await socket.connect()
    await socket.expect("hello")
    assert await socket.nothing(0.5)
    await socket.close()


def test_the_visit_tells_country_and_region_by_geoip(tmp_path, settings):
    from messenger.models import Region
    from messenger.routing import geo
    from tests.test_routing import MOSCOW_IP, build_city_db

    settings.MESSENGER_GEOIP_PATH = str(build_city_db(tmp_path / "city.mmdb"))
    geo.reset_reader()
    try:
        Region.objects.create(name="Central", geoip_codes=["RU-MOW"])
        inbox = make_inbox(make_branch())
        data = do_bootstrap(
            widget_token=inbox.widget_token, pubsub_token=None, page={"url": "https://shop.example/"},
            origin=VISITOR_ORIGIN, ip=MOSCOW_IP,
        )  # fmt: skip
        entry = visitors.live_entry(visitor_rows(data))
        assert (entry["country"], entry["region"]) == ("RU", "Central")
    finally:
        geo.reset_reader()


async def test_chatting_is_read_again_from_the_database_at_each_refresh():
    """A frame the visitor's socket missed (the channel layer may drop one) leaves "chatting"
    wrong only until the next refresh: it is read again from the conversations."""
    inbox = await database_sync_to_async(make_inbox)(await database_sync_to_async(make_branch)())
    await database_sync_to_async(make_user)(branch=inbox.branch)
    writer, looker = await database_sync_to_async(boot)(inbox), await database_sync_to_async(boot)(inbox)
    tracker = live.Tracker()
    for data in (writer, looker):
        visitor = await database_sync_to_async(session_visitor)(data["session_token"], inbox)
        tracker.attach(data["visitor_id"], await database_sync_to_async(visitors.live_entry)(visitor))
    tracker.task.cancel()  # this test flushes by hand
    socket = visitor_socket(inbox, writer)
    assert (await socket.connect())[0]
    await socket.expect("hello")
    ack = await socket.command("message.send", client_id=new_client_id(), body="Hello")
    conversation_id = ack["data"]["conversation_id"]
    await socket.close()
    assert tracker.visitors[writer["visitor_id"]].entry["chatting"] is False  # no frame reached this tracker

    await tracker.flush()  # its first pass is a refresh
    entry = tracker.visitors[writer["visitor_id"]].entry
    assert (entry["chatting"], entry["conversation_id"]) == (True, conversation_id)
    assert tracker.visitors[looker["visitor_id"]].entry["chatting"] is False

    await database_sync_to_async(Conversation.objects.filter(pk=conversation_id).update)(status="resolved")
    tracker.refreshed_at = 0.0
    await tracker.flush()
    entry = tracker.visitors[writer["visitor_id"]].entry
    assert (entry["chatting"], entry["conversation_id"]) == (False, None)
