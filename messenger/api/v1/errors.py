"""Every error under /api/v1/ as ``{"detail", "code"}`` (plus ``fields`` for invalid fields,
``retry_after`` when throttled), with its HTTP status (docs/api.md, "Errors")."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from messenger.api.errors import exception_handler as messenger_exception_handler
from messenger.errors import MessengerError

CODES: list[tuple[type[exceptions.APIException], str]] = [
    (exceptions.NotAuthenticated, "unauthenticated"),
    (exceptions.AuthenticationFailed, "unauthenticated"),
    (exceptions.PermissionDenied, "forbidden"),
    (exceptions.NotFound, "not_found"),
    (exceptions.ParseError, "bad_json"),
    (exceptions.MethodNotAllowed, "method_not_allowed"),
    (exceptions.UnsupportedMediaType, "unsupported_media_type"),
    (exceptions.NotAcceptable, "not_acceptable"),
    (exceptions.Throttled, "rate_limited"),
]


class TooLarge(MessengerError):
    """The request body is too large."""

    code = "too_large"
    http_status = 413


def _summary(detail: Any) -> str:
    """The first message of a validation error, prefixed with its field: "limit: …"."""
    if isinstance(detail, dict):
        for name, value in detail.items():
            inner = _summary(value)
            return inner if name == "non_field_errors" else f"{name}: {inner}"
    if isinstance(detail, list) and detail:
        return _summary(detail[0])
    return str(detail)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, MessengerError):
        return messenger_exception_handler(exc, context)
    response = drf_exception_handler(exc, context)  # keeps WWW-Authenticate and Retry-After
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = {"detail": _summary(exc.detail), "code": "invalid", "fields": exc.detail}
        return response
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    code = next((code for kind, code in CODES if isinstance(exc, kind)), "error")
    detail = exc.detail if isinstance(exc, exceptions.APIException) else "Error."
    response.data = {"detail": str(detail), "code": code}
    return response


def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Any other path under /api/v1/."""
    return JsonResponse(
        {"detail": "No such endpoint (REST API v1 paths have no trailing slash).", "code": "not_found"},
        status=404,
    )
