"""Fewer round trips on the hot write paths: INSERTs sent together, ids allocated in advance.

A message send writes a message row, its event row and (for staff) an audit row. Sent one by one
through the ORM that is one round trip each, and under load every round trip is also a wait for
the GIL when the reply arrives (docs/benchmarks.md: a send of 2.5 ms alone took a median 11–24 ms
in its worker thread beside a busy event loop). On PostgreSQL the rows' INSERTs go out as one
multi-statement query, and the message id they need is allocated in the statement that locks the
conversation (``next_id_sql``). SQLite takes them one by one.

The connection binds parameters on the server and prepares repeated statements (settings), which
cannot carry several statements in one query: the multi-statement query goes through a cursor
that binds on the client, on the same connection and transaction. (psycopg's pipeline mode would
do it too; measured, it cost more Python time per send than it saved.)

The SQL comes from Django's own insert compiler, so field preparation (JSON, dates, defaults,
``pre_save``) is the ORM's.
"""

from __future__ import annotations

from typing import Any

from django.db import connection, models
from django.db.models.sql import InsertQuery

Statement = tuple[str, list[Any]]

_sequences: dict[str, str] = {}


def next_id_sql(model: type[models.Model]) -> str | None:
    """SQL that allocates the next primary key of ``model`` (PostgreSQL), or None elsewhere."""
    if connection.vendor != "postgresql":
        return None
    table = model._meta.db_table
    sequence = _sequences.get(table)
    if sequence is None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [table, model._meta.pk.column])
            sequence = cursor.fetchone()[0]
        _sequences[table] = sequence
    return "nextval('{}')".format(sequence.replace("'", "''"))


_insert_sql: dict[tuple[type[models.Model], bool], tuple[str, list[models.Field]]] = {}


def insert_statement(obj: models.Model) -> Statement:
    """The INSERT of one unsaved instance (its primary key included when it is set).

    The SQL text is compiled once per model; each call only prepares the values, as the
    compiler does (``pre_save``, then ``get_db_prep_save``).
    """
    with_pk = obj.pk is not None
    cached = _insert_sql.get((type(obj), with_pk))
    if cached is None:
        fields = [f for f in obj._meta.local_concrete_fields if with_pk or not f.primary_key]
        query = InsertQuery(type(obj))
        query.insert_values(fields, [obj], raw=False)
        ((sql, _params),) = query.get_compiler(connection=connection).as_sql()
        cached = _insert_sql[(type(obj), with_pk)] = (sql, fields)
    sql, fields = cached
    params = [field.get_db_prep_save(field.pre_save(obj, True), connection=connection) for field in fields]
    obj._state.adding = False
    obj._state.db = connection.alias
    return sql, params


def execute(statements: list[Statement]) -> None:
    """Run ``statements`` in order: one round trip on PostgreSQL, one each elsewhere."""
    if not statements:
        return
    if connection.vendor == "postgresql" and len(statements) > 1:
        with _client_binding_cursor() as cursor:
            cursor.execute("; ".join(sql for sql, _ in statements), [p for _, params in statements for p in params])
        return
    with connection.cursor() as cursor:
        for sql, params in statements:
            cursor.execute(sql, params)


def _client_binding_cursor() -> Any:
    """A Django cursor (query logging, execute wrappers, error translation) over a psycopg cursor
    that binds parameters on the client."""
    import psycopg  # PostgreSQL only

    connection.ensure_connection()
    return connection._prepare_cursor(psycopg.ClientCursor(connection.connection))
