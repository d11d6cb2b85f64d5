"""Attachment upload and download: limits by content, permissions, safe headers."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from messenger.actions.base import Actor
from messenger.actions.intake import send_visitor_message
from messenger.errors import InvalidInput
from messenger.models import ActivityEvent, Attachment
from tests.conftest import bootstrap, visitor_rows
from tests.factories import VISITOR_ORIGIN, make_branch, make_inbox, make_user

pytestmark = pytest.mark.django_db

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP8z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg=="
)
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):  # noqa: ANN001
    settings.MEDIA_ROOT = str(tmp_path)


def upload(inbox: Any, boot: dict[str, Any], name: str, content: bytes, *, origin: str = VISITOR_ORIGIN) -> Any:
    return Client().post(
        "/api/widget/attachments/",
        {
            "widget_token": inbox.widget_token,
            "token": boot["session_token"],
            "file": SimpleUploadedFile(name, content, content_type="application/octet-stream"),
        },
        HTTP_ORIGIN=origin,
    )


def test_visitor_upload_detects_the_type_from_content_and_starts_a_conversation():
    inbox = make_inbox(make_branch())
    boot = bootstrap(inbox)
    response = upload(inbox, boot, "notes.txt", PNG)  # the name lies; the bytes decide
    assert response.status_code == 201, response.content
    payload = response.json()["attachment"]
    assert payload["content_type"] == "image/png"
    assert (payload["width"], payload["height"], payload["is_image"]) == (2, 2, True)
    assert payload["url"].startswith(f"/api/attachments/{payload['id']}/?t=")
    attachment = Attachment.objects.get(pk=payload["id"])
    assert attachment.message_id is None
    assert attachment.conversation.contact_inbox.pubsub_token == boot["pubsub_token"]
    assert not attachment.file.name.endswith(".txt")


@pytest.mark.parametrize(
    ("name", "content", "code"),
    [
        ("page.png", b"<!doctype html><html><script>alert(1)</script></html>", "file_type_not_allowed"),
        (
            "logo.png",
            b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script/></svg>',
            "file_type_not_allowed",
        ),
        ("tool.pdf", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 64, "file_type_not_allowed"),
        ("big.png", PNG + b"\x00" * 200, "file_too_large"),
        ("empty.png", b"", "file_empty"),
    ],
)
def test_visitor_upload_limits(name: str, content: bytes, code: str):
    inbox = make_inbox(
        make_branch(), settings={"attachments": {"max_size": 200, "allowed_types": ["image/png", "text/plain"]}}
    )
    response = upload(inbox, bootstrap(inbox), name, content)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == code
    assert not Attachment.objects.exists()


def test_inbox_type_limit_applies_to_pdf():
    inbox = make_inbox(make_branch(), settings={"attachments": {"allowed_types": ["image/png"]}})
    response = upload(inbox, bootstrap(inbox), "cv.pdf", PDF)
    assert response.status_code == 400
    assert response.json()["content_type"] == "application/pdf"


def test_global_size_cap_wins_over_the_inbox(settings):  # noqa: ANN001
    settings.MESSENGER_ATTACHMENT_MAX_SIZE = 50
    inbox = make_inbox(make_branch())
    response = upload(inbox, bootstrap(inbox), "a.png", PNG)
    assert response.status_code == 400
    assert response.json()["code"] == "file_too_large"


def test_upload_from_a_forbidden_origin_is_refused_and_audited():
    inbox = make_inbox(make_branch())
    boot = bootstrap(inbox)
    response = upload(inbox, boot, "a.png", PNG, origin="https://evil.example.com")
    assert response.status_code == 403
    assert ActivityEvent.objects.filter(verb="widget.origin_denied", payload__channel="attachment").exists()
    assert not Attachment.objects.exists()


def test_upload_needs_a_valid_session():
    inbox = make_inbox(make_branch())
    response = upload(inbox, {"session_token": "forged"}, "a.png", PNG)
    assert response.status_code == 404
    other = make_inbox(make_branch())
    response = upload(inbox, bootstrap(other), "a.png", PNG)  # a session of another inbox
    assert response.status_code == 404


def test_more_than_fifteen_attachments_per_message_are_refused():
    inbox = make_inbox(make_branch())
    boot = bootstrap(inbox)
    ids = [upload(inbox, boot, f"{i}.png", PNG).json()["attachment"]["id"] for i in range(16)]
    contact_inbox = visitor_rows(boot)
    with pytest.raises(InvalidInput, match="at most 15"):
        send_visitor_message(
            contact_inbox=contact_inbox, client_id="c1", body="", attachment_ids=ids, actor=Actor(label="visitor")
        )
    result = send_visitor_message(
        contact_inbox=contact_inbox, client_id="c2", body="", attachment_ids=ids[:15], actor=Actor(label="visitor")
    )
    assert result.message.attachments.count() == 15


def test_download_permissions_and_headers():
    branch, other_branch = make_branch(), make_branch()
    inbox = make_inbox(branch)
    boot = bootstrap(inbox)
    image = upload(inbox, boot, "shot.png", PNG).json()["attachment"]
    text = upload(inbox, boot, "notes.html", b"hello <b>there</b>").json()["attachment"]

    response = Client().get(image["url"])
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == PNG
    assert response["Content-Type"] == "image/png"
    assert response["Content-Disposition"].startswith("inline")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"
    # What an <img> asks for is no reason to refuse the file (no 406).
    response = Client().get(image["url"], HTTP_ACCEPT="image/avif,image/webp,image/apng,image/*")
    assert (response.status_code, response["Content-Type"]) == (200, "image/png")
    # Nor for a POST: the address answers GET (and HEAD) only, in JSON like every error.
    response = Client().post(image["url"])
    assert (response.status_code, response.json()["detail"]) == (405, 'Method "POST" not allowed.')

    response = Client().get(text["url"])
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment")
    assert response["Content-Type"].startswith("text/plain")

    # Another visitor's link, a link for another file, no link: all look like a missing file.
    stranger = bootstrap(inbox)
    foreign = upload(inbox, stranger, "mine.png", PNG).json()["attachment"]
    token_of_stranger = foreign["url"].split("?t=")[1]
    assert Client().get(f"/api/attachments/{image['id']}/?t={token_of_stranger}").status_code == 404
    assert Client().get(f"/api/attachments/{image['id']}/").status_code == 404
    assert Client().get("/api/attachments/999999/").json()["code"] == "not_found"

    # Staff: their branch yes, another branch no.
    colleague = Client()
    colleague.force_login(make_user(branch=branch))
    assert colleague.get(f"/api/attachments/{image['id']}/").status_code == 200
    outsider = Client()
    outsider.force_login(make_user(branch=other_branch))
    assert outsider.get(f"/api/attachments/{image['id']}/").status_code == 404


def test_operator_upload_needs_access_and_csrf():
    branch = make_branch()
    inbox = make_inbox(branch)
    boot = bootstrap(inbox)
    visitor_file = upload(inbox, boot, "a.png", PNG).json()["attachment"]
    conversation_id = Attachment.objects.get(pk=visitor_file["id"]).conversation_id

    operator = make_user(branch=branch)
    client = Client()
    client.force_login(operator)
    response = client.post(
        "/api/operator/attachments/",
        {"conversation_id": conversation_id, "file": SimpleUploadedFile("invoice.pdf", PDF)},
    )
    assert response.status_code == 201, response.content
    payload = response.json()["attachment"]
    assert payload["content_type"] == "application/pdf"
    assert "?t=" not in payload["url"]
    assert Attachment.objects.get(pk=payload["id"]).uploaded_by_user == operator

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(operator)
    response = strict.post(
        "/api/operator/attachments/", {"conversation_id": conversation_id, "file": SimpleUploadedFile("a.pdf", PDF)}
    )
    assert response.status_code == 403

    outsider = Client()
    outsider.force_login(make_user(branch=make_branch()))
    response = outsider.post(
        "/api/operator/attachments/", {"conversation_id": conversation_id, "file": SimpleUploadedFile("a.pdf", PDF)}
    )
    assert response.status_code == 404
    assert Client().post("/api/operator/attachments/", {"conversation_id": conversation_id}).status_code == 403


def test_the_inbox_feature_flag_turns_visitor_uploads_off():
    inbox = make_inbox(make_branch(), settings={"features": {"attachments": False}})
    boot = bootstrap(inbox)
    response = upload(inbox, boot, "shot.png", PNG)
    assert response.status_code == 403
    assert response.json()["code"] == "attachments_disabled"
    assert not Attachment.objects.exists()
    assert boot["settings"]["features"]["attachments"] is False  # the widget hides its picker
