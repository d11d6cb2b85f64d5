"""Fewer round trips on the hot write paths: INSERTs sent together, ids allocated in advance.

A message send writes a message row, its event row and (for staff) an audit row. Sent one by one
through the ORM that is one round trip each, and under load every round trip is also a wait for
the GIL when the reply arrives (docs/benchmarks.md: a send of 2.5 ms alone took a median 11–24 ms
in its worker thread beside a busy event loop). On PostgreSQL the rows' INSERTs go out as one
statement, and the message id they need is allocated in the statement that locks the
conversation (``next_id_sql``). SQLite takes them one by one.

The connection binds parameters on the server and prepares repeated statements (settings), and a
prepared statement holds one SQL command: the INSERTs go out as one statement whose first writes
are data-modifying CTEs (``combined``). Measured alternatives: a multi-statement query through a
client-binding cursor is planned anew every time (more PostgreSQL CPU per send), psycopg's pipeline
mode cost more Python time per send than it saved.

The SQL comes from Django's own insert compiler, so field preparation (JSON, dates, defaults,
``pre_save``) is the ORM's.

A message without attachments goes further: its UPDATE and INSERTs are one statement whose
INSERTs read the UPDATE's row (``insert_select``; ``messages._one_statement_steps``).

The message path is written as steps (``Fetch``, ``Run``, ``Sync``, below) so that it can also run
on the event loop through an asynchronous connection (``messenger.db.aio``), the same code either way.
"""

from __future__ import annotations

from typing import Any

from django.db import connection, models
from django.db.models.sql import InsertQuery

from messenger.db import offline

Statement = tuple[str, list[Any]]

_sequences: dict[str, str] = {}


def next_id_sql(model: type[models.Model]) -> str | None:
    """SQL that allocates the next primary key of ``model`` (PostgreSQL), or None elsewhere."""
    if offline().vendor != "postgresql":
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
    return sql, _prepared(obj, fields)


_insert_select_sql: dict[
    tuple[type[models.Model], str, tuple[tuple[str, str], ...]], tuple[str, list[models.Field]]
] = {}


def insert_select(obj: models.Model, source: str, computed: dict[str, str]) -> Statement:
    """The INSERT of one unsaved instance as ``INSERT ... SELECT ... FROM source``: the columns
    named in ``computed`` take those SQL expressions over ``source`` (a CTE of the same statement,
    e.g. the id its UPDATE allocated), the others the instance's values, prepared as
    ``insert_statement`` prepares them. The SQL text is built once per model and ``computed``."""
    key = (type(obj), source, tuple(computed.items()))
    cached = _insert_select_sql.get(key)
    if cached is None:
        fields = [f for f in obj._meta.local_concrete_fields if f.column in computed or not f.primary_key]
        quote = connection.ops.quote_name
        columns = ", ".join(quote(f.column) for f in fields)
        values = ", ".join(computed.get(f.column, "%s") for f in fields)
        sql = f"INSERT INTO {quote(obj._meta.db_table)} ({columns}) SELECT {values} FROM {source}"  # noqa: S608
        cached = _insert_select_sql[key] = (sql, [f for f in fields if f.column not in computed])
    sql, prepared = cached
    return sql, _prepared(obj, prepared)


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


# --- write paths as steps -------------------------------------------------------------------------
#
# The message path is written once, as a generator of the steps it needs (``Fetch`` a row, ``Run``
# writes, ``Sync`` anything that needs Django's own connection), so that two drivers can run it: ``run``
# in a database thread through Django's connection, and ``messenger.db.aio.run`` on the event loop
# through an asynchronous connection, which waits for PostgreSQL without holding a thread.


class NeedsThread(Exception):
    """The asynchronous driver met a step only Django's connection can run: start again in a thread."""


class Fetch:
    """One statement; the driver sends back its first row (or None).

    ``alone``: the statement is a whole write by itself, atomic as one statement is; a driver
    that has no transaction open yet may run it without one (no BEGIN and COMMIT round trips)."""

    def __init__(self, sql: str, params: list[Any], *, alone: bool = False) -> None:
        self.sql, self.params = sql, params
        self.transactional = not alone

    def run(self) -> Any:
        with connection.cursor() as cursor:
            cursor.execute(self.sql, self.params)
            return cursor.fetchone()

    async def arun(self, cursor: Any) -> Any:
        await cursor.execute(self.sql, self.params)
        return await cursor.fetchone()


class Run:
    """Writes that do not read each other's rows (``execute``); the driver sends back None."""

    transactional = True

    def __init__(self, statements: list[Statement]) -> None:
        self.statements = statements

    def run(self) -> None:
        execute(self.statements)

    async def arun(self, cursor: Any) -> None:
        if self.statements:
            await cursor.execute(*one_statement(self.statements))


class Sync:
    """A call that needs Django's connection (the ORM): run in a thread only."""

    transactional = False

    def __init__(self, call: Any) -> None:
        self.call = call

    def run(self) -> Any:
        return self.call()

    async def arun(self, cursor: Any) -> Any:
        raise NeedsThread


def run(steps: Any) -> Any:
    """Drive a generator of steps through Django's connection (the caller holds the transaction);
    its return value."""
    value = None
    while True:
        try:
            step = steps.send(value)
        except StopIteration as done:
            return done.value
        value = step.run()
