"""Bad input gets a clean, documented answer and stores nothing.

Strings no column can store — NUL (PostgreSQL keeps it in neither text nor jsonb) and lone
surrogates (JSON can escape one, UTF-8 cannot encode it, so psycopg fails) — and numbers JSON
cannot hold (NaN, Infinity, 1e400) are refused at the edge, anywhere in a socket frame or an API
JSON body: `invalid` / HTTP 400. They used to reach the database and come back as a server error.
Oversized frames and invalid UTF-8 get a documented answer from a real daphne server, and only
malformed frames count towards close 4009 (docs/protocol.md, "Close codes").
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets
from channels.db import database_sync_to_async as db
from django.test import Client, override_settings
from django.urls import get_resolver
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework import parsers

from messenger.api.parsers import JSONParser
from messenger.models import ActivityEvent, Contact, ContactInbox, Conversation, ConversationEvent, Message
from messenger.protocol import CLOSE_TOO_MANY_ERRORS, unstorable
from tests.conftest import Socket, bootstrap, new_client_id, operator_socket, visitor_socket
from tests.factories import VISITOR_ORIGIN, make_branch, make_inbox, make_user
from tests.live import run_async
from tests.test_fuzz_frames import field_json

pytestmark = pytest.mark.django_db(transaction=True)


def test_unstorable_looks_everywhere():
    assert unstorable({"a": ["x", {"b": "y\x00"}]}) == "NUL characters (\\u0000) are not allowed."
    assert unstorable({"k\x00": 1})
    assert unstorable({"a": ["x", {"b": "ok \ud800"}]}) == "Unpaired surrogates (\\ud800–\\udfff) are not allowed."
    assert unstorable({"\udfff": 1})
    assert unstorable(["\udc00"])
    assert unstorable({"a": [float("nan")]}) and unstorable(float("inf")) and unstorable({"n": -float("inf")})
    assert unstorable([2**63]) and unstorable({"n": -(2**63) - 1})
    # Ordinary text, escapes written out, astral characters (a pair in JSON, one character here).
    assert unstorable({"a": ["\\u0000", "\\ud800", 1, None, 2.5, 2**63 - 1, -(2**63), True, {"b": "ж 😀"}]}) is None
    deep: Any = "\ud800"
    for _ in range(5000):  # deeper than Python's stack: no RecursionError
        deep = [deep]
    assert unstorable(deep)


# --- the sockets -----------------------------------------------------------------------------------


def _world() -> dict[str, Any]:
    branch = make_branch()
    inbox = make_inbox(branch)
    return {"inbox": inbox, "operator": make_user(branch=branch)}


async def _visitor(inbox) -> Socket:
    socket = visitor_socket(inbox, await db(bootstrap)(inbox))
    assert (await socket.connect())[0]
    await socket.expect("hello")
    return socket


def _stored() -> tuple:
    """What a refused command must leave as it was: the rows a command can write."""
    return (
        list(Message.objects.order_by("pk").values_list("pk", "body", "client_id")),
        list(Conversation.objects.order_by("pk").values_list("pk", "status", "priority", "assignee_id")),
        list(Contact.objects.order_by("pk").values_list("pk", "name", "email", "phone", "custom_attributes")),
        ConversationEvent.objects.count(),
        ActivityEvent.objects.count(),
    )


async def _refused(socket: Socket, frame: dict[str, Any], *, ref: str | None = "bad") -> dict[str, Any]:
    """Send ``frame`` JSON-encoded (lone surrogates travel escaped, as on the wire); its error."""
    if ref is not None:
        frame = {**frame, "ref": ref}
    await socket.send_raw(json.dumps(frame))
    while (reply := await socket.recv())["type"] not in ("error", "ack", "__closed__"):
        pass  # broadcasts of earlier commands, not answers
    assert reply["type"] == "error", (frame, reply)
    return reply


async def test_a_socket_frame_with_nul_is_refused_and_stores_nothing():
    world = await db(_world)()
    visitor = await _visitor(world["inbox"])
    first = await visitor.command("message.send", client_id=new_client_id(), body="hello")
    assert first["type"] == "ack"
    conversation_id = first["data"]["conversation_id"]
    before = await db(_stored)()
    for fields in ({"body": "a\x00b"}, {"body": "ok", "client_id": "c\x00"}):
        error = await _refused(
            visitor,
            {"type": "message.send", "conversation_id": conversation_id, "client_id": new_client_id(), **fields},
        )
        assert (error["code"], error["ref"]) == ("invalid", "bad"), error
        assert error["message"] == "NUL characters (\\u0000) are not allowed."
    assert await db(_stored)() == before
    # The socket stays usable; a literal backslash-u is ordinary text.
    ok = await visitor.command("message.send", client_id=new_client_id(), body="\\u0000 is six characters")
    assert ok["type"] == "ack" and ok["data"]["message"]["body"] == "\\u0000 is six characters"
    await visitor.close()


SURROGATE_REFUSED = "Unpaired surrogates (\\ud800–\\udfff) are not allowed."


async def test_lone_surrogates_on_the_visitor_socket_are_invalid_and_store_nothing():
    world = await db(_world)()
    visitor = await _visitor(world["inbox"])
    first = await visitor.command("message.send", client_id=new_client_id(), body="hello")
    conversation_id = first["data"]["conversation_id"]
    before = await db(_stored)()
    send = {"type": "message.send", "conversation_id": conversation_id, "client_id": new_client_id(), "body": "hi"}
    for frame in (
        {**send, "body": "a\ud800b"},
        {**send, "client_id": "c\udfff"},
        {**send, "attachment_ids": [{"x": ["\udc00"]}]},
        {"type": "contact.update", "name": "Ann\ud800"},
        {"type": "contact.update", "email": "a\udbff@example.com"},
        {"type": "contact.update", "custom": {"order": "\ud800"}},
        {"type": "contact.update", "custom": {"\ud800": "key"}},
        {"type": "conversation.rate", "conversation_id": conversation_id, "score": 5, "comment": "\ud800"},
        {"type": "typing.start", "conversation_id": conversation_id, "preview": "\ud800"},
    ):
        error = await _refused(visitor, frame)
        assert (error["code"], error["ref"], error["message"]) == ("invalid", "bad", SURROGATE_REFUSED), (frame, error)
    # Numbers JSON cannot hold would break a jsonb column the same way.
    for text in (
        '{"type": "contact.update", "custom": {"n": NaN}}',
        '{"type": "contact.update", "custom": {"n": 1e400}}',
    ):
        await visitor.send_raw(text)
        error = await visitor.recv()
        assert (error["type"], error["code"]) == ("error", "invalid"), (text, error)
    # A ref that could not be echoed is refused without it.
    error = await _refused(visitor, {**send, "ref": "r\ud800"}, ref=None)
    assert (error["code"], "ref" in error) == ("invalid", False), error
    # A str handed over in-process may hold a raw surrogate (the wire cannot carry one): the same.
    await visitor.send_raw('{"type": "message.send", "client_id": "raw", "body": "\ud800"}')
    assert (await visitor.recv())["message"] == SURROGATE_REFUSED
    assert await db(_stored)() == before
    ok = await visitor.command("contact.update", name="Ann 😀", custom={"order": "ж"})
    assert ok["type"] == "ack" and ok["data"]["contact"]["name"] == "Ann 😀"
    await visitor.close()


async def test_lone_surrogates_on_the_operator_socket_are_invalid_and_store_nothing():
    world = await db(_world)()
    visitor = await _visitor(world["inbox"])
    conversation_id = (await visitor.command("message.send", client_id=new_client_id(), body="hello"))["data"][
        "conversation_id"
    ]
    operator = await operator_socket(world["operator"])
    assert (await operator.connect())[0]
    await operator.expect("hello")
    before = await db(_stored)()
    for frame in (
        {"type": "message.send", "conversation_id": conversation_id, "client_id": new_client_id(), "body": "\ud800"},
        {"type": "message.send", "conversation_id": conversation_id, "client_id": "\udfff", "body": "hi"},
        {"type": "conversation.labels", "conversation_id": conversation_id, "labels": ["vip\ud800"]},
        {
            "type": "conversation.status",
            "conversation_id": conversation_id,
            "status": "snoozed",
            "snoozed_until": "\ud800",
        },
        {"type": "status.set", "status": "away\udc00"},
    ):
        error = await _refused(operator, frame)
        assert (error["code"], error["ref"], error["message"]) == ("invalid", "bad", SURROGATE_REFUSED), (frame, error)
    assert await db(_stored)() == before
    await operator.close()
    await visitor.close()


async def test_only_malformed_frames_count_towards_close_4009():
    world = await db(_world)()
    visitor = await _visitor(world["inbox"])
    # Refusals of well-formed commands are answers, not abuse: many in a row keep the socket open.
    for _ in range(25):
        error = await visitor.command("resume", conversation_id=987654321, after=0)
        assert (error["type"], error["code"]) == ("error", "not_found"), error
    # One of them also ends a run of malformed frames.
    for _ in range(2):
        for _ in range(19):
            await visitor.send_raw("garbage")
            assert (await visitor.recv())["code"] == "bad_json"
        assert (await visitor.command("resume", conversation_id=987654321, after=0))["code"] == "not_found"
    await visitor.send({"type": "ping"})
    assert (await visitor.recv())["type"] == "pong"
    # A field of the wrong type is malformed too: 20 in a row close the socket.
    for _ in range(20):
        await visitor.send({"type": "resume", "conversation_id": "nine", "after": 0})
    codes = []
    while (frame := await visitor.recv())["type"] != "__closed__":
        codes.append(frame["code"])
    assert (codes, frame["code"]) == (["invalid"] * 20, CLOSE_TOO_MANY_ERRORS)


# --- HTTP ------------------------------------------------------------------------------------------


def test_an_api_body_with_nul_is_a_400_with_json():
    response = Client().post(
        "/api/widget/bootstrap/",
        json.dumps({"widget_token": "tok\x00en", "page": {"url": VISITOR_ORIGIN + "/"}}),
        content_type="application/json",
        HTTP_ORIGIN=VISITOR_ORIGIN,
    )
    assert response.status_code == 400
    assert response.json() == {"detail": "NUL characters (\\u0000) are not allowed.", "code": "invalid"}


def test_a_bootstrap_with_lone_surrogates_is_a_400_with_json_and_creates_nothing():
    inbox = make_inbox(make_branch())
    good = {"widget_token": inbox.widget_token, "page": {"url": VISITOR_ORIGIN + "/", "title": "Shop"}}
    for body in (
        {**good, "page": {"url": VISITOR_ORIGIN + "/", "title": "\ud800"}},
        {**good, "page": {"url": VISITOR_ORIGIN + "/\udfff"}},
        {**good, "language": "e\udc00"},
        {**good, "extra": [{"deep": "\ud800"}]},
    ):
        response = Client().post(
            "/api/widget/bootstrap/", json.dumps(body), content_type="application/json", HTTP_ORIGIN=VISITOR_ORIGIN
        )
        assert (response.status_code, response.json()) == (400, {"detail": SURROGATE_REFUSED, "code": "invalid"})
    # Bytes that are not UTF-8 at all: DRF's parser answers, JSON too.
    response = Client().post(
        "/api/widget/bootstrap/",
        b'{"widget_token": "\xff"}',
        content_type="application/json",
        HTTP_ORIGIN=VISITOR_ORIGIN,
    )
    assert (response.status_code, response["Content-Type"]) == (400, "application/json")
    assert (Contact.objects.count(), ContactInbox.objects.count(), ActivityEvent.objects.count()) == (0, 0, 0)
    response = Client().post(
        "/api/widget/bootstrap/", json.dumps(good), content_type="application/json", HTTP_ORIGIN=VISITOR_ORIGIN
    )
    assert response.status_code == 200


def test_every_api_view_that_reads_json_refuses_what_cannot_be_stored():
    """The check lives in the API's one JSON parser; no view may parse JSON another way."""
    views = []

    def walk(patterns: list) -> None:
        for pattern in patterns:
            if hasattr(pattern, "url_patterns"):
                walk(pattern.url_patterns)
            elif hasattr(getattr(pattern.callback, "cls", None), "parser_classes"):
                views.append(pattern.callback.cls)

    walk(get_resolver().url_patterns)
    assert len(views) >= 5
    for view in views:
        for parser in view.parser_classes:
            if issubclass(parser, parsers.JSONParser):
                assert issubclass(parser, JSONParser), (view, parser)


# --- a real server: oversized frames and invalid UTF-8 ---------------------------------------------


def _close_code(error: websockets.ConnectionClosed) -> int | None:
    return error.rcvd.code if error.rcvd else None


def test_oversized_frames_and_invalid_utf8_get_documented_answers_from_daphne(live_server_factory):
    """Up to daphne's 1 MiB a frame reaches our check (`too_large`, the socket stays open); above it
    the WebSocket layer closes with 1009, and a text frame that is not UTF-8 with 1007: a client
    learns why, instead of a dropped connection (1006)."""
    inbox = make_inbox(make_branch())
    boot = bootstrap(inbox)
    server = live_server_factory()
    url = f"ws://127.0.0.1:{server.port}/ws/widget/?widget_token={inbox.widget_token}&token={boot['session_token']}"

    async def scenario() -> dict[str, Any]:
        outcome: dict[str, Any] = {}
        async with websockets.connect(url, origin=VISITOR_ORIGIN, max_size=None) as socket:
            assert json.loads(await socket.recv())["type"] == "hello"
            await socket.send(json.dumps({"type": "message.send", "ref": "big", "body": "x" * 900_000}))
            outcome["too_large"] = json.loads(await asyncio.wait_for(socket.recv(), 10))
            await socket.send(json.dumps({"type": "ping"}))
            outcome["after"] = json.loads(await asyncio.wait_for(socket.recv(), 10))
            await socket.send("x" * (1024 * 1024 + 1))
            try:
                outcome["extra"] = await asyncio.wait_for(socket.recv(), 10)
            except websockets.ConnectionClosed as closed:
                outcome["oversized"] = _close_code(closed)
        async with websockets.connect(url, origin=VISITOR_ORIGIN) as socket:
            assert json.loads(await socket.recv())["type"] == "hello"
            await socket.send(b'{"type": "ping", "x": "\xff"}', text=True)
            try:
                outcome["extra_utf8"] = await asyncio.wait_for(socket.recv(), 10)
            except websockets.ConnectionClosed as closed:
                outcome["invalid_utf8"] = _close_code(closed)
        return outcome

    outcome = run_async(scenario())
    assert outcome == {
        "too_large": {
            "type": "error",
            "code": "too_large",
            "message": "The frame exceeds 655360 bytes.",
        },
        "after": {"type": "pong"},
        "oversized": 1009,
        "invalid_utf8": 1007,
    }


async def test_values_the_fuzz_found_are_refused_cleanly():
    """Integers beyond 64 bits (no column holds one; SQLite cannot even be queried with one), a
    status that is not a string, an impossible date: `invalid`, where they were server errors."""
    world = await db(_world)()
    visitor = await _visitor(world["inbox"])
    conversation_id = (await visitor.command("message.send", client_id=new_client_id(), body="hello"))["data"][
        "conversation_id"
    ]
    operator = await operator_socket(world["operator"])
    assert (await operator.connect())[0]
    await operator.expect("hello")
    before = await db(_stored)()
    huge = 2**63
    conversation = {"conversation_id": conversation_id}
    for socket, frame, message in (
        (visitor, {"type": "message.send", "client_id": "c", "body": "x", "attachment_ids": [huge]}, HUGE_REFUSED),
        (visitor, {"type": "resume", "conversation_id": -huge - 1, "after": 0}, HUGE_REFUSED),
        (visitor, {"type": "contact.update", "custom": {"n": huge}}, HUGE_REFUSED),
        (operator, {"type": "conversation.assign", **conversation, "assignee_id": huge}, HUGE_REFUSED),
        (operator, {"type": "conversation.transfer", **conversation, "branch_id": huge}, HUGE_REFUSED),
        (operator, {"type": "conversation.status", **conversation, "status": []}, "status: a string is required"),
        (
            operator,
            {"type": "conversation.status", **conversation, "status": "snoozed", "snoozed_until": "2030-13-01T00:00"},
            "snoozed_until: an ISO 8601 date-time",
        ),
        (  # year 10000 in UTC: no column holds it
            operator,
            {
                **conversation,
                "type": "conversation.status",
                "status": "snoozed",
                "snoozed_until": "9999-12-31T23:00-05:00",
            },
            "snoozed_until: an ISO 8601 date-time",
        ),
        (operator, {"type": "status.set", "status": {"away": True}}, "status: a string is required"),
    ):
        error = await _refused(socket, frame)
        assert (error["code"], error["message"]) == ("invalid", message), (frame, error)
    assert await db(_stored)() == before
    # The largest 64-bit integer is a number like any other: no such conversation.
    error = await _refused(operator, {"type": "conversation.priority", "conversation_id": huge - 1, "priority": 1})
    assert error["code"] == "not_found"
    await operator.close()
    await visitor.close()


HUGE_REFUSED = "Integers must fit in 64 bits (-2^63 to 2^63 - 1)."


@override_settings(MESSENGER_WIDGET_BOOTSTRAP_RATE_PER_IP="100000/min")
def test_any_json_value_in_any_bootstrap_field_is_answered_cleanly():
    """The widget's one JSON endpoint, fuzzed like the socket commands (tests/test_fuzz_frames.py):
    a JSON answer, never a server error, and a refusal creates nothing."""
    inbox = make_inbox(make_branch())
    good = {
        "widget_token": inbox.widget_token,
        "pubsub_token": "",
        "page": {"url": VISITOR_ORIGIN + "/", "title": "Shop", "referrer": "", "language": "en", "user_agent": "UA"},
        "language": "en",
        "website": "",
    }
    page_keys = ["url", "title", "referrer", "language", "user_agent", "timezone", "screen"]
    names = sorted(good) + [f"page.{key}" for key in page_keys]

    @settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(fuzzed=st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True), data=st.data())
    def property_(fuzzed: list[str], data: st.DataObject) -> None:
        body = {**good, "page": dict(good["page"])}
        for name in fuzzed:
            value = data.draw(field_json, label=name)
            if name.startswith("page.") and isinstance(body["page"], dict):
                body["page"][name.removeprefix("page.")] = value
            elif not name.startswith("page."):
                body[name] = value
        before = (Contact.objects.count(), ContactInbox.objects.count(), ActivityEvent.objects.count())
        response = Client().post(
            "/api/widget/bootstrap/", json.dumps(body), content_type="application/json", HTTP_ORIGIN=VISITOR_ORIGIN
        )
        assert response.status_code in (200, 400, 403, 404), (body, response.status_code, response.content[:300])
        assert response["Content-Type"] == "application/json", (body, response.status_code)
        if response.status_code != 200:
            assert (Contact.objects.count(), ContactInbox.objects.count(), ActivityEvent.objects.count()) == before

    property_()
