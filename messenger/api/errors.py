from __future__ import annotations

from typing import Any

from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from messenger.errors import MessengerError


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF errors as they are; domain errors as {"detail", "code"} with their HTTP status."""
    if isinstance(exc, MessengerError):
        body = {"detail": exc.message, "code": exc.code, **exc.extra}
        if exc.retry_after:
            body["retry_after"] = exc.retry_after
        response = Response(body, status=exc.http_status)
        if exc.retry_after:
            response["Retry-After"] = str(exc.retry_after)
        return response
    return drf_exception_handler(exc, context)
