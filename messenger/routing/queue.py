"""Where a waiting visitor stands: position in the branch queue and an expected wait."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Avg, DurationField, ExpressionWrapper, F
from django.utils import timezone

from messenger.models import Conversation, ConversationStatus


def queue_position(conversation: Conversation) -> dict[str, Any] | None:
    """None once someone is assigned (or the conversation is not open)."""
    if conversation.assignee_id or conversation.status != ConversationStatus.OPEN:
        return None
    waiting_since = conversation.waiting_since or conversation.created_at
    ahead = (
        Conversation.objects.filter(
            branch_id=conversation.branch_id,
            assignee__isnull=True,
            status=ConversationStatus.OPEN,
            waiting_since__lt=waiting_since,
        )
        .exclude(pk=conversation.pk)
        .count()
    )
    return {"position": ahead + 1, "expected_wait_seconds": expected_wait_seconds(conversation.branch_id, ahead + 1)}


def expected_wait_seconds(branch_id: int | None, position: int) -> int | None:
    """Average first-response time of the branch over the last day, times the position."""
    since = timezone.now() - timedelta(days=1)
    average = (
        Conversation.objects.filter(branch_id=branch_id, first_reply_created_at__gte=since)
        .annotate(wait=ExpressionWrapper(F("first_reply_created_at") - F("created_at"), output_field=DurationField()))
        .aggregate(avg=Avg("wait"))["avg"]
    )
    if average is None:
        return None
    return int(average.total_seconds() * position)
