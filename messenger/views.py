from __future__ import annotations

import functools
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for_futures
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from messenger.realtime.broadcast import channel_layer_round_trip

# The whole answer comes within 2 s: every check runs at once and gets this long. A check that
# hangs (the database pool waiting for a connection, Redis not answering) is reported as
# ``timeout`` and left to finish in its thread.
CHECK_SECONDS = 1.5

# A check left running holds its thread until its own timeout (the pool's, Redis's) or for good
# (a server that accepts and never answers). Each check runs at most once at a time: a request
# that finds it still running waits on that same run, so a hung part costs one thread, never one
# per request, and cannot starve the other checks.
_checks_executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="messenger-health")
_running: dict[str, Future[dict[str, Any]]] = {}
_running_lock = threading.Lock()


def _check_database() -> dict[str, Any]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connection.close()  # back to the pool: this thread serves other checks
    return {}


def _check_cache() -> dict[str, Any]:
    key, nonce = "messenger:health", uuid.uuid4().hex
    cache.set(key, nonce, 10)
    if cache.get(key) != nonce:
        raise RuntimeError("the value written was not read back")
    return {"backend": type(cache).__name__}


def _check_channel_layer() -> dict[str, Any]:
    ok, backend = channel_layer_round_trip()
    if not ok:
        raise RuntimeError("the message sent was not read back")
    return {"backend": backend}


@functools.cache
def _task_broker() -> Any:
    """One broker (and Redis client) per process: django-q2 builds a new one on every call."""
    from django_q.brokers import get_broker

    return get_broker()


def _check_task_broker() -> dict[str, Any]:
    broker = _task_broker()
    if not broker.ping():
        raise RuntimeError("the broker did not answer")
    return {"backend": type(broker).__name__}


def _check_geoip() -> dict[str, Any]:
    from messenger.routing.geo import reader_state

    state = reader_state()
    if state == "missing":
        raise RuntimeError(f"cannot open {settings.MESSENGER_GEOIP_PATH}")
    return {"state": state}


# name → (check, required). An optional part failing is named in ``degraded`` and keeps 200:
# without the task broker jobs wait, without GeoIP conversations get no region.
CHECKS: dict[str, tuple[Callable[[], dict[str, Any]], bool]] = {
    "database": (_check_database, True),
    "cache": (_check_cache, True),
    "channel_layer": (_check_channel_layer, True),
    "task_broker": (_check_task_broker, False),
    "geoip": (_check_geoip, False),
}


def _timed(check: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    started = time.perf_counter()
    result = check()
    return {"ok": True, **result, "ms": round((time.perf_counter() - started) * 1000, 2)}


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """Every part checked at once, each within ``CHECK_SECONDS``; 503 naming the failing required
    parts (``failing``), 200 otherwise (optional parts that fail are listed in ``degraded``)."""
    with _running_lock:
        for name, (check, _required) in CHECKS.items():
            if name not in _running or _running[name].done():
                _running[name] = _checks_executor.submit(_timed, check)
        futures = dict(_running)
    wait_for_futures(futures.values(), timeout=CHECK_SECONDS)
    checks: dict[str, dict[str, Any]] = {}
    for name, future in futures.items():
        if not future.done():
            checks[name] = {"ok": False, "error": "timeout"}
        elif (error := future.exception()) is not None:
            # The type only: the page is public and a driver's message names hosts and ports.
            checks[name] = {"ok": False, "error": type(error).__name__}
        else:
            checks[name] = future.result()
    failing = [name for name, (_check, required) in CHECKS.items() if required and not checks[name]["ok"]]
    degraded = [name for name, (_check, required) in CHECKS.items() if not required and not checks[name]["ok"]]
    body = {"ok": not failing, "failing": failing, "degraded": degraded, "checks": checks}
    return JsonResponse(body, status=503 if failing else 200)
