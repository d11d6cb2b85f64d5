"""A visitor's rows seen from outside (docs/widget.md, "No row for a visitor who only looks"): a
first word that is refused (the honeypot, the pre-chat form, the CAPTCHA, a file the inbox does
not take) or a form that says nothing leaves no row; a solved CAPTCHA is asked once."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, override_settings

from messenger import captcha, throttle
from messenger.models import Contact, ContactInbox, Conversation
from tests.conftest import bootstrap, new_client_id
from tests.factories import VISITOR_ORIGIN, make_branch, make_inbox, make_user
from tests.test_captcha import _small_work, payload  # noqa: F401 — the fixture
from tests.test_throttle import visitor_socket_from

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
