"""A visitor's rows seen from outside (docs/widget.md, "Behaviour and options": no row for a
visitor who only looks): a first word that is refused (the honeypot, the pre-chat form, the
CAPTCHA, the address's send rate, a file the inbox does not take) or a form that says nothing
leaves no row; a solved CAPTCHA is asked once; tabs that race or connect meanwhile share one
contact and conversation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, override_settings

from messenger import captcha, throttle
from messenger.models import Contact, ContactInbox, Conversation
from tests import live
from tests.conftest import bootstrap, new_client_id
from tests.factories import VISITOR_ORIGIN, make_branch, make_inbox, make_user
from tests.live import demo_page, wait_ready
from tests.test_captcha import _small_work, payload  # noqa: F401 — the fixture
from tests.test_throttle import visitor_socket_from
from tests.test_widget_browser import Operator, own_messages, send_text, widget

pytestmark = pytest.mark.django_db(transaction=True)

IP = "10.77.0.1"


def rows() -> tuple[int, int]:
    return Contact.objects.count(), ContactInbox.objects.count()


async def _inbox(settings: dict[str, Any] | None = None):
    branch = await database_sync_to_async(make_branch)()
    await database_sync_to_async(make_user)(branch=branch)
    return await database_sync_to_async(make_inbox)(branch, settings=settings)


async def _open(inbox, *, ip: str = IP):
    boot = await database_sync_to_async(bootstrap)(inbox, ip=ip)
    socket = visitor_socket_from(inbox, boot, ip)
    assert (await socket.connect())[0]
    await socket.expect("hello")
    return socket, boot


async def test_a_first_message_refused_by_the_honeypot_or_the_pre_chat_form_makes_no_row():
    inbox = await _inbox({"features": {"pre_chat_form": True}, "pre_chat": {"fields": []}})
    socket, _ = await _open(inbox)
    error = await socket.command("message.send", client_id=new_client_id(), body="hi")
    assert (error["type"], error["code"], error["fields"]) == ("error", "pre_chat_required", ["name", "email"])
    error = await socket.command("message.send", client_id=new_client_id(), body="hi", website="spam.example")
    assert (error["type"], error["code"]) == ("error", "invalid")
    assert await database_sync_to_async(rows)() == (0, 0)
    # The form, then the message: one contact, with what the form said.
    assert (await socket.command("contact.update", name="Ada", email="ada@example.com"))["type"] == "ack"
    assert (await socket.command("message.send", client_id=new_client_id(), body="hi"))["type"] == "ack"
    assert await database_sync_to_async(rows)() == (1, 1)
    assert (await database_sync_to_async(Contact.objects.get)()).name == "Ada"
    await socket.close()


@override_settings(MESSENGER_CAPTCHA_AFTER_CONVERSATIONS_PER_IP=1)
async def test_a_first_message_past_the_captcha_threshold_makes_no_row_until_solved_and_asks_once():
    inbox = await _inbox()
    await database_sync_to_async(throttle.hit)("conversations-ip", IP, throttle.NEW_CONVERSATION_WINDOW)
    socket, _ = await _open(inbox)
    error = await socket.command("message.send", client_id=new_client_id(), body="hi")
    assert (error["type"], error["code"], error["reason"]) == ("error", "captcha_required", "missing")
    error = await socket.command("message.send", client_id=new_client_id(), body="hi", captcha="bm90IGEgcHJvb2Y=")
    assert (error["code"], error["reason"]) == ("captcha_required", "invalid")
    assert await database_sync_to_async(rows)() == (0, 0)
    # Solved: the rows, the conversation and the message, and the solution is not asked for twice.
    solution = payload(error["challenge"])
    ack = await socket.command("message.send", client_id=new_client_id(), body="hi", captcha=solution)
    assert ack["type"] == "ack", ack
    assert await database_sync_to_async(rows)() == (1, 1)
    assert await database_sync_to_async(Conversation.objects.count)() == 1
    # A later conversation from this IP asks again (the pass was for one start).
    assert captcha.check(solution, ip=IP) == "used"
    await socket.close()


@override_settings(MESSENGER_WIDGET_SEND_RATE_PER_IP="2/min")
@pytest.mark.rate_window
async def test_a_first_message_past_the_address_send_rate_makes_no_row():
    """A robot opening visitor after visitor from one address, each writing once: past the rate,
    each first word is refused before any row is made."""
    inbox = await _inbox()
    first, _ = await _open(inbox)
    for body in ("one", "two"):
        assert (await first.command("message.send", client_id=new_client_id(), body=body))["type"] == "ack"
    socket, _ = await _open(inbox)
    error = await socket.command("message.send", client_id=new_client_id(), body="hi")
    assert (error["type"], error["code"]) == ("error", "rate_limited"), error
    assert error["retry_after"] >= 1
    assert await database_sync_to_async(rows)() == (1, 1)  # the first visitor's
    # Another address is not held back by this one.
    other, _ = await _open(inbox, ip="10.77.0.9")
    assert (await other.command("message.send", client_id=new_client_id(), body="hi"))["type"] == "ack"
    assert await database_sync_to_async(rows)() == (2, 2)
    for open_socket in (first, socket, other):
        await open_socket.close()


async def test_a_first_message_to_a_conversation_the_visitor_cannot_have_makes_no_row():
    inbox = await _inbox()
    other, _ = await _open(inbox, ip="10.77.0.2")
    theirs = await other.command("message.send", client_id=new_client_id(), body="mine")
    socket, _ = await _open(inbox)
    for conversation_id in (theirs["data"]["conversation_id"], 10**9):
        error = await socket.command(
            "message.send", client_id=new_client_id(), body="hi", conversation_id=conversation_id
        )
        assert (error["type"], error["code"]) == ("error", "not_found"), error
    assert await database_sync_to_async(rows)() == (1, 1)  # the other visitor's
    for open_socket in (socket, other):
        await open_socket.close()


@pytest.mark.parametrize(
    "fields",
    [{"name": "", "email": " ", "phone": ""}, {"name": "   "}, {"custom": {}}, {"name": None, "email": None}],
)
async def test_a_form_that_says_nothing_makes_no_row(fields):
    inbox = await _inbox()
    socket, _ = await _open(inbox)
    ack = await socket.command("contact.update", **fields)
    assert ack["type"] == "ack", ack
    assert ack["data"]["contact"] == {"name": "", "email": "", "phone": ""}
    assert await database_sync_to_async(rows)() == (0, 0)
    await socket.close()


def _upload(inbox, boot: dict[str, Any], file: SimpleUploadedFile, **fields: Any):
    return Client(REMOTE_ADDR=IP).post(
        "/api/widget/attachments/",
        {"widget_token": inbox.widget_token, "token": boot["session_token"], "file": file, **fields},
        HTTP_ORIGIN=VISITOR_ORIGIN,
    )


@pytest.mark.parametrize(
    ("settings", "file", "code"),
    [
        (
            {},
            SimpleUploadedFile("run.exe", b"MZ\x90\x00" + b"\x00" * 60, "application/x-msdownload"),
            "file_type_not_allowed",
        ),
        (
            {"features": {"attachments": False}},
            SimpleUploadedFile("a.txt", b"hi", "text/plain"),
            "attachments_disabled",
        ),
        ({"features": {"pre_chat_form": True}}, SimpleUploadedFile("a.txt", b"hi", "text/plain"), "pre_chat_required"),
    ],
)
def test_a_refused_first_file_makes_no_row(settings, file, code):
    inbox = make_inbox(make_branch(), settings=settings)
    make_user(branch=inbox.branch)
    boot = bootstrap(inbox, ip=IP)
    response = _upload(inbox, boot, file)
    assert response.json()["code"] == code, response.content
    assert rows() == (0, 0)


@override_settings(MESSENGER_CAPTCHA_AFTER_CONVERSATIONS_PER_IP=1)
def test_a_first_file_past_the_captcha_threshold_makes_no_row_until_solved():
    inbox = make_inbox(make_branch())
    make_user(branch=inbox.branch)
    throttle.hit("conversations-ip", IP, throttle.NEW_CONVERSATION_WINDOW)
    boot = bootstrap(inbox, ip=IP)
    response = _upload(inbox, boot, SimpleUploadedFile("a.txt", b"hi", "text/plain"))
    assert response.status_code == 403 and response.json()["code"] == "captcha_required", response.content
    assert rows() == (0, 0)
    solution = payload(response.json()["challenge"])
    response = _upload(inbox, boot, SimpleUploadedFile("a.txt", b"hi", "text/plain"), captcha=solution)
    assert response.status_code == 201, response.content
    assert rows() == (1, 1)


async def test_two_tabs_sending_their_first_messages_at_once_make_one_contact_and_one_conversation():
    import asyncio

    inbox = await _inbox()
    for round_ in range(4):
        boot = await database_sync_to_async(bootstrap)(inbox, ip=f"10.78.0.{round_}")
        tabs = [visitor_socket_from(inbox, boot, f"10.78.0.{round_}") for _ in range(3)]
        for tab in tabs:
            assert (await tab.connect())[0]
            await tab.expect("hello")
        acks = await asyncio.gather(
            *(tab.command("message.send", client_id=new_client_id(), body=f"tab {i}") for i, tab in enumerate(tabs))
        )
        assert all(ack["type"] == "ack" for ack in acks), acks
        assert len({ack["data"]["conversation_id"] for ack in acks}) == 1
        visitor = await database_sync_to_async(ContactInbox.objects.get)(source_id=boot["visitor_id"])
        count = await database_sync_to_async(Conversation.objects.filter(contact_inbox=visitor).count)()
        assert count == 1
        for tab in tabs:
            await tab.close()
    assert await database_sync_to_async(rows)() == (4, 4)


async def test_a_tab_that_connects_while_another_tab_writes_first_follows_the_conversation(monkeypatch):
    """The other tab's rows are made after this socket read its session and before it joined the
    visitor's session group (so it never hears of them): it must still be on their stream."""
    from messenger.actions import widget
    from messenger.actions.base import Actor
    from messenger.actions.contacts import do_become_contact
    from messenger.actions.intake import send_visitor_message
    from messenger.models import AgentStatus
    from tests.conftest import operator_socket

    inbox = await _inbox()
    operator = await database_sync_to_async(make_user)(branch=inbox.branch, status=AgentStatus.ONLINE)
    boot = await database_sync_to_async(bootstrap)(inbox, ip=IP)
    real_connect = widget.visitor_connect

    def connect_while_the_other_tab_writes(**fields: Any) -> widget.VisitorConnect:
        result = real_connect(**fields)
        visitor = do_become_contact(widget.session_visitor(boot["session_token"], inbox))
        send_visitor_message(
            contact_inbox=visitor, client_id=new_client_id(), body="From the other tab", actor=Actor(label="test")
        )
        return result

    monkeypatch.setattr(widget, "visitor_connect", connect_while_the_other_tab_writes)
    socket = visitor_socket_from(inbox, boot, IP)
    assert (await socket.connect())[0]
    monkeypatch.undo()
    staff = await operator_socket(operator)
    try:
        conversation = await database_sync_to_async(Conversation.objects.get)()
        hello = await socket.expect("hello")
        assert hello["conversation_id"] == conversation.pk
        assert (await staff.connect())[0]
        await staff.expect("hello")
        await staff.command("conversation.open", conversation_id=conversation.pk)
        await staff.command("message.send", conversation_id=conversation.pk, client_id=new_client_id(), body="Hi!")
        created = await socket.expect("message.created", timeout=3)
        assert created["data"]["message"]["body"] == "Hi!"
    finally:
        for open_socket in (socket, staff):
            await open_socket.close()


# --- the real widget: two tabs of a visitor without rows -----------------------------------------


# Last in the module: Playwright's loop stays in this thread until the module ends.
server = live.server  # the fixture


@pytest.fixture(scope="module")
def _orm_beside_playwright(django_db_setup) -> Iterator[None]:  # noqa: ANN001
    with live.orm_beside_playwright():
        yield


@pytest.mark.browser
def test_two_tabs_of_a_new_visitor_show_the_first_conversation_live_and_once(chromium, server, _orm_beside_playwright):  # noqa: ANN001

    branch = make_branch()
    inbox = make_inbox(branch)
    operator = Operator(server, make_user(branch=branch))
    first = demo_page(chromium, server, inbox.widget_token, ready=True)
    second = first.context.new_page()
    try:
        second.goto(first.url)
        wait_ready(second)
        assert rows() == (0, 0)
        for page in (first, second):
            page.evaluate("ProfiMessenger.open()")
        send_text(first, "From the first tab")
        created = operator.expect("message.created", direction="in")
        assert rows() == (1, 1)
        # The other tab shows it without a reload, once; then the operator's answer reaches both.
        own_messages(second).filter(has_text="From the first tab").wait_for()
        operator.command("conversation.open", conversation_id=created["conversation_id"])
        operator.command(
            "message.send", conversation_id=created["conversation_id"], client_id=new_client_id(), body="Welcome"
        )
        for page in (first, second):
            widget(page).locator(".msg.out", has_text="Welcome").wait_for()
        send_text(second, "From the second tab")
        own_messages(first).filter(has_text="From the second tab").wait_for()
        for page in (first, second):
            page.wait_for_timeout(500)
            assert own_messages(page).count() == 2, page
            assert widget(page).locator(".msg.out").count() == 1
        assert Conversation.objects.count() == 1 and rows() == (1, 1)
        # A reload keeps the same visitor and the conversation.
        second.reload()
        wait_ready(second)
        second.evaluate("ProfiMessenger.open()")
        own_messages(second).filter(has_text="From the second tab").wait_for()
        assert own_messages(second).count() == 2 and rows() == (1, 1)
    finally:
        operator.close()
        first.context.close()
