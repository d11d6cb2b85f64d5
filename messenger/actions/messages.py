"""Messages: send (visitor, operator, note, system/bot), delivered and read receipts.

Invariants:
* One door: the widget, the dashboard, the public API and automation all store messages through
  ``_store_message``.
* A ``client_id`` is stored once per conversation (unique constraint); a resend answers the stored
  message and creates nothing.
* The sequence bump, the message row, the counters and the event row are one transaction; frames
  leave after commit.
* Human operator replies set ``first_reply_created_at`` and clear ``waiting_since``; bot and system
  messages touch neither.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Sum
from django.db.models.expressions import RawSQL
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from messenger import dbwrite, events, formatting
from messenger.actions.base import Actor, audit_row
from messenger.db import aio
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
from messenger.realtime.broadcast import broadcast_on_commit, dumps
from messenger.realtime.eventlog import (
    PublicPart,
    Sequences,
    broadcast_event,
    bump_sequences,
    bump_statement,
    event_insert_from,
    record_event,
    sequences_from,
)
from messenger.realtime.groups import user_group
from messenger.throttle import CountHits, RefundHits, VisitorLimits, WaitAhead, refuse_denied


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
    asking first: a resend of ``client_id`` (in this conversation, or in any conversation of
    ``contact_inbox_id``), whether ``contact_id`` is blocked now; then ``limits`` (the visitor's
    throttles, per ``contact_inbox_id``) once the conversation is known to be writable, before
    any INSERT."""

    client_id: str
    contact_inbox_id: int | None = None
    contact_id: int | None = None
    limits: VisitorLimits | None = None


def as_datetime(value: Any) -> datetime | None:
    """A timestamp as RETURNING gives it (SQLite: text) → an aware datetime."""
    if value is None or isinstance(value, datetime):
        return value
    parsed = parse_datetime(str(value))
    if parsed is not None and timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, UTC)
    return parsed


# What a send's sequence bump returns (after the numbers), in this order.
_BUMP_RETURNS = (
    "unread_for_agent",
    "unread_for_contact",
    "waiting_since",
    "first_reply_created_at",
    "status",
    "assignee_opened_at",
)


def _store_message(**fields: Any) -> Message:
    """Write the message, its counters, its event and (``audit_verb``) the sender's audit row, through
    Django's connection (``_message_steps``). Must run inside ``transaction.atomic``."""
    return dbwrite.run(_message_steps(**fields))


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
) -> Generator[Any, Any, Message]:
    """The steps (``dbwrite``) that write the message, its counters, its event and (``audit_verb``)
    the sender's audit row, in one transaction that the driver holds: ``_store_message`` in a
    thread, ``_astore`` on the event loop (``messenger.db.aio``). ``content`` is ``body`` rendered
    (``formatting.render``), by the caller: on the event loop a long body renders in a thread.

    ``checks`` (``WriteChecks``) ride on the statement that locks the conversation: a resend raises
    ``AlreadyStored``, a blocked contact ``Forbidden``, and the visitor's limits may refuse; each
    rolls the transaction back, so nothing is written.

    On PostgreSQL a message without attachments is written by one statement
    (``_one_statement_steps``); when that declines, or with attachments, the message id is
    allocated by the statement that locks the conversation and the INSERTs leave together
    (``dbwrite``): four round trips in all, BEGIN and COMMIT included.
    """
    now = timezone.now()
    public = direction != MessageDirection.INTERNAL
    preview = formatting.preview(body) or ("📎" if attachment_ids else "")
    assignments: list[tuple[str, list[Any]]] = [("last_activity_at = %s", [now])]
    if public:
        assignments.append(("last_message_preview = %s", [preview[:200]]))
    if direction == MessageDirection.IN:
        assignments += [
            ("waiting_since = COALESCE(waiting_since, %s)", [now]),
            ("unread_for_agent = unread_for_agent + 1", []),
            ("contact_last_seen_at = %s", [now]),
        ]
        # A visitor writing wakes a snoozed conversation; decided in SQL, under the row lock.
        assignments += [
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
    message = Message(
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
    next_id = dbwrite.next_id_sql(Message)
    if next_id and not attachment_ids:
        stored = yield from _one_statement_steps(
            message, audit_verb=audit_verb, checks=checks, assignments=assignments, next_id=next_id, preview=preview
        )
        if stored is not None:
            return stored
    returning_sql = [next_id] if next_id else []
    returning_params: list[Any] = []
    if checks is not None:
        for sql, params in _check_queries(
            checks.client_id,
            conversation_id=conversation.pk if checks.contact_inbox_id is None else None,
            contact_inbox_id=checks.contact_inbox_id,
            contact_id=checks.contact_id,
        ):
            returning_sql.append(f"({sql})")
            returning_params += params
    row = yield dbwrite.Fetch(
        *bump_statement(
            conversation.pk,
            public=public,
            now=now,
            assignments=assignments,
            returning_sql=returning_sql,
            returning_params=returning_params,
            returning=(*_BUMP_RETURNS, "assignee_id", "branch_id"),
        )
    )
    sequences = sequences_from(row, conversation_id=conversation.pk, public=public)
    _bumped(conversation, sequences.returned[: len(_BUMP_RETURNS)])
    assignee_id, branch_id, *extra = sequences.returned[len(_BUMP_RETURNS) :]
    allocated, found = (extra[:1], extra[1:]) if next_id else ([], extra)
    if checks is not None:
        if found[0] is not None:
            raise AlreadyStored(found[0])
        if checks.contact_id is not None and found[1]:
            raise Forbidden("You cannot send messages.", code="blocked")
    if direction == MessageDirection.IN and conversation.status not in ACTIVE_STATUSES:
        # Resolved by an operator since the caller read it: undo (the atomic block rolls back).
        raise StaleConversation(conversation.pk)
    if sender_type == SenderType.USER and (
        branch_id != conversation.branch_id
        or (
            direction == MessageDirection.OUT
            and conversation.status in (ConversationStatus.RESOLVED, ConversationStatus.CLOSED)
        )
    ):
        # A cached conversation moved or closed under the operator: access and state are re-checked.
        raise StaleConversation(conversation.pk)
    if assignee_id != conversation.assignee_id or branch_id != conversation.branch_id:
        # Reassigned or transferred since the caller read it: events must follow the new branch.
        yield dbwrite.Sync(lambda: conversation.refresh_from_db(fields=["assignee", "branch"]))
    if checks is not None and checks.limits is not None and checks.contact_inbox_id is not None:
        limits = checks.limits.send_limits(contact_inbox_id=checks.contact_inbox_id, conversation_id=conversation.pk)
        refuse_denied(limits, (yield CountHits(limits)))
    _touched(conversation, now, preview if public else None)
    message.id = allocated[0] if allocated else None
    statements: list[dbwrite.Statement] = []
    if message.pk is None:
        yield dbwrite.Sync(lambda: message.save(force_insert=True))
    else:
        statements.append(dbwrite.insert_statement(message))
    attachments: list[Attachment] = []
    if attachment_ids:
        yield dbwrite.Run(statements)  # the message row first: the uploads point at it
        statements = []
        attachments = yield dbwrite.Sync(
            lambda: _bind_attachments(message, attachment_ids, conversation, sender_type, sender_contact)
        )
    message.conversation = conversation
    staff_data, public_data = _payloads(message, attachments, public=public)
    public_part = PublicPart(type="message.created", data=public_data) if public_data is not None else None
    record_event(
        conversation,
        type="message.created",
        data=staff_data,
        public=public_part,
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
    yield dbwrite.Run(statements)
    message._prefetched_attachments = attachments  # type: ignore[attr-defined]
    return message


def _touched(conversation: Conversation, now: datetime, preview: str | None) -> None:
    """What a send sets on the conversation whatever its row says: activity, and (``preview`` of a
    public message) the list's preview."""
    conversation.last_activity_at = now
    if preview is not None:
        conversation.last_message_preview = preview[:200]


def _bumped(conversation: Conversation, returned: Sequence[Any]) -> None:
    """The columns (``_BUMP_RETURNS``) the sequence bump returned, onto the caller's conversation
    (``as_datetime``: SQLite gives text)."""
    unread_for_agent, unread_for_contact, waiting_since, first_reply, status, opened = returned
    conversation.unread_for_agent, conversation.unread_for_contact = unread_for_agent, unread_for_contact
    conversation.status = status
    conversation.waiting_since = as_datetime(waiting_since)
    conversation.first_reply_created_at = as_datetime(first_reply)
    conversation.assignee_opened_at = as_datetime(opened)


def _payloads(
    message: Message, attachments: list[Attachment], *, public: bool
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The ``message.created`` event's staff data and (``public``) the visitor's."""
    conversation = message.conversation
    staff = {
        "message": events.message_payload(message, public=False, attachments=attachments),
        "conversation": events.conversation_staff(conversation),
    }
    if not public:
        return staff, None
    return staff, {
        "message": events.message_payload(message, public=True, attachments=attachments),
        "unread_for_contact": conversation.unread_for_contact,
    }


def _iso_sql(column: str) -> str:
    """``events.iso`` of a timestamp column, as a JSON value (``null`` for NULL)."""
    utc = f"({column} AT TIME ZONE 'UTC')"
    return (
        f"COALESCE(to_jsonb(to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN mod(date_part('microseconds', {column})::int, 1000000) = 0 "
        f"THEN '' ELSE to_char({utc}, '.US') END || 'Z'), 'null'::jsonb)"
    )


def _one_statement_steps(
    message: Message,
    *,
    audit_verb: str | None,
    checks: WriteChecks | None,
    assignments: list[tuple[str, list[Any]]],
    next_id: str,
    preview: str,
) -> Generator[Any, Any, Message | None]:
    """PostgreSQL, no attachments: the whole write as one statement, one round trip on a
    connection with no transaction open (``dbwrite.Fetch(alone=True)``).

    The sequence bump's UPDATE is its first CTE, and the INSERTs (message, event, audit row) read
    the id and numbers it allocated. Whatever ``_message_steps`` would refuse or redo is a
    condition of that UPDATE instead: a resend, a blocked contact, a conversation resolved, moved or
    reassigned since the caller read it. When one holds, nothing is written and this returns None;
    ``_message_steps`` then takes its steps one by one and answers as it always does. The payloads
    are the ones ``record_event`` would store, built here with the values the UPDATE decides
    (the message id, counters, status, timestamps) set by PostgreSQL; the frames carry the stored
    text. The visitor's limits are counted first (or were, after the socket's last send:
    ``throttle.SendAhead``); refunded when this does not write, since the step-by-step path counts
    them again (after its resend check).
    """
    conversation, direction, now = message.conversation, message.direction, message.created_at
    public = direction != MessageDirection.INTERNAL
    counted, ahead, limits = None, None, []
    if checks is not None and checks.limits is not None and checks.contact_inbox_id is not None:
        limits = checks.limits.send_limits(contact_inbox_id=checks.contact_inbox_id, conversation_id=conversation.pk)
        ahead = checks.limits.ahead
        if ahead is not None:
            if ahead.counting is not None:
                yield WaitAhead(ahead.counting)  # the last send's count for this one is not back yet
            counted = ahead.take(limits)  # counted after the last send
        if counted is None:
            counted = CountHits(limits)
            if not all(hit.allowed for hit in (yield counted)):
                yield RefundHits(counted)  # a resend is answered before a refusal: the long way
                return None
    where: list[tuple[str, list[Any]]] = [
        ("assignee_id IS NOT DISTINCT FROM %s", [conversation.assignee_id]),
        ("branch_id IS NOT DISTINCT FROM %s", [conversation.branch_id]),
    ]
    if direction == MessageDirection.IN:
        where.append(("status IN (%s, %s, %s)", list(ACTIVE_STATUSES)))
    elif message.sender_type == SenderType.USER and direction == MessageDirection.OUT:
        where.append(("status NOT IN (%s, %s)", [ConversationStatus.RESOLVED, ConversationStatus.CLOSED]))
    if checks is not None:
        resend, *blocked = _check_queries(
            checks.client_id,
            conversation_id=conversation.pk if checks.contact_inbox_id is None else None,
            contact_inbox_id=checks.contact_inbox_id,
            contact_id=checks.contact_id,
        )
        where.append((f"({resend[0]}) IS NULL", resend[1]))
        where += [(f"({sql}) IS NOT TRUE", params) for sql, params in blocked]
    bump = bump_statement(
        conversation.pk,
        public=public,
        now=now,
        assignments=assignments,
        returning=_BUMP_RETURNS,
        returning_sql=[f"{next_id} AS message_id"],
        where=where,
    )

    touched = (conversation.last_activity_at, conversation.last_message_preview)
    _touched(conversation, now, preview if public else None)
    # The payloads with what the UPDATE decides left to PostgreSQL (jsonb_set below).
    staff_data, public_data = _payloads(message, [], public=public)
    staff_sql = (
        "jsonb_set(jsonb_set(jsonb_set(jsonb_set(jsonb_set(%s::jsonb, '{message,id}', to_jsonb(c.message_id)), "
        "'{conversation,status}', to_jsonb(c.status)), '{conversation,unread_for_agent}', to_jsonb(c.unread_for_agent)), "
        f"'{{conversation,waiting_since}}', {_iso_sql('c.waiting_since')}), "
        f"'{{conversation,assignee_opened_at}}', {_iso_sql('c.assignee_opened_at')})"
    )
    payload_params: list[Any] = [dumps(staff_data)]
    public_sql = "NULL::jsonb"
    if public_data is not None:
        public_sql = (
            "jsonb_set(jsonb_set(%s::jsonb, '{message,id}', to_jsonb(c.message_id)), "
            "'{unread_for_contact}', to_jsonb(c.unread_for_contact))"
        )
        payload_params.append(dumps(public_data))
    inserts = [
        dbwrite.insert_select(message, "c", {"id": "c.message_id"}),
        event_insert_from(
            "p",
            conversation.pk,
            type="message.created",
            now=now,
            payload_sql="p.staff",
            public_data_sql="p.public" if public_data is not None else None,
        ),
    ]
    if audit_verb is not None:
        # SPEC §9: every staff send is audited, in the same statement.
        audit = audit_row(Actor(user=message.sender_user), audit_verb, target=message, conversation=conversation)
        inserts.append(dbwrite.insert_select(audit, "c", {"target_id": "c.message_id::text"}))
    ctes = [
        f"c AS ({bump[0]})",
        f"p AS (SELECT c.last_seq, c.last_public_seq, {staff_sql} AS staff, {public_sql} AS public FROM c)",  # noqa: S608
    ]
    ctes += [f"w{i} AS ({insert_sql})" for i, (insert_sql, _) in enumerate(inserts)]
    sql = (
        f"WITH {', '.join(ctes)} SELECT c.last_seq, c.last_public_seq, "  # noqa: S608
        + "".join(f"c.{column}, " for column in _BUMP_RETURNS)
        + "c.message_id, p.staff::text, p.public::text FROM c, p"
    )
    params = [*bump[1], *payload_params, *(param for _, insert_params in inserts for param in insert_params)]
    row = yield dbwrite.Fetch(sql, params, alone=True)
    if row is None:
        conversation.last_activity_at, conversation.last_message_preview = touched  # nothing was written
        if counted is not None:
            yield RefundHits(counted)
        return None
    if ahead is not None:
        ahead.prepare(limits)  # the next send's hits, counted once this one's frames are out
    seq, public_seq, *returned, message.id, staff_json, public_json = row
    _bumped(conversation, returned)
    conversation.last_seq = seq
    if public:
        conversation.last_public_seq = public_seq
    message._prefetched_attachments = []  # type: ignore[attr-defined]
    broadcast_event(
        conversation,
        type="message.created",
        sequences=Sequences(seq=seq, public_seq=public_seq if public else None),
        now=now,
        data_json=staff_json,
        public_type="message.created" if public else None,
        public_data_json=public_json,
    )
    return message


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
    frame = {
        "type": "unread",
        "data": {"conversations": totals["conversations"] or 0, "messages": totals["messages"] or 0},
    }
    broadcast_on_commit([user_group(user_id)], frame)


def _existing(
    client_id: str, *, conversation_id: int | None = None, contact_inbox_id: int | None = None
) -> Message | None:
    """The message a resend refers to. The common answer is "no", asked in one plain query."""
    message_id, _blocked, _current = _resend_check(
        client_id, conversation_id=conversation_id, contact_inbox_id=contact_inbox_id
    )
    return _stored(message_id)


def _resend_check(
    client_id: str,
    *,
    conversation_id: int | None = None,
    contact_inbox_id: int | None = None,
    contact_id: int | None = None,
    with_current: bool = False,
) -> tuple[int | None, bool, int | None]:
    """(id of the message stored under ``client_id`` or None, whether ``contact_id`` is blocked
    now, and with ``with_current`` the id of the contact inbox's active conversation or None), in
    one query: the send path asks them all before writing anything."""
    queries = _check_queries(
        client_id, conversation_id=conversation_id, contact_inbox_id=contact_inbox_id, contact_id=contact_id
    )
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
    client_id: str,
    *,
    conversation_id: int | None = None,
    contact_inbox_id: int | None = None,
    contact_id: int | None = None,
) -> list[tuple[str, list[Any]]]:
    """Scalar queries: the id of the message stored under ``client_id`` (in the conversation, or in
    any conversation of the contact inbox), then, with ``contact_id``, whether it is blocked."""
    message_table = Message._meta.db_table
    if conversation_id is not None:
        queries = [
            (
                f"SELECT id FROM {message_table} WHERE conversation_id = %s AND client_id = %s LIMIT 1",  # noqa: S608
                [conversation_id, client_id],
            )
        ]
    else:
        conversation_table = Conversation._meta.db_table
        # Message first, through the unique index that begins with client_id: usually no row, and
        # the conversation is read only for a row found. Conversation first, a bitmap scan of its
        # contact inbox index read every dead version that the per-message UPDATEs leave there
        # until a vacuum (docs/benchmarks.md, item 21).
        queries = [
            (
                f"SELECT m.id FROM {message_table} m WHERE m.client_id = %s AND "  # noqa: S608
                f"(SELECT c.contact_inbox_id FROM {conversation_table} c WHERE c.id = m.conversation_id) = %s LIMIT 1",
                [client_id, contact_inbox_id],
            )
        ]
    if contact_id is not None:
        queries.append((f"SELECT blocked FROM {Contact._meta.db_table} WHERE id = %s", [contact_id]))  # noqa: S608
    return queries


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
        with transaction.atomic():
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
    """``send_visitor_message``'s common case, run on the event loop (``messenger.db.aio``): a
    message without attachments to the socket's current conversation. None when that is not the
    case, or when the store must run in a thread after all (a resend, a conversation resolved
    meanwhile, a step that needs the ORM): nothing was written, and the caller goes on with
    ``send_visitor_message``."""
    if (
        attachment_ids
        or not aio.enabled()
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
    if attachment_ids or not aio.enabled():
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
        message = await aio.run(_message_steps(**fields), name=name)
    except (AlreadyStored, StaleConversation):
        return None  # rolled back; the thread's path answers the resend or finds the next conversation
    return None if message is aio.FALLBACK else message


def send_automatic_message(
    *, conversation: Conversation, body: str, sender_type: str = SenderType.BOT, private: bool = False, kind: str = ""
) -> Message:
    """Auto-replies and system notices (transfer, escalation). Never counts as a first reply."""
    with transaction.atomic():
        return _store_message(
            conversation=conversation,
            direction=MessageDirection.INTERNAL if private else MessageDirection.OUT,
            sender_type=sender_type,
            body=body,
            content=formatting.render(body),
            client_id=None,
            content_attributes={"kind": kind} if kind else {},
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
            data = {
                "direction": _receipt_target(reader),
                "up_to_message_id": up_to,
                "changes": {"delivered_at": events.iso(now)},
            }
            record_event(
                conversation,
                type="message.updated",
                data=data,
                public=PublicPart(type="message.updated", data=data),
                now=now,
            )
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
        data = {
            "reader": "contact" if reader == "contact" else "agent",
            "up_to_message_id": up_to,
            "read_at": events.iso(now),
        }
        record_event(
            conversation,
            type="conversation.read",
            data=data,
            public=PublicPart(type="conversation.read", data=data),
            now=now,
            sequences=sequences,
        )
        if reader != "contact" and conversation.assignee_id:
            push_unread_totals(conversation.assignee_id)
    return changed
