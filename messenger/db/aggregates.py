"""SQL the reports need that Django does not ship, the same figures on PostgreSQL and SQLite.

* ``Percentiles(expression, fractions)``: PostgreSQL's ``percentile_cont`` (linear interpolation
  between the closest ranks, NULLs ignored), several fractions over one sort; on SQLite the same
  arithmetic as an aggregate written in Python, registered on every new connection by
  ``register_sqlite_functions``.
* ``Seconds(end, start)``: ``end - start`` in seconds, a float; NULL when either is.
"""

from __future__ import annotations

import json
import math
from typing import Any

from django.db.models import Aggregate, Field, FloatField, Func


def percentile_cont(values: list[float], fraction: float) -> float | None:
    """The rank is ``fraction × (n − 1)``; between two ranks the value is interpolated. None when
    empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = fraction * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


class _Fractions(Field):
    """What ``Percentiles`` answers: a list of floats (PostgreSQL's array; SQLite's JSON text)."""

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> list[float] | None:
        return json.loads(value) if isinstance(value, str) else value


class Percentiles(Aggregate):
    """``percentile_cont(ARRAY[f1, f2, …]) WITHIN GROUP (ORDER BY expression)``: several percentiles
    of one sort; None over no rows. The fractions are constants of ours, written into the SQL."""

    function = "percentile_cont"
    name = "Percentiles"
    output_field = _Fractions()
    template = "%(function)s(ARRAY[%(fractions)s]::double precision[]) WITHIN GROUP (ORDER BY %(expressions)s)"

    def __init__(self, expression: Any, fractions: tuple[float, ...], **extra: Any) -> None:
        if not fractions or not all(0 <= fraction <= 1 for fraction in fractions):
            raise ValueError("fractions: each from 0 to 1")
        super().__init__(expression, fractions=", ".join(repr(float(f)) for f in fractions), **extra)

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler,
            connection,
            function="messenger_percentiles",
            template="%(function)s(%(expressions)s, '[%(fractions)s]')",
            **extra,
        )


class Seconds(Func):
    arity = 2
    output_field = FloatField()

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler,
            connection,
            template="date_part('epoch', %(expressions)s)",
            arg_joiner=" - ",
            **extra,
        )

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        # Django's own function: the difference in microseconds, exact.
        return self.as_sql(
            compiler, connection, template="(django_timestamp_diff(%(expressions)s) / 1000000.0)", **extra
        )


class _SqlitePercentiles:
    def __init__(self) -> None:
        self.values: list[float] = []
        self.fractions = "[]"

    def step(self, value: float | None, fractions: str) -> None:
        self.fractions = fractions
        if value is not None:
            self.values.append(value)

    def finalize(self) -> str | None:
        if not self.values:
            return None
        return json.dumps([percentile_cont(self.values, fraction) for fraction in json.loads(self.fractions)])


def register_sqlite_functions(sender: Any, connection: Any, **kwargs: Any) -> None:
    """``connection_created``: SQLite connections get ``messenger_percentiles``."""
    if connection.vendor == "sqlite":
        connection.connection.create_aggregate("messenger_percentiles", 2, _SqlitePercentiles)
