from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from messenger.errors import MessengerError


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Every error as ``{"detail", "code", …}`` (``messenger.api.schema.ErrorSerializer``): domain
    errors with their HTTP status and fields; DRF's validation errors as ``code`` ``invalid`` with
    the messages per field in ``errors``; DRF's other errors as DRF answers them (``detail``)."""
    if isinstance(exc, MessengerError):
        body = {"detail": exc.message, "code": exc.code, **exc.extra}
        if exc.retry_after:
            body["retry_after"] = exc.retry_after
        response = Response(body, status=exc.http_status)
        if exc.retry_after:
            response["Retry-After"] = str(exc.retry_after)
        return response
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, ValidationError):
        fields = _field_errors(exc.detail)
        name, messages = next(iter(fields.items()), ("non_field_errors", ["Invalid input."]))
        detail = messages[0] if name == "non_field_errors" else f"{name}: {messages[0]}"
        response.data = {"detail": detail, "code": "invalid", "errors": fields}
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
