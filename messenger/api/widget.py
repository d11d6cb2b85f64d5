"""Widget HTTP endpoints: bootstrap. Thin: parse, call the action, map errors."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from messenger.actions.widget import do_bootstrap
from messenger.api.util import request_origin
from messenger.client_address import request_client_address


class BootstrapInput(serializers.Serializer):
    widget_token = serializers.CharField(max_length=64)
    pubsub_token = serializers.CharField(max_length=64, required=False, allow_blank=True)
    page = serializers.DictField(required=False)
    language = serializers.CharField(max_length=8, required=False, allow_blank=True)
    # The honeypot: hidden from people, so only robots fill it in.
    website = serializers.CharField(max_length=200, required=False, allow_blank=True)


class WidgetBootstrapView(APIView):
    """POST /api/widget/bootstrap/ — the visitor's session, history and widget settings."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=BootstrapInput,
        responses={
            200: inline_serializer("Bootstrap", {"session_token": serializers.CharField()}),
            403: OpenApiResponse(),
            404: OpenApiResponse(),
            429: OpenApiResponse(description="Throttled; see Retry-After"),
        },
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
        response = Response(payload)
        return response
