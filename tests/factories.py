"""Plain factory functions for tests (no factory library: a few lines each)."""

from __future__ import annotations

import itertools
from typing import Any

from django.contrib.auth import get_user_model

from messenger.models import AgentProfile, AgentRole, AgentStatus, Branch, Inbox

_counter = itertools.count(1)

VISITOR_ORIGIN = "http://localhost"


def make_branch(name: str | None = None, **fields: Any) -> Branch:
    return Branch.objects.create(name=name or f"Branch {next(_counter)}", **fields)


def make_inbox(
    branch: Branch | None = None, *, allowed: list[str] | None = None, settings: dict | None = None, **fields: Any
) -> Inbox:
    merged = {"security": {"allowed_domains": allowed if allowed is not None else ["localhost"]}}
    for key, value in (settings or {}).items():
        merged[key] = value
    return Inbox.objects.create(
        name=fields.pop("name", f"Inbox {next(_counter)}"), branch=branch, settings=merged, **fields
    )


def make_user(
    username: str | None = None,
    *,
    role: str = AgentRole.OPERATOR,
    branch: Branch | None = None,
    status: str = AgentStatus.ONLINE,
    max_concurrent: int = 5,
    **fields: Any,
):
    username = username or f"user{next(_counter)}"
    user = get_user_model().objects.create_user(
        username=username, password="pw-" + username, first_name=fields.pop("first_name", username.title()), **fields
    )
    AgentProfile.objects.create(user=user, role=role, branch=branch, status=status, max_concurrent=max_concurrent)
    return user
