"""Assignment: automatic (fair), manual, escalation, transfer, backlog sweep.

Invariants:
* Locks are taken in one order: the conversation row, then the chosen operator's AgentProfile
  row; capacity is re-counted under the profile lock, so parallel assigners never exceed it.
* Fairness: among available operators of the branch under capacity, the fewest open
  conversations wins; ties go to the one assigned longest ago (``last_assigned_at``, shared by
  every process through the database).
* Every assignment appends its reasons to ``Conversation.routing_log`` and writes an audit row.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from messenger import events
from messenger.actions.base import Actor, audit
from messenger.errors import InvalidInput, NotFound
from messenger.models import AgentProfile, AgentRole, Branch, Conversation, ConversationStatus
from messenger.realtime.eventlog import PublicPart, record_event
from messenger.realtime.groups import branch_group

OPEN_LOAD_STATUSES = (ConversationStatus.OPEN, ConversationStatus.PENDING)


def _load_filter() -> Q:
    return Q(assigned_conversations__status__in=OPEN_LOAD_STATUSES)


def eligible_candidates(
    branch_id: int | None, *, exclude_user_ids: set[int] | frozenset[int] = frozenset(), now: datetime | None = None
) -> list[dict[str, Any]]:
    """Available operators of the branch, with their load, best first (no locks)."""
    from messenger.actions.presence import available_profiles

    if branch_id is None:
        return []
    profiles = (
        available_profiles(now)
        .filter(branch_id=branch_id, role=AgentRole.OPERATOR)
        .exclude(user_id__in=exclude_user_ids)
        .annotate(
            open_count=Count(
                "user__assigned_conversations", filter=Q(user__assigned_conversations__status__in=OPEN_LOAD_STATUSES)
            )
        )
        .filter(open_count__lt=F("max_concurrent"))
        .order_by("open_count", F("last_assigned_at").asc(nulls_first=True), "user_id")
        .values("pk", "user_id", "open_count", "max_concurrent", "last_assigned_at")
    )
    return [
        {
            "profile_id": row["pk"],
            "user_id": row["user_id"],
            "open": row["open_count"],
            "capacity": row["max_concurrent"],
            "last_assigned_at": events.iso(row["last_assigned_at"]),
        }
        for row in profiles
    ]


def _claim(candidate: dict[str, Any], now: datetime) -> AgentProfile | None:
    """Lock the operator's profile and re-check capacity; mark them as just assigned."""
    profile = AgentProfile.objects.select_for_update().select_related("user").get(pk=candidate["profile_id"])
    load = Conversation.objects.filter(assignee_id=profile.user_id, status__in=OPEN_LOAD_STATUSES).count()
    if load >= profile.max_concurrent:
        return None
    profile.last_assigned_at = now
    profile.save(update_fields=["last_assigned_at"])
    return profile


def escalation_timeout(conversation: Conversation) -> int:
    return int(conversation.inbox.effective_settings["escalation"]["timeout_seconds"])


def do_assign(
    *,
    conversation: Conversation,
    assignee: Any,
    actor: Actor,
    kind: str = "assigned",
    reason: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> Conversation:
    """Set (or clear) the assignee. Expects the conversation row locked."""
    now = now or timezone.now()
    previous = conversation.assignee
    conversation.assignee = assignee
    conversation.assignee_assigned_at = now if assignee else None
    conversation.assignee_opened_at = None
    conversation.escalation_deadline = now + timedelta(seconds=escalation_timeout(conversation)) if assignee else None
    log_entry = {
        "step": kind,
        "at": events.iso(now),
        "to": events.user_brief(assignee),
        "from": events.user_brief(previous),
        **(reason or {}),
    }
    conversation.routing_log = [*(conversation.routing_log or []), log_entry][-50:]
    fields = [
        "assignee",
        "assignee_assigned_at",
        "assignee_opened_at",
        "escalation_deadline",
        "routing_log",
        "updated_at",
    ]
    if kind == "escalated":
        conversation.escalation_count += 1
        fields.append("escalation_count")
    conversation.save(update_fields=fields)
    audit(actor, f"assignment.{kind}", target=conversation, conversation=conversation, payload=log_entry)
    staff = {
        "from": events.user_brief(previous),
        "to": events.user_brief(assignee),
        "reason": reason or {},
        "conversation": events.conversation_staff(conversation),
    }
    record_event(
        conversation,
        type=f"assignment.{kind}",
        data=staff,
        public=PublicPart(
            type="conversation.updated",
            data={"changes": ["assignee"], "conversation": events.conversation_public(conversation)},
        ),
        now=now,
    )
    return conversation


def do_auto_assign(
    *,
    conversation: Conversation,
    actor: Actor,
    now: datetime | None = None,
    exclude_user_ids: set[int] | None = None,
    kind: str = "assigned",
) -> bool:
    """Offer the conversation to the fairest available operator; False leaves it in the queue.

    Runs inside a transaction with the conversation row locked (or just created).
    """
    from messenger.routing.hours import inbox_is_open

    now = now or timezone.now()
    if not inbox_is_open(conversation.inbox, now):
        return False
    excluded = set(exclude_user_ids or ())
    candidates = eligible_candidates(conversation.branch_id, exclude_user_ids=excluded, now=now)
    for index, candidate in enumerate(candidates):
        profile = _claim(candidate, now)
        if profile is None:
            continue
        tie = [c["user_id"] for c in candidates if c["open"] == candidate["open"]]
        reason = {
            "policy": "fewest open conversations, then longest since last assignment",
            "candidates": candidates[:10],
            "tie_break": "round-robin" if len(tie) > 1 else None,
            "picked_index": index,
        }
        do_assign(conversation=conversation, assignee=profile.user, actor=actor, kind=kind, reason=reason, now=now)
        return True
    return False


def do_reassign_if_assignee_away(*, conversation: Conversation, actor: Actor) -> bool:
    """A reopened conversation whose assignee is not available goes to someone who is."""
    from messenger.actions.presence import available_profiles

    if conversation.assignee_id and available_profiles().filter(user_id=conversation.assignee_id).exists():
        return False
    return do_auto_assign(
        conversation=conversation,
        actor=actor,
        exclude_user_ids={conversation.assignee_id} if conversation.assignee_id else None,
        kind="reassigned",
    )


def queue_conversations(branch_id: int | None):  # type: ignore[no-untyped-def]
    return Conversation.objects.filter(
        branch_id=branch_id, assignee__isnull=True, status=ConversationStatus.OPEN
    ).order_by(F("waiting_since").asc(nulls_last=True), "created_at")


def do_backlog_sweep(*, branch_id: int | None, limit: int = 100) -> int:
    """Offer waiting unassigned conversations of the branch, oldest first, while anyone is free."""
    from messenger.actions.conversations import lock_conversation

    if branch_id is None:
        return 0
    assigned = 0
    for conversation_id in list(queue_conversations(branch_id).values_list("pk", flat=True)[:limit]):
        with transaction.atomic():
            conversation = lock_conversation(conversation_id)
            if conversation.assignee_id or conversation.status != ConversationStatus.OPEN:
                continue
            if not do_auto_assign(conversation=conversation, actor=Actor.system("backlog")):
                break
            assigned += 1
    return assigned


def do_release_unopened(*, user: Any, reason: str) -> int:
    """The operator became unavailable: their unopened conversations go to someone else now."""
    from messenger.actions.conversations import lock_conversation

    moved = 0
    ids = list(
        Conversation.objects.filter(
            assignee=user, assignee_opened_at__isnull=True, status=ConversationStatus.OPEN
        ).values_list("pk", flat=True)
    )
    for conversation_id in ids:
        with transaction.atomic():
            conversation = lock_conversation(conversation_id)
            if conversation.assignee_id != user.pk or conversation.assignee_opened_at is not None:
                continue
            if do_auto_assign(
                conversation=conversation, actor=Actor.system("presence"), exclude_user_ids={user.pk}, kind="reassigned"
            ):
                moved += 1
            else:
                do_assign(
                    conversation=conversation,
                    assignee=None,
                    actor=Actor.system("presence"),
                    kind="unassigned",
                    reason={"reason": reason},
                )
    return moved


def do_manual_assign(*, conversation: Conversation, assignee_id: Any, actor: Actor) -> Conversation:
    """An operator or supervisor picks the assignee (or None to unassign). Expects the row locked."""
    if assignee_id is None:
        return do_assign(
            conversation=conversation, assignee=None, actor=actor, kind="unassigned", reason={"reason": "manual"}
        )
    if not isinstance(assignee_id, int) or isinstance(assignee_id, bool):
        raise InvalidInput("assignee_id: an integer or null")
    profile = AgentProfile.objects.select_related("user").filter(user_id=assignee_id, user__is_active=True).first()
    if profile is None:
        raise NotFound("No such operator.")
    if profile.branch_id != conversation.branch_id:
        return do_transfer(conversation=conversation, actor=actor, assignee_id=assignee_id)
    return do_assign(
        conversation=conversation, assignee=profile.user, actor=actor, kind="assigned", reason={"reason": "manual"}
    )


def do_transfer(
    *, conversation: Conversation, actor: Actor, branch_id: Any = None, assignee_id: Any = None
) -> Conversation:
    """To a branch (its first free operator, else its queue) or to a named operator (the branch follows)."""
    from messenger.actions.messages import send_automatic_message

    old_branch_id = conversation.branch_id
    if assignee_id is not None:
        if not isinstance(assignee_id, int) or isinstance(assignee_id, bool):
            raise InvalidInput("assignee_id: an integer")
        profile = (
            AgentProfile.objects.select_related("user", "branch")
            .filter(user_id=assignee_id, user__is_active=True)
            .first()
        )
        if profile is None or profile.branch_id is None:
            raise NotFound("No such operator.")
        target_branch, target_user = profile.branch, profile.user
    elif branch_id is not None:
        if not isinstance(branch_id, int) or isinstance(branch_id, bool):
            raise InvalidInput("branch_id: an integer")
        target_branch = Branch.objects.filter(pk=branch_id, is_active=True).first()
        if target_branch is None:
            raise NotFound("No such branch.")
        target_user = None
    else:
        raise InvalidInput("branch_id or assignee_id is required")
    now = timezone.now()
    conversation.branch = target_branch
    conversation.allow_branch_change()
    conversation.save(update_fields=["branch", "updated_at"])
    audit(
        actor,
        "conversation.transferred",
        target=conversation,
        conversation=conversation,
        payload={"from_branch": old_branch_id, "to_branch": target_branch.pk, "to_user": assignee_id},
    )
    old_group = (branch_group(old_branch_id),) if old_branch_id != target_branch.pk else ()
    reason = {"reason": "transfer", "from_branch": old_branch_id, "to_branch": target_branch.name}
    if target_user is not None:
        do_assign(
            conversation=conversation, assignee=target_user, actor=actor, kind="transferred", reason=reason, now=now
        )
    elif not do_auto_assign(conversation=conversation, actor=actor, now=now, kind="transferred"):
        do_assign(
            conversation=conversation,
            assignee=None,
            actor=actor,
            kind="transferred",
            reason={**reason, "queue": True},
            now=now,
        )
    # The old branch's operators must see it leave their list.
    record_event(
        conversation,
        type="conversation.updated",
        data={"changes": ["branch"], "conversation": events.conversation_staff(conversation)},
        extra_groups=old_group,
    )
    who = events.user_name(target_user) if target_user else target_branch.name
    send_automatic_message(
        conversation=conversation, body=f"Transferred to {who}", sender_type="system", private=True, kind="transfer"
    )
    return conversation


def do_escalate_due(*, now: datetime | None = None, limit: int = 200) -> int:
    """Conversations whose assignee did not open them in time go to the next operator."""
    from messenger.actions.conversations import lock_conversation

    now = now or timezone.now()
    escalated = 0
    due = list(
        Conversation.objects.filter(
            escalation_deadline__lte=now, assignee_opened_at__isnull=True, status=ConversationStatus.OPEN
        )
        .order_by("escalation_deadline")
        .values_list("pk", flat=True)[:limit]
    )
    for conversation_id in due:
        with transaction.atomic():
            conversation = lock_conversation(conversation_id)
            # Re-checked under the lock: another worker may have escalated it, or it was opened.
            if (
                conversation.escalation_deadline is None
                or conversation.escalation_deadline > now
                or conversation.assignee_opened_at is not None
            ):
                continue
            previous = conversation.assignee_id
            if do_auto_assign(
                conversation=conversation,
                actor=Actor.system("escalation"),
                now=now,
                exclude_user_ids={previous} if previous else None,
                kind="escalated",
            ):
                escalated += 1
            else:
                conversation.escalation_deadline = None
                conversation.save(update_fields=["escalation_deadline", "updated_at"])
                audit(
                    Actor.system("escalation"),
                    "assignment.escalation_exhausted",
                    target=conversation,
                    conversation=conversation,
                )
    return escalated


def user_by_id(user_id: int) -> Any:
    return get_user_model().objects.filter(pk=user_id).first()
