"""What the reports measure per conversation (docs/analytics.md, "Where the figures come from").

The columns ``first_visitor_message_at``, ``first_reply_created_at``, ``counted_messages``,
``first_assigned_at`` and ``first_resolved_at`` are kept as things happen: the send path sets the
first three in the UPDATE it already makes (``messages._send_assignments``), ``assignment.do_assign``
and ``conversations.do_change_status`` the other two. ``first_response_working_seconds`` needs the
schedule, so it is filled by a scheduler job, ``do_fill_working_seconds``, within a tick of the reply.

``do_rebuild_report_facts`` recomputes every column from the messages and the audit log: the
migration that added them runs it, ``manage.py rebuild_report_facts`` runs it after an import, and
the tests compare what the actions kept with it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Count, Min, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from messenger.models import ActivityEvent, Branch, Conversation, ConversationStatus, Inbox, Message
from messenger.routing.hours import schedule_open_seconds

ASSIGNING = ("assignment.assigned", "assignment.reassigned", "assignment.escalated", "assignment.transferred")
WORKING_BATCH = 2000


def counted_message_q(prefix: str = "") -> Q:
    """A visitor message or a human reply (bots, system messages and notes are not)."""
    return Q(**{f"{prefix}direction": "in"}) | Q(**{f"{prefix}direction": "out", f"{prefix}sender_type": "user"})


def _first(queryset: QuerySet[Any], aggregate: Any) -> Subquery:
    return Subquery(queryset.order_by().values("conversation_id").annotate(value=aggregate).values("value")[:1])


def do_rebuild_report_facts(
    conversations: QuerySet[Conversation] | None = None,
    *,
    models: tuple[type, type, type] = (Conversation, Message, ActivityEvent),
) -> int:
    """Recompute the report columns of ``conversations`` (all by default) from their messages and
    audit rows, in one UPDATE; the working-hours first response is cleared for the job to fill.
    ``models`` lets the migration pass its historical ones. Returns the number of rows."""
    conversation_model, message_model, audit_model = models
    queryset = conversations if conversations is not None else conversation_model.objects.all()
    messages = message_model.objects.filter(conversation_id=OuterRef("pk"))
    audit = audit_model.objects.filter(conversation_id=OuterRef("pk"))
    counted = messages.filter(counted_message_q())
    return queryset.update(
        first_visitor_message_at=_first(messages.filter(direction="in"), Min("created_at")),
        first_reply_created_at=_first(messages.filter(direction="out", sender_type="user"), Min("created_at")),
        counted_messages=Coalesce(_first(counted, Count("id")), 0)
        - Coalesce(_first(counted.filter(content_attributes__deleted=True), Count("id")), 0),
        first_assigned_at=_first(
            audit.filter(verb__in=ASSIGNING, payload__to__isnull=False).exclude(payload__to=None), Min("created_at")
        ),
        first_resolved_at=_first(
            audit.filter(verb="conversation.status", payload__to=ConversationStatus.RESOLVED), Min("created_at")
        ),
        first_response_working_seconds=None,
    )


def working_seconds(
    inbox: Inbox, branches: dict[int, Branch], branch_id: int | None, start: datetime, end: datetime
) -> float:
    """Open seconds of [start, end) by the conversation's schedule (docs/analytics.md, "Working
    hours"): the inbox's hours, or its current branch's with ``use_branch_hours``; none: all."""
    hours = inbox.effective_settings["working_hours"]
    if not hours["enabled"]:
        return (end - start).total_seconds()
    if hours["use_branch_hours"]:
        branch = branches.get(branch_id) if branch_id else None
        if branch is None or not branch.working_hours:
            return (end - start).total_seconds()
        return schedule_open_seconds(
            branch.working_hours, [], branch.timezone, start, end, calendar=branch.holiday_calendar
        )
    inbox_branch = branches.get(inbox.branch_id) if inbox.branch_id else None
    tz_name = hours["timezone"] or (inbox_branch.timezone if inbox_branch else "UTC")
    return schedule_open_seconds(hours["days"], hours["holidays"], tz_name, start, end)


def pending_working_seconds() -> QuerySet[Conversation]:
    """Conversations with a first visitor message and a first human reply whose working-hours
    first response is not computed yet (a partial index holds exactly these)."""
    return Conversation.objects.filter(
        first_response_working_seconds__isnull=True,
        first_reply_created_at__isnull=False,
        first_visitor_message_at__isnull=False,
    )


def do_fill_working_seconds(limit: int = WORKING_BATCH) -> int:
    """Tick job: compute the working-hours first response of up to ``limit`` conversations answered
    since the last pass. A reply before the visitor wrote (a proactive conversation) has no first
    response: it stores 0. Two passes at once compute the same values. Returns the rows written."""
    rows = list(
        pending_working_seconds()
        .order_by("pk")
        .values_list("pk", "inbox_id", "branch_id", "first_visitor_message_at", "first_reply_created_at")[:limit]
    )
    if not rows:
        return 0
    inboxes = {inbox.pk: inbox for inbox in Inbox.objects.filter(pk__in={row[1] for row in rows})}
    branches = {branch.pk: branch for branch in Branch.objects.all()}
    updates = []
    for pk, inbox_id, branch_id, first_in, first_reply in rows:
        seconds = 0.0
        if first_reply >= first_in:
            seconds = working_seconds(inboxes[inbox_id], branches, branch_id, first_in, first_reply)
        updates.append(Conversation(pk=pk, first_response_working_seconds=round(seconds, 3)))
    Conversation.objects.bulk_update(updates, ["first_response_working_seconds"], batch_size=500)
    return len(updates)
