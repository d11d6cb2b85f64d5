"""Property-based fuzzing of the HTTP API from its own OpenAPI schema (``/api/schema/``).

Schemathesis generates requests for every documented operation (valid and invalid input, as an
anonymous client and as a logged-in admin) and calls the Django app in-process over WSGI. Any
response is acceptable except a 5xx: bad input must be rejected with a 4xx, never crash a view.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from messenger.models import AgentRole
from tests.factories import make_branch, make_inbox, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


# Loaded at collection (schemathesis's lazy ``from_fixture`` loader does not work with pytest 9):
# building the schema is pure introspection, no database access.
schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())


@pytest.fixture(autouse=True)
def _keep_test_connection() -> Iterator[None]:
    """Like Django's test client: a raw WSGI call must not close the test's transaction connection."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


FUZZ = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


@schema.parametrize()
@FUZZ
def test_anonymous_requests_never_cause_a_server_error(case) -> None:  # noqa: ANN001
    case.call_and_validate(checks=[not_a_server_error])


@pytest.fixture
def admin_cookies(db) -> dict[str, str]:  # noqa: ANN001
    branch = make_branch()
    make_inbox(branch)
    admin = make_user(branch=branch, role=AgentRole.ADMIN)
    client = Client()
    client.force_login(admin)
    return {"sessionid": client.cookies["sessionid"].value}


@schema.parametrize()
@FUZZ
def test_admin_requests_never_cause_a_server_error(case, admin_cookies) -> None:  # noqa: ANN001
    case.call_and_validate(checks=[not_a_server_error], cookies=admin_cookies)
