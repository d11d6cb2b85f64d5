"""Attachment endpoints: visitor upload, operator upload, download. Thin: parse, call, map errors."""

from __future__ import annotations

from typing import Any, TypedDict

from django.http import FileResponse, HttpResponse, JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from messenger import events
from messenger.access import access_conversation_for_staff, staff_scope
from messenger.actions.attachments import (
    IMAGE_TYPES,
    access_attachment,
    check_visitor_upload,
    do_upload_operator_attachment,
)
from messenger.actions.base import Actor
from messenger.actions.contacts import check_become_contact
from messenger.actions.intake import upload_visitor_attachment
from messenger.actions.widget import active_inbox, check_origin, session_visitor
from messenger.api.schema import ERROR_DESCRIPTIONS, ErrorSerializer, errors, shape_serializer
from messenger.api.util import request_origin
from messenger.api.widget import WIDGET_AUTH
from messenger.client_address import request_client_address
from messenger.errors import InvalidInput, MessengerError, NotFound
from messenger.throttle import VisitorLimits


class Uploaded(TypedDict):
    attachment: events.AttachmentData


class WidgetUploadInput(serializers.Serializer):
    """Documentation of the multipart form; the view reads it field by field."""

    widget_token = serializers.CharField(help_text="The inbox's widget token.")
    token = serializers.CharField(help_text="The session token bootstrap answered.")
    file = serializers.FileField()
    captcha = serializers.CharField(
        required=False, help_text="The solved challenge, when a 403 `captcha_required` asked for one."
    )


class OperatorUploadInput(serializers.Serializer):
    conversation_id = serializers.IntegerField(help_text="A conversation the operator may see.")
    file = serializers.FileField()


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

    @extend_schema(
        operation_id="widget_attachment_upload",
        tags=["widget", "attachments"],
        summary="Upload a visitor's file",
        description=WIDGET_AUTH
        + " The file goes to the visitor's active conversation, which the upload starts (with the "
        "pre-chat form, CAPTCHA and per-IP gates of any start) when there is none. The answer's `url` "
        "carries the visitor's download token.",
        auth=[],
        request={"multipart/form-data": WidgetUploadInput},
        responses={201: shape_serializer(Uploaded), **errors(400, 403, 404, 409, 415, 429, 503)},
    )
    def post(self, request: Request) -> Response:
        inbox = active_inbox(_field(request.data, "widget_token"))
        ip = request_client_address(request)
        check_origin(inbox, request_origin(request), ip=ip, channel="attachment")
        contact_inbox = session_visitor(_field(request.data, "token"), inbox)
        if contact_inbox is None:
            raise NotFound("Unknown session.", code="unauthenticated")
        limits = VisitorLimits(ip=ip, captcha=request.data.get("captcha"))
        if contact_inbox.pk is None:
            # A file is their first word: checked, with the gates of a first conversation, before
            # their rows are made (a refused one makes none).
            check_visitor_upload(contact_inbox=contact_inbox, upload=request.FILES.get("file"))
            contact_inbox = check_become_contact(contact_inbox, limits)
        attachment = upload_visitor_attachment(
            contact_inbox=contact_inbox,
            upload=request.FILES.get("file"),
            actor=Actor(contact=contact_inbox.contact, ip=ip),
            limits=limits,
            page={"origin": request_origin(request) or ""},
        )
        return Response(
            {"attachment": events.attachment_payload(attachment, for_contact_inbox_id=contact_inbox.pk)}, status=201
        )


class OperatorAttachmentUploadView(APIView):
    """POST /api/operator/attachments/ — session + CSRF; multipart ``conversation_id``, ``file``."""

    permission_classes = [IsAuthenticated]
    parser_classes = [MultiPartParser]

    @extend_schema(
        operation_id="operator_attachment_upload",
        tags=["operator", "attachments"],
        summary="Upload an operator's file",
        description="Stores a file for an operator's next message in a conversation they may see "
        "(send it with the message over the operator socket). The session cookie and a CSRF token "
        "(`X-CSRFToken`) are required.",
        request={"multipart/form-data": OperatorUploadInput},
        responses={201: shape_serializer(Uploaded), **errors(400, 403, 404, 415, 503)},
    )
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


class FirstRenderer(BaseContentNegotiation):
    """A file is answered in its own type and an error in JSON, whatever ``Accept`` says (an
    ``<img>`` asks for images): never 406."""

    def select_parser(self, request: Request, parsers: list) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(self, request: Request, renderers: list, format_suffix: str | None = None) -> tuple:
        return renderers[0], renderers[0].media_type


# The types a download answers in: raster images inline, every other allowed type as an
# attachment in its own type, and HTML, SVG or XML as ``application/octet-stream``.
DOWNLOAD_MEDIA_TYPES = (*sorted(IMAGE_TYPES), "application/octet-stream", "*/*")


class AttachmentDownloadView(APIView):
    """GET /api/attachments/<id>/ — staff with access, or ``?t=`` issued to the conversation's visitor."""

    permission_classes = [AllowAny]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = FirstRenderer

    @extend_schema(
        operation_id="attachment_download",
        tags=["attachments"],
        summary="Download a file",
        description="For staff who may see the conversation (session cookie), or for its visitor with "
        "the `t` token from the attachment's `url`. Raster images are served inline; anything else "
        "downloads (`Content-Disposition: attachment`), under a sandbox CSP. A file that does not "
        "exist, is not visible or whose token is wrong answers the same 404.",
        parameters=[
            OpenApiParameter("t", OpenApiTypes.STR, OpenApiParameter.QUERY, description="The visitor's download token.")
        ],
        responses={
            **{(200, media_type): OpenApiResponse(OpenApiTypes.BINARY) for media_type in DOWNLOAD_MEDIA_TYPES},
            (404, "application/json"): OpenApiResponse(ErrorSerializer, description="No such file."),
            (503, "application/json"): OpenApiResponse(ErrorSerializer, description=ERROR_DESCRIPTIONS[503]),
        },
    )
    def get(self, request: Request, attachment_id: int) -> HttpResponse:
        try:
            attachment = access_attachment(attachment_id, user=request.user, link_token=request.GET.get("t"))
        except MessengerError:
            return _not_found()
        try:
            handle = attachment.file.open("rb")
        except (FileNotFoundError, ValueError):
            return _not_found()
        # Only raster images are shown inline; everything else (HTML, SVG, PDF, text) downloads, and
        # the sandbox CSP keeps even a mislabelled file from running script on this origin.
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
