"""Live visitors and invitations: the visit a page view belongs to, an operator's invitation, the
proactive triggers of an inbox (docs/widget.md, "Invitations"; docs/dashboard.md, "Visitors").

Invariants:
* Nothing here writes a database row but the audit row of an operator's invitation: the visit,
  the live list (``messenger.realtime.visitors``), pending invitations, the daily limit of
  automatic ones and "the visitor closed the widget" live in the cache (Redis in production),
  keyed by the visitor id (``source_id``), which a visitor has before they have rows.
* A visit is the page views of one visitor with less than ``VISIT_IDLE_SECONDS`` between them;
  ``returning`` says the visitor's session existed before this visit began.
* An operator's invitation waits ``INVITATION_SECONDS`` for the visitor's answer: the conversation
  that answer starts is assigned to that operator (``intake.visitor_conversation``), unless the
  visitor started another conversation since they were invited (their own first message crossed
  the invitation): then it is void.
* An automatic invitation reaches a visitor at most once a day (whichever trigger), never once
  they closed the widget, never while they chat, never a blocked contact, and never outside working hours when the trigger
  says so; every condition is checked again when it fires.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.utils import timezone

from messenger import events, formatting, throttle
from messenger.access import StaffScope
from messenger.actions.base import Actor, audit
from messenger.errors import Conflict, Forbidden, InvalidInput, NotFound
from messenger.models import Contact, ContactInbox, Conversation, Inbox, ProactiveTrigger, TriggerKind
from messenger.models.conversation import ACTIVE_STATUSES
from messenger.realtime import visitors as live
from messenger.realtime.broadcast import broadcast_on_commit
from messenger.realtime.groups import visitor_session_group

VISIT_IDLE_SECONDS = 30 * 60
INVITATION_SECONDS = 60 * 60
AUTOMATIC_EVERY_SECONDS = 24 * 60 * 60
CLOSED_SECONDS = 30 * 24 * 60 * 60
INVITATION_MAX_LENGTH = 2000


class Visit(TypedDict):
    started_at: float
    last_at: float
    page_started_at: float
    pages: int
    url: str
    title: str
    referrer: str
    returning: bool
    country: str
    region: str


def _visit_key(visitor_id: str) -> str:
    return f"visitors:visit:{visitor_id}"


def _invitation_key(visitor_id: str) -> str:
    return f"visitors:invitation:{visitor_id}"


def _automatic_key(visitor_id: str) -> str:
    return f"visitors:automatic:{visitor_id}"


def _closed_key(visitor_id: str) -> str:
    return f"visitors:closed:{visitor_id}"


def _geography(ip: str | None) -> tuple[str, str]:
    """(country ISO code, region name) of the client address; empty when unknown."""
    from messenger.routing.geo import lookup_codes, lookup_region

    codes = lookup_codes(ip)
    if not codes:
        return "", ""
    region, _ = lookup_region(ip)
    return codes[-1], region.name if region is not None else ""


def record_page_view(
    *, contact_inbox: ContactInbox, new_session: bool, page: dict[str, str], ip: str | None, now: datetime
) -> Visit:
    """The widget loaded on a page (bootstrap): the visit it belongs to, started when there is none."""
    moment = now.timestamp()
    key = _visit_key(contact_inbox.source_id)
    visit: Visit | None = cache.get(key)
    if visit is None or moment - visit["last_at"] > VISIT_IDLE_SECONDS:
        country, region = _geography(ip)
        visit = {
            "started_at": moment,
            "last_at": moment,
            "page_started_at": moment,
            "pages": 0,
            "url": "",
            "title": "",
            "referrer": page.get("referrer", "")[:500],
            "returning": not new_session,
            "country": country,
            "region": region,
        }
    visit["pages"] += 1
    visit["last_at"] = visit["page_started_at"] = moment
    visit["url"] = page.get("url", "")[:1000]
    visit["title"] = page.get("title", "")[:300]
    cache.set(key, visit, VISIT_IDLE_SECONDS)
    return visit


def _active_conversation_id(contact_inbox_id: int | None) -> int | None:
    if contact_inbox_id is None:
        return None  # a visitor with no rows yet
    return (
        Conversation.objects.filter(contact_inbox_id=contact_inbox_id, status__in=ACTIVE_STATUSES)
        .values_list("pk", flat=True)
        .first()
    )


def set_chatting(visitor_id: str, *, status: str, conversation_id: int) -> None:
    """The visitor's socket saw their conversation change: whether they chat, in the live list
    (this process's tracker; each refresh reads it again from the database)."""
    chatting = status in ACTIVE_STATUSES
    live.tracker().update(visitor_id, chatting=chatting, conversation_id=conversation_id if chatting else None)


def live_entry(contact_inbox: ContactInbox, *, now: datetime | None = None) -> events.LiveVisitor:
    """The visitor's line in the live list, as their socket connects."""
    now = now or timezone.now()
    visit: Visit | None = cache.get(_visit_key(contact_inbox.source_id))
    moment = now.timestamp()
    if visit is None:  # the visit expired while the page stayed open
        visit = {
            "started_at": moment,
            "last_at": moment,
            "page_started_at": moment,
            "pages": 1,
            "url": "",
            "title": "",
            "referrer": "",
            "returning": True,
            "country": "",
            "region": "",
        }
    inbox = contact_inbox.inbox
    conversation_id = _active_conversation_id(contact_inbox.pk)
    return {
        "id": contact_inbox.source_id,
        "inbox": {"id": inbox.pk, "name": inbox.name},
        "branch_id": inbox.branch_id,
        "url": visit["url"],
        "title": visit["title"],
        "referrer": visit["referrer"],
        "started_at": _iso(visit["started_at"]),
        "page_started_at": _iso(visit["page_started_at"]),
        "pages_seen": visit["pages"],
        "country": visit["country"],
        "region": visit["region"],
        "returning": visit["returning"],
        "chatting": conversation_id is not None,
        "conversation_id": conversation_id,
    }


def _iso(timestamp: float) -> str:
    return events.iso(datetime.fromtimestamp(timestamp, tz=UTC)) or ""


# --- the live list ------------------------------------------------------------------------------


def visible_branch_ids(scope: StaffScope) -> list[int | None]:
    """Whose visitors staff see: a supervisor every branch's inboxes and those without a branch; an
    operator their own branch's inboxes."""
    from messenger.models import Branch

    if scope.sees_all:
        return [None, *Branch.objects.values_list("pk", flat=True)]
    return [scope.branch_id] if scope.branch_id else []


def live_list(scope: StaffScope, *, limit: int) -> tuple[int, list[events.LiveVisitor]]:
    """(how many visitors are live, the ``limit`` who arrived last), for this member of staff."""
    return live.live_visitors(visible_branch_ids(scope), limit=limit)


# --- an operator's invitation -------------------------------------------------------------------


@dataclass(frozen=True)
class PendingInvitation:
    invitation_id: str
    user_id: int
    body: str
    # The visitor's newest conversation when they were invited (None: none, or no rows yet).
    after_conversation_id: int | None = None


def _latest_conversation_id(contact_inbox_id: int | None) -> int | None:
    if contact_inbox_id is None:
        return None
    return (
        Conversation.objects.filter(contact_inbox_id=contact_inbox_id)
        .order_by("-pk")
        .values_list("pk", flat=True)
        .first()
    )


def check_invite(*, scope: StaffScope, user: Any, visitor_id: Any, body: Any) -> str:
    """``visitor.invite``: the invitation's id once the visitor's widgets were told. Refused with
    ``invalid`` (body empty or too long), ``not_found`` (no such visitor on a page now, or not one
    this operator may see), ``blocked``, ``conflict`` (they chat already) or ``rate_limited``."""
    if not isinstance(visitor_id, str) or not 0 < len(visitor_id) <= 64:
        raise InvalidInput("visitor_id: a string of 1–64 characters")
    if not isinstance(body, str) or not body.strip():
        raise InvalidInput("body: write the invitation")
    if len(body) > INVITATION_MAX_LENGTH:
        raise InvalidInput(f"body: at most {INVITATION_MAX_LENGTH} characters")
    found = live.find(visitor_id)
    if found is None or found.branch_id not in visible_branch_ids(scope):
        raise NotFound("This visitor is not on the site now.")
    inbox = Inbox.objects.filter(pk=found.inbox_id, is_active=True).first()
    if inbox is None:
        raise NotFound("This visitor is not on the site now.")
    # No row yet (the visitor has not written): not blocked, not chatting.
    contact_inbox = ContactInbox.objects.select_related("contact").filter(inbox=inbox, source_id=visitor_id).first()
    if contact_inbox is not None and contact_inbox.contact.blocked:
        raise Forbidden("This visitor is blocked.", code="blocked")
    if contact_inbox is not None and _active_conversation_id(contact_inbox.pk) is not None:
        raise Conflict("This visitor is chatting already.")
    latest = _latest_conversation_id(contact_inbox.pk) if contact_inbox is not None else None
    throttle.check(
        "invite", scope.user_id, settings.MESSENGER_INVITE_RATE_PER_OPERATOR, message="You are inviting too fast."
    )
    throttle.check(
        "invite-visitor",
        visitor_id,
        settings.MESSENGER_INVITE_RATE_PER_VISITOR,
        message="This visitor was invited a moment ago.",
    )
    return do_invite(inbox=inbox, visitor_id=visitor_id, user=user, body=body.strip(), after_conversation_id=latest)


def do_invite(*, inbox: Inbox, visitor_id: str, user: Any, body: str, after_conversation_id: int | None) -> str:
    """Tell the visitor's widgets and remember who invited them (their answer goes to that
    operator); ``after_conversation_id``: the visitor's newest conversation when the check read it."""
    invitation_id = uuid.uuid4().hex
    cache.set(
        _invitation_key(visitor_id),
        {"id": invitation_id, "user_id": user.pk, "body": body, "after": after_conversation_id},
        INVITATION_SECONDS,
    )
    audit(
        Actor(user=user),
        "visitor.invited",
        target=inbox,
        payload={"visitor_id": visitor_id, "inbox_id": inbox.pk, "invitation": invitation_id},
    )
    frame = events.invitation_frame(
        invitation_id=invitation_id,
        body=body,
        content=formatting.render(body),
        sender_name=events.user_name(user),
        automatic=False,
    )
    broadcast_on_commit([visitor_session_group(visitor_id)], frame)
    return invitation_id


def pending_invitation(visitor_id: str) -> PendingInvitation | None:
    """The operator invitation the visitor has not answered yet, if one still waits."""
    value = cache.get(_invitation_key(visitor_id))
    if not value:
        return None
    return PendingInvitation(
        invitation_id=value["id"],
        user_id=value["user_id"],
        body=value["body"],
        after_conversation_id=value.get("after"),
    )


def answered_invitation(contact_inbox: ContactInbox) -> PendingInvitation | None:
    """The invitation a conversation the visitor starts now answers: the pending one, unless the
    visitor started another conversation since they were invited. Their own first message can
    cross the invitation (checked before it committed, sent after): that conversation was routed
    as usual, and the invitation must not pick the assignee of their next one (it is forgotten)."""
    invitation = pending_invitation(contact_inbox.source_id)
    if invitation is None:
        return None
    if _latest_conversation_id(contact_inbox.pk) != invitation.after_conversation_id:
        forget_invitation(contact_inbox.source_id)
        return None
    return invitation


def invited_operator(invitation: PendingInvitation) -> Any | None:
    """The inviting operator, when they are still active staff."""
    return (
        get_user_model()
        .objects.filter(pk=invitation.user_id, is_active=True, agent__isnull=False)
        .select_related("agent")
        .first()
    )


def forget_invitation(visitor_id: str) -> None:
    cache.delete(_invitation_key(visitor_id))


def _forgotten_key(visitor_id: str) -> str:
    return f"visitors:forgotten:{visitor_id}"


def forget_visitors(visitor_ids: list[str]) -> None:
    """Erasure (``privacy``): the visits, invitations and flags kept for these visitors go too,
    and a browser that still holds their old secret starts afresh (``forgotten``)."""
    keys = (_visit_key, _invitation_key, _automatic_key, _closed_key)
    cache.delete_many([key(visitor_id) for visitor_id in visitor_ids for key in keys])
    # Kept without expiry (erasures are rare): the widget keeps its secret with none either.
    cache.set_many({_forgotten_key(visitor_id): 1 for visitor_id in visitor_ids}, None)


def forgotten(visitor_id: str) -> bool:
    """Whether this visitor's data was erased (their old secret must not come back as a visitor)."""
    return bool(cache.get(_forgotten_key(visitor_id)))


# --- proactive triggers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TriggerPlan:
    trigger_id: int
    delay_seconds: float


def do_close_widget(*, contact_inbox: ContactInbox) -> None:
    """The visitor closed the widget: no automatic invitation reaches them any more."""
    cache.set(_closed_key(contact_inbox.source_id), 1, CLOSED_SECONDS)


def _automatic_blocked(contact_inbox: ContactInbox) -> bool:
    if cache.get(_closed_key(contact_inbox.source_id)) or cache.get(_automatic_key(contact_inbox.source_id)):
        return True
    if contact_inbox.pk is None:
        return False  # no rows: neither blocked nor chatting
    # Read again, not the socket's copy: staff may have blocked the contact since it connected.
    return (
        Contact.objects.filter(pk=contact_inbox.contact_id, blocked=True).exists()
        or _active_conversation_id(contact_inbox.pk) is not None
    )


def trigger_plans(
    contact_inbox: ContactInbox, entry: events.LiveVisitor, *, now: datetime | None = None
) -> list[TriggerPlan]:
    """The inbox's triggers that may fire on this page view, with their delay from now."""
    now = now or timezone.now()
    triggers = [
        trigger
        for trigger in ProactiveTrigger.objects.filter(inbox_id=contact_inbox.inbox_id, is_active=True)
        if trigger.matches(entry["url"])
    ]
    if not triggers or _automatic_blocked(contact_inbox):
        return []
    on_page = max(0.0, (now - datetime.fromisoformat(entry["page_started_at"].replace("Z", "+00:00"))).total_seconds())
    plans = []
    for trigger in triggers:
        if trigger.kind == TriggerKind.PAGE_COUNT:
            if entry["pages_seen"] == trigger.page_number:
                plans.append(TriggerPlan(trigger_id=trigger.pk, delay_seconds=0.0))
        else:
            plans.append(TriggerPlan(trigger_id=trigger.pk, delay_seconds=max(0.0, trigger.seconds - on_page)))
    return plans


def do_fire_trigger(
    *, contact_inbox: ContactInbox, trigger_id: int, now: datetime | None = None
) -> dict[str, Any] | None:
    """A planned trigger's time came: its ``invitation`` frame, or None when a condition no longer
    holds (checked again here: the trigger, working hours, the widget closed, a chat, today's)."""
    from messenger.routing.hours import inbox_is_open

    trigger = ProactiveTrigger.objects.filter(pk=trigger_id, is_active=True).select_related("inbox").first()
    if trigger is None or trigger.inbox_id != contact_inbox.inbox_id or not trigger.inbox.is_active:
        return None
    if trigger.only_within_working_hours and not inbox_is_open(trigger.inbox, now):
        return None
    if _automatic_blocked(contact_inbox):
        return None
    if not cache.add(_automatic_key(contact_inbox.source_id), trigger.pk, AUTOMATIC_EVERY_SECONDS):
        return None  # another tab's trigger fired first
    return events.invitation_frame(
        invitation_id=f"t{trigger.pk}-{uuid.uuid4().hex[:12]}",
        body=trigger.message,
        content=formatting.render(trigger.message),
        sender_name="",
        automatic=True,
    )


def on_socket_connect(contact_inbox: ContactInbox) -> tuple[events.LiveVisitor, list[TriggerPlan]]:
    """A visitor's socket connected: their line in the live list and the triggers to plan."""
    entry = live_entry(contact_inbox)
    return entry, trigger_plans(contact_inbox, entry)
