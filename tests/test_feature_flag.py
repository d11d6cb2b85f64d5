"""MESSENGER_ENABLED=0: HTTP answers 404 {"detail": "Messenger disabled"}, sockets close 4000, and
every route stays registered."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.test import Client, override_settings
from django.urls import reverse

from messenger.models import Contact
from messenger.protocol import CLOSE_DISABLED
from tests.conftest import bootstrap, operator_socket, visitor_socket
from tests.factories import VISITOR_ORIGIN, make_branch, make_inbox, make_user

ROUTES = [
    ("widget-bootstrap", {}),
    ("api-schema", {}),
    ("dashboard", {}),
    ("demo", {}),
    ("operator-conversations", {}),
    ("widget-attachment-upload", {}),
    ("attachment-download", {"attachment_id": 1}),
]


@pytest.mark.django_db
@override_settings(MESSENGER_ENABLED=False)
@pytest.mark.parametrize(("name", "kwargs"), ROUTES)
def test_http_routes_answer_404_disabled_and_stay_registered(name, kwargs):
    url = reverse(name, kwargs=kwargs)
    client = Client()
    client.force_login(make_user(branch=make_branch()))
    for method in ("get", "post"):
        response = getattr(client, method)(url)
        assert response.status_code == 404, (name, method)
        assert response.json() == {"detail": "Messenger disabled"}


@pytest.mark.django_db
@override_settings(MESSENGER_ENABLED=False)
def test_disabled_bootstrap_creates_nothing():
    inbox = make_inbox(make_branch())
    response = Client().post(
        "/api/widget/bootstrap/",
        {"widget_token": inbox.widget_token},
        content_type="application/json",
        HTTP_ORIGIN=VISITOR_ORIGIN,
    )
    assert response.status_code == 404
    assert Contact.objects.count() == 0


@pytest.mark.django_db
def test_enabled_pages_are_served():
    client = Client()
    client.force_login(make_user(branch=make_branch()))
    assert client.get(reverse("dashboard")).status_code == 200
    assert client.get(reverse("api-schema")).status_code == 200


@pytest.mark.django_db
@override_settings(MESSENGER_ENABLED=False)
def test_admin_is_not_behind_the_flag(admin_client):
    assert admin_client.get("/admin/").status_code == 200


async def _closed_with(socket) -> int | None:
    connected, _ = await socket.connect()
    frames = [await socket.recv()]
    while frames[-1]["type"] != "__closed__":
        frames.append(await socket.recv())
    assert frames[0] == {"type": "error", "code": "disabled", "message": "Messenger disabled"}
    return frames[-1]["code"]


@pytest.mark.django_db(transaction=True)
async def test_sockets_close_4000_when_disabled():
    branch = await database_sync_to_async(make_branch)()
    inbox = await database_sync_to_async(make_inbox)(branch)
    operator = await database_sync_to_async(make_user)(branch=branch)
    boot = await database_sync_to_async(bootstrap)(inbox)
    with override_settings(MESSENGER_ENABLED=False):
        visitor = visitor_socket(inbox, boot)
        assert await _closed_with(visitor) == CLOSE_DISABLED
        op = await operator_socket(operator)
        assert await _closed_with(op) == CLOSE_DISABLED
    # Back on: the same session connects.
    visitor = visitor_socket(inbox, boot)
    connected, _ = await visitor.connect()
    assert connected
    assert (await visitor.expect("hello"))["role"] == "visitor"
    await visitor.close()
