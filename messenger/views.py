from __future__ import annotations

import time

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from messenger.realtime.broadcast import channel_layer_round_trip


def _check_database() -> dict:
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 2)}


def _check_channel_layer() -> dict:
    started = time.perf_counter()
    ok, backend = channel_layer_round_trip()
    return {"ok": ok, "backend": backend, "ms": round((time.perf_counter() - started) * 1000, 2)}


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """Database and channel-layer round trip; 503 when either fails."""
    checks: dict[str, dict] = {}
    for name, check in (("database", _check_database), ("channel_layer", _check_channel_layer)):
        try:
            checks[name] = check()
        except Exception as error:  # noqa: BLE001 — health reports, never raises
            checks[name] = {"ok": False, "error": type(error).__name__}
    ok = all(item["ok"] for item in checks.values())
    return JsonResponse({"ok": ok, "checks": checks}, status=200 if ok else 503)
