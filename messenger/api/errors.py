from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from messenger.errors import MessengerError

# DRF's own errors: their ``code`` in our bodies.
CODES: list[tuple[type[Exception], str]] = [
    (exceptions.NotAuthenticated, "unauthenticated"),
    (exceptions.AuthenticationFailed, "unauthenticated"),
    (exceptions.PermissionDenied, "forbidden"),
    (DjangoPermissionDenied, "forbidden"),
    (exceptions.NotFound, "not_found"),
    (Http404, "not_found"),
    (exceptions.ParseError, "bad_json"),
    (exceptions.MethodNotAllowed, "method_not_allowed"),
    (exceptions.UnsupportedMediaType, "unsupported_media_type"),
    (exceptions.NotAcceptable, "not_acceptable"),
    (exceptions.Throttled, "rate_limited"),
]


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Every error of every API view as ``{"detail", "code", …}``
    (``messenger.api.schema.ErrorSerializer``): domain errors with their HTTP status and fields;
    DRF's validation errors as ``code`` ``invalid`` with the messages per field in ``errors``; DRF's
    other errors with their ``code`` (``CODES``), keeping DRF's headers (``WWW-Authenticate``,
    ``Retry-After``)."""
    if isinstance(exc, MessengerError):
        body = {"detail": exc.message, "code": exc.code, **exc.extra}
        if exc.retry_after:
            body["retry_after"] = exc.retry_after
        response = Response(body, status=exc.http_status)
        if exc.retry_after:
            response["Retry-After"] = str(exc.retry_after)
        return response
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        fields = _field_errors(exc.detail)
        name, messages = next(iter(fields.items()), ("non_field_errors", ["Invalid input."]))
        detail = messages[0] if name == "non_field_errors" else f"{name}: {messages[0]}"
        response.data = {"detail": detail, "code": "invalid", "errors": fields}
        return response
    code = next((code for kind, code in CODES if isinstance(exc, kind)), "error")
    body = response.data if isinstance(response.data, dict) else {}
    response.data = {"detail": str(body.get("detail", "Error.")), "code": code}
    if isinstance(exc, exceptions.Throttled) and exc.wait:
        response.data["retry_after"] = int(exc.wait + 0.999)
    return response


def _field_errors(detail: Any) -> dict[str, list[str]]:
    """DRF's error detail (a dict per field, a list, or nested) as one flat list of messages per field."""
    if isinstance(detail, dict):
        flat: dict[str, list[str]] = {}
        for name, value in detail.items():
            for inner, messages in _field_errors(value).items():
                flat.setdefault(f"{name}.{inner}" if inner != "non_field_errors" else str(name), []).extend(messages)
        return flat
    if isinstance(detail, list):
        messages: list[str] = []
        nested: dict[str, list[str]] = {}
        for item in detail:
            if isinstance(item, dict | list):
                for name, inner in _field_errors(item).items():
                    nested.setdefault(name, []).extend(inner)
            else:
                messages.append(str(item))
        return {**({"non_field_errors": messages} if messages else {}), **nested}
    return {"non_field_errors": [str(detail)]}
