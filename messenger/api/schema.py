"""OpenAPI pieces every HTTP view shares: the error body and the error responses of an operation.

Every error an API view answers is JSON with at least ``detail``: a domain error
(``messenger.errors``) adds ``code`` (and ``retry_after`` when throttled); a validation error
names the fields.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong, for a person.")
    code = serializers.CharField(required=False, help_text="A stable machine-readable code, e.g. `not_found`.")
    retry_after = serializers.IntegerField(required=False, help_text="Seconds to wait (429 only).")


ERROR_DESCRIPTIONS = {
    400: "Invalid input.",
    401: "Not authenticated.",
    403: "Not allowed.",
    404: "Not found (or not visible to the caller).",
    409: "Conflict with the current state.",
    413: "Too large.",
    415: "Unsupported media type.",
    429: "Too many requests; see `Retry-After`.",
}


def errors(*statuses: int) -> dict[int, OpenApiResponse]:
    """The error responses of an operation, for ``extend_schema(responses={200: ..., **errors(400, 404)})``."""
    return {status: OpenApiResponse(ErrorSerializer, description=ERROR_DESCRIPTIONS[status]) for status in statuses}
