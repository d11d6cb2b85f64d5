"""Where a waiting visitor stands: position in the branch queue and an expected wait.

The queue of a branch is its open, unassigned conversations in the order the backlog sweep
offers them (``actions.assignment.queue_conversations``): by ``waiting_since`` (none last), then
by creation, then by id. Position 1 is next.

Expected wait (docs/widget.md, "Queue"): the median first-response time (first human reply minus
the conversation's start) of the branch's last ``QUEUE_WAIT_SAMPLE`` conversations first answered
within ``QUEUE_WAIT_WINDOW``, times the position; None when no such conversation exists.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.db.models import F, Q, QuerySet
from django.utils import timezone

from messenger.events import QueuePlace
from messenger.models import Conversation, ConversationStatus

QUEUE_WAIT_SAMPLE = 20
QUEUE_WAIT_WINDOW = timedelta(hours=2)


def waiting_conversations() -> QuerySet[Conversation]:
    """Every branch queue at once, each in its order (branch by branch)."""
    return Conversation.objects.filter(assignee__isnull=True, status=ConversationStatus.OPEN).order_by(
        "branch_id", F("waiting_since").asc(nulls_last=True), "created_at", "pk"
    )


def _ahead_of(conversation: Conversation) -> Q:
    """The conversations of the same queue that come before ``conversation`` (see the module doc)."""
    same_start = Q(created_at__lt=conversation.created_at) | Q(
        created_at=conversation.created_at, pk__lt=conversation.pk
    )
    if conversation.waiting_since is None:
        return Q(waiting_since__isnull=False) | (Q(waiting_since__isnull=True) & same_start)
    return Q(waiting_since__lt=conversation.waiting_since) | (Q(waiting_since=conversation.waiting_since) & same_start)


def queue_position(conversation: Conversation) -> QueuePlace | None:
    """None once someone is assigned (or the conversation is not open)."""
    if conversation.assignee_id or conversation.status != ConversationStatus.OPEN:
        return None
    ahead = (
        Conversation.objects.filter(
            branch_id=conversation.branch_id, assignee__isnull=True, status=ConversationStatus.OPEN
        )
        .filter(_ahead_of(conversation))
        .count()
    )
    return queue_place(ahead + 1, median_first_response(conversation.branch_id))


def queue_place(position: int, median_seconds: float | None) -> QueuePlace:
    return {
        "position": position,
        "expected_wait_seconds": None if median_seconds is None else round(median_seconds * position),
    }


def median_first_response(branch_id: int | None, now: datetime | None = None) -> float | None:
    """The branch's recent first-response time in seconds (the module doc), or None."""
    since = (now or timezone.now()) - QUEUE_WAIT_WINDOW
    answered = list(
        Conversation.objects.filter(branch_id=branch_id, first_reply_created_at__gte=since)
        .order_by("-first_reply_created_at")
        .values_list("created_at", "first_reply_created_at")[:QUEUE_WAIT_SAMPLE]
    )
    if not answered:
        return None
    return statistics.median(max(0.0, (replied - started).total_seconds()) for started, replied in answered)


def branch_places(rows: Iterable[dict[str, Any]], now: datetime | None = None) -> dict[int, QueuePlace]:
    """Conversation id → place, for rows of ``waiting_conversations()`` (``pk`` and ``branch_id``,
    in that order): one query per branch for its expected wait."""
    places: dict[int, QueuePlace] = {}
    position = 0
    branch: Any = object()
    median: float | None = None
    for row in rows:
        if row["branch_id"] != branch:
            branch, position = row["branch_id"], 0
            median = median_first_response(branch, now)
        position += 1
        places[row["pk"]] = queue_place(position, median)
    return places
