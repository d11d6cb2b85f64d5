"""Property-based fuzzing of the REST API v1 from its own OpenAPI schema, with a valid token.

Schemathesis generates valid and invalid requests for every /api/v1/ operation and calls the
Django app in-process over WSGI as a supervisor's token: never a 5xx, and every answer (a page,
an object, an error) matches the schema the operation documents.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test.utils import override_settings
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance

from messenger.actions.api_tokens import do_create_api_token
from messenger.actions.base import Actor
from messenger.models import AgentRole, Contact, ContactInbox, Conversation
from tests.factories import make_branch, make_inbox, make_user
from tests.test_openapi_fuzz import without_host

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application()).include(path_regex="^/api/v1/")

FUZZ = settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


@pytest.fixture(autouse=True)
def _keep_test_connection() -> Iterator[None]:
    """Like Django's test client: a raw WSGI call must not close the test's transaction connection."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def bearer(db) -> dict[str, str]:  # noqa: ANN001
    branch = make_branch()
    inbox = make_inbox(branch)
    for index in range(3):  # ids 1… exist, so generated ids hit real rows too
        contact = Contact.objects.create(name=f"Fuzz {index}")
        Conversation.objects.create(
            inbox=inbox, contact=contact, contact_inbox=ContactInbox.objects.create(contact=contact, inbox=inbox)
        )
    supervisor = make_user(branch=branch, role=AgentRole.SUPERVISOR)
    make_user(branch=branch)
    _token, plaintext = do_create_api_token(user=supervisor, name="fuzz", actor=Actor.system("test"))
    return {"Authorization": f"Bearer {plaintext}"}


@schema.parametrize()
@FUZZ
@override_settings(MESSENGER_API_RATE_PER_TOKEN="")
def test_v1_never_errs_and_answers_as_documented(case, bearer) -> None:  # noqa: ANN001
    without_host(case)
    case.call_and_validate(
        checks=[not_a_server_error, status_code_conformance, response_schema_conformance], headers=bearer
    )
