"""Live visitors, invitations and proactive triggers as a visitor who chooses what the server is
told, and a clumsy admin, use them (docs/widget.md, "Invitations"; docs/dashboard.md, "Visitors")."""

from __future__ import annotations

import asyncio
import itertools
import re
import sys
import threading
import time

import pytest
from channels.db import database_sync_to_async
from django.core.exceptions import ValidationError
from django.test import Client

from messenger.actions import visitors
from messenger.actions.widget import do_bootstrap, session_visitor
from messenger.models import AgentStatus, Contact, Conversation, ProactiveTrigger
from messenger.realtime import visitors as live
from messenger.realtime.groups import branch_group
from tests.conftest import new_client_id, visitor_rows
from tests.factories import VISITOR_ORIGIN, make_branch, make_inbox, make_user
from tests.test_live_visitors import _trigger, boot, checked, connected_operator, visitor_on_page

pytestmark = pytest.mark.django_db(transaction=True)


def _glob(pattern: str, url: str) -> bool:
    """What docs/widget.md says a pattern means: ``*`` anything (also nothing), the rest literal."""
    return re.fullmatch(".*".join(re.escape(part) for part in pattern.split("*")), url, flags=re.S) is not None


def test_a_url_pattern_means_what_the_docs_say():
    patterns = ["", "*", "a", "ab", "*a", "a*", "*a*", "a*b", "*a*b*", "a**b", "ab*ba", "a*a*a", "?*", "*.*"]
    urls = ["".join(letters) for size in range(6) for letters in itertools.product("ab?.", repeat=size)]
    for pattern in patterns:
        trigger = ProactiveTrigger(url_pattern=pattern)
        for url in urls:
            assert trigger.matches(url) is (not pattern or _glob(pattern, url)), (pattern, url)


async def test_a_crafted_url_does_not_stall_a_trigger_with_several_stars():
    """A visitor chooses the page URL the server matches against the inbox's triggers (on the
    thread every socket's database work waits on): a pattern of several ``*`` once matched a URL of
    slashes by backtracking for hours, and no socket of the process got an answer meanwhile."""
    inbox = await database_sync_to_async(make_inbox)(await database_sync_to_async(make_branch)())
    await database_sync_to_async(_trigger)(inbox, page_number=1, url_pattern="*/*/*/*/*/done", message="Done?")
    attacker, _ = await visitor_on_page(inbox, url="https://site.example" + "/" * 980)  # expects its hello
    assert await attacker.nothing(0.5)
    # The pattern still works for everyone else.
    visitor, _ = await visitor_on_page(inbox, url="https://site.example/a/b/c/done")
    invitation = checked(await visitor.expect("invitation", timeout=5))
    assert invitation["data"]["body"] == "Done?"
    await attacker.close()
    await visitor.close()


def test_a_contact_blocked_after_their_socket_connected_gets_no_automatic_invitation():
    """The socket keeps the visitor's rows as they were when it connected; a time-on-page trigger
    fires later, after staff may have blocked the contact."""
    inbox = make_inbox(make_branch())
    trigger = _trigger(inbox, kind="time_on_page", seconds=30)
    data = boot(inbox)
    as_connected = visitor_rows(data)  # the socket's copy: not blocked
    Contact.objects.filter(pk=as_connected.contact_id).update(blocked=True)
    assert visitors.do_fire_trigger(contact_inbox=as_connected, trigger_id=trigger.pk) is None
    Contact.objects.filter(pk=as_connected.contact_id).update(blocked=False)
    frame = visitors.do_fire_trigger(contact_inbox=as_connected, trigger_id=trigger.pk)
    assert frame is not None and frame["type"] == "invitation"


def _page_view(inbox, *, pubsub_token: str | None = None, **page: str) -> dict:
    return do_bootstrap(
        widget_token=inbox.widget_token, pubsub_token=pubsub_token, page=page, origin=VISITOR_ORIGIN, ip="127.0.0.1"
    )


def test_a_page_address_that_is_not_a_web_address_is_not_kept():
    """The dashboard links the visitor's page (the live list, the conversation's side panel): a
    visitor who says their page is ``javascript:…`` must not hand staff a link that runs it."""
    inbox = make_inbox(make_branch())
    data = _page_view(inbox, url="javascript:alert(document.cookie)", referrer="data:text/html,<script>x</script>")
    rows = visitor_rows(data)
    entry = visitors.live_entry(rows)
    assert (entry["url"], entry["referrer"]) == ("", "")
    for url in (
        " javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        "java\tscript:alert(1)",
        "vbscript:x",
        "//evil.example/",
    ):
        _page_view(inbox, pubsub_token=data["pubsub_token"], url=url, title="Pricing")
        assert visitors.live_entry(rows)["url"] == "", url
        rows.contact.refresh_from_db()
        assert rows.contact.additional_attributes["url"] == "", url
        assert rows.contact.additional_attributes["title"] == "Pricing"
    _page_view(inbox, pubsub_token=data["pubsub_token"], url="HTTPS://shop.example/a?b=1", referrer="http://x.example/")
    rows.contact.refresh_from_db()
    assert rows.contact.additional_attributes["url"] == "HTTPS://shop.example/a?b=1"
    assert visitors.live_entry(rows)["url"] == "HTTPS://shop.example/a?b=1"


def test_the_admin_refuses_a_url_pattern_that_can_never_match():
    """A pattern is matched against the page's full address: "/pricing*" or "shop.example/*"
    saved without a word would never fire."""
    inbox = make_inbox(make_branch())
    for pattern in ("/pricing*", "shop.example/*", "pricing", "www.shop.example/*?ref=*"):
        with pytest.raises(ValidationError) as refused:
            _trigger(inbox, url_pattern=pattern)
        assert "url_pattern" in refused.value.message_dict, pattern
    assert ProactiveTrigger.objects.count() == 0
    for pattern in ("*/pricing*", "https://shop.example/*", "HTTP://shop.example/a", "*"):
        assert _trigger(inbox, url_pattern=pattern).pk is not None
    padded = _trigger(inbox, url_pattern="  */pricing*  ")
    assert padded.url_pattern == "*/pricing*" and padded.matches("https://shop.example/pricing")


def test_the_embedded_list_is_read_while_visitors_come_and_go():
    """Without Redis the list is the tracker's own: a request's thread reads it while the event
    loop adds and removes visitors (reading the dict as it changed raised RuntimeError: a 500)."""
    tracker = live.Tracker()
    tracker._start = lambda: None  # type: ignore[method-assign]  # no publishing loop: only the dict matters
    failures: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                tracker.entries({branch_group(1)})
            except Exception as error:  # noqa: BLE001 — the failure under test
                failures.append(error)
                return

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    reader = threading.Thread(target=read)
    reader.start()
    try:
        for number in range(30_000):
            entry = {"id": f"v{number}", "branch_id": 1, "inbox": {"id": 1, "name": "Shop"}, "chatting": False}
            tracker.attach(f"socket-{number}", entry)  # type: ignore[arg-type]
            if number >= 50:
                tracker.detach(f"socket-{number - 50}", f"v{number - 50}")
            if failures:
                break
    finally:
        done.set()
        reader.join()
        sys.setswitchinterval(interval)
    assert failures == []


@pytest.mark.redis
async def test_a_visitor_stays_listed_while_a_tab_on_another_process_is_open():
    """Two tabs of one visitor, their sockets on two server processes: closing one tab must not
    take the visitor off the list (nor out of reach of an invitation) while the other is open."""
    if live.messenger_cache.redis_client() is None:
        pytest.skip("the embedded default has one process: its tracker counts the tabs")
    inbox = await database_sync_to_async(make_inbox)(await database_sync_to_async(make_branch)())
    data = await database_sync_to_async(boot)(inbox)
    visitor = await database_sync_to_async(session_visitor)(data["session_token"], inbox)
    entry = await database_sync_to_async(visitors.live_entry)(visitor)
    visitor_id = data["visitor_id"]
    first, second = live.Tracker(), live.Tracker()  # two processes
    for number, tracker in enumerate((first, second)):
        tracker.attach(f"socket-{number}", dict(entry))  # type: ignore[arg-type]
        tracker.task.cancel()  # this test writes by hand
        await tracker._write(set(tracker.visitors), {}, refresh=False, now=time.time())

    async def listed_ids() -> list[str]:
        _, entries = await database_sync_to_async(live.live_visitors)([inbox.branch_id])
        return [entry["id"] for entry in entries]

    first.detach("socket-0", visitor_id)
    left = await first._write(set(), dict(first.removed), refresh=False, now=time.time())
    assert await listed_ids() == [visitor_id]
    assert await database_sync_to_async(live.find)(visitor_id) is not None
    assert left == set()  # so no `removed` for the staff either
    # The last tab closes: gone.
    second.detach("socket-1", visitor_id)
    left = await second._write(set(), dict(second.removed), refresh=False, now=time.time())
    assert await listed_ids() == []
    assert await database_sync_to_async(live.find)(visitor_id) is None
    assert left == {visitor_id}


def _detail(user, conversation_id: int) -> dict:
    client = Client()
    client.force_login(user)
    response = client.get(f"/api/operator/conversations/{conversation_id}/")
    assert response.status_code == 200, response.content
    return response.json()["conversation"]


async def test_staff_see_the_invitation_the_visitor_answered():
    """The visitor's first message answers an invitation that is no message of the conversation:
    whoever opens it (the inviter, or whoever it passed to) is shown what it answered."""
    branch = await database_sync_to_async(make_branch)()
    inbox = await database_sync_to_async(make_inbox)(branch)
    olga = await database_sync_to_async(make_user)(branch=branch, first_name="Olga")
    operator = await connected_operator(olga)
    visitor, data = await visitor_on_page(inbox)
    await operator.expect("visitors.changed", timeout=5)
    ack = await operator.command("visitor.invite", visitor_id=data["visitor_id"], body="Need help with **sizes**?")
    assert ack["type"] == "ack", ack
    await visitor.expect("invitation")
    answer = await visitor.command("message.send", client_id=new_client_id(), body="Yes, please")
    detail = await database_sync_to_async(_detail)(olga, answer["data"]["conversation_id"])
    assert detail["invitation"] == "Need help with **sizes**?"
    # A visitor who writes first answered nobody.
    other, _ = await visitor_on_page(inbox)
    answer = await other.command("message.send", client_id=new_client_id(), body="Hello")
    assert (await database_sync_to_async(_detail)(olga, answer["data"]["conversation_id"]))["invitation"] is None
    for socket in (visitor, other, operator):
        await socket.close()


async def test_an_invitation_crossed_by_the_visitors_own_first_message_is_void():
    """The visitor writes while an operator invites them: the check saw no conversation, the
    invitation is remembered after the visitor's own one started. That one is routed as usual; the
    invitation must not hand the visitor's next conversation to the inviter an hour later."""
    branch = await database_sync_to_async(make_branch)()
    inbox = await database_sync_to_async(make_inbox)(branch)
    olga = await database_sync_to_async(make_user)(branch=branch, status=AgentStatus.AWAY, first_name="Olga")
    visitor, data = await visitor_on_page(inbox)
    first = await visitor.command("message.send", client_id=new_client_id(), body="Hello")
    first_id = first["data"]["conversation_id"]
    # What the invitation's check read just before the visitor's conversation committed.
    await database_sync_to_async(visitors.do_invite)(
        inbox=inbox, visitor_id=data["visitor_id"], user=olga, body="Can I help?", after_conversation_id=None
    )
    await database_sync_to_async(Conversation.objects.filter(pk=first_id).update)(status="resolved")
    second = await visitor.command("message.send", client_id=new_client_id(), body="Another question")
    conversation = await database_sync_to_async(Conversation.objects.get)(pk=second["data"]["conversation_id"])
    assert conversation.pk != first_id
    assert conversation.assignee_id != olga.pk  # routed as usual (nobody is online here)
    assert "invitation" not in conversation.additional_attributes
    assert await database_sync_to_async(visitors.pending_invitation)(data["visitor_id"]) is None

    # Invited after that conversation (resolved now): the answer is the inviter's.
    await database_sync_to_async(Conversation.objects.filter(pk=conversation.pk).update)(status="resolved")
    operator = await connected_operator(olga)
    for _ in range(100):  # the live list is written once a second
        ack = await operator.command("visitor.invite", visitor_id=data["visitor_id"], body="Anything else?")
        if ack["type"] == "ack":
            break
        assert ack["code"] == "not_found", ack
        await asyncio.sleep(0.1)
    assert ack["type"] == "ack", ack
    await visitor.expect("invitation")
    third = await visitor.command("message.send", client_id=new_client_id(), body="Yes")
    answered = await database_sync_to_async(Conversation.objects.get)(pk=third["data"]["conversation_id"])
    assert (answered.assignee_id, answered.additional_attributes["invitation"]) == (olga.pk, "Anything else?")
    await visitor.close()
    await operator.close()
