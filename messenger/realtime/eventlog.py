"""The durable event log: numbering, storing and (after commit) broadcasting conversation events.

Invariants:
* ``record_event`` runs inside the transaction of the change it describes; the UPDATE that
  allocates the sequence numbers locks the conversation row until commit, so numbers are gapless
  and commit in order.
* Staff frames go to the conversation's branch group and to supervisors; visitor frames (only when
  ``public`` data is given) go to the visitor's group.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from messenger.db import offline
from messenger.dbwrite import Statement, execute
from messenger.events import Event, durable_frame, durable_frame_text
from messenger.models import Conversation, ConversationEvent
from messenger.realtime.broadcast import broadcast_text_on_commit, collecting, dumps
from messenger.realtime.groups import staff_groups, visitor_group
from messenger.webhooks import outbox_statements, webhook_events_for


@dataclass(frozen=True)
class Sequences:
    seq: int
    public_seq: int | None
    returned: tuple[Any, ...] = ()


def bump_sequences(conversation_id: int, *, public: bool, now: datetime, **extra: Any) -> Sequences:
    """Allocate the next event numbers (locking the row) and apply extra ``SET`` clauses atomically
    (the statement and the ``extra`` it takes: ``bump_statement``)."""
    with connection.cursor() as cursor:
        cursor.execute(*bump_statement(conversation_id, public=public, now=now, **extra))
        row = cursor.fetchone()
    return sequences_from(row, conversation_id=conversation_id, public=public)


def bump_statement(
    conversation_id: int,
    *,
    public: bool,
    now: datetime,
    assignments: Sequence[tuple[str, Sequence[Any]]] = (),
    returning: Sequence[str] = (),
    returning_sql: Sequence[str] = (),
    returning_params: Sequence[Any] = (),
    where: Sequence[tuple[str, Sequence[Any]]] = (),
) -> Statement:
    """The UPDATE that allocates the next event numbers, for ``bump_sequences`` or a caller that
    runs it itself (``steps.Fetch``).

    ``assignments`` are ("column = <sql with %s>", [params]) pairs written by actions, for counters
    and timestamps that must change in the same statement (e.g. ``unread_for_agent + 1``);
    ``returning`` names columns whose new values come back in ``Sequences.returned``, followed by
    the values of the ``returning_sql`` expressions (e.g. ``dbwrite.next_id_sql``), whose ``%s``
    take ``returning_params``. ``where`` adds conditions ("<sql with %s>", [params]): when one
    does not hold, nothing is updated and the statement returns no row.
    """
    table = Conversation._meta.db_table
    adapt = offline().ops.adapt_datetimefield_value
    clauses = [
        "last_seq = last_seq + 1",
        f"last_public_seq = last_public_seq + {1 if public else 0}",
        "updated_at = %s",
    ]
    params: list[Any] = [adapt(now)]
    for clause, clause_params in assignments:
        clauses.append(clause)
        params.extend(adapt(p) if isinstance(p, datetime) else p for p in clause_params)
    params.append(conversation_id)
    conditions = ["id = %s"]
    for condition, condition_params in where:
        conditions.append(condition)
        params.extend(condition_params)
    params.extend(returning_params)
    sql = f"UPDATE {table} SET {', '.join(clauses)} WHERE {' AND '.join(conditions)} RETURNING {', '.join(['last_seq', 'last_public_seq', *returning, *returning_sql])}"  # noqa: S608
    return sql, params


def sequences_from(row: Sequence[Any] | None, *, conversation_id: int, public: bool) -> Sequences:
    """The ``Sequences`` of the row ``bump_statement`` returned."""
    if row is None:
        raise Conversation.DoesNotExist(conversation_id)
    return Sequences(seq=row[0], public_seq=row[1] if public else None, returned=tuple(row[2:]))


_EVENT_COLUMNS = "conversation_id, seq, public_seq, type, payload, public_payload, created_at"


def record_event(
    conversation: Conversation,
    event: Event | Callable[[], Event],
    *,
    public: bool | None = None,
    now: datetime | None = None,
    sequences: Sequences | None = None,
    extra_groups: Iterable[str] = (),
    statements: list[Statement] | None = None,
) -> Sequences:
    """Store one event (``events.Event``) and broadcast it after commit. Must run inside a
    transaction.

    The numbers come first: ``sequences`` when the caller bumped them together with its own
    update (``bump_statement``), else ``bump_sequences`` here. They are set on ``conversation``
    before the payload is built: an event whose payload carries the conversation's summary is
    given as a callable (and ``public``: whether it has a visitor's side, which the numbering
    needs first), so the summary's ``last_seq`` / ``last_id`` are this event's. The event row is
    then one INSERT (with the webhook outbox's: ``messenger.webhooks.outbox_statements``), run
    here or, with ``statements``, appended there for the caller to run with
    its own (the message send's steps, which may run on the event loop: its transaction is not
    Django's, and the frames wait for its commit in ``broadcast.collecting``).
    """
    assert (statements is not None and sequences is not None and collecting()) or (
        transaction.get_connection().in_atomic_block
    ), "record_event needs a transaction"
    if not callable(event):
        public = event.public is not None
    assert public is not None, "an event given as a callable says whether it is public"
    now = now or timezone.now()
    if sequences is None:
        sequences = bump_sequences(conversation.pk, public=public, now=now)
    conversation.last_seq = sequences.seq
    if sequences.public_seq is not None:
        conversation.last_public_seq = sequences.public_seq
    built = event() if callable(event) else event
    assert (built.public is not None) == public, f"{built.type}: numbered as public={public}"
    # Each payload is serialised once: the same text goes into the event row and into the frame.
    data_json = dumps(built.data)
    public_data_json = dumps(built.public.data) if built.public is not None else None
    public_payload_json = (
        f'{{"type":{dumps(built.public.type)},"data":{public_data_json}}}' if built.public is not None else None
    )
    # A plain INSERT: the event log is written on every change, the ORM's per-row cost showed up
    # in profiles of the message path.
    adapted_now = offline().ops.adapt_datetimefield_value(now)
    insert = (
        f"INSERT INTO {ConversationEvent._meta.db_table} ({_EVENT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)",  # noqa: S608
        [
            conversation.pk,
            sequences.seq,
            sequences.public_seq,
            built.type,
            data_json,
            public_payload_json,
            adapted_now,
        ],
    )
    # The webhook outbox (messenger.webhooks): rows only for subscribed webhooks, written with the
    # event row (one round trip with it on PostgreSQL).
    writes = [insert]
    webhook_events = webhook_events_for(built.type, built.data)
    if webhook_events:
        writes += outbox_statements(
            webhook_events,
            vendor=offline().vendor,
            inbox_id=conversation.inbox_id,
            conversation_id=conversation.pk,
            event_id=sequences.seq,
            created_at=now,
            created_at_param=adapted_now,
            data_json=data_json,
        )
    if statements is not None:
        statements.extend(writes)
    else:
        execute(writes)
    broadcast_event(
        conversation,
        type=built.type,
        sequences=sequences,
        now=now,
        data_json=data_json,
        public_type=built.public.type if built.public is not None else None,
        public_data_json=public_data_json,
        extra_groups=extra_groups,
    )
    return sequences


def broadcast_event(
    conversation: Conversation,
    *,
    type: str,
    sequences: Sequences,
    now: datetime,
    data_json: str,
    public_type: str | None = None,
    public_data_json: str | None = None,
    extra_groups: Iterable[str] = (),
) -> None:
    """The frames of a stored event, after commit: staff (``data_json``) and, with a public part,
    the visitor's (``public_data_json``); each payload is the text stored in the event row."""
    groups = [*staff_groups(conversation.branch_id), *extra_groups]
    broadcast_text_on_commit(
        groups,
        durable_frame_text(
            type=type, conversation_id=conversation.pk, event_id=sequences.seq, ts=now, data_json=data_json
        ),
    )
    if public_type is not None and sequences.public_seq is not None and conversation.contact_inbox_id:
        broadcast_text_on_commit(
            [visitor_group(conversation.contact_inbox_id)],
            durable_frame_text(
                type=public_type,
                conversation_id=conversation.pk,
                event_id=sequences.public_seq,
                ts=now,
                data_json=public_data_json,
            ),
        )


def replay_frames(conversation_id: int, *, after: int, public: bool, limit: int = 500) -> list[dict[str, Any]]:
    """The stored frames of one stream with ``id > after``, oldest first (at most ``limit``)."""
    events = ConversationEvent.objects.filter(conversation_id=conversation_id)
    if public:
        rows = events.filter(public_seq__gt=after).order_by("public_seq")[:limit]
        return [
            durable_frame(
                type=e.public_payload["type"],
                conversation_id=conversation_id,
                event_id=e.public_seq,
                ts=e.created_at,
                data=e.public_payload["data"],
            )
            for e in rows
        ]
    rows = events.filter(seq__gt=after).order_by("seq")[:limit]
    return [
        durable_frame(type=e.type, conversation_id=conversation_id, event_id=e.seq, ts=e.created_at, data=e.payload)
        for e in rows
    ]
