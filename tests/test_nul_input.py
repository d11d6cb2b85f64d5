"""NUL characters: PostgreSQL stores them in neither text nor jsonb, so input carrying one is
refused with a clear error on both transports, before anything is written (it used to reach the
database and come back as a server error)."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from messenger.models import Message
from messenger.protocol import contains_nul
from tests.conftest import new_client_id
from tests.factories import VISITOR_ORIGIN
from tests.test_throttle import _setup, _visitor

pytestmark = pytest.mark.django_db(transaction=True)


def test_contains_nul_looks_everywhere():
    assert contains_nul({"a": ["x", {"b": "y\x00"}]})
    assert contains_nul({"k\x00": 1})
    assert not contains_nul({"a": ["\\u0000", 1, None, 2.5, {"b": "ж"}]})


async def test_a_socket_frame_with_nul_is_refused_and_stores_nothing():
    inbox = await _setup()
    visitor = await _visitor(inbox)
    first = await visitor.command("message.send", client_id=new_client_id(), body="hello")
    assert first["type"] == "ack"
    conversation_id = first["data"]["conversation_id"]
    before = await database_sync_to_async(Message.objects.count)()
    for fields in ({"body": "a\x00b"}, {"body": "ok", "client_id": "c\x00"}):
        error = await visitor.command(
            "message.send", **{"conversation_id": conversation_id, "client_id": new_client_id(), **fields}
        )
        assert (error["type"], error["code"]) == ("error", "invalid"), error
        assert "NUL" in error["message"]
    assert await database_sync_to_async(Message.objects.count)() == before
    # The socket stays usable; a literal backslash-u is ordinary text.
    ok = await visitor.command("message.send", client_id=new_client_id(), body="\\u0000 is six characters")
    assert ok["type"] == "ack" and ok["data"]["message"]["body"] == "\\u0000 is six characters"
    await visitor.close()


def test_an_api_body_with_nul_is_a_400_with_json():
    response = Client().post(
        "/api/widget/bootstrap/",
        json.dumps({"widget_token": "tok\x00en", "page": {"url": VISITOR_ORIGIN + "/"}}),
        content_type="application/json",
        HTTP_ORIGIN=VISITOR_ORIGIN,
    )
    assert response.status_code == 400
    assert "NUL" in response.json()["detail"]
