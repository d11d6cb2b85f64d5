"""The REST API v1 as an integrator who has only docs/integrations.md and /api/schema/ meets it: a
schema that third-party tools accept, edited cursors and hostile bodies answered as documented
(never a 500), the header forms RFC 9110 allows, and retries with one ``client_id`` racing over
real HTTP."""

from __future__ import annotations

import base64
import json
import threading
import urllib.error
import urllib.request

import pytest
import yaml
from django.test import Client
from openapi_spec_validator import validate

from messenger import captcha
from messenger.models import AgentRole, Message
from tests.factories import VISITOR_ORIGIN, make_branch, make_inbox, make_user
from tests.test_api_v1 import Api, assert_error, conversation_in, token_for


@pytest.fixture
def setup(db):
    branch = make_branch("North")
    inbox = make_inbox(branch, name="North site")
    operator = make_user("olga", branch=branch)
    chat = conversation_in(inbox, assignee=operator, contact_name="Anna North")
    supervisor = make_user("sonia", role=AgentRole.SUPERVISOR)
    return {"inbox": inbox, "operator": operator, "chat": chat, "supervisor": supervisor}


def test_the_schema_is_valid_openapi_for_third_party_tools(db):
    """openapi-spec-validator (what client generators run first) accepts the live schema: e.g. every
    ``default`` satisfies its own schema (an enum with ``""`` as default had ``minLength: 1``)."""
    response = Client().get("/api/schema/")
    assert response.status_code == 200
    validate(yaml.safe_load(response.content))


def cursor_of(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


EDITED_CURSORS = [
    "0001-01-01T00:00:00+01:00|5",  # before datetime.min once in UTC: overflowed in the query
    "9999-12-31T23:59:59-01:00|5",  # after datetime.max once in UTC
    "2026-12-05T14:18:02|5",  # a naive time: not one of ours
    "garbage|5",  # not a time at all
    "id|5",  # a contact or message cursor on the conversation list
    "2026-12-05T14:18:02+00:00|99999999999999999999",
]


@pytest.mark.parametrize("raw", EDITED_CURSORS)
def test_an_edited_conversation_cursor_is_a_400_naming_the_field(setup, raw):
    api = Api(token_for(setup["supervisor"]))
    for path in ("conversations", f"contacts/{setup['chat'].contact_id}/conversations"):
        body = assert_error(api.get(path, {"cursor": cursor_of(raw)}), 400, "invalid")
        assert body["errors"] == {"cursor": ["Malformed."]}
    # The dashboard's list reads the same cursors.
    staff = Client()
    staff.force_login(setup["supervisor"])
    assert_error(staff.get("/api/operator/conversations/", {"cursor": cursor_of(raw)}), 400, "invalid")


def test_a_real_cursor_still_pages(setup):
    for minutes in (1, 2):
        conversation_in(setup["inbox"], minutes_ago=minutes)
    api = Api(token_for(setup["supervisor"]))
    first = api.get("conversations", {"limit": 2}).json()
    rest = api.get("conversations", {"limit": 2, "cursor": first["next_cursor"]}).json()
    ids = [row["id"] for row in first["results"] + rest["results"]]
    assert len(ids) == len(set(ids)) == 3 and rest["next_cursor"] is None


@pytest.mark.parametrize("raw", ["message|5", "id|0", "id|-1", "id|9223372036854775808"])
def test_an_edited_id_cursor_is_a_400_naming_the_field(setup, raw):
    api = Api(token_for(setup["supervisor"]))
    for path in ("contacts", f"conversations/{setup['chat'].pk}/messages"):
        body = assert_error(api.get(path, {"cursor": cursor_of(raw)}), 400, "invalid")
        assert body["errors"] == {"cursor": ["Malformed."]}


def test_json_nested_deeper_than_the_stack_is_bad_json(setup):
    """Python's decoder recurses: ``[[[[…`` 100 000 deep raised RecursionError, a 500."""
    deep = "[" * 100_000 + "]" * 100_000
    api = Api(token_for(setup["operator"]))
    assert_error(api.post(f"conversations/{setup['chat'].pk}/priority", raw=deep), 400, "bad_json")
    assert_error(api.post(f"conversations/{setup['chat'].pk}/messages", raw='{"body": ' + deep + "}"), 400, "bad_json")
    # The widget's endpoints use the same parser.
    response = Client().post(
        "/api/widget/bootstrap/", deep, content_type="application/json", headers={"Origin": VISITOR_ORIGIN}
    )
    assert_error(response, 400, "bad_json")
    assert not Message.objects.exists()


def test_an_altcha_solution_nested_too_deep_is_invalid_not_a_crash():
    solution = base64.b64encode(b"[" * 1500 + b"]" * 1500).decode()
    assert len(solution) <= captcha.MAX_SOLUTION_LENGTH
    assert captcha.check(solution, ip=None) == "invalid"


def test_the_authorization_header_as_rfc_9110_allows_it_and_nowhere_else(setup):
    plaintext = token_for(setup["operator"])
    client = Client()
    for header in (f"Bearer {plaintext}", f"bearer {plaintext}", f"BEARER {plaintext}", f"Bearer   {plaintext}  "):
        assert client.get("/api/v1/me", headers={"Authorization": header}).status_code == 200, header
    for params in ({"token": plaintext}, {"access_token": plaintext}, {"Authorization": f"Bearer {plaintext}"}):
        response = client.get("/api/v1/me", params)
        assert_error(response, 401, "unauthenticated")
        assert response["WWW-Authenticate"] == 'Bearer realm="api"'


@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_with_one_client_id_store_one_message(setup, live_server_proc):
    """Four threads POST the same ``client_id`` at once over HTTP: one message is stored and
    answered 201; the others answer 200 with that same message."""
    plaintext = token_for(setup["operator"])
    chat = setup["chat"]
    barrier = threading.Barrier(4)
    answers: list[tuple[int, dict]] = []

    def send() -> None:
        request = urllib.request.Request(
            f"{live_server_proc.url}/api/v1/conversations/{chat.pk}/messages",
            method="POST",
            data=json.dumps({"body": "Shipped", "client_id": "crm-4711"}).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {plaintext}"},
        )
        barrier.wait()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                answers.append((response.status, json.loads(response.read())))
        except urllib.error.HTTPError as error:
            answers.append((error.code, json.loads(error.read())))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(status for status, _ in answers) == [200, 200, 200, 201], answers
    stored = Message.objects.get(conversation=chat, client_id="crm-4711")
    assert {body["id"] for _, body in answers} == {stored.pk}


def test_every_v1_operation_documents_the_errors_any_call_may_get(db):
    """A generated client parses only documented statuses (openapi-python-client raises
    ``UnexpectedStatus`` on the others): 401, 403, 429 and 503 (docs/integrations.md, "Errors") can
    answer any call, a 400 any call with a body or a query."""
    schema = yaml.safe_load(Client().get("/api/schema/").content)
    operations = [
        (path, method, operation)
        for path, item in schema["paths"].items()
        if path.startswith("/api/v1/")
        for method, operation in item.items()
    ]
    assert len(operations) == 29  # 15, and the 14 reports (8 JSON, 6 CSV)
    for path, method, operation in operations:
        expected = {"401", "403", "429", "503"}
        if "requestBody" in operation or any(p["in"] == "query" for p in operation.get("parameters", [])):
            expected.add("400")
        if "{" in path:
            expected.add("404")
        missing = expected - set(operation["responses"])
        assert not missing, (method, path, missing)
        for status in expected:
            content = operation["responses"][status]["content"]["application/json"]["schema"]
            assert content == {"$ref": "#/components/schemas/Error"}, (method, path, status)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/v1/conversations/1/messages/"),  # a trailing slash
        ("patch", "/api/v1/contacts/abc"),
        ("delete", "/api/v1/nothing"),
        ("put", "/api/v1/me/"),
    ],
)
def test_an_unsafe_request_to_no_endpoint_is_a_json_404_not_a_csrf_page(setup, method, path):
    """Not Django's HTML "CSRF verification failed" 403: the API has no CSRF (bearer only)."""
    client = Client(enforce_csrf_checks=True)
    headers = {"Authorization": f"Bearer {token_for(setup['operator'])}"}
    response = getattr(client, method)(path, '{"body": "x"}', content_type="application/json", headers=headers)
    assert response["Content-Type"] == "application/json"
    assert_error(response, 404, "not_found")


def test_the_error_table_holds_for_accept_and_content_type(setup):
    """docs/integrations.md, "Errors": 406 for an Accept without JSON, 415 for a body that is not
    JSON (form-encoded, or no Content-Type at all), each with the JSON error body."""
    api = Api(token_for(setup["operator"]))
    assert api.get("me", Accept="*/*").status_code == 200
    assert_error(api.get("me", Accept="text/html"), 406, "not_acceptable")
    path = f"conversations/{setup['chat'].pk}/priority"
    assert_error(
        api.post(path, raw="priority=2", content_type="application/x-www-form-urlencoded"),
        415,
        "unsupported_media_type",
    )
    assert_error(api.post(path, raw='{"priority": 2}', content_type=""), 415, "unsupported_media_type")
    assert api.post(path, {"priority": 2}, content_type="application/json; charset=utf-8").json()["priority"] == 2
