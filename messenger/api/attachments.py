"""Attachment endpoints: visitor upload, operator upload, download. Thin: parse, call, map errors."""

from __future__ import annotations

from typing import Any

from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from messenger import events
from messenger.access import access_conversation_for_staff, staff_scope
from messenger.actions.attachments import IMAGE_TYPES, access_attachment, do_upload_operator_attachment
from messenger.actions.base import Actor
from messenger.actions.intake import upload_visitor_attachment
from messenger.actions.widget import active_inbox, check_origin
from messenger.api.util import request_origin
from messenger.client_address import request_client_address
from messenger.errors import InvalidInput, MessengerError, NotFound
from messenger.models import ContactInbox
from messenger.throttle import VisitorLimits
from messenger.tokens import read_session_token


def _field(data: Any, name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{name}: required")
    return value


class WidgetAttachmentUploadView(APIView):
    """POST /api/widget/attachments/ — multipart ``widget_token``, ``token`` (session), ``file``, and
    ``captcha`` when the upload would start a conversation past the CAPTCHA threshold."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    parser_classes = [MultiPartParser]

    def post(self, request: Request) -> Response:
        inbox = active_inbox(_field(request.data, "widget_token"))
        ip = request_client_address(request)
        check_origin(inbox, request_origin(request), ip=ip, channel="attachment")
        session = read_session_token(_field(request.data, "token"))
        contact_inbox = None
        if session is not None and session.inbox_id == inbox.pk:
            contact_inbox = (
                ContactInbox.objects.select_related("contact", "inbox", "inbox__branch")
                .filter(pk=session.contact_inbox_id, inbox=inbox, pubsub_token=session.pubsub_token)
                .first()
            )
        if contact_inbox is None:
            raise NotFound("Unknown session.", code="unauthenticated")
        attachment = upload_visitor_attachment(
            contact_inbox=contact_inbox,
            upload=request.FILES.get("file"),
            actor=Actor(contact=contact_inbox.contact, ip=ip),
            limits=VisitorLimits(ip=ip, captcha=request.data.get("captcha")),
            page={"origin": request_origin(request) or ""},
        )
        return Response(
            {"attachment": events.attachment_payload(attachment, for_contact_inbox_id=contact_inbox.pk)}, status=201
        )


class OperatorAttachmentUploadView(APIView):
    """POST /api/operator/attachments/ — session + CSRF; multipart ``conversation_id``, ``file``."""

    permission_classes = [IsAuthenticated]
    parser_classes = [MultiPartParser]

    def post(self, request: Request) -> Response:
        conversation = access_conversation_for_staff(staff_scope(request.user), request.data.get("conversation_id"))
        attachment = do_upload_operator_attachment(
            conversation=conversation, user=request.user, upload=request.FILES.get("file")
        )
        return Response({"attachment": events.attachment_payload(attachment, for_contact_inbox_id=None)}, status=201)


def _not_found() -> JsonResponse:
    response = JsonResponse({"detail": "No such file.", "code": "not_found"}, status=404)
    response["Cache-Control"] = "no-store"
    return response


@require_GET
def download_attachment(request: HttpRequest, attachment_id: int) -> HttpResponse:
    """GET /api/attachments/<id>/ — staff with access, or ``?t=`` issued to the conversation's visitor."""
    try:
        attachment = access_attachment(attachment_id, user=request.user, link_token=request.GET.get("t"))
    except MessengerError:
        return _not_found()
    try:
        handle = attachment.file.open("rb")
    except (FileNotFoundError, ValueError):
        return _not_found()
    # Only raster images are shown inline; everything else (HTML, SVG, PDF, text) downloads, and the
    # sandbox CSP keeps even a mislabelled file from running script on this origin.
    inline = attachment.content_type in IMAGE_TYPES
    response = FileResponse(
        handle,
        as_attachment=not inline,
        filename=attachment.original_name,
        content_type=attachment.content_type if inline else _download_type(attachment.content_type),
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, max-age=3600"
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


def _download_type(content_type: str) -> str:
    if content_type in ("text/html", "image/svg+xml") or "xml" in content_type or "html" in content_type:
        return "application/octet-stream"
    return content_type
