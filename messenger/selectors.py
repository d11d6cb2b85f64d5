"""Reads: for the operator dashboard, and the ones actions share (who is available to take a
chat). Every function runs a fixed number of queries whatever the number of rows (select_related
/ prefetch_related / aggregates), and takes rows that were already permission-checked
(``messenger.access``) or a ``StaffScope`` to filter by. Nothing here writes, and nothing here
imports ``messenger.actions``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict

from django.conf import settings
from django.db.models import Count, Exists, IntegerField, OuterRef, Prefetch, Q, QuerySet, Subquery, Sum
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from messenger import events
from messenger.access import (
    CONVERSATION_RELATED,
    StaffScope,
    visible_contacts,
    visible_conversations,
    visible_inboxes,
)
from messenger.errors import InvalidInput
from messenger.models import (
    ActivityEvent,
    AgentConnection,
    AgentProfile,
    AgentRole,
    AgentStatus,
    Branch,
    CannedResponse,
    Contact,
    Conversation,
    ConversationStatus,
    Inbox,
    Label,
    Message,
    MessageDirection,
)
from messenger.models.conversation import ACTIVE_STATUSES

LIST_PAGE = 50
HISTORY_PAGE = 50
EARLIER_CONVERSATIONS = 10
TABS = ("mine", "unassigned", "branch", "all")
# Verbs of ActivityEvent rows that gave a conversation to an operator (payload "to" names them).
ASSIGNMENT_VERBS = ("assignment.assigned", "assignment.escalated", "assignment.transferred", "assignment.reassigned")


@dataclass(frozen=True)
class ConversationFilters:
    tab: str = "all"
    status: str = ""
    inbox_id: int | None = None
    branch_id: int | None = None
    priority: int | None = None
    label: str = ""
    query: str = ""
    assignee_id: int | None = None
    contact_id: int | None = None
    updated_since: datetime | None = None


class ConversationRow(events.StaffConversation):
    """A row of the conversation list: the staff summary plus what the list shows."""

    labels: list[str]
    is_active: bool


class TabCounters(TypedDict):
    mine: int
    mine_unread: int
    mine_unread_messages: int
    unassigned: int
    branch: int
    all: int
    all_unread: int


class HistoryPage(TypedDict):
    messages: list[events.MessageData]
    has_more: bool


class ContactDetail(events.ContactRef):
    blocked: bool
    region: str | None
    browser: str
    os: str
    language: str
    timezone: str
    ip: str
    custom: dict[str, Any]
    custom_labels: dict[str, str]
    created_at: str | None


class PageInfo(TypedDict):
    url: str
    title: str
    referrer: str


class EarlierConversation(TypedDict):
    id: int
    status: str
    created_at: str | None
    last_message_preview: str


class ConversationDetail(ConversationRow):
    """One conversation for the side panel; ``contact`` is the fuller ``ContactDetail``."""

    contact: ContactDetail  # type: ignore[misc]  # a ContactRef with more fields
    routing_log: list[dict[str, Any]]
    page: PageInfo
    # The operator's invitation the visitor answered to start it (docs/widget.md,
    # "Invitations"), as written; null when the visitor wrote first.
    invitation: str | None
    earlier_conversations: list[EarlierConversation]


class CannedResponseRow(TypedDict):
    id: int
    short_code: str
    text: str
    branch: str | None


class OperatorRow(TypedDict):
    id: int
    name: str
    role: str
    branch: events.Ref | None
    status: str
    connected: bool
    load: int
    max_concurrent: int


class BranchRow(TypedDict):
    id: int
    name: str
    timezone: str


class LabelRow(TypedDict):
    id: int
    name: str
    color: str


class FairnessRow(OperatorRow):
    today: int
    week: int


class FairnessSince(TypedDict):
    today: str | None
    week: str | None


class FairnessSpread(TypedDict):
    today: int
    week: int
    load: int


class Fairness(TypedDict):
    since: FairnessSince
    operators: list[FairnessRow]
    spread: FairnessSpread


@dataclass(frozen=True)
class Page:
    rows: list[ConversationRow]
    next_cursor: str | None


# --- conversation list ---------------------------------------------------------------------------


def encode_cursor(conversation: Conversation) -> str:
    moment = conversation.last_activity_at.isoformat() if conversation.last_activity_at else ""
    return base64.urlsafe_b64encode(f"{moment}|{conversation.pk}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime | None, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, _, pk = raw.partition("|")
        when = parse_datetime(moment) if moment else None
        # A cursor is ours only with an aware time that has a UTC equivalent (an edited one may
        # hold "garbage", a naive time or 0001-01-01T00:00+01:00, which overflows in the query).
        if moment and (when is None or when.tzinfo is None):
            raise ValueError(moment)
        parsed = (when.astimezone(UTC) if when else None), int(pk)
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError):
        raise InvalidInput("cursor: malformed", errors={"cursor": ["Malformed."]}) from None
    if not 0 < parsed[1] < 2**63:
        raise InvalidInput("cursor: malformed", errors={"cursor": ["Malformed."]})
    return parsed


def filtered_conversations(scope: StaffScope, filters: ConversationFilters) -> QuerySet[Conversation]:
    """The visible conversations matching the tab and filters, newest activity first."""
    queryset = visible_conversations(scope)
    if filters.tab == "mine":
        queryset = queryset.filter(assignee_id=scope.user_id)
    elif filters.tab == "unassigned":
        queryset = queryset.filter(assignee__isnull=True)
    elif filters.tab == "branch" and scope.branch_id:
        queryset = queryset.filter(branch_id=scope.branch_id)
    if filters.status:
        # One status keeps the (status, -last_activity_at) and (branch, status, …) indexes usable;
        # "active" is the union the operators work on.
        if filters.status == "active":
            queryset = queryset.filter(status__in=ACTIVE_STATUSES)
        elif filters.status != "any":
            queryset = queryset.filter(status=filters.status)
    if filters.inbox_id:
        queryset = queryset.filter(inbox_id=filters.inbox_id)
    if filters.branch_id:
        queryset = queryset.filter(branch_id=filters.branch_id)
    if filters.priority is not None:
        queryset = queryset.filter(priority=filters.priority)
    if filters.label:
        queryset = queryset.filter(labels__name=filters.label)
    if filters.assignee_id is not None:
        queryset = queryset.filter(assignee_id=filters.assignee_id)
    if filters.contact_id is not None:
        queryset = queryset.filter(contact_id=filters.contact_id)
    if filters.updated_since is not None:
        queryset = queryset.filter(updated_at__gte=filters.updated_since)
    if filters.query:
        term = filters.query
        text_match = Message.objects.filter(conversation_id=OuterRef("pk"), body__icontains=term)
        queryset = queryset.filter(
            Q(contact__name__icontains=term)
            | Q(contact__email__icontains=term)
            | Q(contact__phone__icontains=term)
            | Q(identifier=term)
            | Exists(text_match)
        )
    return queryset.order_by("-last_activity_at", "-id")


def conversation_rows(
    scope: StaffScope, filters: ConversationFilters, *, cursor: str | None = None, limit: int = LIST_PAGE
) -> Page:
    """One page of the list: two queries (rows with their relations, then their labels)."""
    queryset = filtered_conversations(scope, filters)
    if cursor:
        moment, pk = decode_cursor(cursor)
        if moment is None:
            queryset = queryset.filter(last_activity_at__isnull=True, id__lt=pk)
        else:
            # Conversations always get last_activity_at when created; a NULL row (imported data)
            # sorts differently per database and is only reachable from the first page.
            queryset = queryset.filter(Q(last_activity_at__lt=moment) | Q(last_activity_at=moment, id__lt=pk))
    queryset = queryset.select_related(*CONVERSATION_RELATED).prefetch_related(
        Prefetch("labels", queryset=Label.objects.order_by("name"))
    )
    page = list(queryset[: limit + 1])
    more = len(page) > limit
    page = page[:limit]
    return Page(
        rows=[conversation_row(conversation) for conversation in page],
        next_cursor=encode_cursor(page[-1]) if more and page else None,
    )


def conversation_row(conversation: Conversation) -> ConversationRow:
    """The staff summary plus what the list shows; labels must be prefetched or cheap to load."""
    row: Any = events.conversation_staff(conversation)
    row["labels"] = [label.name for label in conversation.labels.all()]
    row["is_active"] = conversation.is_active
    return row


def tab_counters(scope: StaffScope) -> TabCounters:
    """Open conversations and unread ones per tab, plus the badge totals, in one aggregate query."""
    active = Q(status__in=ACTIVE_STATUSES)
    mine = Q(assignee_id=scope.user_id)
    unread = Q(unread_for_agent__gt=0)
    aggregates: dict[str, Any] = {
        "mine": Count("id", filter=active & mine),
        "mine_unread": Count("id", filter=active & mine & unread),
        "mine_unread_messages": Coalesce(Sum("unread_for_agent", filter=active & mine), 0),
        "unassigned": Count("id", filter=active & Q(assignee__isnull=True)),
        "all": Count("id", filter=active),
        "all_unread": Count("id", filter=active & unread),
    }
    if scope.branch_id:
        aggregates["branch"] = Count("id", filter=active & Q(branch_id=scope.branch_id))
    counts = visible_conversations(scope).aggregate(**aggregates)
    counts.setdefault("branch", counts["all"])
    return counts


# --- one conversation ----------------------------------------------------------------------------


def history_page(conversation: Conversation, *, before_id: int | None = None, limit: int = HISTORY_PAGE) -> HistoryPage:
    """Messages older than ``before_id`` (all directions, notes included), oldest first: two queries.

    A page also ends before its text passes ``events.PAGE_TEXT_MAX_BYTES`` (it holds at least one
    message), so that it fits in one socket frame however long the messages are."""
    queryset = (
        Message.objects.filter(conversation_id=conversation.pk)
        .select_related("sender_contact", "sender_user")
        .prefetch_related("attachments")
        .order_by("-id")
    )
    if before_id:
        queryset = queryset.filter(id__lt=before_id)
    rows = list(queryset[: limit + 1])
    page = events.fitting_page(rows[:limit])
    more = len(rows) > len(page)
    page.reverse()
    for message in page:
        message.conversation = conversation
    return {
        "messages": [
            events.message_payload(message, public=False, attachments=list(message.attachments.all()))
            for message in page
        ],
        "has_more": more,
    }


def conversation_detail(conversation: Conversation) -> ConversationDetail:
    """Summary, contact, page and browser, earlier conversations, routing reasons, labels."""
    row: Any = events.conversation_staff(conversation)
    row["labels"] = list(conversation.labels.order_by("name").values_list("name", flat=True))
    row["routing_log"] = conversation.routing_log or []
    row["is_active"] = conversation.is_active
    contact = conversation.contact
    attributes = contact.additional_attributes or {}
    page = (conversation.additional_attributes or {}).get("page") or {}
    custom = contact.custom_attributes or {}
    row["contact"] = {
        **row["contact"],
        "blocked": contact.blocked,
        "region": contact.region.name if contact.region_id and contact.region else None,
        "browser": attributes.get("browser", ""),
        "os": attributes.get("os", ""),
        "language": attributes.get("language", ""),
        "timezone": attributes.get("timezone", ""),
        "ip": attributes.get("ip", ""),
        "custom": custom,
        "custom_labels": form_labels(conversation.inbox, custom),
        "created_at": events.iso(contact.created_at),
    }
    row["invitation"] = (conversation.additional_attributes or {}).get("invitation")
    row["page"] = {
        "url": page.get("url") or attributes.get("url", ""),
        "title": page.get("title") or attributes.get("title", ""),
        "referrer": page.get("referrer") or attributes.get("referrer", ""),
    }
    earlier = (
        Conversation.objects.filter(contact_id=conversation.contact_id)
        .exclude(pk=conversation.pk)
        .order_by("-created_at")
        .only("id", "status", "created_at", "last_message_preview", "branch_id")[:EARLIER_CONVERSATIONS]
    )
    row["earlier_conversations"] = [
        {
            "id": other.pk,
            "status": other.status,
            "created_at": events.iso(other.created_at),
            "last_message_preview": other.last_message_preview,
        }
        for other in earlier
    ]
    return row


def form_labels(inbox: Inbox, custom: dict[str, Any]) -> dict[str, str]:
    """The labels ``inbox``'s pre-chat form gives the contact's ``custom`` fields, by name, in the
    form's order. A field without a label, or no longer in the form, is not named here."""
    return {
        field["name"]: label
        for field in inbox.effective_settings["pre_chat"]["fields"]
        if (label := (field.get("label") or "").strip()) and field["name"] in custom
    }


# --- pickers -------------------------------------------------------------------------------------


def canned_responses(scope: StaffScope) -> list[CannedResponseRow]:
    queryset = CannedResponse.objects.select_related("branch").order_by("short_code", "id")
    if not scope.sees_all:
        queryset = queryset.filter(Q(branch__isnull=True) | Q(branch_id=scope.branch_id))
    return [
        {
            "id": canned.pk,
            "short_code": canned.short_code,
            "text": canned.text,
            "branch": canned.branch.name if canned.branch_id else None,
        }
        for canned in queryset
    ]


# --- presence: who can take a chat ----------------------------------------------------------------
# An operator is *available* when their status is online and at least one of their sockets sent a
# heartbeat within ``MESSENGER_PRESENCE_TIMEOUT_SECONDS``; *assignable* when, besides, their role
# is operator (supervisors and admins are never offered chats). The widget's "operators available"
# and automatic assignment both ask ``assignable_profiles``.


def live_cutoff(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) - timedelta(seconds=settings.MESSENGER_PRESENCE_TIMEOUT_SECONDS)


def available_profiles(now: datetime | None = None) -> QuerySet[AgentProfile]:
    """Profiles that may receive new chats: status online and a live socket."""
    live = AgentConnection.objects.filter(user_id=OuterRef("user_id"), last_heartbeat__gte=live_cutoff(now))
    return AgentProfile.objects.filter(status=AgentStatus.ONLINE, user__is_active=True).filter(Exists(live))


def assignable_profiles(now: datetime | None = None) -> QuerySet[AgentProfile]:
    """Profiles automatic assignment may hand a chat (capacity and rate limit aside)."""
    return available_profiles(now).filter(role=AgentRole.OPERATOR)


def operators_available(inbox: Inbox, now: datetime | None = None) -> bool:
    """Someone who can be assigned the inbox's chats is there; one at capacity still counts: the
    chat waits in the queue for them."""
    profiles = assignable_profiles(now)
    if inbox.branch_id:
        profiles = profiles.filter(branch_id=inbox.branch_id)
    return profiles.exists()


def is_connected(user_id: int, now: datetime | None = None) -> bool:
    return AgentConnection.objects.filter(user_id=user_id, last_heartbeat__gte=live_cutoff(now)).exists()


def operators(now: datetime | None = None) -> list[OperatorRow]:
    """Every operator with branch, manual status, live socket and load: one query."""
    load = (
        Conversation.objects.filter(assignee_id=OuterRef("user_id"), status__in=ACTIVE_STATUSES)
        .order_by()
        .values("assignee_id")
        .annotate(total=Count("id"))
        .values("total")
    )
    live = AgentConnection.objects.filter(user_id=OuterRef("user_id"), last_heartbeat__gte=live_cutoff(now))
    profiles = (
        AgentProfile.objects.filter(user__is_active=True)
        .select_related("user", "branch")
        .annotate(load=Coalesce(Subquery(load, output_field=IntegerField()), 0), connected=Exists(live))
        .order_by("branch__name", "user__first_name", "user__username")
    )
    return [
        {
            "id": profile.user_id,
            "name": events.user_name(profile.user),
            "role": profile.role,
            "branch": {"id": profile.branch_id, "name": profile.branch.name} if profile.branch_id else None,
            "status": profile.status,
            "connected": profile.connected,
            "load": profile.load,
            "max_concurrent": profile.max_concurrent,
        }
        for profile in profiles
    ]


def branches() -> list[BranchRow]:
    return [
        {"id": branch.pk, "name": branch.name, "timezone": branch.timezone}
        for branch in Branch.objects.filter(is_active=True).order_by("name")
    ]


def labels() -> list[LabelRow]:
    return [{"id": label.pk, "name": label.name, "color": label.color} for label in Label.objects.order_by("name")]


def fairness(now: datetime | None = None) -> Fairness:
    """Assignments per operator today and this week (from the audit log), the spread, current load."""
    now = timezone.localtime(now or timezone.now())
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    week = today - timedelta(days=today.weekday())
    counts = (
        ActivityEvent.objects.filter(verb__in=ASSIGNMENT_VERBS, created_at__gte=week)
        .annotate(to_user=KT("payload__to__id"))
        .exclude(to_user__isnull=True)
        .values("to_user")
        .annotate(week=Count("id"), today=Count("id", filter=Q(created_at__gte=today)))
        .order_by()
    )
    per_user = {str(row["to_user"]): row for row in counts}
    rows = []
    for operator in operators(now):
        if operator["role"] == "admin":
            continue
        row = per_user.get(str(operator["id"]), {})
        rows.append({**operator, "today": row.get("today", 0), "week": row.get("week", 0)})

    def spread(key: str) -> int:
        values = [row[key] for row in rows]
        return (max(values) - min(values)) if values else 0

    return {
        "since": {"today": events.iso(today), "week": events.iso(week)},
        "operators": rows,
        "spread": {"today": spread("today"), "week": spread("week"), "load": spread("load")},
    }


def status_choices() -> list[str]:
    return [choice.value for choice in ConversationStatus]


# --- contacts and inboxes (the REST API, docs/integrations.md) ---------------------------------------------


def encode_id_cursor(pk: int) -> str:
    return base64.urlsafe_b64encode(f"id|{pk}".encode()).decode().rstrip("=")


def decode_id_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, pk = raw.partition("|")
        value = int(pk)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidInput("cursor: malformed", errors={"cursor": ["Malformed."]}) from None
    if kind != "id" or not 0 < value < 2**63:
        raise InvalidInput("cursor: malformed", errors={"cursor": ["Malformed."]})
    return value


def contact_row(contact: Contact) -> dict[str, Any]:
    """A contact as staff see it; ``region`` must be loaded (select_related)."""
    attributes = contact.additional_attributes or {}
    return {
        "id": contact.pk,
        "name": contact.name,
        "display_name": str(contact),
        "email": contact.email,
        "phone": contact.phone,
        "external_id": contact.external_id,
        "blocked": contact.blocked,
        "region": {"id": contact.region_id, "name": contact.region.name} if contact.region_id else None,
        "language": attributes.get("language", ""),
        "custom": contact.custom_attributes or {},
        "last_activity_at": events.iso(contact.last_activity_at),
        "created_at": events.iso(contact.created_at),
        "anonymized_at": events.iso(contact.anonymized_at),
    }


def contact_rows(scope: StaffScope, *, query: str = "", cursor: str | None = None, limit: int = LIST_PAGE) -> Page:
    """Contacts the staff member may see, newest first, keyset-paginated by id: one query.

    ``query`` matches name, e-mail or phone (substring) or the external id (exactly)."""
    queryset = visible_contacts(scope).select_related("region").order_by("-id")
    if query:
        queryset = queryset.filter(
            Q(name__icontains=query) | Q(email__icontains=query) | Q(phone__icontains=query) | Q(external_id=query)
        )
    if cursor:
        queryset = queryset.filter(id__lt=decode_id_cursor(cursor))
    page = list(queryset[: limit + 1])
    more = len(page) > limit
    page = page[:limit]
    return Page(
        rows=[contact_row(contact) for contact in page],
        next_cursor=encode_id_cursor(page[-1].pk) if more and page else None,
    )


def message_rows(conversation: Conversation, *, cursor: str | None = None, limit: int = HISTORY_PAGE) -> Page:
    """A page of ``history_page`` (oldest first), ``next_cursor`` leading to older messages."""
    page = history_page(conversation, before_id=decode_id_cursor(cursor) if cursor else None, limit=limit)
    rows = page["messages"]
    return Page(rows=rows, next_cursor=encode_id_cursor(rows[0]["id"]) if page["has_more"] and rows else None)


def inboxes(scope: StaffScope) -> list[dict[str, Any]]:
    """The inboxes the staff member works with (``access.visible_inboxes``): one query."""
    return [
        {
            "id": inbox.pk,
            "name": inbox.name,
            "branch": {"id": inbox.branch_id, "name": inbox.branch.name} if inbox.branch_id else None,
            "is_active": inbox.is_active,
            "created_at": events.iso(inbox.created_at),
        }
        for inbox in visible_inboxes(scope).select_related("branch").order_by("name", "id")
    ]


def transcript_messages(conversation: Conversation) -> list[dict[str, Any]]:
    """The lines of a visitor's transcript, oldest first: every message the visitor may see (never
    an internal note), its sender's name, time and attachments. Two queries."""
    rows = (
        conversation.messages.exclude(direction=MessageDirection.INTERNAL)
        .select_related("sender_user", "sender_contact")
        .prefetch_related("attachments")
        .order_by("created_at", "id")
    )
    lines: list[dict[str, Any]] = []
    for message in rows:
        message.conversation = conversation
        public = events.message_payload(message, public=True, attachments=list(message.attachments.all()))
        deleted = bool((message.content_attributes or {}).get("deleted"))
        name = public["sender"]["name"] or conversation.inbox.name
        lines.append(
            {
                "from_visitor": message.direction == MessageDirection.IN,
                "sender": name,
                "created_at": message.created_at,
                "body": "" if deleted else message.body,
                # The HTML part shows what the widget shows: the body rendered to safe HTML.
                "content": "" if deleted else public["content"],
                "deleted": deleted,
                "attachments": [] if deleted else [dict(a) for a in public["attachments"]],
            }
        )
    return lines
