"""Per-inbox feature flags the server enforces, not only the widget: ``queue_position`` (no queue
information reaches the visitor when off) and ``pre_chat_form`` (no conversation starts before the
required fields are filled)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from messenger.actions.base import Actor
from messenger.actions.intake import send_visitor_message
from messenger.models import Attachment, Conversation, Message
from messenger.routing import queue
from messenger.throttle import VisitorLimits
from tests.conftest import Socket, bootstrap, new_client_id, visitor_rows, visitor_socket
from tests.factories import VISITOR_ORIGIN, make_branch, make_inbox

socket_test = pytest.mark.django_db(transaction=True)


async def _open(inbox, boot) -> tuple[Socket, dict[str, Any]]:
    socket = visitor_socket(inbox, boot)
    connected, _ = await socket.connect()
    assert connected
    return socket, await socket.expect("hello")


def _inbox(features: dict[str, bool], pre_chat_fields: list[dict[str, Any]] | None = None):
    settings: dict[str, Any] = {"features": features}
    if pre_chat_fields is not None:
        settings["pre_chat"] = {"fields": pre_chat_fields}
    return make_inbox(make_branch(), settings=settings)


# --- queue_position ----------------------------------------------------------------------------


def _waiting_visitor(queue_position: bool):
    """An inbox and a visitor with an open, unassigned conversation (second in the branch queue)."""
    inbox = _inbox({"queue_position": queue_position})
    for _ in range(2):
        boot = bootstrap(inbox)
        contact_inbox = visitor_rows(boot)
        send_visitor_message(
            contact_inbox=contact_inbox,
            client_id=new_client_id(),
            body="hello",
            actor=Actor(contact=contact_inbox.contact),
        )
    return inbox, bootstrap(inbox, pubsub_token=boot["pubsub_token"])


@socket_test
async def test_queue_position_on_reaches_bootstrap_hello():
    inbox, boot = await database_sync_to_async(_waiting_visitor)(True)
    assert boot["queue"]["position"] == 2
    socket, hello = await _open(inbox, boot)
    assert hello["queue"]["position"] == 2
    assert "expected_wait_seconds" in hello["queue"]
    await socket.close()


@socket_test
async def test_queue_position_off_is_neither_computed_nor_sent(monkeypatch):
    inbox, boot = await database_sync_to_async(_waiting_visitor)(False)
    assert boot["queue"] is None
    assert boot["settings"]["features"]["queue_position"] is False

    def forbidden(*args, **kwargs):
        raise AssertionError("queue position computed for an inbox that turned it off")

    monkeypatch.setattr(queue, "queue_position", forbidden)
    again = await database_sync_to_async(bootstrap)(inbox, pubsub_token=boot["pubsub_token"])
    assert again["queue"] is None
    socket, hello = await _open(inbox, boot)
    assert hello["queue"] is None
    # Live frames of the visitor (their own message, its events, a reconnect's replay) carry none either.
    ack = await socket.command("message.send", client_id=new_client_id(), body="still waiting")
    assert ack["type"] == "ack"
    await socket.send({"type": "resume", "conversation_id": hello["conversation_id"], "after": 0})
    await socket.expect("resume.done")
    frames = [*socket.frames, *await socket.drain()]
    assert len(frames) > 3
    for frame in frames:
        assert frame.get("queue") is None, frame
        text = json.dumps(frame)
        assert '"position"' not in text and "expected_wait_seconds" not in text, frame
    await socket.close()


# --- pre_chat_form ---------------------------------------------------------------------------------

PRE_CHAT = [
    {"name": "name", "type": "text", "required": True},
    {"name": "email", "type": "email"},
    {"name": "order", "type": "text", "required": True},
]


def _counts() -> tuple[int, int]:
    return Conversation.objects.count(), Message.objects.count()


@socket_test
async def test_pre_chat_required_fields_gate_the_first_conversation():
    inbox = await database_sync_to_async(_inbox)({"pre_chat_form": True}, PRE_CHAT)
    boot = await database_sync_to_async(bootstrap)(inbox)
    socket, _ = await _open(inbox, boot)
    error = await socket.command("message.send", client_id=new_client_id(), body="hi")
    assert error["type"] == "error"
    assert error["code"] == "pre_chat_required"
    assert error["fields"] == ["name", "order"]
    assert error["message"]
    assert await database_sync_to_async(_counts)() == (0, 0)
    # Half the form is still not enough; the optional e-mail is never asked for.
    assert (await socket.command("contact.update", name="Anna"))["type"] == "ack"
    error = await socket.command("message.send", client_id=new_client_id(), body="hi")
    assert (error["code"], error["fields"]) == ("pre_chat_required", ["order"])
    assert await database_sync_to_async(_counts)() == (0, 0)
    assert (await socket.command("contact.update", custom={"order": "A-17"}))["type"] == "ack"
    ack = await socket.command("message.send", client_id=new_client_id(), body="hi")
    assert ack["type"] == "ack", ack
    assert await database_sync_to_async(_counts)() == (1, 1)
    await socket.close()


@socket_test
async def test_pre_chat_filled_in_another_tab_counts():
    inbox = await database_sync_to_async(_inbox)({"pre_chat_form": True}, PRE_CHAT[:1])
    boot = await database_sync_to_async(bootstrap)(inbox)
    first, _ = await _open(inbox, boot)
    second, _ = await _open(inbox, boot)
    assert (await second.command("message.send", client_id=new_client_id(), body="hi"))["code"] == "pre_chat_required"
    assert (await first.command("contact.update", name="Anna"))["type"] == "ack"
    assert (await second.command("message.send", client_id=new_client_id(), body="hi"))["type"] == "ack"
    await first.close()
    await second.close()


@socket_test
async def test_pre_chat_without_configured_fields_asks_what_the_widget_asks():
    # The widget's default form: name and e-mail, both required.
    inbox = await database_sync_to_async(_inbox)({"pre_chat_form": True})
    boot = await database_sync_to_async(bootstrap)(inbox)
    socket, _ = await _open(inbox, boot)
    error = await socket.command("message.send", client_id=new_client_id(), body="hi")
    assert (error["code"], error["fields"]) == ("pre_chat_required", ["name", "email"])
    await socket.command("contact.update", name="Anna", email="anna@example.com")
    assert (await socket.command("message.send", client_id=new_client_id(), body="hi"))["type"] == "ack"
    await socket.close()


@socket_test
async def test_pre_chat_off_or_without_required_fields_does_not_gate():
    for features, fields in (({"pre_chat_form": False}, PRE_CHAT), ({"pre_chat_form": True}, [PRE_CHAT[1]])):
        inbox = await database_sync_to_async(_inbox)(features, fields)
        boot = await database_sync_to_async(bootstrap)(inbox)
        socket, _ = await _open(inbox, boot)
        assert (await socket.command("message.send", client_id=new_client_id(), body="hi"))["type"] == "ack"
        await socket.close()


@pytest.mark.django_db
def test_pre_chat_gates_only_new_conversations_and_only_the_visitor_transport():
    inbox = _inbox({"pre_chat_form": True}, PRE_CHAT)
    contact_inbox = visitor_rows(bootstrap(inbox))
    # A trusted server-side path (no VisitorLimits) starts the conversation without the form...
    result = send_visitor_message(
        contact_inbox=contact_inbox, client_id=new_client_id(), body="imported", actor=Actor(label="import")
    )
    assert result.created
    # ...and the visitor may write in a conversation that is already open.
    again = send_visitor_message(
        contact_inbox=contact_inbox,
        client_id=new_client_id(),
        body="follow-up",
        actor=Actor(contact=contact_inbox.contact),
        limits=VisitorLimits(ip="127.0.0.1"),
    )
    assert again.conversation == result.conversation


# A 2×2 PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP8z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg=="
)


@pytest.mark.django_db
def test_pre_chat_required_on_the_upload_that_would_start_a_conversation(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    inbox = _inbox({"pre_chat_form": True}, PRE_CHAT[:1])
    boot = bootstrap(inbox)

    def upload():
        return Client().post(
            "/api/widget/attachments/",
            {
                "widget_token": inbox.widget_token,
                "token": boot["session_token"],
                "file": SimpleUploadedFile("a.png", PNG, content_type="image/png"),
            },
            HTTP_ORIGIN=VISITOR_ORIGIN,
        )

    response = upload()
    assert response.status_code == 400
    assert response.json()["code"] == "pre_chat_required"
    assert response.json()["fields"] == ["name"]
    assert (Conversation.objects.count(), Attachment.objects.count()) == (0, 0)
    contact = visitor_rows(boot).contact
    contact.name = "Anna"
    contact.save()
    assert upload().status_code == 201
