"""Messages: store (visitor, operator, note, system/bot), delivered and read receipts. A visitor's
send, which may start a conversation, is a workflow above this module (``intake``).

Invariants:
* One way to write a message: ``_message_steps``, run in a thread (``_store_message``) or on the
  event loop (``_astore``); the widget, the dashboard, the public API and automation all use it.
* A ``client_id`` is stored once per conversation and once per visitor (unique constraints); a
  resend, or the same ``client_id`` from another tab, answers the stored message and creates
  nothing.
* The sequence bump, the message row, the counters and the event row are one transaction; frames
  leave after commit.
* Human operator replies set ``first_reply_created_at`` and clear ``waiting_since``; bot and system
  messages touch neither. A visitor's first message sets ``first_visitor_message_at``; visitor
  messages and human replies count in ``counted_messages`` (the reports' facts, ``report_facts``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Sum
from django.db.models.expressions import RawSQL
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from messenger import dbwrite, events, formatting
from messenger.actions.base import Actor, audit_row
from messenger.db import steps
from messenger.errors import Conflict, Forbidden, InvalidInput, NotFound
from messenger.models import (
    Attachment,
    Contact,
    ContactInbox,
    Conversation,
    ConversationStatus,
    Message,
    MessageDirection,
    SenderType,
)
from messenger.models.conversation import ACTIVE_STATUSES
from messenger.realtime.broadcast import broadcast_on_commit
from messenger.realtime.eventlog import bump_sequences, bump_statement, record_event, sequences_from
from messenger.realtime.groups import user_group
from messenger.throttle import CountHits, VisitorLimits, refuse_denied


@dataclass(frozen=True)
class SendResult:
    message: Message
    created: bool
    conversation: Conversation


def fitting_content(content: str, body: str) -> str:
    """``content`` (``body`` rendered), or ``too_large`` when the two would not fit in one frame
    (``events.MESSAGE_TEXT_MAX_BYTES``): a body of short links or quotes grows several times over
    when rendered."""
    if events.text_bytes(body, content) > events.MESSAGE_TEXT_MAX_BYTES:
        raise InvalidInput("body: too long once formatted; send it in parts", code="too_large")
    return content


def validate_message_input(client_id: Any, body: Any, attachment_ids: Any) -> tuple[str, str, list[int]]:
    if not isinstance(client_id, str) or not 1 <= len(client_id) <= 64:
        raise InvalidInput("client_id: a string of 1 to 64 characters is required")
    if body is None:
        body = ""
    if not isinstance(body, str):
        raise InvalidInput("body: must be a string")
    if len(body) > settings.MESSENGER_MESSAGE_MAX_LENGTH:
        raise InvalidInput(f"body: at most {settings.MESSENGER_MESSAGE_MAX_LENGTH} characters")
    if attachment_ids is None:
        attachment_ids = []
    if not isinstance(attachment_ids, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in attachment_ids
    ):
        raise InvalidInput("attachment_ids: a list of integers")
    if len(attachment_ids) > settings.MESSENGER_ATTACHMENTS_PER_MESSAGE:
        raise InvalidInput(f"attachment_ids: at most {settings.MESSENGER_ATTACHMENTS_PER_MESSAGE} files per message")
    body = body.strip()
    if not body and not attachment_ids:
        raise InvalidInput("body: an empty message needs at least one attachment")
    return client_id, body, list(dict.fromkeys(attachment_ids))


class StaleConversation(Exception):
    """The conversation changed under the caller (resolved meanwhile); retry with a fresh read."""


class AlreadyStored(Exception):
    """A resend: the conversation already holds a message with this ``client_id``."""

    def __init__(self, message_id: int) -> None:
        super().__init__(message_id)
        self.message_id = message_id


@dataclass(frozen=True)
class WriteChecks:
    """What a send checks in the statement that locks the conversation, a round trip fewer than
    asking first: a resend of ``client_id`` (by ``contact_id``, the visitor, in any of its
    conversations; without it, in this conversation), whether ``contact_id`` is blocked now;
    then ``limits`` (the visitor's throttles, per ``contact_inbox_id``) once the conversation is
    known to be writable, before any INSERT."""

    client_id: str
    contact_inbox_id: int | None = None
    contact_id: int | None = None
    limits: VisitorLimits | None = None


def as_datetime(value: Any) -> datetime | None:
    """A timestamp as RETURNING gives it → an aware datetime. SQLite gives text, or a naive
    datetime when the column's declared type has a converter: both are UTC."""
    if value is None:
        return None
    parsed = value if isinstance(value, datetime) else parse_datetime(str(value))
    if parsed is not None and timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, UTC)
    return parsed


# The conversation's columns a send's sequence bump returns: every value of the conversation that
# the send changes or re-checks, set on the caller's instance before the payload is built.
_BUMP_RETURNS = (
    "status",
    "snoozed_until",
    "unread_for_agent",
    "unread_for_contact",
    "waiting_since",
    "first_reply_created_at",
    "assignee_opened_at",
    "escalation_deadline",
    "last_activity_at",
    "last_message_preview",
    "assignee_id",
    "branch_id",
)
_BUMP_TIMES = {
    "snoozed_until",
    "waiting_since",
    "first_reply_created_at",
    "assignee_opened_at",
    "escalation_deadline",
    "last_activity_at",
}


def _store_message(**fields: Any) -> Message:
    """Write the message, its counters, its event and (``audit_verb``) the sender's audit row in
    one transaction (a savepoint inside the caller's), in a database thread (``_message_steps``).

    Two tabs or processes sending the same ``client_id`` at once both pass the resend check; the
    unique constraint stops the second INSERT, and this answers ``AlreadyStored`` with the first
    one's message, as a later resend would be answered."""
    checks: WriteChecks | None = fields.get("checks")
    try:
        with transaction.atomic():
            return steps.run(_message_steps(**fields))
    except IntegrityError:
        if checks is None:
            raise
        stored_id = _resend_id(
            checks.client_id, conversation_id=fields["conversation"].pk, contact_id=checks.contact_id
        )
        if stored_id is None:
            raise
        raise AlreadyStored(stored_id) from None


def _message_steps(
    *,
    conversation: Conversation,
    direction: str,
    sender_type: str,
    body: str,
    content: str,
    client_id: str | None,
    sender_contact: Any = None,
    sender_user: Any = None,
    attachment_ids: list[int] | None = None,
    content_attributes: dict[str, Any] | None = None,
    audit_verb: str | None = None,
    checks: WriteChecks | None = None,
) -> steps.Steps[Message]:
    """The one way a message is written, as steps (``messenger.db.steps``) that a database
    thread (``_store_message``) or the event loop (``_astore``) runs in one transaction:

    1. one UPDATE locks the conversation, allocates the event numbers and the message id, applies
       the send's counters and timestamps, and returns every value the payload needs, with the
       ``checks`` (a resend raises ``AlreadyStored``, a blocked contact ``Forbidden``);
    2. what the caller read is re-checked against it (resolved or moved meanwhile:
       ``StaleConversation``), then the visitor's limits are counted (``throttle.CountHits``);
    3. the payloads are built once, in Python, from those values;
    4. the message, its event and the audit row are INSERTed together.

    Every refusal raises before step 4, and the transaction rolls back: nothing is written.
    ``content`` is ``body`` rendered (``formatting.render``), by the caller: on the event loop a
    long body renders in a thread.
    """
    now = timezone.now()
    public = direction != MessageDirection.INTERNAL
    preview = formatting.preview(body) or ("📎" if attachment_ids else "")
    returning_sql = [dbwrite.next_id_sql(Message)]
    returning_params: list[Any] = []
    if checks is not None:
        for sql, params in _check_queries(
            checks.client_id,
            conversation_id=conversation.pk if checks.contact_id is None else None,
            contact_id=checks.contact_id,
        ):
            returning_sql.append(f"({sql})")
            returning_params += params
    row = yield steps.Fetch(
        *bump_statement(
            conversation.pk,
            public=public,
            now=now,
            assignments=_send_assignments(direction, sender_type, sender_user, now, preview[:200] if public else None),
            returning=_BUMP_RETURNS,
            returning_sql=returning_sql,
            returning_params=returning_params,
        )
    )
    sequences = sequences_from(row, conversation_id=conversation.pk, public=public)
    values = dict(zip(_BUMP_RETURNS, sequences.returned, strict=False))
    message_id, *found = sequences.returned[len(_BUMP_RETURNS) :]
    if checks is not None:
        if found[0] is not None:
            raise AlreadyStored(found[0])
        if checks.contact_id is not None and found[1]:
            raise Forbidden("You cannot send messages.", code="blocked")
    status = values["status"]
    if direction == MessageDirection.IN and status not in ACTIVE_STATUSES:
        # Resolved by an operator since the caller read it: undo (the transaction rolls back).
        raise StaleConversation(conversation.pk)
    if sender_type == SenderType.USER and (
        values["branch_id"] != conversation.branch_id
        or (direction == MessageDirection.OUT and status in (ConversationStatus.RESOLVED, ConversationStatus.CLOSED))
    ):
        # A cached conversation moved or closed under the operator: access and state are re-checked.
        raise StaleConversation(conversation.pk)
    if checks is not None and checks.limits is not None and checks.contact_inbox_id is not None:
        limits = checks.limits.send_limits(contact_inbox_id=checks.contact_inbox_id, conversation_id=conversation.pk)
        refuse_denied(limits, (yield CountHits(limits)))
    moved = values["assignee_id"] != conversation.assignee_id or values["branch_id"] != conversation.branch_id
    for column, value in values.items():
        setattr(conversation, column, as_datetime(value) if column in _BUMP_TIMES else value)
    conversation.last_seq = sequences.seq
    if public:
        conversation.last_public_seq = sequences.public_seq
    if moved:
        # Reassigned or transferred since the caller read it: the payload names the new ones.
        yield steps.Sync(lambda: conversation.refresh_from_db(fields=["assignee", "branch"]))
    message = Message(
        id=message_id,
        conversation=conversation,
        direction=direction,
        sender_type=sender_type,
        sender_contact=sender_contact,
        sender_user=sender_user,
        body=body,
        content=content,
        content_attributes=content_attributes or {},
        client_id=client_id,
        created_at=now,
    )
    attachments: list[Attachment] = []
    if attachment_ids:
        # The uploads point at the message before its row is written: foreign keys are checked
        # at COMMIT.
        attachments = yield steps.Sync(
            lambda: _bind_attachments(message, attachment_ids, conversation, sender_type, sender_contact)
        )
    statements = [dbwrite.insert_statement(message)]
    record_event(
        conversation,
        events.message_created(message, conversation, attachments),
        now=now,
        sequences=sequences,
        statements=statements,
    )
    if audit_verb is not None:
        # SPEC §9: every staff send is audited, in the same transaction.
        statements.append(
            dbwrite.insert_statement(
                audit_row(Actor(user=sender_user), audit_verb, target=message, conversation=conversation)
            )
        )
    yield steps.Run(statements)
    message._prefetched_attachments = attachments  # type: ignore[attr-defined]
    return message


def _send_assignments(
    direction: str, sender_type: str, sender_user: Any, now: datetime, preview: str | None
) -> list[tuple[str, list[Any]]]:
    """What a send sets on its conversation, as the sequence bump's ``SET`` clauses: activity,
    the list's preview (``preview`` of a public message written by a person: an auto-reply or a
    system notice leaves the visitor's question there), and by who sent it the counters, the
    timers and a snoozed conversation's wake-up, all decided under the row lock."""
    assignments: list[tuple[str, list[Any]]] = [("last_activity_at = %s", [now])]
    if preview is not None and sender_type in (SenderType.CONTACT, SenderType.USER):
        assignments.append(("last_message_preview = %s", [preview]))
    if direction == MessageDirection.IN:
        assignments += [
            ("waiting_since = COALESCE(waiting_since, %s)", [now]),
            ("first_visitor_message_at = COALESCE(first_visitor_message_at, %s)", [now]),
            ("counted_messages = counted_messages + 1", []),
            ("unread_for_agent = unread_for_agent + 1", []),
            ("contact_last_seen_at = %s", [now]),
            # A visitor writing wakes a snoozed conversation (SET sees the row as it was).
            (
                "status = CASE WHEN status = %s THEN %s ELSE status END",
                [ConversationStatus.SNOOZED, ConversationStatus.OPEN],
            ),
            ("snoozed_until = CASE WHEN status = %s THEN NULL ELSE snoozed_until END", [ConversationStatus.SNOOZED]),
        ]
    elif direction == MessageDirection.OUT:
        assignments.append(("unread_for_contact = unread_for_contact + 1", []))
        if sender_type == SenderType.USER:
            assignments += [
                ("first_reply_created_at = COALESCE(first_reply_created_at, %s)", [now]),
                ("counted_messages = counted_messages + 1", []),
                ("waiting_since = NULL", []),
                ("agent_last_seen_at = %s", [now]),
            ]
            if sender_user is not None:
                # Answering is opening: the assignee's escalation timer stops.
                assignments += [
                    (
                        "assignee_opened_at = CASE WHEN assignee_id = %s THEN COALESCE(assignee_opened_at, %s) ELSE assignee_opened_at END",
                        [sender_user.pk, now],
                    ),
                    (
                        "escalation_deadline = CASE WHEN assignee_id = %s THEN NULL ELSE escalation_deadline END",
                        [sender_user.pk],
                    ),
                ]
    return assignments


def _bind_attachments(
    message: Message, attachment_ids: list[int], conversation: Conversation, sender_type: str, sender_contact: Any
) -> list[Attachment]:
    uploads = Attachment.objects.filter(pk__in=attachment_ids, conversation=conversation, message__isnull=True)
    if sender_type == SenderType.CONTACT:
        uploads = uploads.filter(uploaded_by_contact=sender_contact)
    else:
        uploads = uploads.filter(uploaded_by_user__isnull=False)
    bound = uploads.update(message=message)
    if bound != len(attachment_ids):
        raise InvalidInput("attachment_ids: unknown or already sent attachment")
    return sorted(Attachment.objects.filter(message=message), key=lambda a: attachment_ids.index(a.pk))


def push_unread_totals(user_id: int) -> None:
    """The badge of one operator: conversations with unread visitor messages, and messages."""
    totals = Conversation.objects.filter(
        assignee_id=user_id, status__in=ACTIVE_STATUSES, unread_for_agent__gt=0
    ).aggregate(conversations=Count("id"), messages=Sum("unread_for_agent"))
    frame = events.unread_frame(conversations=totals["conversations"] or 0, messages=totals["messages"] or 0)
    broadcast_on_commit([user_group(user_id)], frame)


def _existing(client_id: str, *, conversation_id: int) -> Message | None:
    """The message a resend into ``conversation_id`` refers to, or None."""
    return _stored(_resend_id(client_id, conversation_id=conversation_id))


def _resend_id(client_id: str, *, conversation_id: int | None = None, contact_id: int | None = None) -> int | None:
    """The id of the message stored under ``client_id``: by ``contact_id`` (a visitor's, in any of
    its conversations) or in ``conversation_id``."""
    message_id, _blocked, _current = _resend_check(client_id, conversation_id=conversation_id, contact_id=contact_id)
    return message_id


def _resend_check(
    client_id: str,
    *,
    conversation_id: int | None = None,
    contact_inbox_id: int | None = None,
    contact_id: int | None = None,
    with_current: bool = False,
) -> tuple[int | None, bool, int | None]:
    """(id of the message stored under ``client_id`` or None (``_check_queries``), whether
    ``contact_id`` is blocked now, and with ``with_current`` the id of ``contact_inbox_id``'s
    active conversation or None), in one query: the send path asks them all before writing."""
    queries = _check_queries(client_id, conversation_id=conversation_id, contact_id=contact_id)
    if with_current:
        # Asked here, a conversation's first message (no active one) reads nothing more, and a
        # found one is read by its primary key.
        queries.append(_current_conversation_id_query(contact_inbox_id))
    sql = "SELECT " + ", ".join(f"({part})" for part, _ in queries)
    params = [param for _, part_params in queries for param in part_params]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    blocked = bool(row[1]) if contact_id is not None else False
    return row[0], blocked, row[-1] if with_current else None


def _check_queries(
    client_id: str, *, conversation_id: int | None = None, contact_id: int | None = None
) -> list[tuple[str, list[Any]]]:
    """Scalar queries: the id of the message stored under ``client_id`` — with ``contact_id``, sent
    by that visitor in any conversation (a ``client_id`` is stored once per visitor), and whether
    the visitor is blocked; without, in ``conversation_id`` (staff sends)."""
    message_table = Message._meta.db_table
    if contact_id is None:
        return [
            (
                f"SELECT id FROM {message_table} WHERE conversation_id = %s AND client_id = %s LIMIT 1",  # noqa: S608
                [conversation_id, client_id],
            )
        ]
    return [
        (
            f"SELECT id FROM {message_table} WHERE sender_contact_id = %s AND client_id = %s LIMIT 1",  # noqa: S608
            [contact_id, client_id],
        ),
        (f"SELECT blocked FROM {Contact._meta.db_table} WHERE id = %s", [contact_id]),  # noqa: S608
    ]


def _stored(message_id: int | None) -> Message | None:
    if message_id is None:
        return None
    return Message.objects.select_related("conversation", "sender_contact", "sender_user").get(pk=message_id)


def _current_conversation_id_query(contact_inbox_id: int | None) -> tuple[str, list[Any]]:
    """The id of the contact inbox's active conversation (the newest open/pending/snoozed one), as
    a scalar query: ``current_conversation`` reads it, and the send path's resend check asks it
    along with its own questions."""
    placeholders = ", ".join(["%s"] * len(ACTIVE_STATUSES))
    return (
        f"SELECT id FROM {Conversation._meta.db_table} WHERE contact_inbox_id = %s "  # noqa: S608
        f"AND status IN ({placeholders}) ORDER BY created_at DESC, id DESC LIMIT 1",
        [contact_inbox_id, *ACTIVE_STATUSES],
    )


def current_conversation(contact_inbox: ContactInbox) -> Conversation | None:
    """The visitor's active conversation, if any (``_current_conversation_id_query``), in one query."""
    from messenger.access import CONVERSATION_RELATED

    sql, params = _current_conversation_id_query(contact_inbox.pk)
    current_id = RawSQL(f"({sql})", params)  # noqa: S611 — our own SQL, its values bound
    return Conversation.objects.select_related(*CONVERSATION_RELATED).filter(pk=current_id).first()


def _conversation_by_id(conversation_id: int | None) -> Conversation | None:
    """``current_conversation``'s answer once the id is known (None: there is none, or it is gone)."""
    from messenger.access import CONVERSATION_RELATED

    if conversation_id is None:
        return None
    return Conversation.objects.select_related(*CONVERSATION_RELATED).filter(pk=conversation_id).first()


def latest_conversation(contact_inbox: ContactInbox) -> Conversation | None:
    """The visitor's newest conversation whatever its status (what the widget shows)."""
    from messenger.access import CONVERSATION_RELATED

    return (
        Conversation.objects.select_related(*CONVERSATION_RELATED)
        .filter(contact_inbox=contact_inbox)
        .order_by("-created_at", "-id")
        .first()
    )


def send_operator_message(
    *,
    conversation: Conversation,
    user: Any,
    client_id: Any,
    body: Any,
    private: bool = False,
    attachment_ids: Any = None,
) -> SendResult:
    """Store a reply (``private``: an internal note). ``conversation`` came from ``access_*``."""
    client_id, body, attachment_ids = validate_message_input(client_id, body, attachment_ids)
    content = fitting_content(formatting.render(body), body)
    if not private and conversation.status in (ConversationStatus.RESOLVED, ConversationStatus.CLOSED):
        existing = _existing(client_id, conversation_id=conversation.pk)
        if existing is not None:
            return SendResult(message=existing, created=False, conversation=conversation)
        raise Conflict("Reopen the conversation before replying.")
    try:
        message = _store_message(
            **_operator_fields(conversation, user, body, content, client_id, private, attachment_ids)
        )
    except AlreadyStored as stored:
        # A resend: the stored message, nothing new (the sequence bump was rolled back).
        return SendResult(message=_stored(stored.message_id), created=False, conversation=conversation)
    return SendResult(message=message, created=True, conversation=conversation)


def _operator_fields(
    conversation: Conversation,
    user: Any,
    body: str,
    content: str,
    client_id: str,
    private: bool,
    attachment_ids: list[int],
) -> dict[str, Any]:
    return {
        "conversation": conversation,
        "direction": MessageDirection.INTERNAL if private else MessageDirection.OUT,
        "sender_type": SenderType.USER,
        "sender_user": user,
        "body": body,
        "content": content,
        "client_id": client_id,
        "attachment_ids": attachment_ids,
        "audit_verb": "message.note" if private else "message.sent",
        "checks": WriteChecks(client_id=client_id),
    }


def _visitor_fields(
    contact_inbox: ContactInbox,
    conversation: Conversation,
    body: str,
    content: str,
    client_id: str,
    attachment_ids: list[int],
    checks: WriteChecks | None,
) -> dict[str, Any]:
    return {
        "conversation": conversation,
        "direction": MessageDirection.IN,
        "sender_type": SenderType.CONTACT,
        "sender_contact": contact_inbox.contact,
        "body": body,
        "content": content,
        "client_id": client_id,
        "attachment_ids": attachment_ids,
        "checks": checks,
    }


def _visitor_checks(contact_inbox: ContactInbox, client_id: str, limits: VisitorLimits | None) -> WriteChecks:
    return WriteChecks(
        client_id=client_id, contact_inbox_id=contact_inbox.pk, contact_id=contact_inbox.contact_id, limits=limits
    )


def _to_known_conversation(
    contact_inbox: ContactInbox, conversation_id: Any, known_conversation: Conversation | None
) -> bool:
    return (
        conversation_id is None
        and known_conversation is not None
        and known_conversation.contact_inbox_id == contact_inbox.pk
        and known_conversation.status in ACTIVE_STATUSES
    )


# --- on the event loop (PostgreSQL): the common sends without a database thread -------------------


async def asend_visitor_message(
    *,
    contact_inbox: ContactInbox,
    client_id: Any,
    body: Any,
    attachment_ids: Any = None,
    conversation_id: Any = None,
    known_conversation: Conversation | None = None,
    limits: VisitorLimits | None = None,
) -> SendResult | None:
    """``intake.send_visitor_message``'s common case, run on the event loop (``db.steps``): a
    message without attachments to the socket's current conversation. None when that is not the
    case, or when the store must run in a thread after all (a resend, a conversation resolved
    meanwhile, a step that needs the ORM): nothing was written, and the caller goes on with
    ``intake.send_visitor_message``."""
    if (
        attachment_ids
        or not steps.enabled()
        or not _to_known_conversation(contact_inbox, conversation_id, known_conversation)
    ):
        return None
    client_id, body, attachment_ids = validate_message_input(client_id, body, attachment_ids)
    checks = _visitor_checks(contact_inbox, client_id, limits)
    content = fitting_content(await formatting.arender(body), body)
    message = await _astore(
        _visitor_fields(contact_inbox, known_conversation, body, content, client_id, attachment_ids, checks),
        "visitor_send",
    )
    if message is None:
        return None
    return SendResult(message=message, created=True, conversation=known_conversation)


async def asend_operator_message(
    *,
    conversation: Conversation,
    user: Any,
    client_id: Any,
    body: Any,
    private: bool = False,
    attachment_ids: Any = None,
) -> SendResult | None:
    """``send_operator_message``'s common case on the event loop, as ``asend_visitor_message``:
    a reply or note without attachments to an open conversation the socket has written to."""
    if attachment_ids or not steps.enabled():
        return None
    if not private and conversation.status in (ConversationStatus.RESOLVED, ConversationStatus.CLOSED):
        return None
    client_id, body, attachment_ids = validate_message_input(client_id, body, attachment_ids)
    content = fitting_content(await formatting.arender(body), body)
    message = await _astore(
        _operator_fields(conversation, user, body, content, client_id, private, attachment_ids), "operator_send"
    )
    if message is None:
        return None
    return SendResult(message=message, created=True, conversation=conversation)


async def _astore(fields: dict[str, Any], name: str) -> Message | None:
    try:
        message = await steps.arun(_message_steps(**fields), name=name)
    except (AlreadyStored, StaleConversation):
        return None  # rolled back; the thread's path answers the resend or finds the next conversation
    return None if message is steps.FALLBACK else message


def send_automatic_message(
    *,
    conversation: Conversation,
    body: str,
    sender_type: str = SenderType.BOT,
    private: bool = False,
    kind: str = "",
    notice: dict[str, Any] | None = None,
) -> Message:
    """Auto-replies and system notices (transfer, escalation). Never counts as a first reply.

    ``notice``: a system notice's words as data (``content_attributes.notice``), so that a page in
    another language than the stored English ``body`` can say it in its own."""
    attributes: dict[str, Any] = {"kind": kind} if kind else {}
    if notice:
        attributes["notice"] = notice
    return _store_message(
        conversation=conversation,
        direction=MessageDirection.INTERNAL if private else MessageDirection.OUT,
        sender_type=sender_type,
        body=body,
        content=formatting.render(body),
        client_id=None,
        content_attributes=attributes,
    )


def _receipt_target(reader: str) -> str:
    # The visitor reads operator messages; staff read visitor messages.
    return MessageDirection.OUT if reader == "contact" else MessageDirection.IN


def _validate_up_to(up_to_message_id: Any) -> int:
    if not isinstance(up_to_message_id, int) or isinstance(up_to_message_id, bool) or up_to_message_id < 1:
        raise InvalidInput("up_to_message_id: a positive integer")
    return up_to_message_id


def mark_delivered(*, conversation: Conversation, reader: str, up_to_message_id: Any) -> int:
    """One tick: the other side's messages up to ``up_to_message_id`` reached ``reader``'s client."""
    up_to = _validate_up_to(up_to_message_id)
    now = timezone.now()
    with transaction.atomic():
        changed = Message.objects.filter(
            conversation=conversation, direction=_receipt_target(reader), id__lte=up_to, delivered_at__isnull=True
        ).update(delivered_at=now)
        if changed:
            event = events.messages_delivered(direction=_receipt_target(reader), up_to_message_id=up_to, at=now)
            record_event(conversation, event, now=now)
    return changed


def mark_read(*, conversation: Conversation, reader: str, up_to_message_id: Any, user: Any = None) -> int:
    """Two ticks, and the reader's unread counter back to zero."""
    up_to = _validate_up_to(up_to_message_id)
    if not Message.objects.filter(conversation=conversation, id=up_to).exists():
        raise NotFound("No such message.")
    now = timezone.now()
    target = _receipt_target(reader)
    with transaction.atomic():
        changed = Message.objects.filter(
            conversation=conversation, direction=target, id__lte=up_to, read_at__isnull=True
        ).update(read_at=now)
        Message.objects.filter(
            conversation=conversation, direction=target, id__lte=up_to, delivered_at__isnull=True
        ).update(delivered_at=now)
        if not changed:
            return 0
        if reader == "contact":
            assignments = [("unread_for_contact = 0", []), ("contact_last_seen_at = %s", [now])]
        else:
            assignments = [("unread_for_agent = 0", []), ("agent_last_seen_at = %s", [now])]
            if user is not None and user.pk == conversation.assignee_id:
                assignments.append(("assignee_last_read_at = %s", [now]))
        sequences = bump_sequences(conversation.pk, public=True, now=now, assignments=assignments)
        if reader == "contact":
            conversation.unread_for_contact = 0
        else:
            conversation.unread_for_agent = 0
        event = events.conversation_read(
            reader="contact" if reader == "contact" else "agent", up_to_message_id=up_to, at=now
        )
        record_event(conversation, event, now=now, sequences=sequences)
        if reader != "contact" and conversation.assignee_id:
            push_unread_totals(conversation.assignee_id)
    return changed
