"""REST API tokens: created for a staff user, shown once, stored hashed, revoked, and checked on
every request (docs/integrations.md, "Tokens").

Invariants:
* The plaintext is returned once, by ``do_create_api_token``; only its SHA-256 is stored.
* A token acts as its user: whoever may not use the messenger (inactive, no agent profile) gets
  no token, and a token whose user lost that access stops working (``messenger.access``).
* ``last_used_at`` is written at most once per ``LAST_USED_RESOLUTION`` per token, by a
  conditional UPDATE: a busy integration does not write a row per request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from messenger.access import staff_scope
from messenger.actions.base import Actor, audit
from messenger.errors import InvalidInput
from messenger.models import ApiToken

TOKEN_PREFIX = "msg"
LAST_USED_RESOLUTION = timedelta(minutes=1)
# msg_<10 hex>_<43 url-safe characters>: 40 bits to find the row, 256 bits of secret.
TOKEN_RE = re.compile(r"msg_([0-9a-f]{10})_[A-Za-z0-9_-]{43}")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def do_create_api_token(*, user: Any, name: str = "", actor: Actor) -> tuple[ApiToken, str]:
    """A new token for ``user``, and its plaintext (to be shown once; it is not kept)."""
    if staff_scope(user) is None:
        raise InvalidInput(f"{user.get_username()} is not active staff of the messenger (no agent profile).")
    name = (name or "").strip()
    if len(name) > 100:
        raise InvalidInput("name: at most 100 characters")
    for _attempt in range(5):
        prefix = secrets.token_hex(5)
        plaintext = f"{TOKEN_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
        try:
            with transaction.atomic():
                token = ApiToken.objects.create(user=user, name=name, prefix=prefix, token_hash=hash_token(plaintext))
                audit(actor, "api_token.created", target=token, payload={"user": user.pk, "prefix": prefix})
        except IntegrityError:  # a prefix already taken: draw again
            continue
        return token, plaintext
    raise RuntimeError("could not draw a free token prefix")


def do_revoke_api_token(*, token: ApiToken, actor: Actor) -> bool:
    """Revoke ``token`` (False when it was revoked already); it answers 401 from then on."""
    with transaction.atomic():
        now = timezone.now()
        revoked = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now)
        if revoked:
            token.revoked_at = now
            audit(actor, "api_token.revoked", target=token, payload={"user": token.user_id, "prefix": token.prefix})
    return bool(revoked)


def authenticate_api_token(plaintext: str) -> ApiToken | None:
    """The active token ``plaintext`` names, its user loaded (with the agent profile), or None.

    One query, plus an UPDATE of ``last_used_at`` at most once a minute."""
    match = TOKEN_RE.fullmatch(plaintext)
    if match is None:
        return None
    token = (
        ApiToken.objects.select_related("user", "user__agent")
        .filter(prefix=match.group(1), revoked_at__isnull=True)
        .first()
    )
    if token is None or not hmac.compare_digest(token.token_hash, hash_token(plaintext)):
        return None
    now = timezone.now()
    if token.last_used_at is None or token.last_used_at <= now - LAST_USED_RESOLUTION:
        stale = Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_RESOLUTION)
        ApiToken.objects.filter(stale, pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token
