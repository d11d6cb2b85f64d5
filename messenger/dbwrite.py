"""SQL for the hot write paths: INSERTs sent together, ids allocated in advance.

A message send writes a message row, its event row and (for staff) an audit row. Sent one by one
through the ORM that is one round trip each, and under load every round trip is also a wait for
a core and the GIL when the reply arrives (docs/benchmarks.md, "Round trips while the conversation row is locked"). So the message
id is allocated by the statement that locks the conversation (``next_id_sql``), and on
PostgreSQL the rows' INSERTs go out together as one statement (``execute``).

The connection binds parameters on the server and prepares repeated statements (settings), and a
prepared statement holds one SQL command: the INSERTs go out as one statement whose first writes
are data-modifying CTEs (``combined``). Measured alternatives: a multi-statement query through a
client-binding cursor is planned anew every time (more PostgreSQL CPU per send), psycopg's pipeline
mode cost more Python time per send than it saved.

The SQL comes from Django's own insert compiler, so field preparation (JSON, dates, defaults,
``pre_save``) is the ORM's. The steps that run these statements, and their two drivers (a
thread, the event loop), are in ``messenger.db.steps``.
"""

from __future__ import annotations

from typing import Any

from django.db import connection, models
from django.db.models.sql import InsertQuery

from messenger.db import offline

Statement = tuple[str, list[Any]]

_sequences: dict[str, str] = {}


def next_id_sql(model: type[models.Model]) -> str:
    """SQL that allocates the next primary key of ``model``, for the RETURNING of a statement
    that already holds the lock a concurrent INSERT would wait for: PostgreSQL's sequence (safe
    anywhere); SQLite's counter of the AUTOINCREMENT table (safe under its one writer: the
    UPDATE that runs it holds the database's write lock until COMMIT, and the INSERT of that id
    moves the counter on)."""
    table = model._meta.db_table
    sequence = _sequences.get(table)
    if sequence is None:
        if offline().vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [table, model._meta.pk.column])
                sequence = "nextval('{}')".format(cursor.fetchone()[0].replace("'", "''"))
        else:
            quoted = table.replace("'", "''")
            sequence = f"(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = '{quoted}'), 0) + 1)"  # noqa: S608
        _sequences[table] = sequence
    return sequence


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
    return sql, _prepared(obj, fields)


def _prepared(obj: models.Model, fields: list[models.Field]) -> list[Any]:
    """The values of ``fields`` as the insert compiler prepares them; ``obj`` is then saved."""
    db = offline()
    params = [field.get_db_prep_save(field.pre_save(obj, True), connection=db) for field in fields]
    obj._state.adding = False
    obj._state.db = db.alias
    return params


def execute(statements: list[Statement]) -> None:
    """Run ``statements`` (writes that do not read each other's rows): one round trip on
    PostgreSQL, one each elsewhere."""
    if not statements:
        return
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(*one_statement(statements))
        else:
            for sql, params in statements:
                cursor.execute(sql, params)


def one_statement(statements: list[Statement]) -> Statement:
    """PostgreSQL: ``statements`` as the one statement that runs them (``combined`` when several)."""
    return combined(statements) if len(statements) > 1 else statements[0]


def combined(statements: list[Statement]) -> Statement:
    """Several writes as one statement: all but the last become data-modifying CTEs.

    One statement, not a multi-statement query, so that the connection can prepare it (PostgreSQL
    parses and plans it once per connection, settings) and it still costs one round trip. The
    writes must not depend on each other's rows within the statement: they all see the same
    snapshot, and foreign keys are checked at commit (Django's are deferred).
    """
    *first, (last_sql, _) = statements
    sql = "WITH " + ", ".join(f"w{i} AS ({part})" for i, (part, _) in enumerate(first)) + " " + last_sql
    return sql, [param for _, params in statements for param in params]
