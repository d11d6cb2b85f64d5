"""What counts as "the database is unavailable", and the one answer every transport gives for it.

During a PostgreSQL outage the errors come from several layers: Django wraps the driver's
(``django.db.OperationalError``/``InterfaceError``), psycopg's pool raises ``PoolTimeout`` (an
``OperationalError``) when no connection came within ``MESSENGER_DB_POOL_TIMEOUT``, and the sends on
the event loop meet psycopg's own. All of them mean the same to a client: nothing was stored by
this attempt (or, when a COMMIT's answer was lost, the resend of its ``client_id`` finds it), so
try again shortly. HTTP answers 503 with ``Retry-After`` (``messenger.middleware``), a socket
command an ``unavailable`` error frame, a socket handshake a close with 1013.
"""

from __future__ import annotations

import django.db
import psycopg

from messenger.errors import Unavailable

DATABASE_OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    django.db.OperationalError,
    django.db.InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)

# Seconds a client is told to wait before trying again (``Retry-After``, ``retry_after``).
RETRY_AFTER_SECONDS = 5


def is_database_outage(error: BaseException) -> bool:
    return isinstance(error, DATABASE_OUTAGE_ERRORS)


def database_unavailable() -> Unavailable:
    return Unavailable("The database is unavailable; try again shortly.", retry_after=RETRY_AFTER_SECONDS)
