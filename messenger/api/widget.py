"""Widget HTTP endpoints: bootstrap. Thin: parse, call the action, map errors."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from messenger.actions.widget import Bootstrap, do_bootstrap
from messenger.api.parsers import JSONParser
from messenger.api.schema import errors, shape_serializer
from messenger.api.util import request_origin
from messenger.client_address import request_client_address

# The widget authenticates itself, not with a session or a header: the inbox's public widget token
# (in the body), the page's Origin (in the inbox's allowed domains) and, to resume a visitor, the
# secret pubsub token; uploads add the signed session token bootstrap answers.
WIDGET_AUTH = (
    "No session: the widget's own credentials travel in the body. `widget_token` names an active "
    "inbox, and the request's `Origin` (else its `Referer`) must be one of the inbox's allowed "
    "domains (403 `origin_forbidden`, audited)."
)


class BootstrapInput(serializers.Serializer):
    widget_token = serializers.CharField(max_length=64, help_text="The inbox's widget token.")
    pubsub_token = serializers.CharField(
        max_length=64,
        required=False,
        allow_blank=True,
        help_text="The visitor's secret token from an earlier bootstrap: resumes that visitor.",
    )
    page = serializers.DictField(
        required=False,
        help_text="The page: `url`, `title`, `referrer`, `language`, `user_agent`, `timezone`, `screen` (strings).",
    )
    language = serializers.CharField(max_length=8, required=False, allow_blank=True)
    # The honeypot: hidden from people, so only robots fill it in.
    website = serializers.CharField(
        max_length=200, required=False, allow_blank=True, help_text="A honeypot: must be empty."
    )


class WidgetBootstrapView(APIView):
    """POST /api/widget/bootstrap/ — the visitor's session, history and widget settings."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="widget_bootstrap",
        tags=["widget"],
        summary="Start or resume a visitor's session",
        description=WIDGET_AUTH
        + " Answers the session token for `/ws/widget/` and uploads, the visitor's recent history, "
        "the widget's settings and whether operators are available. Throttled per IP and per widget token.",
        auth=[],
        request=BootstrapInput,
        responses={200: shape_serializer(Bootstrap), **errors(400, 403, 404, 415, 429, 503)},
    )
    def post(self, request: Request) -> Response:
        data = BootstrapInput(data=request.data)
        data.is_valid(raise_exception=True)
        payload = do_bootstrap(
            widget_token=data.validated_data["widget_token"],
            pubsub_token=data.validated_data.get("pubsub_token") or None,
            page=data.validated_data.get("page"),
            origin=request_origin(request),
            ip=request_client_address(request),
            language=data.validated_data.get("language", ""),
            honeypot=data.validated_data.get("website"),
        )
        return Response(payload)
