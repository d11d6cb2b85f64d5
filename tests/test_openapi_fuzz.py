"""The HTTP API answers as its OpenAPI schema (``/api/schema/``) says, fuzzed and with real data.

Schemathesis generates requests for every documented operation (valid and invalid input) and
calls the Django app in-process over WSGI, once per kind of caller in ``CALLERS``. Every answer
must be documented: no 5xx, a documented status code and content type, a body that matches the
documented schema. ``test_real_answers_conform`` adds the answers fuzzing cannot reach (a
visitor's real session, real conversations and files) and checks them the same way.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from messenger.actions.base import Actor
from messenger.actions.intake import send_visitor_message
from messenger.models import AgentRole, Conversation
from tests.conftest import bootstrap, visitor_rows
from tests.factories import VISITOR_ORIGIN, make_branch, make_inbox, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

# Loaded at collection (schemathesis's lazy ``from_fixture`` loader does not work with pytest 9):
# building the schema is pure introspection, no database access.
schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP8z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg=="
)


@dataclass(frozen=True)
class Credentials:
    """What a caller sends with every request."""

    headers: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)


def session_of(user: Any) -> Credentials:
    """A logged-in staff session, with the CSRF cookie and header that unsafe methods need."""
    client = Client()
    client.force_login(user)
    # Any 32 letters or digits are a CSRF secret Django accepts in the cookie and the header (no
    # request to get one: the test client would put back the signal _keep_test_connection took).
    csrf = secrets.token_hex(16)
    return Credentials(
        headers={"X-CSRFToken": csrf},
        cookies={"sessionid": client.cookies["sessionid"].value, "csrftoken": csrf},
    )


def anonymous() -> Credentials:
    return Credentials()


def admin() -> Credentials:
    return session_of(make_user(branch=make_branch(), role=AgentRole.ADMIN))


def operator() -> Credentials:
    return session_of(make_user(branch=make_branch(), role=AgentRole.OPERATOR))


# Every kind of caller the API knows; each test below runs once per entry. A bearer token of the
# public API (``ApiToken``) is one more entry here, returning ``Credentials(headers={"Authorization":
# f"Bearer {token}"})``.
CALLERS: dict[str, Callable[[], Credentials]] = {
    "anonymous": anonymous,
    "admin": admin,
    "operator": operator,
}


@pytest.fixture(params=list(CALLERS))
def credentials(request: pytest.FixtureRequest, db: None) -> Credentials:  # noqa: ARG001
    return CALLERS[request.param]()


@pytest.fixture(autouse=True)
def _keep_test_connection() -> Iterator[None]:
    """Like Django's test client: a raw WSGI call must not close the test's transaction connection."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture(autouse=True)
def _media(settings: Any, tmp_path: Any) -> None:
    settings.MEDIA_ROOT = str(tmp_path)


FUZZ = settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


@schema.parametrize()
@FUZZ
def test_every_answer_is_documented(case: Any, credentials: Credentials) -> None:
    without_host(case)
    case.call_and_validate(checks=CHECKS, headers=credentials.headers, cookies=credentials.cookies)


def without_host(case: Any) -> None:
    """Drop a generated ``Host`` header: Django refuses a host outside ``ALLOWED_HOSTS`` with a
    400 before any view runs (docs/deployment.md puts the server behind a proxy that sets it); a
    fuzzed one tests that setting, not the operation."""
    if case.headers:
        case.headers = {name: value for name, value in case.headers.items() if name.lower() != "host"}


def call(method: str, path: str, credentials: Credentials, **parts: Any) -> Any:
    """One request to the operation documented at ``path`` (the template, e.g. ``{attachment_id}``,
    filled from ``path_parameters``), validated like the fuzzed ones."""
    case = schema[path][method].Case(**parts)
    return case.call_and_validate(checks=CHECKS, headers=credentials.headers, cookies=credentials.cookies)


def test_real_answers_conform() -> None:
    branch = make_branch()
    inbox = make_inbox(branch)
    staff = session_of(make_user(branch=branch, role=AgentRole.OPERATOR))
    supervisor = session_of(make_user(branch=branch, role=AgentRole.SUPERVISOR))
    visitor = Credentials(headers={"Origin": VISITOR_ORIGIN})

    first = call(
        "POST",
        "/api/widget/bootstrap/",
        visitor,
        body={"widget_token": inbox.widget_token, "page": {"url": VISITOR_ORIGIN + "/shop"}},
        media_type="application/json",
    ).json()
    uploaded = call(
        "POST",
        "/api/widget/attachments/",
        visitor,
        body={"widget_token": inbox.widget_token, "token": first["session_token"], "file": PNG},
        media_type="multipart/form-data",
    )
    assert uploaded.status_code == 201, uploaded.text
    attachment = uploaded.json()["attachment"]
    contact_inbox = visitor_rows(first)
    send_visitor_message(
        contact_inbox=contact_inbox,
        client_id="c1",
        body="Hello",
        attachment_ids=[attachment["id"]],
        actor=Actor(label="visitor"),
    )
    conversation = Conversation.objects.get(contact_inbox=contact_inbox)
    # Bootstrap again: now with a conversation, its history and the visitor's file.
    again = call(
        "POST",
        "/api/widget/bootstrap/",
        visitor,
        body={"widget_token": inbox.widget_token, "pubsub_token": first["pubsub_token"]},
        media_type="application/json",
    ).json()
    assert again["history"][0]["messages"][0]["attachments"][0]["id"] == attachment["id"]
    bootstrap(inbox)  # a second visitor, for the lists

    path, query = attachment["url"].split("?t=")
    download = call(
        "GET",
        "/api/attachments/{attachment_id}/",
        anonymous(),
        path_parameters={"attachment_id": attachment["id"]},
        query={"t": query},
    )
    assert (download.status_code, download.headers["content-type"]) == (200, ["image/png"])
    assert download.content == PNG
    staff_upload = call(
        "POST",
        "/api/operator/attachments/",
        staff,
        body={"conversation_id": conversation.pk, "file": PNG},
        media_type="multipart/form-data",
    )
    assert staff_upload.status_code == 201, staff_upload.text

    listed = call("GET", "/api/operator/conversations/", staff).json()
    assert [row["id"] for row in listed["results"]] == [conversation.pk] and "counters" in listed
    detail = call(
        "GET",
        "/api/operator/conversations/{conversation_id}/",
        staff,
        path_parameters={"conversation_id": conversation.pk},
    )
    assert detail.json()["conversation"]["contact"]["id"] == contact_inbox.contact_id
    messages = call(
        "GET",
        "/api/operator/conversations/{conversation_id}/messages/",
        staff,
        path_parameters={"conversation_id": conversation.pk},
    )
    assert [message["body"] for message in messages.json()["messages"]] == ["Hello"]
    for path in (
        "/api/operator/canned/",
        "/api/operator/operators/",
        "/api/operator/branches/",
        "/api/operator/labels/",
    ):
        assert call("GET", path, staff).status_code == 200, path
    assert call("GET", "/api/operator/fairness/", supervisor).json()["operators"]
    assert call("GET", "/api/operator/fairness/", staff).status_code == 403
    invalid = call("GET", "/api/operator/conversations/", staff, query={"tab": "nope"})
    assert invalid.status_code == 400
    assert invalid.json() == {
        "detail": 'tab: "nope" is not a valid choice.',
        "code": "invalid",
        "errors": {"tab": ['"nope" is not a valid choice.']},
    }
