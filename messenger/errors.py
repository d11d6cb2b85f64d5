"""Domain errors. Transports map them: HTTP status + JSON body, or an error frame on a socket."""

from __future__ import annotations

from typing import Any


class MessengerError(Exception):
    code = "error"
    http_status = 400

    def __init__(
        self, message: str = "", *, code: str | None = None, retry_after: int | None = None, **extra: Any
    ) -> None:
        super().__init__(message or self.__class__.__doc__ or self.code)
        self.message = message or (self.__class__.__doc__ or self.code).strip()
        if code:
            self.code = code
        self.retry_after = retry_after
        self.extra = extra


class InvalidInput(MessengerError):
    """The request is malformed."""

    code = "invalid"
    http_status = 400


class NotFound(MessengerError):
    """Not found."""

    code = "not_found"
    http_status = 404


class Forbidden(MessengerError):
    """Not allowed."""

    code = "forbidden"
    http_status = 403


class Conflict(MessengerError):
    """The conversation is not in a state that allows this."""

    code = "conflict"
    http_status = 409


class RateLimited(MessengerError):
    """Too many requests."""

    code = "rate_limited"
    http_status = 429


class CaptchaRequired(MessengerError):
    """Solve the challenge first."""

    code = "captcha_required"
    http_status = 403


class Unavailable(MessengerError):
    """The service is temporarily unavailable; try again shortly."""

    code = "unavailable"
    http_status = 503
