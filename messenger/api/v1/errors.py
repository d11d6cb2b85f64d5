"""The errors of /api/v1/ of its own: a body too large, a path that is not an endpoint. Every error
is answered by ``messenger.api.errors.exception_handler`` (docs/integrations.md, "Errors")."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from messenger.errors import MessengerError


class TooLarge(MessengerError):
    """The request body is too large."""

    code = "too_large"
    http_status = 413


@csrf_exempt  # the API has no CSRF (bearer only): a POST to a wrong path is this 404, not an HTML 403
def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Any other path under /api/v1/, with any method."""
    return JsonResponse(
        {"detail": "No such endpoint (REST API v1 paths have no trailing slash).", "code": "not_found"},
        status=404,
    )
