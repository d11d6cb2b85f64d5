"""The API's JSON parser: DRF's, refusing NUL characters (PostgreSQL stores them nowhere)."""

from __future__ import annotations

from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

from messenger.protocol import NUL_REFUSED, contains_nul


class JSONParser(parsers.JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict[str, Any] | None = None) -> Any:
        data = super().parse(stream, media_type, parser_context)
        if contains_nul(data):
            raise ParseError(NUL_REFUSED)
        return data
