"""The API's JSON parser: DRF's, refusing values no column can store (see protocol.unstorable)."""

from __future__ import annotations

from typing import Any

from rest_framework import parsers

from messenger.errors import InvalidInput
from messenger.protocol import unstorable


class JSONParser(parsers.JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict[str, Any] | None = None) -> Any:
        data = super().parse(stream, media_type, parser_context)
        reason = unstorable(data)
        if reason:
            raise InvalidInput(reason)  # 400 {"detail", "code": "invalid"}
        return data
