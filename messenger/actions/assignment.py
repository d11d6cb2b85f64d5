"""Assignment: automatic (fair), manual, escalation, transfer, backlog sweep.

Invariants:
* Locks are taken in one order: the conversation row, then the chosen operator's AgentProfile
  row; capacity is re-counted under the profile lock, so parallel assigners never exceed it.
* Fairness: among available operators of the branch under capacity, the fewest open
  conversations wins; ties go to the one assigned longest ago (``AgentProfile.last_assigned_at``).
  The tie-break state lives in the database on purpose, not in Redis: it is written under the
  same row lock that guards capacity and commits or rolls back with the assignment, so every
  process (and the single-process embedded default) reads one consistent truth. A claimer that
  finds the operator's load or ``last_assigned_at`` changed since it ranked the candidates
  re-ranks, so two processes racing never hand the same operator two chats in a row; on
  PostgreSQL ``SKIP LOCKED`` sends a racing claimer straight to the next candidate.
* Every assignment appends its reasons to ``Conversation.routing_log`` and writes an audit row.
* Escalation is a chain: not opened in time → next operator (never the same one), up to
  ``MESSENGER_ESCALATION_MAX_STEPS``; then (or when nobody is eligible) the branch queue with a
  ``supervisor.alert``, and the branch's ``fallback_branch`` when it is open and someone is free.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import F, Func, IntegerField, OuterRef, QuerySet, Subquery
from django.utils import timezone

from messenger import events
from messenger.actions.base import Actor, audit
from messenger.actions.locks import lock_conversation
from messenger.actions.messages import send_automatic_message
from messenger.errors import InvalidInput, NotFound
from messenger.models import AgentProfile, Branch, Conversation, ConversationStatus
from messenger.realtime.broadcast import broadcast_on_commit
from messenger.realtime.eventlog import record_event
from messenger.realtime.groups import STAFF_ALL, branch_group
from messenger.selectors import assignable_profiles, available_profiles

logger = logging.getLogger(__name__)
OPEN_LOAD_STATUSES = (ConversationStatus.OPEN, ConversationStatus.PENDING)
ASSIGNED = "assigned"
CLOSED_HOURS = "closed"
NO_OPERATOR = "no_operator"


def _rate_window(now: datetime) -> tuple[int, int, int] | None:
    """(limit, period seconds, window index) of ``MESSENGER_ASSIGNMENT_RATE_LIMIT``, or None when off."""
    from messenger.protocol import parse_rate

    rate = (settings.MESSENGER_ASSIGNMENT_RATE_LIMIT or "").strip()
    if not rate:
        return None
    limit, period = parse_rate(rate)
    return limit, int(period), int(now.timestamp() // period)


def _rate_key(user_id: int, window: int) -> str:
    return f"assign-rate:{user_id}:{window}"


def rate_limited_user_ids(user_ids: list[int], now: datetime) -> set[int]:
    """Operators who reached the per-operator assignment limit in the current window (cache-backed)."""
    window = _rate_window(now)
    if window is None or not user_ids:
        return set()
    limit, _, index = window
    counts = cache.get_many([_rate_key(user_id, index) for user_id in user_ids])
    return {user_id for user_id in user_ids if counts.get(_rate_key(user_id, index), 0) >= limit}


def _count_assignment(user_id: int, now: datetime) -> None:
    window = _rate_window(now)
    if window is None:
        return
    _, period, index = window
    key = _rate_key(user_id, index)
    # add-then-incr is atomic on Redis; a rolled-back assignment still counts (errs on the safe side).
    cache.add(key, 0, timeout=period * 2)
    try:
        cache.incr(key)
    except ValueError:
        cache.set(key, 1, timeout=period * 2)


def open_load(user_id: Any) -> QuerySet[Conversation]:
    """The conversations that count against ``user_id``'s capacity: open and pending ones."""
    return Conversation.objects.filter(assignee_id=user_id, status__in=OPEN_LOAD_STATUSES)


def _open_load_count(user_id: Any) -> QuerySet[Conversation]:
    """``open_load`` counted, as a one-row subquery.

    Counted in the index on (assignee, status), so only the open ones are read: a count over a
    join of all the operator's conversations grew with every conversation they ever resolved.
    """
    return (
        open_load(user_id)
        .order_by()
        .annotate(open_count=Func(F("pk"), function="COUNT", output_field=IntegerField()))
        .values("open_count")
    )


def eligible_candidates(
    branch_id: int | None, *, exclude_user_ids: set[int] | frozenset[int] = frozenset(), now: datetime | None = None
) -> list[dict[str, Any]]:
    """Available operators of the branch under capacity, with their load, best first (no locks)."""
    if branch_id is None:
        return []
    now = now or timezone.now()
    profiles = list(
        assignable_profiles(now)
        .filter(branch_id=branch_id)
        .exclude(user_id__in=exclude_user_ids)
        .annotate(open_count=Subquery(_open_load_count(OuterRef("user_id"))))
        .order_by("open_count", F("last_assigned_at").asc(nulls_first=True), "user_id")
        .values("pk", "user_id", "open_count", "max_concurrent", "last_assigned_at", "status")
    )
    # Under capacity, compared here: in the query the subquery would be evaluated twice.
    profiles = [row for row in profiles if row["open_count"] < row["max_concurrent"]]
    limited = rate_limited_user_ids([row["user_id"] for row in profiles], now)
    return [
        {
            "profile_id": row["pk"],
            "user_id": row["user_id"],
            "open": row["open_count"],
            "capacity": row["max_concurrent"],
            "status": row["status"],
            "last_assigned_at": events.iso(row["last_assigned_at"]),
        }
        for row in profiles
        if row["user_id"] not in limited
    ]


def _claim(candidate: dict[str, Any], now: datetime, *, wait: bool) -> tuple[str, AgentProfile | None]:
    """Lock the operator's profile, re-check capacity and freshness; mark them as just assigned.

    Answers ("ok", profile), or "busy" (locked by a parallel claimer, only when not waiting),
    "full" (at capacity now) or "stale" (assigned by someone else since the ranking).
    """
    profiles = AgentProfile.objects.select_related("user")
    if wait or not connection.features.has_select_for_update_skip_locked:
        profile = profiles.select_for_update(of=("self",)).filter(pk=candidate["profile_id"]).first()
    else:
        profile = profiles.select_for_update(skip_locked=True, of=("self",)).filter(pk=candidate["profile_id"]).first()
        if profile is None:
            return "busy", None
    if profile is None:
        return "full", None
    load = open_load(profile.user_id).count()
    if load >= profile.max_concurrent:
        return "full", None
    if load != candidate["open"] or events.iso(profile.last_assigned_at) != candidate["last_assigned_at"]:
        return "stale", None
    profile.last_assigned_at = now
    profile.save(update_fields=["last_assigned_at"])
    _count_assignment(profile.user_id, now)
    return "ok", profile


def pick_operator(
    branch_id: int | None, *, now: datetime, exclude_user_ids: set[int] | frozenset[int] = frozenset()
) -> tuple[AgentProfile | None, list[dict[str, Any]], int]:
    """Claim the fairest available operator: (profile or None, the ranking, index picked).

    Must run inside a transaction: the profile lock is held until it commits.
    """
    candidates: list[dict[str, Any]] = []
    for _attempt in range(8):
        candidates = eligible_candidates(branch_id, exclude_user_ids=exclude_user_ids, now=now)
        if not candidates:
            return None, candidates, -1
        outcomes = []
        for index, candidate in enumerate(candidates):
            status, profile = _claim(candidate, now, wait=False)
            if status == "ok":
                return profile, candidates, index
            outcomes.append(status)
            if status == "stale":
                break
        if "stale" in outcomes:
            continue
        busy = [c for c, status in zip(candidates, outcomes, strict=False) if status == "busy"]
        if not busy:
            return None, candidates, -1
        # Everyone free is being claimed right now: wait for the best one, then re-check.
        status, profile = _claim(busy[0], now, wait=True)
        if status == "ok":
            return profile, candidates, candidates.index(busy[0])
    return None, candidates, -1


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
    if assignee is not None and conversation.first_assigned_at is None:
        conversation.first_assigned_at = now  # the reports' queue wait ends (docs/analytics.md)
        fields.append("first_assigned_at")
    if kind in ("escalated", "escalation_queued"):
        conversation.escalation_count += 1
        fields.append("escalation_count")
    conversation.save(update_fields=fields)
    audit(actor, events.ASSIGNMENT_EVENTS[kind].type, target=conversation, conversation=conversation, payload=log_entry)
    record_event(
        conversation,
        lambda: events.assignment_changed(kind, conversation, previous=previous, assignee=assignee, reason=reason),
        public=True,
        now=now,
    )
    return conversation


def try_auto_assign(
    *,
    conversation: Conversation,
    actor: Actor,
    now: datetime | None = None,
    exclude_user_ids: set[int] | None = None,
    kind: str = "assigned",
    extra_reason: dict[str, Any] | None = None,
) -> str:
    """Offer the conversation to the fairest available operator: ASSIGNED, CLOSED_HOURS or NO_OPERATOR.

    Runs inside a transaction with the conversation row locked (or just created).
    """
    from messenger.routing.hours import conversation_is_open

    now = now or timezone.now()
    if not conversation_is_open(conversation, now):
        return CLOSED_HOURS
    profile, candidates, index = pick_operator(
        conversation.branch_id, now=now, exclude_user_ids=frozenset(exclude_user_ids or ())
    )
    if profile is None:
        return NO_OPERATOR
    picked = candidates[index]
    tie = [c["user_id"] for c in candidates if c["open"] == picked["open"]]
    reason = {
        "policy": "fewest open conversations, then longest since last assignment",
        "candidates": candidates[:10],
        "excluded": sorted(exclude_user_ids or ()),
        "tie_break": "round-robin (longest since last assignment)" if len(tie) > 1 else None,
        "picked_index": index,
        **(extra_reason or {}),
    }
    do_assign(conversation=conversation, assignee=profile.user, actor=actor, kind=kind, reason=reason, now=now)
    return ASSIGNED


def do_auto_assign(
    *,
    conversation: Conversation,
    actor: Actor,
    now: datetime | None = None,
    exclude_user_ids: set[int] | None = None,
    kind: str = "assigned",
) -> bool:
    """``try_auto_assign`` answering True when someone took it; False leaves it in the queue."""
    outcome = try_auto_assign(
        conversation=conversation, actor=actor, now=now, exclude_user_ids=exclude_user_ids, kind=kind
    )
    return outcome == ASSIGNED


def do_reassign_if_assignee_away(*, conversation: Conversation, actor: Actor) -> bool:
    """A reopened conversation whose assignee is not available goes to someone who is."""
    if conversation.assignee_id and available_profiles().filter(user_id=conversation.assignee_id).exists():
        return False
    return do_auto_assign(
        conversation=conversation,
        actor=actor,
        exclude_user_ids={conversation.assignee_id} if conversation.assignee_id else None,
        kind="reassigned",
    )


def queue_conversations(branch_id: int | None) -> QuerySet[Conversation]:
    return Conversation.objects.filter(
        branch_id=branch_id, assignee__isnull=True, status=ConversationStatus.OPEN
    ).order_by(F("waiting_since").asc(nulls_last=True), "created_at")


def _lapsed_assignee(conversation: Conversation) -> int | None:
    """Who let the escalation chain run out: the queue does not hand it straight back to them."""
    for entry in reversed(conversation.routing_log or []):
        if entry.get("step") == "escalation_queued":
            return (entry.get("from") or {}).get("id")
        if entry.get("step") in ("assigned", "escalated", "reassigned", "transferred", "unassigned"):
            return None
    return None


def do_backlog_sweep(*, branch_id: int | None, limit: int = 100, now: datetime | None = None) -> int:
    """Offer waiting unassigned conversations of the branch, oldest first, while anyone is free."""
    if branch_id is None:
        return 0
    assigned = 0
    for conversation_id in list(queue_conversations(branch_id).values_list("pk", flat=True)[:limit]):
        with transaction.atomic():
            conversation = lock_conversation(conversation_id)
            if conversation.assignee_id or conversation.status != ConversationStatus.OPEN:
                continue
            lapsed = _lapsed_assignee(conversation)
            outcome = try_auto_assign(
                conversation=conversation,
                actor=Actor.system("backlog"),
                now=now,
                exclude_user_ids={lapsed} if lapsed else None,
                extra_reason={"sweep": "backlog"},
            )
        if outcome == ASSIGNED:
            assigned += 1
        elif outcome == NO_OPERATOR and not lapsed:
            # Nobody is free in this branch: the rest of the queue would get the same answer.
            break
    return assigned


def do_backlog_sweep_all(*, now: datetime | None = None) -> int:
    """Every branch with a queue and at least one available operator (also: hours just opened)."""
    branch_ids = set(
        Conversation.objects.filter(assignee__isnull=True, status=ConversationStatus.OPEN, branch__isnull=False)
        .values_list("branch_id", flat=True)
        .distinct()
    )
    staffed = set(assignable_profiles(now).filter(branch_id__in=branch_ids).values_list("branch_id", flat=True))
    return sum(do_backlog_sweep(branch_id=branch_id, now=now) for branch_id in sorted(branch_ids & staffed))


def schedule_backlog_sweep(branch_id: int | None) -> None:
    """Capacity was freed (resolve, close, snooze): offer the queue once the change commits."""
    if branch_id is None:
        return

    def sweep() -> None:
        try:
            do_backlog_sweep(branch_id=branch_id)
        except Exception:
            # The status change itself committed; the scheduler's sweep retries within seconds.
            logger.exception("backlog sweep after a status change failed")

    transaction.on_commit(sweep)


def do_release_unopened(*, user: Any, reason: str) -> int:
    """The operator became unavailable: their unopened conversations go to someone else now."""
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
            # Re-read under the operator's lock, which ``do_connect`` holds while it registers a
            # socket: an operator back already (a dashboard reload's new socket, connected while
            # the old one's close was handled) keeps their conversations. Released here before
            # that socket commits, they are in the queue its backlog sweep reads after.
            AgentProfile.objects.select_for_update().filter(user_id=user.pk).first()
            if available_profiles().filter(user_id=user.pk).exists():
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
    *,
    conversation: Conversation,
    actor: Actor,
    branch_id: Any = None,
    assignee_id: Any = None,
    why: str = "transfer",
    now: datetime | None = None,
) -> Conversation:
    """To a branch (its first free operator, else its queue) or to a named operator (the branch follows).

    Expects the conversation row locked. Audited, broadcast to the old and the new branch, and a
    staff-only system note in the history.
    """
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
    now = now or timezone.now()
    conversation.branch = target_branch
    conversation.allow_branch_change()
    conversation.save(update_fields=["branch", "updated_at"])
    audit(
        actor,
        "conversation.transferred",
        target=conversation,
        conversation=conversation,
        payload={"from_branch": old_branch_id, "to_branch": target_branch.pk, "to_user": assignee_id, "why": why},
    )
    old_group = (branch_group(old_branch_id),) if old_branch_id != target_branch.pk else ()
    reason = {"reason": why, "from_branch_id": old_branch_id, "to_branch": target_branch.name}
    if target_user is not None:
        do_assign(
            conversation=conversation, assignee=target_user, actor=actor, kind="transferred", reason=reason, now=now
        )
    else:
        outcome = try_auto_assign(
            conversation=conversation, actor=actor, now=now, kind="transferred", extra_reason=reason
        )
        if outcome != ASSIGNED:
            do_assign(
                conversation=conversation,
                assignee=None,
                actor=actor,
                kind="transferred",
                reason={**reason, "queue": True, "why_queued": outcome},
                now=now,
            )
    # The old branch's operators must see it leave their list.
    record_event(
        conversation,
        lambda: events.conversation_changed(conversation, ["branch"], staff_only=True),
        public=False,
        extra_groups=old_group,
    )
    who = events.user_name(target_user) if target_user else target_branch.name
    send_automatic_message(
        conversation=conversation,
        body=f"Transferred to {who}",
        sender_type="system",
        private=True,
        kind="transfer",
        notice={"type": "transferred", "to": who},
    )
    return conversation


def notify_supervisors(*, conversation: Conversation, reason: str, step: int) -> None:
    """An ephemeral ``supervisor.alert`` to supervisors and admins (the staff-wide group), after commit."""
    broadcast_on_commit([STAFF_ALL], events.supervisor_alert_frame(conversation, step=step, reason=reason))


def _fallback_for_escalation(conversation: Conversation, now: datetime) -> Branch | None:
    """The branch's fallback, when open and not already visited by this chain (no ping-pong)."""
    from messenger.routing.hours import branch_is_open

    branch = conversation.branch
    if branch is None or branch.fallback_branch_id is None:
        return None
    fallback = branch.fallback_branch
    visited = {
        entry.get("from_branch_id")
        for entry in conversation.routing_log or []
        if entry.get("reason") == "escalation fallback"
    }
    if not fallback.is_active or fallback.pk in visited or not branch_is_open(fallback, now):
        return None
    if not eligible_candidates(fallback.pk, now=now):
        return None
    return fallback


def _escalate_one(conversation: Conversation, *, now: datetime) -> str:
    """One step of the chain for a locked, due conversation: "escalated", "queued" or "fallback"."""
    actor = Actor.system("escalation")
    previous = conversation.assignee
    timeout = escalation_timeout(conversation)
    step = conversation.escalation_count + 1
    max_steps = settings.MESSENGER_ESCALATION_MAX_STEPS
    base = {
        "escalation_step": step,
        "reason": f"not opened within {timeout} s",
        "deadline": events.iso(conversation.escalation_deadline),
    }
    if step <= max_steps:
        outcome = try_auto_assign(
            conversation=conversation,
            actor=actor,
            now=now,
            exclude_user_ids={previous.pk} if previous else None,
            kind="escalated",
            extra_reason=base,
        )
        if outcome == ASSIGNED:
            send_automatic_message(
                conversation=conversation,
                body=(
                    f"Escalated from {events.user_name(previous)} to {events.user_name(conversation.assignee)}: "
                    f"not opened within {timeout} s"
                ),
                sender_type="system",
                private=True,
                kind="escalation",
                notice={
                    "type": "escalated",
                    "from": events.user_name(previous),
                    "to": events.user_name(conversation.assignee),
                    "timeout": timeout,
                },
            )
            return "escalated"
        why = "outside working hours" if outcome == CLOSED_HOURS else "no eligible operator"
    else:
        why = f"{max_steps} escalation steps without an answer"
    do_assign(
        conversation=conversation,
        assignee=None,
        actor=actor,
        kind="escalation_queued",
        reason={**base, "queue": True, "why": why},
        now=now,
    )
    notify_supervisors(conversation=conversation, reason=why, step=step)
    send_automatic_message(
        conversation=conversation,
        body=f"Not opened by {events.user_name(previous)}; back in the branch queue ({why}). Supervisors alerted.",
        sender_type="system",
        private=True,
        kind="escalation",
        notice={"type": "queued", "from": events.user_name(previous), "why": why},
    )
    fallback = _fallback_for_escalation(conversation, now)
    if fallback is not None:
        do_transfer(conversation=conversation, actor=actor, branch_id=fallback.pk, why="escalation fallback", now=now)
        return "fallback"
    return "queued"


def do_escalate_due(*, now: datetime | None = None, limit: int = 200) -> int:
    """Conversations whose assignee did not open them in time move one step along the chain.

    Safe with several workers: each row is locked and the deadline re-checked under the lock, and
    every step clears or moves the deadline, so a second worker finds nothing to do.
    """
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
                or conversation.status != ConversationStatus.OPEN
            ):
                continue
            _escalate_one(conversation, now=now)
            escalated += 1
    return escalated
