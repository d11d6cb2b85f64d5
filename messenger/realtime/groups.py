"""Group names: short, ASCII, one function each. Groups are not presence (they cannot be listed)."""

from __future__ import annotations

STAFF_ALL = "staff"


def branch_group(branch_id: int | None) -> str:
    """Staff stream of every conversation of a branch (operators of that branch)."""
    return f"b.{branch_id}" if branch_id else "b.none"


def user_group(user_id: int) -> str:
    """Personal frames of one operator (all their sockets)."""
    return f"u.{user_id}"


def visitor_group(contact_inbox_id: int) -> str:
    """Visitor stream of one visitor (all their tabs)."""
    return f"v.{contact_inbox_id}"


def inbox_group(inbox_id: int) -> str:
    """Every widget of an inbox: operator availability."""
    return f"i.{inbox_id}"


def staff_groups(branch_id: int | None) -> list[str]:
    return [branch_group(branch_id), STAFF_ALL]
