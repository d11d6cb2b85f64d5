"""Bearer tokens for the REST API: ``Authorization: Bearer msg_<prefix>_<secret>``.

Only this scheme is accepted under /api/v1/: no session, hence no CSRF to think about.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from messenger.actions.api_tokens import authenticate_api_token
from messenger.models import ApiToken

MAX_HEADER_LENGTH = 200


class BearerTokenAuthentication(BaseAuthentication):
    """The token's user, with exactly that user's access; 401 for a missing, malformed, unknown or
    revoked token or an inactive user."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        header = get_authorization_header(request)
        if not header:
            return None
        if len(header) > MAX_HEADER_LENGTH:
            raise exceptions.AuthenticationFailed("Invalid token.")
        try:
            scheme, _, value = header.decode("ascii").partition(" ")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        if scheme.lower() != "bearer":
            raise exceptions.AuthenticationFailed("Use Authorization: Bearer <token>.")
        token = authenticate_api_token(value.strip())
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("The token's user is deactivated.")
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = BearerTokenAuthentication
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token (`msg_<prefix>_<secret>`), created in the admin or by "
            "`manage.py create_api_token`; it acts as its user.",
        }
