"""The durable event log: numbering, storing and (after commit) broadcasting conversation events.

Invariants:
* ``record_event`` runs inside the transaction of the change it describes; the UPDATE that
  allocates the sequence numbers locks the conversation row until commit, so numbers are gapless
  and commit in order.
* Staff frames go to the conversation's branch group and to supervisors; visitor frames (only when
  ``public`` data is given) go to the visitor's group.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from messenger.db import offline
from messenger.dbwrite import Fetch, Statement, execute
from messenger.events import PublicPart, durable_frame, durable_frame_text
from messenger.models import Conversation, ConversationEvent
from messenger.realtime.broadcast import broadcast_text_on_commit, collecting, dumps
from messenger.realtime.groups import staff_groups, visitor_group


@dataclass(frozen=True)
class Sequences:
    seq: int
    public_seq: int | None
    returned: tuple[Any, ...] = ()


def bump_sequences(conversation_id: int, *, public: bool, now: datetime, **extra: Any) -> Sequences:
    """Allocate the next event numbers (locking the row) and apply extra ``SET`` clauses atomically
    (the statement and the ``extra`` it takes: ``bump_statement``)."""
    row = Fetch(*bump_statement(conversation_id, public=public, now=now, **extra)).run()
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
    runs it itself (``dbwrite.Fetch``).

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


def event_insert_from(
    source: str, conversation_id: int, *, type: str, now: datetime, payload_sql: str, public_data_sql: str | None
) -> Statement:
    """The event row's INSERT as ``INSERT ... SELECT ... FROM source``: ``source`` is a CTE of the
    same statement with the numbers ``bump_statement`` returned (``last_seq``, ``last_public_seq``),
    and the payloads are SQL expressions over it (the staff data, and ``public_data_sql`` the
    visitor's, None for a staff-only event)."""
    public_seq, public_payload = "NULL", "NULL"
    params: list[Any] = [conversation_id, type]
    if public_data_sql is not None:
        public_seq, public_payload = (
            f"{source}.last_public_seq",
            f"jsonb_build_object('type', %s::text, 'data', {public_data_sql})",
        )
        params.append(type)
    params.append(offline().ops.adapt_datetimefield_value(now))
    sql = (
        f"INSERT INTO {ConversationEvent._meta.db_table} ({_EVENT_COLUMNS}) "  # noqa: S608
        f"SELECT %s, {source}.last_seq, {public_seq}, %s, {payload_sql}, {public_payload}, %s FROM {source}"
    )
    return sql, params


def record_event(
    conversation: Conversation,
    *,
    type: str,
    data: dict[str, Any],
    public: PublicPart | None = None,
    now: datetime | None = None,
    sequences: Sequences | None = None,
    extra_groups: Iterable[str] = (),
    statements: list[Statement] | None = None,
) -> Sequences:
    """Store one event and broadcast it after commit. Must run inside ``transaction.atomic``.

    ``sequences`` is given when the caller already bumped them together with its own update.
    ``statements``: the INSERT is appended there for the caller to run (``dbwrite.execute``, in
    the same transaction) instead of being run here. With both, the caller may also be a step
    generator run by ``messenger.db.aio`` on its own connection: its transaction is not Django's,
    and the frames wait for its commit in ``broadcast.collecting``.
    """
    assert (statements is not None and sequences is not None and collecting()) or (
        transaction.get_connection().in_atomic_block
    ), "record_event needs a transaction"
    now = now or timezone.now()
    # Each payload is serialised once: the same text goes into the event row and into the frame.
    data_json = dumps(data)
    public_data_json = dumps(public.data) if public is not None else None
    public_payload_json = f'{{"type":{dumps(public.type)},"data":{public_data_json}}}' if public is not None else None
    adapted_now = offline().ops.adapt_datetimefield_value(now)
    if sequences is None and statements is None and offline().vendor == "postgresql":
        # The numbers and the row in one statement, one round trip: the INSERT reads what the
        # UPDATE allocated (the payloads do not carry the numbers; the frames do).
        sequences = _bump_and_insert(
            conversation.pk,
            type=type,
            public=public is not None,
            now=now,
            values=[data_json, public_payload_json, adapted_now],
        )
    else:
        if sequences is None:
            sequences = bump_sequences(conversation.pk, public=public is not None, now=now)
        # A plain INSERT: the event log is written on every change, the ORM's per-row cost showed
        # up in profiles of the message path.
        insert = (
            f"INSERT INTO {ConversationEvent._meta.db_table} ({_EVENT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)",  # noqa: S608
            [conversation.pk, sequences.seq, sequences.public_seq, type, data_json, public_payload_json, adapted_now],
        )
        if statements is not None:
            statements.append(insert)
        else:
            execute([insert])
    conversation.last_seq = sequences.seq
    if sequences.public_seq is not None:
        conversation.last_public_seq = sequences.public_seq
    broadcast_event(
        conversation,
        type=type,
        sequences=sequences,
        now=now,
        data_json=data_json,
        public_type=public.type if public is not None else None,
        public_data_json=public_data_json,
        extra_groups=extra_groups,
    )
    return sequences


def _bump_and_insert(conversation_id: int, *, type: str, public: bool, now: datetime, values: list[Any]) -> Sequences:
    """PostgreSQL: ``bump_sequences`` and the event's INSERT as one statement; ``values`` are the
    staff payload, the public payload (or None) and the time, as JSON texts and the adapted time."""
    bump_sql, bump_params = bump_statement(conversation_id, public=public, now=now)
    sql = (
        f"WITH c AS ({bump_sql}) INSERT INTO {ConversationEvent._meta.db_table} ({_EVENT_COLUMNS}) "  # noqa: S608
        f"SELECT %s, c.last_seq, {'c.last_public_seq' if public else 'NULL'}, %s, %s::jsonb, %s::jsonb, %s FROM c "
        "RETURNING seq, public_seq"
    )
    row = Fetch(sql, [*bump_params, conversation_id, type, *values]).run()
    return sequences_from(row, conversation_id=conversation_id, public=public)


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
