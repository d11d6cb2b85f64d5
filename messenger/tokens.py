"""Signed, expiring tokens: the widget session and attachment download links."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core import signing

_SESSION_SALT = "messenger.widget.session"
_ATTACHMENT_SALT = "messenger.attachment"
ATTACHMENT_LINK_MAX_AGE = 7 * 24 * 3600


@dataclass(frozen=True)
class WidgetSession:
    contact_inbox_id: int
    inbox_id: int
    pubsub_token: str


def issue_session_token(*, contact_inbox_id: int, inbox_id: int, pubsub_token: str) -> str:
    return signing.dumps({"ci": contact_inbox_id, "i": inbox_id, "p": pubsub_token}, salt=_SESSION_SALT, compress=True)


def read_session_token(token: str) -> WidgetSession | None:
    """The session inside ``token``, or None when it is forged, malformed or expired."""
    if not isinstance(token, str) or not token or len(token) > 500:
        return None
    try:
        data = signing.loads(token, salt=_SESSION_SALT, max_age=settings.MESSENGER_SESSION_TOKEN_MAX_AGE)
        return WidgetSession(contact_inbox_id=int(data["ci"]), inbox_id=int(data["i"]), pubsub_token=str(data["p"]))
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return None


def attachment_token(attachment_id: int, contact_inbox_id: int | None) -> str:
    return signing.dumps({"a": attachment_id, "ci": contact_inbox_id}, salt=_ATTACHMENT_SALT, compress=True)


def read_attachment_token(token: str, attachment_id: int) -> int | None:
    """The contact-inbox the link was issued to, when the link is valid for ``attachment_id``."""
    try:
        data = signing.loads(token, salt=_ATTACHMENT_SALT, max_age=ATTACHMENT_LINK_MAX_AGE)
    except (signing.BadSignature, TypeError, ValueError):
        return None
    if data.get("a") != attachment_id:
        return None
    return data.get("ci")
