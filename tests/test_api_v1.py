"""The REST API v1 (docs/integrations.md): tokens, access parity with the dashboard, filters and cursor
pages, writes through the operator socket's doors (live on open sockets, audited), bad input."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import re
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone

from messenger.actions.api_tokens import do_create_api_token, do_revoke_api_token
from messenger.actions.base import Actor
from messenger.api.v1 import serializers as shapes
from messenger.models import (
    ActivityEvent,
    AgentProfile,
    AgentRole,
    ApiToken,
    Contact,
    ContactInbox,
    Conversation,
    ConversationStatus,
    Label,
    Message,
)
from tests.conftest import bootstrap, new_client_id, operator_socket, visitor_socket
from tests.factories import make_branch, make_inbox, make_user

_names = itertools.count(1)
TOKEN_RE = re.compile(r"msg_[0-9a-f]{10}_[A-Za-z0-9_-]{43}")


def token_for(user, name: str = "") -> str:
    return do_create_api_token(user=user, name=name, actor=Actor.system("test"))[1]


class Api:
    """Django's test client with the bearer header on every request."""

    def __init__(self, token: str | None) -> None:
        self.client = Client()
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def get(self, path: str, params: dict | None = None, **headers):
        return self.client.get(f"/api/v1/{path}", params or {}, headers={**self.headers, **headers})

    def post(self, path: str, data=None, *, raw: str | bytes | None = None, content_type="application/json", **headers):
        body = raw if raw is not None else json.dumps(data if data is not None else {})
        return self.client.post(f"/api/v1/{path}", body, content_type=content_type, headers={**self.headers, **headers})

    def patch(self, path: str, data=None, *, raw: str | None = None, content_type="application/json"):
        body = raw if raw is not None else json.dumps(data if data is not None else {})
        return self.client.patch(f"/api/v1/{path}", body, content_type=content_type, headers=self.headers)


def conversation_in(inbox, *, assignee=None, status=ConversationStatus.OPEN, minutes_ago: int = 0, **fields):
    """A conversation with its visitor (contact inbox), as the intake leaves one."""
    contact = Contact.objects.create(
        name=fields.pop("contact_name", f"Visitor {next(_names)}"), **fields.pop("contact", {})
    )
    contact_inbox = ContactInbox.objects.create(contact=contact, inbox=inbox)
    return Conversation.objects.create(
        inbox=inbox,
        contact=contact,
        contact_inbox=contact_inbox,
        assignee=assignee,
        status=status,
        last_activity_at=timezone.now() - timedelta(minutes=minutes_ago),
        **fields,
    )


@pytest.fixture
def world(db):
    north, south = make_branch("North"), make_branch("South")
    world = {
        "north": north,
        "south": south,
        "north_inbox": make_inbox(north, name="North site"),
        "south_inbox": make_inbox(south, name="South site"),
        "operator": make_user("olga", branch=north),
        "north_colleague": make_user("nina", branch=north),
        "south_operator": make_user("ivan", branch=south),
        "supervisor": make_user("sonia", role=AgentRole.SUPERVISOR),
    }
    world["north_chat"] = conversation_in(world["north_inbox"], assignee=world["operator"], contact_name="Anna North")
    world["south_chat"] = conversation_in(world["south_inbox"], assignee=world["south_operator"], contact_name="Boris")
    return world


def assert_shape(payload: dict, serializer_class) -> None:
    """The response has exactly the fields its OpenAPI serializer documents (optional ones may be absent)."""
    fields = serializer_class().fields
    required = {name for name, field in fields.items() if field.required}
    assert required <= set(payload) <= set(fields), set(payload) ^ set(fields)


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, (response.status_code, response.content[:300])
    body = response.json()
    assert body["code"] == code and body["detail"], body
    return body


# --- tokens --------------------------------------------------------------------------------------


def test_command_prints_a_token_once_and_stores_only_its_hash(world):
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_token", "olga", "--name", "CRM sync", stdout=out, stderr=err)
    plaintext = out.getvalue().strip()
    assert TOKEN_RE.fullmatch(plaintext)
    token = ApiToken.objects.get()
    assert (token.user, token.name, token.prefix) == (world["operator"], "CRM sync", plaintext.split("_")[1])
    assert token.token_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    secret = plaintext.split("_", 2)[2]
    stored = json.dumps(list(ApiToken.objects.values()), default=str)
    assert secret not in stored and plaintext not in stored
    assert secret not in err.getvalue()
    assert ActivityEvent.objects.filter(verb="api_token.created", target_id=str(token.pk)).exists()
    me = Api(plaintext).get("me")
    assert me.status_code == 200
    assert_shape(me.json(), shapes.V1Me)
    assert me.json()["username"] == "olga" and me.json()["branch"]["name"] == "North"
    assert me.json()["token"]["name"] == "CRM sync"


def test_command_refuses_unknown_and_non_staff_users(world):
    get_user_model().objects.create_user("guest", password="pw")
    with pytest.raises(CommandError, match="No user"):
        call_command("create_api_token", "nobody", stdout=io.StringIO())
    with pytest.raises(CommandError, match="not active staff"):
        call_command("create_api_token", "guest", stdout=io.StringIO())
    assert not ApiToken.objects.exists()


def test_admin_creates_a_token_shows_it_once_and_revokes_it(world):
    admin_user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    browser = Client()
    browser.force_login(admin_user)
    refused = browser.post(
        "/admin/messenger/apitoken/add/",
        {"user": get_user_model().objects.create_user("guest").pk, "name": "x"},
    )
    assert refused.status_code == 200 and b"not active staff" in refused.content
    assert not ApiToken.objects.exists()

    page = browser.post("/admin/messenger/apitoken/add/", {"user": world["operator"].pk, "name": "Helpdesk"})
    assert page.status_code == 200
    assert "no-store" in page["Cache-Control"]
    plaintext = TOKEN_RE.search(page.content.decode()).group(0)
    token = ApiToken.objects.get()
    assert token.name == "Helpdesk" and token.token_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    assert Api(plaintext).get("me").status_code == 200
    # Never shown again: not on the change page, not in the list.
    assert (
        plaintext.split("_", 2)[2].encode() not in browser.get(f"/admin/messenger/apitoken/{token.pk}/change/").content
    )
    assert plaintext.split("_", 2)[2].encode() not in browser.get("/admin/messenger/apitoken/").content

    browser.post("/admin/messenger/apitoken/", {"action": "revoke_tokens", "_selected_action": [token.pk]}, follow=True)
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert ActivityEvent.objects.filter(verb="api_token.revoked", actor_user=admin_user).exists()
    assert_error(Api(plaintext).get("me"), 401, "unauthenticated")


def test_only_a_valid_bearer_token_of_active_staff_gets_in(world):
    operator = world["operator"]
    plaintext = token_for(operator)
    prefix = plaintext.split("_")[1]
    forged = f"msg_{prefix}_{'A' * 43}"
    for headers in (
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer nonsense"},
        {"Authorization": f"Bearer {forged}"},
        {"Authorization": f"Bearer {plaintext}x"},
        {"Authorization": f"Token {plaintext}"},
        {"Authorization": "Basic b2xnYTpwdy1vbGdh"},
        {"Authorization": "Bearer " + "x" * 5000},
    ):
        response = Client().get("/api/v1/me", headers=headers)
        assert_error(response, 401, "unauthenticated")
        assert response["WWW-Authenticate"].startswith("Bearer")

    # A dashboard session is not accepted (no CSRF to think about): bearer only.
    session = Client(enforce_csrf_checks=True)
    session.force_login(operator)
    assert_error(session.get("/api/v1/me"), 401, "unauthenticated")
    assert_error(
        session.post("/api/v1/conversations/1/priority", "{}", content_type="application/json"), 401, "unauthenticated"
    )

    api = Api(plaintext)
    assert api.get("me").status_code == 200
    do_revoke_api_token(token=ApiToken.objects.get(), actor=Actor.system("test"))
    assert_error(api.get("me"), 401, "unauthenticated")

    second = token_for(operator)
    operator.is_active = False
    operator.save()
    assert_error(Api(second).get("me"), 401, "unauthenticated")
    operator.is_active = True
    operator.save()
    assert Api(second).get("me").status_code == 200
    AgentProfile.objects.filter(user=operator).delete()  # no longer staff of the messenger
    assert_error(Api(second).get("conversations"), 403, "forbidden")


def test_a_blank_accept_header_reads_as_any_type(world):
    api = Api(token_for(world["operator"]))
    assert api.get("me", Accept="").status_code == 200
    assert api.get("inboxes", Accept="").status_code == 200
    assert_error(api.get("me", Accept="text/csv"), 406, "not_acceptable")


def test_last_used_at_is_written_at_most_once_a_minute(world):
    plaintext = token_for(world["operator"])
    api = Api(plaintext)
    assert ApiToken.objects.get().last_used_at is None
    api.get("me")
    first = ApiToken.objects.get().last_used_at
    assert first is not None
    with CaptureQueriesContext(connection) as queries:
        assert api.get("inboxes").status_code == 200
    assert not [q for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("UPDATE")]
    assert ApiToken.objects.get().last_used_at == first
    ApiToken.objects.update(last_used_at=first - timedelta(seconds=61))
    api.get("me")
    assert ApiToken.objects.get().last_used_at > first


@pytest.mark.rate_window
@override_settings(MESSENGER_API_RATE_PER_TOKEN="3/min")
def test_each_token_is_throttled_on_its_own(world):
    api, other = Api(token_for(world["operator"])), Api(token_for(world["operator"]))
    for _ in range(3):
        assert api.get("me").status_code == 200
    refused = api.get("conversations")
    body = assert_error(refused, 429, "rate_limited")
    assert 1 <= int(refused["Retry-After"]) <= 60 and body["retry_after"] == int(refused["Retry-After"])
    assert other.get("me").status_code == 200


# --- reads ---------------------------------------------------------------------------------------


def test_access_is_the_dashboards(world):
    north_chat, south_chat = world["north_chat"], world["south_chat"]
    operator = Api(token_for(world["operator"]))
    listed = operator.get("conversations").json()["results"]
    assert [row["id"] for row in listed] == [north_chat.pk]
    assert_shape(listed[0], shapes.V1Conversation)
    detail = operator.get(f"conversations/{north_chat.pk}")
    assert detail.status_code == 200
    assert_shape(detail.json(), shapes.V1ConversationDetail)
    # Another branch's conversation answers exactly like a missing one, for reads and writes.
    for path in (f"conversations/{south_chat.pk}", f"conversations/{south_chat.pk}/messages", "conversations/999999"):
        assert_error(operator.get(path), 404, "not_found")
    assert_error(operator.post(f"conversations/{south_chat.pk}/priority", {"priority": 3}), 404, "not_found")
    assert_error(operator.post(f"conversations/{south_chat.pk}/messages", {"body": "hi"}), 404, "not_found")
    assert_error(operator.get(f"contacts/{south_chat.contact_id}"), 404, "not_found")
    assert_error(operator.patch(f"contacts/{south_chat.contact_id}", {"name": "X"}), 404, "not_found")
    assert [row["id"] for row in operator.get("contacts").json()["results"]] == [north_chat.contact_id]
    assert {row["name"] for row in operator.get("inboxes").json()["results"]} == {"North site"}
    assert Message.objects.count() == 0 and south_chat.priority == Conversation.objects.get(pk=south_chat.pk).priority

    supervisor = Api(token_for(world["supervisor"]))
    assert {row["id"] for row in supervisor.get("conversations").json()["results"]} == {north_chat.pk, south_chat.pk}
    assert supervisor.get(f"conversations/{south_chat.pk}").status_code == 200
    assert {row["name"] for row in supervisor.get("inboxes").json()["results"]} == {"North site", "South site"}
    contact = supervisor.get(f"contacts/{south_chat.contact_id}")
    assert_shape(contact.json(), shapes.V1Contact)
    conversations = supervisor.get(f"contacts/{south_chat.contact_id}/conversations").json()
    assert [row["id"] for row in conversations["results"]] == [south_chat.pk]


def test_conversation_filters_and_cursor_pages(world):
    north_inbox, operator = world["north_inbox"], world["operator"]
    supervisor = Api(token_for(world["supervisor"]))
    extra = [
        conversation_in(north_inbox, assignee=operator if i % 2 else None, minutes_ago=i + 1, priority=i % 5)
        for i in range(9)
    ]
    extra[0].labels.add(Label.objects.create(name="vip"))
    Conversation.objects.filter(pk=extra[1].pk).update(status=ConversationStatus.RESOLVED)
    everything = [row["id"] for row in supervisor.get("conversations", {"limit": 100}).json()["results"]]
    assert len(everything) == 11

    seen, cursor, pages = [], "", 0
    while True:
        page = supervisor.get("conversations", {"limit": 3, "cursor": cursor}).json()
        seen += [row["id"] for row in page["results"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == everything and pages == 4  # no duplicate, no gap, in order

    def ids(**params) -> set[int]:
        response = supervisor.get("conversations", {"limit": 100, **params})
        assert response.status_code == 200, response.content
        return {row["id"] for row in response.json()["results"]}

    assert ids(status="resolved") == {extra[1].pk}
    assert extra[1].pk not in ids(status="active")
    assert ids(inbox=world["south_inbox"].pk) == {world["south_chat"].pk}
    assert ids(branch=world["south"].pk) == {world["south_chat"].pk}
    assert ids(assignee=str(operator.pk)) == {world["north_chat"].pk, *(c.pk for c in extra[1::2])}
    assert ids(assignee="none") == {c.pk for c in extra[0::2]}
    assert ids(assignee="me") == set()
    assert ids(priority=4) == {extra[4].pk}
    assert ids(label="vip") == {extra[0].pk}
    assert ids(q="Boris") == {world["south_chat"].pk}
    Message.objects.create(
        conversation=extra[2],
        direction="in",
        sender_type="contact",
        body="where is order 77?",
        created_at=timezone.now(),
    )
    assert ids(q="order 77") == {extra[2].pk}
    moment = timezone.now()
    Conversation.objects.filter(pk=extra[3].pk).update(updated_at=moment + timedelta(seconds=5))
    assert ids(updated_since=(moment + timedelta(seconds=1)).isoformat()) == {extra[3].pk}

    for params in (
        {"cursor": "!!!"},
        {"cursor": "bm90LWEtY3Vyc29y"},
        {"cursor": "fDk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5"},  # "|99999999999999999999999"
        {"q": "x" * 201},
        {"limit": 0},
        {"limit": 101},
        {"limit": "ten"},
        {"status": "nope"},
        {"assignee": "someone"},
        {"assignee": "9" * 30},
        {"inbox": "1e5"},
        {"updated_since": "yesterday"},
        {"priority": 9},
    ):
        body = assert_error(supervisor.get("conversations", params), 400, "invalid")
        assert body["detail"]


def test_contacts_search_and_pages(world):
    supervisor = Api(token_for(world["supervisor"]))
    for i in range(4):
        Contact.objects.create(name=f"Searchable {i}", external_id=f"crm-{i}")
    found = supervisor.get("contacts", {"q": "searchable", "limit": 3}).json()
    assert len(found["results"]) == 3 and found["next_cursor"]
    rest = supervisor.get("contacts", {"q": "searchable", "limit": 3, "cursor": found["next_cursor"]}).json()
    assert [r["name"] for r in found["results"] + rest["results"]] == [f"Searchable {i}" for i in (3, 2, 1, 0)]
    assert rest["next_cursor"] is None
    assert [r["external_id"] for r in supervisor.get("contacts", {"q": "crm-2"}).json()["results"]] == ["crm-2"]
    assert_error(supervisor.get("contacts", {"cursor": "zzz"}), 400, "invalid")


def test_message_pages_go_back_in_time_without_gaps(world):
    chat = world["north_chat"]
    start = timezone.now()
    for index in range(5):
        Message.objects.create(
            conversation=chat,
            direction="in" if index % 2 else "internal",
            sender_type="contact" if index % 2 else "user",
            sender_user=None if index % 2 else world["operator"],
            body=f"m{index}",
            created_at=start + timedelta(seconds=index),
        )
    api = Api(token_for(world["operator"]))
    pages, cursor = [], ""
    while True:
        page = api.get(f"conversations/{chat.pk}/messages", {"limit": 2, "cursor": cursor}).json()
        pages.append([message["body"] for message in page["results"]])
        for message in page["results"]:
            assert_shape(message, shapes.V1Message)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [["m3", "m4"], ["m1", "m2"], ["m0"]]  # notes included, each page oldest first


def test_a_superuser_without_agent_profile_is_an_admin(world):
    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    api = Api(token_for(root))
    me = api.get("me").json()
    assert (me["role"], me["sees_all"], me["branch"]) == ("admin", True, None)
    assert len(api.get("conversations").json()["results"]) == 2


def test_read_queries_do_not_grow_with_rows(world):
    api = Api(token_for(world["supervisor"]))
    api.get("me")  # last_used_at written

    def count(path: str) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert api.get(path, {"limit": 100}).status_code == 200
        return len(queries.captured_queries)

    chat = world["north_chat"]
    Message.objects.create(
        conversation=chat, direction="in", sender_type="contact", body="one", created_at=timezone.now()
    )
    before = {
        path: count(path) for path in ("conversations", "contacts", f"conversations/{chat.pk}/messages", "inboxes")
    }
    for _ in range(6):
        conversation_in(world["north_inbox"]).labels.add(Label.objects.get_or_create(name="x")[0])
        Message.objects.create(
            conversation=chat, direction="out", sender_type="user", body="two", created_at=timezone.now()
        )
    make_inbox(world["north"])
    after = {path: count(path) for path in before}
    assert after == before


# --- writes --------------------------------------------------------------------------------------


def test_changes_go_through_the_doors_and_are_audited(world):
    chat, operator = world["north_chat"], world["operator"]
    api = Api(token_for(operator))
    path = f"conversations/{chat.pk}"

    changed = api.post(f"{path}/priority", {"priority": 3})
    assert changed.status_code == 200 and changed.json()["priority"] == 3
    assert_shape(changed.json(), shapes.V1Conversation)
    labels = api.post(f"{path}/labels", {"labels": ["billing", "vip"]})
    assert labels.json()["labels"] == ["billing", "vip"]
    assert api.post(f"{path}/status", {"status": "pending"}).json()["status"] == "pending"
    naive = (timezone.now() + timedelta(hours=1)).replace(tzinfo=None).isoformat()  # the server's zone (UTC)
    assert api.post(f"{path}/status", {"status": "snoozed", "snoozed_until": naive}).json()["snoozed_until"]
    until = (timezone.now() + timedelta(hours=2)).isoformat()
    assert api.post(f"{path}/status", {"status": "snoozed", "snoozed_until": until}).json()["snoozed_until"]
    assert_error(api.post(f"{path}/status", {"status": "snoozed"}), 400, "invalid")
    assignee = api.post(f"{path}/assignee", {"assignee_id": world["north_colleague"].pk})
    assert assignee.json()["assignee"]["id"] == world["north_colleague"].pk
    assert api.post(f"{path}/assignee", {"assignee_id": "me"}).json()["assignee"]["id"] == operator.pk
    assert api.post(f"{path}/assignee", {"assignee_id": None}).json()["assignee"] is None
    assert_error(api.post(f"{path}/assignee", {}), 400, "invalid")
    moved = api.post(f"{path}/transfer", {"branch_id": world["south"].pk})
    assert moved.status_code == 200 and moved.json()["branch"]["id"] == world["south"].pk
    # Transferred away: the operator's access follows the dashboard's.
    assert_error(api.get(path), 404, "not_found")

    verbs = list(
        ActivityEvent.objects.filter(conversation=chat, actor_user=operator)
        .order_by("id")
        .values_list("verb", flat=True)
    )
    assert verbs[:5] == ["conversation.priority", "conversation.labels", *["conversation.status"] * 3]
    assert "conversation.transferred" in verbs
    chat.refresh_from_db()
    assert (chat.priority, chat.branch_id, chat.status) == (3, world["south"].pk, "snoozed")


def test_contact_update(world):
    chat = world["north_chat"]
    api = Api(token_for(world["operator"]))
    updated = api.patch(
        f"contacts/{chat.contact_id}",
        {"name": "Anna Petrova", "email": "anna@example.com", "external_id": "crm-42", "custom": {"plan": "gold"}},
    )
    assert updated.status_code == 200, updated.content
    assert_shape(updated.json(), shapes.V1Contact)
    contact = Contact.objects.get(pk=chat.contact_id)
    assert (contact.name, contact.email, contact.external_id, contact.custom_attributes) == (
        "Anna Petrova",
        "anna@example.com",
        "crm-42",
        {"plan": "gold"},
    )
    row = ActivityEvent.objects.get(verb="contact.updated", actor_user=world["operator"])
    assert row.payload["fields"] == ["custom_attributes", "email", "external_id", "name"]
    assert_error(api.patch(f"contacts/{chat.contact_id}", {"email": "not-an-address"}), 400, "invalid")
    assert_error(api.patch(f"contacts/{chat.contact_id}", {"custom": ["list"]}), 400, "invalid")
    assert_error(api.patch(f"contacts/{chat.contact_id}", {"blocked": True}), 400, "invalid")
    Contact.objects.filter(pk=chat.contact_id).update(anonymized_at=timezone.now())
    assert_error(api.patch(f"contacts/{chat.contact_id}", {"name": "Back"}), 409, "conflict")
    assert Contact.objects.get(pk=chat.contact_id).name == "Anna Petrova"


def test_bad_input_answers_4xx(world):
    chat = world["north_chat"]
    api = Api(token_for(world["operator"]))
    messages = f"conversations/{chat.pk}/messages"
    cases = [
        (api.post(messages, raw="{not json"), 400, "bad_json"),
        (api.post(messages, raw="[1, 2]"), 400, "invalid"),
        (api.post(messages, raw='"text"'), 400, "invalid"),
        (api.post(messages, raw='{"body": "\\ud800"}'), 400, "invalid"),
        (api.post(messages, raw='{"body": "a\\u0000b"}'), 400, "invalid"),
        (api.post(messages, {"body": 12}), 400, "invalid"),
        (api.post(messages, {"body": ["x"]}), 400, "invalid"),
        (api.post(messages, {"body": "hi", "private": "yes"}), 400, "invalid"),
        (api.post(messages, {"body": "hi", "client_id": 5}), 400, "invalid"),
        (api.post(messages, {"body": "hi", "client_id": "x" * 65}), 400, "invalid"),
        (api.post(messages, {"content": "hi"}), 400, "invalid"),
        (api.post(messages, {"body": "   "}), 400, "invalid"),
        (api.post(messages, {"body": "x" * 150_001}), 400, "invalid"),
        (api.post(messages, {"body": "hi"}, content_type="text/plain"), 415, "unsupported_media_type"),
        (
            api.post(messages, raw="body=hi", content_type="application/x-www-form-urlencoded"),
            415,
            "unsupported_media_type",
        ),
        (api.post(messages, raw="x" * 2_700_000), 413, "too_large"),
        (api.post(f"conversations/{chat.pk}/priority", {"priority": "high"}), 400, "invalid"),
        (api.post(f"conversations/{chat.pk}/priority", {"priority": True}), 400, "invalid"),
        (api.post(f"conversations/{chat.pk}/priority", {"priority": 2**70}), 400, "invalid"),
        (api.post(f"conversations/{chat.pk}/status", {"status": "gone"}), 400, "invalid"),
        (
            api.post(f"conversations/{chat.pk}/status", {"status": "snoozed", "snoozed_until": "2026-13-45T00:00"}),
            400,
            "invalid",
        ),
        (
            api.post(
                f"conversations/{chat.pk}/status", {"status": "snoozed", "snoozed_until": "9999-12-31T23:59:59-05:00"}
            ),
            400,
            "invalid",
        ),
        (
            api.post(
                f"conversations/{chat.pk}/status", {"status": "snoozed", "snoozed_until": "0001-01-01T00:00:00+05:00"}
            ),
            400,
            "invalid",
        ),
        (api.post(f"conversations/{chat.pk}/labels", {"labels": "vip"}), 400, "invalid"),
        (api.post(f"conversations/{chat.pk}/labels", {"labels": ["x" * 61]}), 400, "invalid"),
        (api.post(f"conversations/{chat.pk}/labels", {"labels": [f"l{i}" for i in range(51)]}), 400, "invalid"),
        (api.post(f"conversations/{chat.pk}/assignee", {"assignee_id": "someone"}), 400, "invalid"),
        (api.post(f"conversations/{chat.pk}/assignee", {"assignee_id": 987654}), 404, "not_found"),
        (api.post(f"conversations/{chat.pk}/transfer", {}), 400, "invalid"),
        (api.post(f"conversations/{chat.pk}/transfer", {"branch_id": "north"}), 400, "invalid"),
        (api.post(f"conversations/{chat.pk}/transfer", {"branch_id": 987654}), 404, "not_found"),
        (api.get("conversations/99999999999999999999999"), 404, "not_found"),
        (api.get("conversations/abc"), 404, "not_found"),
        (api.get("conversations/"), 404, "not_found"),
        (api.get("nothing/here"), 404, "not_found"),
        (api.get(f"{messages}", {"cursor": "@@"}), 400, "invalid"),
        (api.get(f"{messages}", {"cursor": "aWR8LTU"}), 400, "invalid"),  # "id|-5"
        (api.post("conversations", {}), 405, "method_not_allowed"),
        (api.patch(f"contacts/{chat.contact_id}", raw="{"), 400, "bad_json"),
        (api.patch(f"contacts/{chat.contact_id}", {"name": "x" * 201}), 400, "invalid"),
        (api.get("contacts", {"q": "y" * 201}), 400, "invalid"),
        (api.get("contacts/99999999999999999999"), 404, "not_found"),
    ]
    for response, status, code in cases:
        assert_error(response, status, code)
    assert not Message.objects.exists()
    chat.refresh_from_db()
    assert (chat.priority, chat.status, chat.assignee_id) == (0, "open", world["operator"].pk)


# --- live: open sockets see API writes --------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_a_reply_and_a_note_sent_by_the_api_arrive_live(world):
    inbox, operator = world["north_inbox"], world["operator"]
    boot = await sync_to_async(bootstrap)(inbox)
    op = await operator_socket(world["north_colleague"])
    assert (await op.connect())[0]
    await op.expect("hello")
    visitor = visitor_socket(inbox, boot)
    assert (await visitor.connect())[0]
    await visitor.expect("hello")
    ack = await visitor.command("message.send", client_id=new_client_id(), body="Where is my order?")
    conversation_id = ack["data"]["conversation_id"]
    await op.expect("message.created", conversation_id=conversation_id)

    plaintext = await sync_to_async(token_for)(operator)
    api = Api(plaintext)
    path = f"conversations/{conversation_id}/messages"
    sent = await sync_to_async(api.post)(path, {"body": "It ships **today**.", "client_id": "crm-1"})
    assert sent.status_code == 201, sent.content
    assert_shape(sent.json(), shapes.V1Message)
    assert sent.json()["direction"] == "out" and sent.json()["sender"] == {
        "type": "user",
        "id": operator.pk,
        "name": "Olga",
    }
    got = await visitor.expect("message.created")
    while got["data"]["message"]["direction"] == "in":
        got = await visitor.expect("message.created")
    assert got["data"]["message"]["body"] == "It ships **today**."
    assert got["data"]["message"]["content"] == "It ships <strong>today</strong>."
    staff = await op.expect("message.created", conversation_id=conversation_id)
    while staff["data"]["message"]["direction"] == "in":
        staff = await op.expect("message.created", conversation_id=conversation_id)
    assert staff["data"]["message"]["id"] == sent.json()["id"]

    again = await sync_to_async(api.post)(path, {"body": "It ships **today**.", "client_id": "crm-1"})
    assert again.status_code == 200 and again.json()["id"] == sent.json()["id"]

    note = await sync_to_async(api.post)(path, {"body": "VIP, be nice", "private": True})
    assert note.status_code == 201 and note.json()["direction"] == "internal"
    staff = await op.expect("message.created", conversation_id=conversation_id)
    assert staff["data"]["message"]["body"] == "VIP, be nice"

    status = await sync_to_async(api.post)(f"conversations/{conversation_id}/priority", {"priority": 4})
    assert status.status_code == 200
    updated = await op.expect("conversation.updated", conversation_id=conversation_id)
    assert updated["data"]["conversation"]["priority"] == 4
    labels = await sync_to_async(api.post)(f"conversations/{conversation_id}/labels", {"labels": ["vip"]})
    assert labels.status_code == 200
    updated = await op.expect("conversation.updated", conversation_id=conversation_id)
    assert updated["data"]["conversation"]["labels"] == ["vip"]
    colleague = world["north_colleague"].pk
    assigned = await sync_to_async(api.post)(f"conversations/{conversation_id}/assignee", {"assignee_id": colleague})
    assert assigned.status_code == 200
    frame = await op.expect("assignment.assigned", conversation_id=conversation_id)
    assert frame["data"]["to"]["id"] == colleague
    resolved = await sync_to_async(api.post)(f"conversations/{conversation_id}/status", {"status": "resolved"})
    assert resolved.json()["status"] == "resolved"
    public = await visitor.expect("conversation.updated")
    while public["data"]["changes"] != ["status"]:  # the assignment came first
        public = await visitor.expect("conversation.updated")
    assert public["data"]["conversation"]["status"] == "resolved"
    # The visitor never saw the note.
    frames = visitor.frames + await visitor.drain()
    assert "VIP, be nice" not in json.dumps(frames)

    # A transfer to another branch: the old branch's dashboards see it leave.
    moved = await sync_to_async(api.post)(f"conversations/{conversation_id}/transfer", {"branch_id": world["south"].pk})
    assert moved.status_code == 200
    left = await op.expect("conversation.updated", conversation_id=conversation_id)
    while left["data"]["changes"] != ["branch"]:  # the status change's frame came first
        left = await op.expect("conversation.updated", conversation_id=conversation_id)
    assert left["data"]["changes"] == ["branch"] and left["data"]["conversation"]["branch"]["id"] == world["south"].pk

    def rows():
        return (
            list(
                Message.objects.filter(conversation_id=conversation_id, sender_user=operator).values_list(
                    "direction", flat=True
                )
            ),
            list(
                ActivityEvent.objects.filter(conversation_id=conversation_id, actor_user=operator).values_list(
                    "verb", flat=True
                )
            ),
        )

    directions, verbs = await sync_to_async(rows)()
    assert sorted(directions) == ["internal", "out"]
    assert {
        "message.sent",
        "message.note",
        "conversation.priority",
        "conversation.labels",
        "conversation.status",
        "conversation.transferred",
    } <= set(verbs)
    assert verbs.count("message.sent") == 1
    await visitor.close()
    await op.close()


@pytest.mark.django_db(transaction=True)
def test_a_real_http_client_with_the_token(world, live_server_proc):
    import urllib.error
    import urllib.request

    chat = world["north_chat"]
    plaintext = token_for(world["operator"])

    def call(method: str, path: str, body: dict | None = None, token: str | None = plaintext):
        request = urllib.request.Request(
            f"{live_server_proc.url}/api/v1/{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                return response.status, dict(response.headers), json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), json.loads(error.read())

    status, _, me = call("GET", "me")
    assert status == 200 and me["username"] == "olga"
    status, headers, error = call("GET", "me", token=None)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer") and error["code"] == "unauthenticated"
    status, _, message = call("POST", f"conversations/{chat.pk}/messages", {"body": "From the CRM"})
    assert status == 201 and message["body"] == "From the CRM"
    status, _, page = call("GET", f"conversations/{chat.pk}/messages")
    assert status == 200 and [m["body"] for m in page["results"]][-1] == "From the CRM"
    assert Message.objects.get(conversation=chat).sender_user == world["operator"]
