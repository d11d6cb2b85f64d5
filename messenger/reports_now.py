"""The reports page's live "now" panel (docs/analytics.md, "Now"): conversations waiting for an
answer and the longest wait, open conversations per operator, and who is connected with which
status — read from the database at the moment of the call, within the caller's ``StaffScope``
exactly as the reports are (a supervisor or admin everything, an operator their own).

Four queries whatever the number of rows (plus one per filter to check it is in reach): the
conversation counts (one aggregate), the longest-waiting conversation, the open and waiting
conversations per assignee (one grouped query), and the staff with a live socket or an open
conversation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from messenger import events
from messenger.access import StaffScope, visible_conversations
from messenger.models import AgentConnection, AgentStatus, Conversation
from messenger.models.conversation import ACTIVE_STATUSES
from messenger.reports import check_filters
from messenger.selectors import live_cutoff

PRESENT = (AgentStatus.ONLINE, AgentStatus.AWAY, AgentStatus.BUSY)
# The conversation list marks these rows "waiting …" (dashboard.js): an active conversation whose
# visitor wrote after the last human reply. A human reply, a resolution or a close clears it.
WAITING = Q(status__in=ACTIVE_STATUSES, waiting_since__isnull=False)
OPEN = Q(status__in=ACTIVE_STATUSES)


@dataclass(frozen=True)
class NowParams:
    branch: int | None = None
    inbox: int | None = None


def check_params(scope: StaffScope, values: dict[str, Any]) -> NowParams:
    """The filters, each naming a row in the caller's reach, else ``NotFound`` (the reports' own
    check, ``reports.check_filters``)."""
    branch, inbox = values.get("branch"), values.get("inbox")
    check_filters(scope, branch=branch, inbox=inbox)
    return NowParams(branch=branch, inbox=inbox)


def _conversations(scope: StaffScope, params: NowParams) -> QuerySet[Conversation]:
    """In reach as the reports define it: an operator's own (assigned to them), all for the others."""
    queryset = visible_conversations(scope)
    if not scope.sees_all:
        queryset = queryset.filter(assignee_id=scope.user_id)
    if params.branch is not None:
        queryset = queryset.filter(branch_id=params.branch)
    if params.inbox is not None:
        queryset = queryset.filter(inbox_id=params.inbox)
    return queryset


def now(scope: StaffScope, params: NowParams | None = None, *, at: datetime | None = None) -> dict[str, Any]:
    """The panel's figures at ``at`` (default: now). Four queries."""
    params = params or NowParams()
    at = at or timezone.now()
    conversations = _conversations(scope, params).order_by()
    counts = conversations.aggregate(
        waiting=Count("id", filter=WAITING),
        waiting_unassigned=Count("id", filter=WAITING & Q(assignee__isnull=True)),
        open=Count("id", filter=OPEN),
        open_unassigned=Count("id", filter=OPEN & Q(assignee__isnull=True)),
    )
    oldest = (
        conversations.filter(WAITING)
        .order_by("waiting_since", "id")
        .values("id", "waiting_since", "assignee_id", "branch_id", "inbox_id")
        .first()
    )
    per_assignee = {
        row["assignee_id"]: row
        for row in conversations.filter(OPEN, assignee__isnull=False)
        .values("assignee_id")
        .annotate(open=Count("id"), waiting=Count("id", filter=WAITING))
        .order_by()
    }
    staff = _staff(scope, params, set(per_assignee), at)
    operators = []
    for user in staff:
        profile = getattr(user, "agent", None)
        connected = bool(user.connected)
        manual = profile.status if profile is not None else AgentStatus.OFFLINE
        loads = per_assignee.get(user.pk, {})
        operators.append(
            {
                "id": user.pk,
                "name": events.user_name(user),
                "role": profile.role if profile is not None else ("admin" if user.is_superuser else ""),
                "branch_id": profile.branch_id if profile is not None else None,
                "status": manual if connected and manual in PRESENT else AgentStatus.OFFLINE,
                "connected": connected,
                "open": loads.get("open", 0),
                "waiting": loads.get("waiting", 0),
                "max_concurrent": profile.max_concurrent if profile is not None else None,
            }
        )
    operators.sort(key=lambda row: (row["status"] == AgentStatus.OFFLINE, row["name"].lower(), row["id"]))
    present = {status: sum(1 for row in operators if row["status"] == status) for status in PRESENT}
    longest = None
    if oldest is not None:
        longest = {
            "conversation_id": oldest["id"],
            "since": oldest["waiting_since"],
            "seconds": round(max(0.0, (at - oldest["waiting_since"]).total_seconds()), 3),
            "assignee_id": oldest["assignee_id"],
            "branch_id": oldest["branch_id"],
            "inbox_id": oldest["inbox_id"],
        }
    return {
        "at": at,
        "filters": {"branch": params.branch, "inbox": params.inbox},
        "waiting": {
            "count": counts["waiting"],
            "unassigned": counts["waiting_unassigned"],
            "longest": longest,
        },
        "open": {"count": counts["open"], "unassigned": counts["open_unassigned"]},
        "present": present,
        "operators": operators,
    }


def _staff(scope: StaffScope, params: NowParams, assignees: set[int], at: datetime) -> list[Any]:
    """Staff with a live socket (a heartbeat within ``MESSENGER_PRESENCE_TIMEOUT_SECONDS``, as the
    dashboard's operator list and automatic assignment count it), or with an open conversation in
    the panel; an operator sees only themself; a branch filter keeps the staff of that branch (and
    the assignees of its conversations). One query."""
    live = AgentConnection.objects.filter(user_id=OuterRef("pk"), last_heartbeat__gte=live_cutoff(at))
    users = get_user_model().objects.annotate(connected=Exists(live)).select_related("agent")
    connected = Q(connected=True, is_active=True, agent__isnull=False)
    if params.branch is not None:
        connected &= Q(agent__branch_id=params.branch)
    users = users.filter(connected | Q(pk__in=assignees))
    if not scope.sees_all:
        users = users.filter(pk=scope.user_id)
    return list(users)
