"""Staff logins. The lockout itself is django-axes' (``AXES_*`` in settings: failures counted per
user name and client address, a cool-off, ``axes_reset*`` commands to unlock); here is its audit.

One audit row per lockout, not per refused attempt: an attacker who keeps trying while locked out
would otherwise write a row per guess.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model

from messenger.actions.base import Actor, audit
from messenger.models import ActivityEvent

LOCKOUT_VERB = "staff.login_locked_out"


def do_record_login_lockout(*, username: str, ip: str | None, path: str, failures: int) -> ActivityEvent:
    """Audit row ``staff.login_locked_out``: the user name as typed (the user as target when one
    has it), the client address (``client_address``: a valid address or None), the login path and
    the count of failures that locked it."""
    username = username.replace("\x00", "")[:150]
    user: Any = get_user_model()._default_manager.filter(**{get_user_model().USERNAME_FIELD: username}).first()
    return audit(
        Actor(label="login", ip=ip),
        LOCKOUT_VERB,
        target=user,
        payload={"username": username, "path": path[:200], "failures": failures},
    )
