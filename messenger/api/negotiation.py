"""The API's content negotiation: DRF's, reading a blank ``Accept`` header as none at all."""

from __future__ import annotations

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request


class ContentNegotiation(DefaultContentNegotiation):
    """``Accept:`` with nothing after it (some clients and proxies send it) means any type, as
    an absent header does, instead of a 406 nobody asked for."""

    def get_accept_list(self, request: Request) -> list[str]:
        return [token for token in super().get_accept_list(request) if token] or ["*/*"]
