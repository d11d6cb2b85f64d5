"""/health/ with a part that hangs: a "Redis" that accepts connections and never answers.

Every check runs at once with its own timeout, so the answer comes within 2 s and names the
parts that failed; a check still hung from an earlier request is joined, not started again.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests.live import LiveServer, server_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def silent_redis() -> Iterator[int]:
    """A listening port that accepts every connection and never sends a byte."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stopped = threading.Event()

    def accept() -> None:
        while not stopped.is_set():
            try:
                connection, _address = listener.accept()
            except OSError:
                return
            held.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stopped.set()
        listener.close()
        for connection in held:
            connection.close()


def get_health(url: str) -> tuple[int | None, dict | None, float]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=15) as response:  # noqa: S310 — a loopback test server
            status, body = response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        status, body = error.code, json.loads(error.read())
    except TimeoutError:
        status, body = None, None
    return status, body, time.monotonic() - started


def test_health_answers_within_two_seconds_naming_the_hung_parts(silent_redis, django_db_blocker):
    with django_db_blocker.unblock():
        env = server_env({"REDIS_URL": f"redis://127.0.0.1:{silent_redis}/0"})
    server = LiveServer(env)
    try:
        # Not healthy: started once /health/ answers at all (a hanging one never does).
        server.start(healthy=False)
        answers = [get_health(server.url + "/health/") for _ in range(3)]
    finally:
        server.stop()

    for status, body, seconds in answers:
        assert status == 503, (status, seconds)
        assert seconds < 2, (seconds, body)
        assert body is not None and body["ok"] is False, body
        assert body["failing"] == ["cache", "channel_layer"], body
        # Still hanging (timeout), or given up by the Redis client's own 5 s socket timeout.
        assert body["checks"]["cache"] in ({"ok": False, "error": "timeout"}, {"ok": False, "error": "TimeoutError"})
        assert body["checks"]["channel_layer"] == {"ok": False, "error": "timeout"}, body
        assert body["checks"]["database"]["ok"] is True, body
        # The task broker is Redis too: named, but it does not make the answer fail.
        assert body["degraded"][0] == "task_broker", body
        assert body["checks"]["task_broker"]["ok"] is False, body
