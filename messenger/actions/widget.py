"""The widget session: bootstrap over HTTP, then authorisation of the visitor's socket.

Invariants:
* A visitor is identified by the secret ``pubsub_token`` the widget keeps; without it (or with an
  unknown one) bootstrap gives a fresh one. The ``source_id`` alone never restores a session.
* No row exists for a visitor until they write or fill a form (``contacts.do_become_contact``): before
  that the visitor is an unsaved contact-inbox whose token signs itself (``tokens.new_visitor_token``)
  and whose page details wait in the cache. Every tab of a visitor is in their session group, which
  learns when the rows are made (another tab wrote) and carries invitations.
* The session token is signed and expires; the socket re-checks it, the inbox's widget token and
  the Origin on every connect.
* Operator messages returned by bootstrap are marked delivered (first delivery).
* Queue places reach waiting visitors from the scheduler tick (``do_publish_queue_places``), never
  from the send path: one query for every queue, one per branch for its expected wait, and a frame
  only to the visitors whose place changed since the last tick. The database stays the truth:
  every ``QUEUE_PLACES_REFRESH`` seconds each place is sent again (a dropped frame heals), and
  ``hello`` carries it on every reconnect.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from messenger import events, throttle
from messenger.actions import visitors
from messenger.actions.base import Actor, audit
from messenger.actions.contacts import stored_visitor, stored_visitor_by_token, unsaved_visitor
from messenger.actions.messages import latest_conversation, mark_delivered
from messenger.errors import Forbidden, InvalidInput, NotFound
from messenger.inbox_settings import domain_allowed
from messenger.models import ContactInbox, Conversation, Inbox, Message, MessageDirection
from messenger.realtime.broadcast import broadcast_on_commit
from messenger.realtime.groups import visitor_group
from messenger.routing.queue import branch_places, waiting_conversations
from messenger.selectors import operators_available
from messenger.tokens import (
    is_visitor_token,
    issue_session_token,
    new_visitor_token,
    read_session_token,
    visitor_source_id,
)

HISTORY_CONVERSATIONS = 5
HISTORY_MESSAGES = 100


class OfflineSettings(TypedDict):
    enabled: bool
    message: str
    collect_contact: bool


class WidgetSettings(TypedDict):
    """The inbox's effective settings the widget needs (docs/widget.md; shapes in inbox_settings)."""

    widget: dict[str, Any]
    offline: OfflineSettings
    privacy: dict[str, Any]
    rating: dict[str, Any]
    features: dict[str, bool]
    pre_chat: dict[str, Any]
    attachments: dict[str, Any]
    language: str


class HistoryEntry(TypedDict):
    conversation: events.PublicConversation
    messages: list[events.MessageData]


class VisitorContact(TypedDict):
    name: str
    email: str
    phone: str


class Bootstrap(TypedDict):
    """What bootstrap answers: the session, history, settings and availability."""

    session_token: str
    pubsub_token: str
    visitor_id: str
    contact: VisitorContact
    conversation: events.PublicConversation | None
    history: list[HistoryEntry]
    ws_url: str
    settings: WidgetSettings
    queue: events.QueuePlace | None
    heartbeat: int
    operators_available: bool
    within_working_hours: bool


def active_inbox(widget_token: Any) -> Inbox:
    if not isinstance(widget_token, str) or not widget_token or len(widget_token) > 64:
        raise NotFound("Unknown widget token.", code="unknown_inbox")
    inbox = Inbox.objects.select_related("branch").filter(widget_token=widget_token, is_active=True).first()
    if inbox is None:
        raise NotFound("Unknown widget token.", code="unknown_inbox")
    return inbox


def check_origin(inbox: Inbox, origin: str | None, *, ip: str | None, channel: str) -> None:
    """403 + an audit row when the page's origin is not in the inbox's allowed domains."""
    if domain_allowed(inbox.allowed_domains, origin):
        return
    audit(
        Actor(label="visitor", ip=ip),
        "widget.origin_denied",
        target=inbox,
        payload={"origin": origin or "", "channel": channel},
    )
    raise Forbidden("This site is not allowed to use the widget.", code="origin_forbidden")


# What a page's address or its referrer may be: a web address (anything else is kept as "").
WEB_ADDRESS = re.compile(r"https?://[^\s]", re.IGNORECASE)


def _clean_page(page: Any) -> dict[str, str]:
    if page is None:
        return {}
    if not isinstance(page, dict):
        raise InvalidInput("page: an object")
    clean: dict[str, str] = {}
    for key in ("url", "title", "referrer", "language", "user_agent", "timezone", "screen"):
        value = page.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise InvalidInput(f"page.{key}: a string")
        if key in ("url", "referrer") and not WEB_ADDRESS.match(value):
            # The visitor tells the page; staff open it from the dashboard (a javascript: or
            # data: "page" would be a link that runs or shows what the visitor wrote).
            value = ""
        clean[key] = value[:1000]
    return clean


def _browser(user_agent: str) -> dict[str, str]:
    ua = user_agent or ""
    browser = next(
        (
            name
            for token, name in (
                ("Edg/", "Edge"),
                ("OPR/", "Opera"),
                ("Firefox/", "Firefox"),
                ("Chrome/", "Chrome"),
                ("Safari/", "Safari"),
            )
            if token in ua
        ),
        "",
    )
    system = next(
        (
            name
            for token, name in (
                ("Windows", "Windows"),
                ("Android", "Android"),
                ("iPhone", "iOS"),
                ("iPad", "iOS"),
                ("Mac OS", "macOS"),
                ("Linux", "Linux"),
            )
            if token in ua
        ),
        "",
    )
    return {"browser": browser, "os": system}


# WCAG 2 AA: normal text needs a contrast ratio of 4.5:1 with its background.
READABLE_CONTRAST = 4.5
WHITE, NEAR_BLACK, BLACK = "#ffffff", "#111827", "#000000"


def _luminance(color: str) -> float:
    """WCAG 2's relative luminance of ``#rrggbb``."""
    channels = [int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(first: str, second: str) -> float:
    """WCAG 2's contrast ratio of two ``#rrggbb`` colours, from 1 to 21."""
    lighter, darker = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def readable_colors(color: str) -> dict[str, str]:
    """The widget's companions of the inbox's brand colour (``#rrggbb``, used as given for
    backgrounds), so that any colour an administrator picks keeps its text readable (4.5:1):
    ``on_color`` for text drawn on it (white where it reads, else the widget's near-black, else
    black: one of white and black always does) and ``text_color``, the colour itself darkened
    until it reads on white (links, outlined buttons)."""
    on_color = next((c for c in (WHITE, NEAR_BLACK) if contrast_ratio(color, c) >= READABLE_CONTRAST), BLACK)
    channels = [int(color[i : i + 2], 16) for i in (1, 3, 5)]
    text_color = color.lower()
    while contrast_ratio(text_color, WHITE) < READABLE_CONTRAST:
        channels = [int(c * 0.9) for c in channels]
        text_color = "#" + "".join(f"{c:02x}" for c in channels)
    return {"on_color": on_color, "text_color": text_color}


def widget_settings_payload(inbox: Inbox, *, language: str = "") -> WidgetSettings:
    effective = inbox.effective_settings
    return {
        "widget": {**effective["widget"], **readable_colors(effective["widget"]["color"])},
        "offline": {
            "enabled": effective["offline"]["enabled"],
            "message": effective["offline"]["message"],
            "collect_contact": effective["offline"]["collect_contact"],
        },
        "privacy": effective["privacy"],
        "rating": effective["rating"],
        "features": effective["features"],
        "pre_chat": effective["pre_chat"],
        "attachments": effective["attachments"],
        "language": effective["widget"]["language"] or language or "en",
    }


def availability(inbox: Inbox, now: datetime | None = None) -> dict[str, bool]:
    from messenger.routing.hours import inbox_is_open

    open_now = inbox_is_open(inbox, now)
    return {"operators_available": open_now and operators_available(inbox, now), "within_working_hours": open_now}


def history(contact_inbox: ContactInbox) -> list[HistoryEntry]:
    """The visitor's newest conversations, oldest first, with their public messages."""
    conversations = list(
        Conversation.objects.select_related("assignee")
        .filter(contact_inbox=contact_inbox)
        .order_by("-created_at", "-id")[:HISTORY_CONVERSATIONS]
    )
    if not conversations:
        return []
    by_id = {c.pk: c for c in conversations}
    rows = (
        Message.objects.filter(conversation_id__in=by_id)
        .exclude(direction=MessageDirection.INTERNAL)
        .select_related("sender_contact", "sender_user")
        .prefetch_related("attachments")
        .order_by("-id")[: HISTORY_MESSAGES * 2]
    )
    grouped: dict[int, list[Message]] = {pk: [] for pk in by_id}
    for message in rows:
        message.conversation = by_id[message.conversation_id]
        grouped[message.conversation_id].append(message)
    result: list[HistoryEntry] = []
    for conversation in reversed(conversations):
        page = list(reversed(events.fitting_page(grouped[conversation.pk][:HISTORY_MESSAGES])))
        result.append(
            {
                "conversation": events.conversation_public(conversation),
                "messages": [
                    events.message_payload(m, public=True, attachments=list(m.attachments.all())) for m in page
                ],
            }
        )
    return result


def queue_info(conversation: Conversation | None, *, inbox: Inbox) -> events.QueuePlace | None:
    """The visitor's place in the queue; with ``features.queue_position`` off it is not even computed."""
    from messenger.routing.queue import queue_position

    if conversation is None or not inbox.effective_settings["features"].get("queue_position", True):
        return None
    return queue_position(conversation)


QUEUE_PLACES_KEY = "widget:queue:places"
QUEUE_PLACES_REFRESH = 60


def do_publish_queue_places(*, now: datetime | None = None) -> int:
    """Scheduler tick: a ``queue`` frame to each waiting visitor whose place (position or expected
    wait) changed since the last tick, and to every one once ``QUEUE_PLACES_REFRESH`` seconds have
    passed. Inboxes with ``features.queue_position`` off get nothing, and a branch whose waiting
    conversations are all theirs is not even computed. Returns the frames sent."""
    now = now or timezone.now()
    rows = list(
        waiting_conversations().values(
            "pk", "branch_id", "inbox_id", "contact_inbox_id", "waiting_since", "first_reply_created_at"
        )
    )
    shown = {
        inbox.pk
        for inbox in Inbox.objects.filter(pk__in={row["inbox_id"] for row in rows})
        if inbox.effective_settings["features"].get("queue_position", True)
    }
    branches = {row["branch_id"] for row in rows if row["inbox_id"] in shown}
    places = branch_places((row for row in rows if row["branch_id"] in branches), now)
    memory = cache.get(QUEUE_PLACES_KEY)
    stale = not memory or now.timestamp() - memory["at"] >= QUEUE_PLACES_REFRESH
    previous: dict[int, tuple[int, int | None]] = {} if stale else memory["places"]
    current: dict[int, tuple[int, int | None]] = {}
    sent = 0
    for row in rows:
        if row["inbox_id"] not in shown:
            continue
        if row["waiting_since"] is None and row["first_reply_created_at"] is None:
            # Started, its first message not stored yet (a moment, or a file not sent yet): it
            # would be told the place of an answered conversation (last) and then its own.
            continue
        place = places[row["pk"]]
        current[row["pk"]] = value = (place["position"], place["expected_wait_seconds"])
        if previous.get(row["pk"]) != value:
            frame = events.queue_frame(conversation_id=row["pk"], place=place)
            broadcast_on_commit([visitor_group(row["contact_inbox_id"])], frame)
            sent += 1
    cache.set(
        QUEUE_PLACES_KEY,
        {"at": now.timestamp() if stale else memory["at"], "places": current},
        timeout=QUEUE_PLACES_REFRESH * 2,
    )
    return sent


def do_bootstrap(
    *,
    widget_token: Any,
    pubsub_token: Any,
    page: Any,
    origin: str | None,
    ip: str | None,
    language: str = "",
    honeypot: Any = None,
) -> Bootstrap:
    """Find or create the visitor, then everything the widget needs to render.

    Throttled per IP and per widget token before any lookup; ``honeypot`` (the hidden ``website``
    field) must be empty.
    """
    throttle.check_bootstrap(ip=ip, widget_token=widget_token if isinstance(widget_token, str) else "")
    if honeypot not in (None, ""):
        raise InvalidInput("website: must be empty")
    inbox = active_inbox(widget_token)
    check_origin(inbox, origin, ip=ip, channel="http")
    page_info = _clean_page(page)
    now = timezone.now()
    token = pubsub_token if isinstance(pubsub_token, str) and 0 < len(pubsub_token) <= 64 else ""
    contact_inbox = stored_visitor_by_token(token, inbox) if token else None
    attributes = {**page_info, **_browser(page_info.get("user_agent", "")), "ip": ip or ""}
    if contact_inbox is not None:
        new_session = False
        contact = contact_inbox.contact
        contact.additional_attributes = {**contact.additional_attributes, **attributes}
        contact.last_activity_at = now
        contact.save(update_fields=["additional_attributes", "last_activity_at"])
    else:
        new_session = not is_visitor_token(token, inbox.pk) or visitors.forgotten(visitor_source_id(token))
        if new_session:
            token = new_visitor_token(inbox.pk)
        contact_inbox = unsaved_visitor(token, inbox, attributes)
        contact = contact_inbox.contact
    contact_inbox.inbox = inbox
    visitors.record_page_view(contact_inbox=contact_inbox, new_session=new_session, page=page_info, ip=ip, now=now)
    conversation = latest_conversation(contact_inbox) if contact_inbox.pk else None
    if conversation is not None:
        newest_out = (
            Message.objects.filter(conversation=conversation, direction=MessageDirection.OUT, delivered_at__isnull=True)
            .order_by("-id")
            .values_list("pk", flat=True)
            .first()
        )
        if newest_out:
            mark_delivered(conversation=conversation, reader="contact", up_to_message_id=newest_out)
            conversation.refresh_from_db(fields=["last_public_seq", "last_seq"])
    ws_url = settings.MESSENGER_PUBLIC_WS_URL or "/ws/widget/"
    return {
        "session_token": issue_session_token(
            contact_inbox_id=contact_inbox.pk, inbox_id=inbox.pk, pubsub_token=contact_inbox.pubsub_token
        ),
        "pubsub_token": contact_inbox.pubsub_token,
        "visitor_id": contact_inbox.source_id,
        "contact": {"name": contact.name, "email": contact.email, "phone": contact.phone},
        "conversation": events.conversation_public(conversation) if conversation else None,
        "history": history(contact_inbox) if contact_inbox.pk else [],
        "ws_url": ws_url,
        "settings": widget_settings_payload(inbox, language=page_info.get("language", "")[:2]),
        "queue": queue_info(conversation, inbox=inbox),
        "heartbeat": settings.MESSENGER_HEARTBEAT_SECONDS,
        **availability(inbox, now),
    }


@dataclass
class VisitorConnect:
    contact_inbox: ContactInbox | None = None
    error_code: str | None = None
    error_message: str | None = None
    origin_forbidden: bool = False

    def hello(self) -> dict[str, Any]:
        assert self.contact_inbox is not None
        conversation = latest_conversation(self.contact_inbox) if self.contact_inbox.pk else None
        return events.visitor_hello(
            conversation,
            queue=queue_info(conversation, inbox=self.contact_inbox.inbox),
            heartbeat=settings.MESSENGER_HEARTBEAT_SECONDS,
            availability=availability(self.contact_inbox.inbox),
        )

    def hello_and_live(self) -> tuple[dict[str, Any], events.LiveVisitor, list[visitors.TriggerPlan]]:
        """``hello``, the visitor's line in the live list and the triggers to plan: one hop. A
        visitor without rows is looked up again (read after the socket joined their session
        group): another tab may have made them since the session was read."""
        assert self.contact_inbox is not None
        if self.contact_inbox.pk is None:
            self.contact_inbox = stored_visitor(self.contact_inbox) or self.contact_inbox
        entry, plans = visitors.on_socket_connect(self.contact_inbox)
        return self.hello(), entry, plans


def visitor_connect(*, widget_token: str, token: str, origin: str | None, ip: str | None) -> VisitorConnect:
    """Authorise a visitor's socket: session token + widget token + Origin."""
    try:
        inbox = active_inbox(widget_token)
    except NotFound as error:
        return VisitorConnect(error_code="unknown_inbox", error_message=error.message)
    try:
        check_origin(inbox, origin, ip=ip, channel="websocket")
    except Forbidden:
        return VisitorConnect(origin_forbidden=True)
    contact_inbox = session_visitor(token, inbox)
    if contact_inbox is None:
        return VisitorConnect(error_code="unauthenticated", error_message="Missing, forged or expired session token.")
    return VisitorConnect(contact_inbox=contact_inbox)


def session_visitor(token: Any, inbox: Inbox) -> ContactInbox | None:
    """The visitor of a session token for ``inbox``: stored, or not yet (unsaved, ``pk`` None);
    None when the token is forged, expired, of another inbox, or its rows were erased."""
    session = read_session_token(token)
    if session is None or session.inbox_id != inbox.pk:
        return None
    if session.contact_inbox_id is None:
        stored = stored_visitor_by_token(session.pubsub_token, inbox)
        if stored is not None:
            return stored
        if visitors.forgotten(visitor_source_id(session.pubsub_token)):
            return None
        return unsaved_visitor(session.pubsub_token, inbox)
    return (
        ContactInbox.objects.select_related("contact", "inbox", "inbox__branch")
        .filter(pk=session.contact_inbox_id, inbox=inbox, pubsub_token=session.pubsub_token)
        .first()
    )
