"""Django's PostgreSQL backend, with the parameter limit of server-side binding respected.

Parameters are bound on the server (settings: prepared statements), and PostgreSQL takes at most
65 535 of them per statement. Django's PostgreSQL backend sets no batch size, so its deletion
collector put every collected id of a cascade in one ``IN (...)``: deleting a contact or a
conversation with more rows behind it than that failed (a retention purge, a GDPR erasure).
Batches are cut to the limit; nothing else differs from Django's backend.
"""

from __future__ import annotations

from typing import Any

from django.db.backends.postgresql import base, operations

MAX_PARAMETERS = 65_535


class DatabaseOperations(operations.DatabaseOperations):
    def bulk_batch_size(self, fields: Any, objs: Any) -> int:
        if self.connection.settings_dict["OPTIONS"].get("server_side_binding") is True:
            return max(1, MAX_PARAMETERS // max(1, len(fields)))
        return super().bulk_batch_size(fields, objs)


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations
