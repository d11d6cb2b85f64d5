"""Signed, expiring tokens: the widget session, a new visitor's own secret, and attachment
download links."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.utils.crypto import constant_time_compare, salted_hmac

_SESSION_SALT = "messenger.widget.session"
_ATTACHMENT_SALT = "messenger.attachment"
ATTACHMENT_LINK_MAX_AGE = 7 * 24 * 3600


_VISITOR_SALT = "messenger.widget.visitor"
_SOURCE_SALT = "messenger.widget.source"


@dataclass(frozen=True)
class WidgetSession:
    contact_inbox_id: int | None  # None: a visitor who has not written yet (no contact row)
    inbox_id: int
    pubsub_token: str


def issue_session_token(*, contact_inbox_id: int | None, inbox_id: int, pubsub_token: str) -> str:
    return signing.dumps(
        {"ci": contact_inbox_id or 0, "i": inbox_id, "p": pubsub_token}, salt=_SESSION_SALT, compress=True
    )


def _visitor_mac(raw: str, inbox_id: int) -> str:
    return salted_hmac(_VISITOR_SALT, f"{inbox_id}:{raw}").hexdigest()[:16]


def new_visitor_token(inbox_id: int) -> str:
    """The secret a new visitor's widget keeps (``pubsub_token``) before any row exists: it carries
    its own signature (for this inbox), so bootstrap recognises it on the next page without
    storing anything."""
    raw = secrets.token_urlsafe(24)
    return f"{raw}.{_visitor_mac(raw, inbox_id)}"


def is_visitor_token(token: str, inbox_id: int) -> bool:
    """Whether ``new_visitor_token(inbox_id)`` made ``token`` (with this server's secret)."""
    raw, dot, mac = token.rpartition(".")
    return bool(raw and dot) and len(token) <= 64 and constant_time_compare(mac, _visitor_mac(raw, inbox_id))


def visitor_source_id(token: str) -> str:
    """The visitor id of a visitor token: the same on every page, and not the secret itself."""
    return salted_hmac(_SOURCE_SALT, token).hexdigest()[:32]


def read_session_token(token: str) -> WidgetSession | None:
    """The session inside ``token``, or None when it is forged, malformed or expired."""
    if not isinstance(token, str) or not token or len(token) > 500:
        return None
    try:
        data = signing.loads(token, salt=_SESSION_SALT, max_age=settings.MESSENGER_SESSION_TOKEN_MAX_AGE)
        return WidgetSession(
            contact_inbox_id=int(data["ci"]) or None, inbox_id=int(data["i"]), pubsub_token=str(data["p"])
        )
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
