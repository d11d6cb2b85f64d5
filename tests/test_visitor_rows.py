"""No contact row for a visitor until they write or fill a form (docs/widget.md, "Behaviour and
options (inbox settings)"; docs/security.md, "Visitors who never write"): bootstrap and the socket
work with a visitor who has no row; their first message, form or file makes the rows once, with
the page details of their visit; their other tabs follow; erasure forgets the visitor everywhere."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from messenger.actions import privacy, visitors
from messenger.actions.base import Actor
from messenger.actions.contacts import do_become_contact
from messenger.actions.widget import do_bootstrap, session_visitor
from messenger.cache import redis_client
from messenger.models import AgentStatus, Contact, ContactInbox, Conversation
from messenger.tokens import new_visitor_token
from tests.conftest import new_client_id, operator_socket, visitor_socket
from tests.factories import VISITOR_ORIGIN, make_branch, make_inbox, make_user

pytestmark = pytest.mark.django_db(transaction=True)

PAGE = {
    "url": VISITOR_ORIGIN + "/pricing",
    "title": "Pricing",
    "language": "de-DE",
    "user_agent": "Mozilla/5.0 (Windows NT 10.0) Chrome/120.0",
}


def boot(inbox, *, pubsub_token: str | None = None, ip: str = "127.0.0.1") -> dict:
    return do_bootstrap(
        widget_token=inbox.widget_token, pubsub_token=pubsub_token, page=PAGE, origin=VISITOR_ORIGIN, ip=ip
    )


async def bodies(socket) -> list[str]:
    """The bodies of the ``message.created`` frames that reach ``socket`` within a couple of seconds."""
    frames = [*socket.backlog, *await socket.drain(2)]
    return [f["data"]["message"]["body"] for f in frames if f["type"] == "message.created"]


def rows() -> tuple[int, int]:
    return Contact.objects.count(), ContactInbox.objects.count()


def test_bootstrap_makes_no_row_and_the_visitor_keeps_their_id_from_page_to_page():
    inbox = make_inbox(make_branch())
    first = boot(inbox)
    assert rows() == (0, 0)
    assert first["conversation"] is None and first["history"] == []
    assert first["contact"] == {"name": "", "email": "", "phone": ""}

    again = boot(inbox, pubsub_token=first["pubsub_token"])
    assert rows() == (0, 0)
    assert (again["visitor_id"], again["pubsub_token"]) == (first["visitor_id"], first["pubsub_token"])
    assert visitors.live_entry(session_visitor(again["session_token"], inbox))["pages_seen"] == 2


@pytest.mark.parametrize("forged", ["made-up-token", "x" * 64, "abc.0123456789abcdef", ""])
def test_a_token_the_server_did_not_make_starts_a_new_visitor(forged):
    inbox = make_inbox(make_branch())
    data = boot(inbox, pubsub_token=forged)
    assert data["pubsub_token"] != forged
    assert rows() == (0, 0)


def test_a_visitor_token_of_another_inbox_starts_a_new_visitor():
    branch = make_branch()
    inbox, other = make_inbox(branch), make_inbox(branch)
    token = new_visitor_token(other.pk)
    data = boot(inbox, pubsub_token=token)
    assert data["pubsub_token"] != token


async def test_the_first_message_makes_the_rows_once_with_the_visit_details():
    branch = await database_sync_to_async(make_branch)()
    inbox = await database_sync_to_async(make_inbox)(branch)
    data = await database_sync_to_async(boot)(inbox, ip="81.2.69.160")
    socket = visitor_socket(inbox, data)
    assert (await socket.connect())[0]
    hello = await socket.expect("hello")
    assert hello["conversation_id"] is None
    # Nothing a visitor without rows does makes them: typing, reading, closing the widget.
    assert (await socket.command("typing.start", conversation_id=1))["code"] == "not_found"
    assert (await socket.command("resume", conversation_id=1, after=0))["code"] == "not_found"
    assert (await socket.command("widget.close"))["type"] == "ack"
    refused = await socket.command("message.send", client_id=new_client_id(), body="   ")
    assert refused["type"] == "error" and refused["code"] == "invalid"
    refused = await socket.command("contact.update", email="not an address")
    assert refused["type"] == "error"
    assert await database_sync_to_async(rows)() == (0, 0)

    ack = await socket.command("message.send", client_id=new_client_id(), body="Hello?")
    assert ack["type"] == "ack", ack
    await socket.command("message.send", client_id=new_client_id(), body="Anyone?")
    assert await database_sync_to_async(rows)() == (1, 1)
    contact_inbox = await database_sync_to_async(ContactInbox.objects.select_related("contact").get)()
    assert (contact_inbox.source_id, contact_inbox.pubsub_token) == (data["visitor_id"], data["pubsub_token"])
    attributes = contact_inbox.contact.additional_attributes
    assert (attributes["url"], attributes["browser"], attributes["os"]) == (PAGE["url"], "Chrome", "Windows")
    assert attributes["ip"] == "81.2.69.160"
    conversation = await database_sync_to_async(Conversation.objects.get)()
    assert conversation.contact_inbox_id == contact_inbox.pk
    # The socket is on the visitor's stream now: the operator's answer reaches it.
    operator = await database_sync_to_async(make_user)(branch=branch, status=AgentStatus.ONLINE)
    staff = await operator_socket(operator)
    assert (await staff.connect())[0]
    await staff.expect("hello")
    await staff.command("conversation.open", conversation_id=conversation.pk)
    await staff.command("message.send", conversation_id=conversation.pk, client_id=new_client_id(), body="Hi!")
    assert "Hi!" in await bodies(socket)
    # The session token from before the rows still opens the visitor's socket, now with them.
    again = visitor_socket(inbox, data)
    assert (await again.connect())[0]
    assert (await again.expect("hello"))["conversation_id"] == conversation.pk
    for open_socket in (socket, again, staff):
        await open_socket.close()


async def test_a_form_makes_the_rows_with_what_it_says():
    inbox = await database_sync_to_async(make_inbox)(await database_sync_to_async(make_branch)())
    data = await database_sync_to_async(boot)(inbox)
    socket = visitor_socket(inbox, data)
    assert (await socket.connect())[0]
    await socket.expect("hello")
    assert (await socket.command("contact.update"))["type"] == "ack"
    assert await database_sync_to_async(rows)() == (0, 0)  # nothing to store: no rows either
    ack = await socket.command("contact.update", name="Ada", email="ada@example.com")
    assert ack["type"] == "ack", ack
    contact = await database_sync_to_async(Contact.objects.get)()
    assert (contact.name, contact.email) == ("Ada", "ada@example.com")
    await socket.close()


async def test_another_tab_follows_when_one_tab_writes_and_nothing_is_shown_twice():
    inbox = await database_sync_to_async(make_inbox)(await database_sync_to_async(make_branch)())
    data = await database_sync_to_async(boot)(inbox)
    writer, reader = visitor_socket(inbox, data), visitor_socket(inbox, data)
    for socket in (writer, reader):
        assert (await socket.connect())[0]
        await socket.expect("hello")
    ack = await writer.command("message.send", client_id=new_client_id(), body="From tab one")
    conversation_id = ack["data"]["conversation_id"]
    # The other tab learns of the rows, joins the visitor's stream and reads a fresh hello: the
    # first message reaches it either in that hello (written before it joined) or as a frame.
    seen = [await reader.expect("hello"), *await reader.drain(2)]
    in_hello = [f for f in seen if f["type"] == "hello" and f["conversation_id"] == conversation_id]
    assert in_hello or [f for f in seen if f["type"] == "message.created" and f["conversation_id"] == conversation_id]
    await writer.command("message.send", client_id=new_client_id(), body="Second")
    assert await bodies(reader) == ["Second"]
    assert not [f for f in reader.frames if f["type"].startswith("session.")]
    assert await database_sync_to_async(rows)() == (1, 1)
    for socket in (writer, reader):
        await socket.close()


def test_two_tabs_making_the_rows_at_once_get_the_same_rows():
    inbox = make_inbox(make_branch())
    data = boot(inbox)
    first, second = session_visitor(data["session_token"], inbox), session_visitor(data["session_token"], inbox)
    made = do_become_contact(first)
    assert do_become_contact(second).pk == made.pk
    assert rows() == (1, 1)


async def test_an_invitation_reaches_a_visitor_without_rows_and_their_answer_goes_to_the_inviter():
    branch = await database_sync_to_async(make_branch)()
    inbox = await database_sync_to_async(make_inbox)(branch)
    inviter = await database_sync_to_async(make_user)(branch=branch, status=AgentStatus.ONLINE)
    await database_sync_to_async(make_user)(branch=branch, status=AgentStatus.ONLINE)
    staff = await operator_socket(inviter)
    assert (await staff.connect())[0]
    await staff.expect("hello")
    data = await database_sync_to_async(boot)(inbox)
    socket = visitor_socket(inbox, data)
    assert (await socket.connect())[0]
    await socket.expect("hello")
    await staff.expect("visitors.changed", timeout=5)
    ack = await staff.command("visitor.invite", visitor_id=data["visitor_id"], body="Need help?")
    assert ack["type"] == "ack", ack
    invitation = await socket.expect("invitation")
    assert invitation["data"]["body"] == "Need help?"
    assert await database_sync_to_async(rows)() == (0, 0)
    answer = await socket.command("message.send", client_id=new_client_id(), body="Yes please")
    conversation = await database_sync_to_async(Conversation.objects.get)(pk=answer["data"]["conversation_id"])
    assert conversation.assignee_id == inviter.pk
    for open_socket in (socket, staff):
        await open_socket.close()


def test_erasure_forgets_the_visit_and_the_old_secret_starts_afresh():
    inbox = make_inbox(make_branch())
    data = boot(inbox)
    contact_inbox = do_become_contact(session_visitor(data["session_token"], inbox))
    visitors.do_close_widget(contact_inbox=contact_inbox)
    privacy.do_anonymise_contact(contact_id=contact_inbox.contact_id, actor=Actor(label="test"))

    assert visitors.forgotten(data["visitor_id"])
    assert session_visitor(data["session_token"], inbox) is None  # the socket's old session is refused
    fresh = boot(inbox, pubsub_token=data["pubsub_token"])
    assert fresh["visitor_id"] != data["visitor_id"] and fresh["pubsub_token"] != data["pubsub_token"]
    # The erased visitor's visit and "closed the widget" went with them.
    from django.core.cache import cache

    assert cache.get(f"visitors:visit:{data['visitor_id']}") is None
    assert cache.get(f"visitors:closed:{data['visitor_id']}") is None
    # The mark does not expire: the widget keeps its secret for good, and so must the server.
    key = cache.make_key(f"visitors:forgotten:{data['visitor_id']}")
    client = redis_client()
    if client is not None:
        assert client.ttl(key) == -1  # a key without expiry
    else:
        assert cache._expire_info[key] is None  # LocMemCache: no expiry


def test_a_file_is_a_first_word_too():
    inbox = make_inbox(make_branch())
    data = boot(inbox)
    response = Client().post(
        "/api/widget/attachments/",
        {
            "widget_token": inbox.widget_token,
            "token": data["session_token"],
            "file": SimpleUploadedFile("note.txt", b"hello", content_type="text/plain"),
        },
        HTTP_ORIGIN=VISITOR_ORIGIN,
    )
    assert response.status_code == 201, response.content
    assert ContactInbox.objects.get().source_id == data["visitor_id"]
