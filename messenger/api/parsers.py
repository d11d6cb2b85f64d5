"""The API's JSON parser: DRF's, refusing values no column can store (see protocol.unstorable) and
JSON nested too deeply to decode (400 ``bad_json``, not a 500)."""

from __future__ import annotations

from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

from messenger.errors import InvalidInput
from messenger.protocol import unstorable


class JSONParser(parsers.JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict[str, Any] | None = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:  # "[[[[…" nested deeper than the interpreter's stack: not a 500
            raise ParseError("JSON parse error - nested too deeply") from None
        reason = unstorable(data)
        if reason:
            raise InvalidInput(reason)  # 400 {"detail", "code": "invalid"}
        return data
