"""Group names: short, ASCII, one function each. Groups are not presence (they cannot be listed)."""

from __future__ import annotations

# The consumer handler every group frame is addressed to (``BaseConsumer.fanout``).
FANOUT_HANDLER = "fanout"

# Supervisor-only frames (alerts). Conversation events are not sent here: supervisors join every
# branch group instead, which saves one publish per event.
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


def visitor_session_group(source_id: str) -> str:
    """Every tab of one visitor, before and after their rows exist: invitations, and the news that
    another tab made the rows (``actions.contacts.do_become_contact``)."""
    return f"s.{source_id}"


def inbox_group(inbox_id: int) -> str:
    """Every widget of an inbox: operator availability."""
    return f"i.{inbox_id}"


def staff_groups(branch_id: int | None) -> list[str]:
    """Where staff frames of a conversation go: its branch group (supervisors are in all of them)."""
    return [branch_group(branch_id)]


def supervisor_groups(branch_ids: list[int]) -> list[str]:
    return [STAFF_ALL, branch_group(None), *(branch_group(branch_id) for branch_id in branch_ids)]
