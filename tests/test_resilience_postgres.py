"""Failure tests with real processes: a private PostgreSQL stopped and restarted under a connected visitor.

The machine's shared PostgreSQL is never touched: the test runs ``initdb`` into a temporary
directory and starts its own cluster on a free loopback port (as the ``postgres`` OS user), then a
live server (daphne subprocess, in-memory channel layer) that uses it. While the database is down
the server keeps running and answers every client in bounded time (docs/runbook.md, "PostgreSQL
is down"): HTTP with a JSON 503, a new socket with close code 4013, a send with an ``unavailable``
error frame, ``/health/`` with a 503 naming ``database`` within 2 s. After the restart the same
socket works again, and resending the failed message's ``client_id`` stores it exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import new_client_id
from tests.live import ROOT, LiveServer, free_port, run_async

PG_BIN = Path("/usr/lib/postgresql/15/bin")
RUNUSER = shutil.which("runuser") or "/usr/sbin/runuser"
PSQL = shutil.which("psql") or "/usr/bin/psql"
DEMO_WIDGET_TOKEN = "demo-widget-token"
ORIGIN = "http://localhost"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (PG_BIN / "initdb").exists() or not (PG_BIN / "pg_ctl").exists() or not os.path.exists(PSQL),
        reason="PostgreSQL 15 server binaries are not installed",
    ),
    pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to run as postgres"),
]


class PrivatePostgres:
    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="messenger-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sock"
        self.log = self.root / "server.log"
        shutil.chown(self.root, "postgres", "postgres")
        self.root.chmod(0o700)

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _as_postgres(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [RUNUSER, "-u", "postgres", "--", *args], capture_output=True, text=True, timeout=timeout, check=True
        )

    def init(self) -> None:
        self._as_postgres("mkdir", "-p", str(self.sockets))
        self._as_postgres(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "30", "start"
        )

    def stop(self) -> None:
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop")

    def is_running(self) -> bool:
        status = subprocess.run(
            [RUNUSER, "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(self.data), "status"],
            capture_output=True,
        )
        return status.returncode == 0

    def psql(self, database: str, sql: str) -> str:
        result = subprocess.run(
            [PSQL, "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database, "-Atc", sql],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return result.stdout

    def destroy(self) -> None:
        if self.data.exists() and self.is_running():
            subprocess.run(
                [
                    RUNUSER,
                    "-u",
                    "postgres",
                    "--",
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-m",
                    "immediate",
                    "stop",
                ],
                capture_output=True,
                timeout=30,
            )
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    postgres = PrivatePostgres()
    try:
        postgres.init()
        postgres.start()
        yield postgres
    finally:
        postgres.destroy()


def private_env(database_url: str) -> dict[str, str]:
    from django.conf import settings

    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST", "DJANGO_SETTINGS", "REDIS_URL", "DATABASE_URL", "SQLITE_PATH"))
    }
    env["DJANGO_SETTINGS_MODULE"] = "project.settings"
    env["MESSENGER_EMBEDDED_SCHEDULER"] = "0"
    env["ALLOWED_HOSTS"] = "127.0.0.1,localhost,testserver"
    env["MEDIA_ROOT"] = str(settings.MEDIA_ROOT)
    env["DATABASE_URL"] = database_url
    return env


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, timeout=120
    )


def http(url: str, *, data: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(  # noqa: S310 — a loopback test server
        url,
        data=json.dumps(data).encode() if data is not None else None,
        headers={"Content-Type": "application/json", "Origin": ORIGIN},
        method="POST" if data is not None else "GET",
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


async def command(ws: Any, frame: dict[str, Any], *, timeout: float = 15) -> dict[str, Any]:
    ref = new_client_id()[:12]
    await ws.send(json.dumps({**frame, "ref": ref}))
    async with asyncio.timeout(timeout):
        while True:
            reply = json.loads(await ws.recv())
            if reply.get("ref") == ref and reply["type"] in ("ack", "error"):
                return reply


async def hello(ws: Any) -> dict[str, Any]:
    async with asyncio.timeout(15):
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == "hello":
                return frame


def test_postgres_stopped_and_restarted_under_a_connected_visitor(private_postgres):
    from websockets.asyncio.client import connect

    private_postgres.psql("postgres", "create database messenger_resilience")
    env = private_env(private_postgres.url("messenger_resilience"))
    manage(env, "migrate", "--noinput")
    manage(env, "demo_data")
    server = LiveServer(env)
    try:
        server.start()
        status, boot = http(server.url + "/api/widget/bootstrap/", data={"widget_token": DEMO_WIDGET_TOKEN})
        assert status == 200, boot
        visitor_url = (
            f"ws://127.0.0.1:{server.port}/ws/widget/?widget_token={DEMO_WIDGET_TOKEN}&token={boot['session_token']}"
        )

        async def scenario() -> dict[str, Any]:
            outcome: dict[str, Any] = {}
            async with connect(visitor_url, origin=ORIGIN) as visitor:
                await hello(visitor)
                ack = await command(visitor, {"type": "message.send", "client_id": new_client_id(), "body": "before"})
                assert ack["type"] == "ack", ack

                await asyncio.to_thread(private_postgres.stop)
                failed_id = new_client_id()
                error = await command(visitor, {"type": "message.send", "client_id": failed_id, "body": "during"})
                outcome["error"] = error
                outcome["health_down"] = await asyncio.to_thread(http, server.url + "/health/")
                assert server.process is not None and server.process.poll() is None, "the server crashed"

                await asyncio.to_thread(private_postgres.start)
                # Pooled connections opened before the restart are dead: each fails its first use
                # once and is discarded, so /health/ (and commands) may fail a few times more.
                health_failures = 0
                while (health := await asyncio.to_thread(http, server.url + "/health/"))[0] != 200:
                    health_failures += 1
                    assert health_failures < 20, health
                    await asyncio.sleep(0.1)
                outcome["health_failures"] = health_failures
                # The same socket, still open: the client resends the failed message (same
                # client_id) until it is acked, then sends it once more and a new one.
                retries = 0
                frame = {"type": "message.send", "client_id": failed_id, "body": "during"}
                while (resent := await command(visitor, frame))["type"] == "error":
                    assert resent["code"] == "unavailable" and retries < 10, resent
                    retries += 1
                    await asyncio.sleep(0.1)
                outcome["retries"] = retries
                again = await command(visitor, {"type": "message.send", "client_id": failed_id, "body": "during"})
                after = await command(visitor, {"type": "message.send", "client_id": new_client_id(), "body": "after"})
                outcome.update(resent=resent, again=again, after=after)
            return outcome

        outcome = run_async(scenario())
    finally:
        server.stop()

    error = outcome["error"]
    assert error["type"] == "error", error
    assert error["code"] == "unavailable", error
    status, body = outcome["health_down"]
    assert status == 503, body
    assert body["ok"] is False and body["checks"]["database"]["ok"] is False, body
    print(f"after restart: {outcome['health_failures']} failed health checks, {outcome['retries']} send retries")
    assert outcome["resent"]["type"] == "ack" and outcome["resent"]["data"]["created"] is True, outcome["resent"]
    assert outcome["again"]["type"] == "ack" and outcome["again"]["data"]["created"] is False, outcome["again"]
    assert outcome["again"]["data"]["message"]["id"] == outcome["resent"]["data"]["message"]["id"]
    assert outcome["after"]["type"] == "ack", outcome["after"]

    bodies = private_postgres.psql(
        "messenger_resilience",
        "select body from messenger_message where body in ('before', 'during', 'after') order by id",
    ).split()
    assert bodies == ["before", "during", "after"]


def timed_http(
    url: str, *, data: dict | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes, float]:
    """Status, headers, raw body and seconds taken; the body is not assumed to be JSON."""
    import time

    request = urllib.request.Request(  # noqa: S310 — a loopback test server
        url,
        data=json.dumps(data).encode() if data is not None else None,
        headers={"Content-Type": "application/json", "Origin": ORIGIN, **(headers or {})},
        method="POST" if data is not None else "GET",
    )
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            status, headers, body = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, headers, body = error.code, dict(error.headers), error.read()
    return status, headers, body, time.monotonic() - started


OPERATOR_SESSION = """
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
user = get_user_model().objects.get(username="operator1")
session = SessionStore()
session.update({SESSION_KEY: str(user.pk), BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
                HASH_SESSION_KEY: user.get_session_auth_hash()})
session.create()
print(session.session_key)
"""


def test_postgres_down_answers_cleanly_and_quickly(private_postgres):
    """During the outage: bootstrap answers JSON 503 with Retry-After, a new widget socket is
    accepted and closed with 4013, ``/health/`` answers within 2 s naming ``database``, and a send
    on an open socket gets ``unavailable`` after a bounded wait. Afterwards everything works."""
    import time

    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    private_postgres.psql("postgres", "create database messenger_outage")
    env = private_env(private_postgres.url("messenger_outage"))
    manage(env, "migrate", "--noinput")
    manage(env, "demo_data")
    operator_cookie = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", OPERATOR_SESSION],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout.split()[-1]
    server = LiveServer(env)
    bootstrap_url = server.url + "/api/widget/bootstrap/"
    try:
        server.start()
        status, boot = http(bootstrap_url, data={"widget_token": DEMO_WIDGET_TOKEN})
        assert status == 200, boot
        visitor_url = (
            f"ws://127.0.0.1:{server.port}/ws/widget/?widget_token={DEMO_WIDGET_TOKEN}&token={boot['session_token']}"
        )

        operator_url = f"ws://127.0.0.1:{server.port}/ws/operator/"

        async def handshake(*, operator: bool = False) -> tuple[list[dict[str, Any]], int | None, float]:
            """The frames a new socket receives and its close code (None: still open after hello)."""
            started = time.monotonic()
            frames: list[dict[str, Any]] = []
            if operator:
                opened = connect(
                    operator_url,
                    origin=server.url,
                    additional_headers={"Cookie": f"sessionid={operator_cookie}"},
                    open_timeout=30,
                )
            else:
                opened = connect(visitor_url, origin=ORIGIN, open_timeout=30)
            async with opened as ws:
                try:
                    async with asyncio.timeout(30):
                        while True:
                            frames.append(json.loads(await ws.recv()))
                            if frames[-1]["type"] == "hello":
                                return frames, None, time.monotonic() - started
                except ConnectionClosed:
                    pass
                return frames, ws.close_code, time.monotonic() - started

        async def scenario() -> dict[str, Any]:
            outcome: dict[str, Any] = {}
            async with connect(visitor_url, origin=ORIGIN) as visitor:
                await hello(visitor)
                await asyncio.to_thread(private_postgres.stop)

                # Connections pooled before the outage fail at once; later requests wait on the
                # pool: both answers are asked for, twice each.
                outcome["bootstrap_down"] = [
                    await asyncio.to_thread(timed_http, bootstrap_url, data={"widget_token": DEMO_WIDGET_TOKEN})
                    for _ in range(3)
                ]
                outcome["dashboard_down"] = await asyncio.to_thread(
                    timed_http,
                    server.url + "/dashboard/",
                    headers={"Cookie": f"sessionid={operator_cookie}", "Accept": "text/html,*/*;q=0.8"},
                )
                outcome["health_down"] = [
                    await asyncio.to_thread(timed_http, server.url + "/health/") for _ in range(3)
                ]
                for name, operator in (("handshake_down", False), ("operator_handshake_down", True)):
                    try:
                        outcome[name] = await handshake(operator=operator)
                    except Exception as error:  # noqa: BLE001 — reported by the assertions below
                        outcome[name] = error
                # Widgets reconnecting all at once: each handshake is answered in time, and the
                # ones given up leave no work queued ahead of the send below.
                outcome["storm_down"] = await asyncio.gather(*(handshake() for _ in range(10)), return_exceptions=True)
                failed_id = new_client_id()
                started = time.monotonic()
                error = await command(
                    visitor, {"type": "message.send", "client_id": failed_id, "body": "during"}, timeout=30
                )
                outcome["send_down"] = (error, time.monotonic() - started)

                await asyncio.to_thread(private_postgres.start)
                deadline = time.monotonic() + 30
                while (health := await asyncio.to_thread(timed_http, server.url + "/health/"))[0] != 200:
                    assert time.monotonic() < deadline, health
                    await asyncio.sleep(0.2)
                frame = {"type": "message.send", "client_id": failed_id, "body": "during"}
                while (resent := await command(visitor, frame))["type"] == "error":
                    assert resent["code"] == "unavailable" and time.monotonic() < deadline, resent
                    await asyncio.sleep(0.2)
                outcome["resent"] = resent
                outcome["bootstrap_up"] = await asyncio.to_thread(
                    timed_http, bootstrap_url, data={"widget_token": DEMO_WIDGET_TOKEN}
                )
                outcome["handshake_up"] = await handshake()
                outcome["operator_handshake_up"] = await handshake(operator=True)
            return outcome

        outcome = run_async(scenario())
        assert server.process is not None and server.process.poll() is None, "the server crashed"
    finally:
        server.stop()

    print(
        "during the outage, seconds: bootstrap",
        [round(item[3], 2) for item in outcome["bootstrap_down"]],
        "dashboard",
        round(outcome["dashboard_down"][3], 2),
        "health",
        [round(item[3], 2) for item in outcome["health_down"]],
        "handshakes",
        [
            None if isinstance(item, BaseException) else round(item[2], 2)
            for item in (outcome["handshake_down"], outcome["operator_handshake_down"], *outcome["storm_down"])
        ],
        "send",
        round(outcome["send_down"][1], 2),
    )
    for status, headers, body, seconds in outcome["bootstrap_down"]:
        assert status == 503, (status, body[:300])
        assert headers["Content-Type"] == "application/json", headers
        assert json.loads(body) == {
            "detail": "The database is unavailable; try again shortly.",
            "code": "unavailable",
            "retry_after": 5,
        }
        assert headers["Retry-After"] == "5"
        assert seconds < 8, seconds

    status, headers, body, seconds = outcome["dashboard_down"]
    assert status == 503 and headers["Content-Type"] == "text/html; charset=utf-8", (status, body[:300])
    assert b"Temporarily unavailable" in body and headers["Retry-After"] == "5"
    assert seconds < 8, seconds

    for status, _headers, body, seconds in outcome["health_down"]:
        assert status == 503, (status, body[:300])
        report = json.loads(body)
        assert seconds < 2, (seconds, report)
        assert report["ok"] is False and report["failing"] == ["database"], report
        assert report["checks"]["database"]["ok"] is False, report
        assert report["checks"]["channel_layer"]["ok"] is True, report

    storm = {f"storm_down_{index}": item for index, item in enumerate(outcome.pop("storm_down"))}
    outcome.update(storm)
    for name in ("handshake_down", "operator_handshake_down", *storm):
        handshake_down = outcome[name]
        assert not isinstance(handshake_down, BaseException), (name, repr(handshake_down))
        frames, close_code, seconds = handshake_down
        assert close_code == 4013, (name, close_code, frames)
        assert frames == [
            {"type": "error", "code": "unavailable", "message": "The database is unavailable; try again shortly."}
        ], name
        assert seconds < 8, (name, seconds)

    error, seconds = outcome["send_down"]
    assert error["type"] == "error" and error["code"] == "unavailable", error
    assert error["retry_after"] == 5, error
    assert seconds < 8, seconds

    assert outcome["resent"]["type"] == "ack" and outcome["resent"]["data"]["created"] is True, outcome["resent"]
    status, _headers, body, _seconds = outcome["bootstrap_up"]
    assert status == 200, body[:300]
    for name in ("handshake_up", "operator_handshake_up"):
        frames, close_code, _seconds = outcome[name]
        assert close_code is None and frames[-1]["type"] == "hello", (name, close_code, frames)
    bodies = private_postgres.psql(
        "messenger_outage", "select body from messenger_message where body = 'during' order by id"
    ).split()
    assert bodies == ["during"]


@pytest.mark.browser
def test_widget_keeps_a_message_sent_during_the_outage_and_delivers_it_after(private_postgres, chromium):
    """The widget in Chromium: a message sent while PostgreSQL is down is answered ``unavailable``,
    stays pending (not failed) and is stored once by the widget's own resend after the restart."""
    private_postgres.psql("postgres", "create database messenger_widget_outage")
    env = private_env(private_postgres.url("messenger_widget_outage"))
    manage(env, "migrate", "--noinput")
    manage(env, "demo_data")
    server = LiveServer(env)
    delivered = "() => [...document.querySelector('profi-messenger').shadowRoot.querySelectorAll('.msg.in')].map((el) => [el.querySelector('.text').innerText.trim(), el.dataset.id || '', el.querySelector('.tick').dataset.state])"
    try:
        server.start()
        context = chromium.new_context(viewport={"width": 1100, "height": 800})
        page = context.new_page()
        page.set_default_timeout(15_000)
        try:
            page.goto(f"{server.other_origin_url}/demo/?token={DEMO_WIDGET_TOKEN}")
            page.wait_for_function(
                "() => window.ProfiMessenger && !window.ProfiMessenger._stub"
                " && window.ProfiMessenger.connection === 'online'"
            )
            page.evaluate("ProfiMessenger.open()")
            box = page.locator("profi-messenger").locator("textarea.input")
            box.fill("before")
            box.press("Enter")
            page.wait_for_function(f"() => ({delivered})().some(([text, id]) => text === 'before' && id)")

            private_postgres.stop()
            box.fill("during")
            box.press("Enter")
            # The server answers ``unavailable`` after the pool's 3 s; the widget waits
            # ``retry_after`` (5 s) and sends again: both have happened by now.
            page.wait_for_timeout(9_000)
            during = [item for item in page.evaluate(f"({delivered})()") if item[0] == "during"]
            assert during == [["during", "", "pending"]], during

            private_postgres.start()
            page.wait_for_function(
                f"() => ({delivered})().some(([text, id]) => text === 'during' && id)", timeout=30_000
            )
            texts = [item[0] for item in page.evaluate(f"({delivered})()")]
        finally:
            context.close()
    finally:
        server.stop(kill=True)

    assert texts == ["before", "during"]
    bodies = private_postgres.psql(
        "messenger_widget_outage", "select body from messenger_message where body in ('before', 'during') order by id"
    ).split()
    assert bodies == ["before", "during"]


@pytest.mark.browser
def test_dashboard_resends_a_reply_answered_unavailable_and_stores_it_once(private_postgres, chromium):
    """The operator dashboard in Chromium: a reply sent while PostgreSQL is down is answered
    ``unavailable``; the dashboard keeps it pending and sends it again with the same ``client_id``
    until PostgreSQL is back, so it is stored once and nothing is marked failed."""
    from websockets.sync.client import connect

    private_postgres.psql("postgres", "create database messenger_dashboard_outage")
    env = private_env(private_postgres.url("messenger_dashboard_outage"))
    manage(env, "migrate", "--noinput")
    manage(env, "demo_data")
    server = LiveServer(env)
    try:
        server.start()
        context = chromium.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.set_default_timeout(15_000)
        try:
            page.goto(server.url + "/accounts/login/?next=/dashboard/")
            page.fill("#id_username", "operator1")
            page.fill("#id_password", "operator1")
            page.click("button[type=submit]")
            page.wait_for_url("**/dashboard/")
            page.wait_for_selector("#connection[data-state=online]")

            status, boot = http(server.url + "/api/widget/bootstrap/", data={"widget_token": DEMO_WIDGET_TOKEN})
            assert status == 200, boot
            visitor_url = (
                f"ws://127.0.0.1:{server.port}/ws/widget/"
                f"?widget_token={DEMO_WIDGET_TOKEN}&token={boot['session_token']}"
            )
            with connect(visitor_url, origin=ORIGIN, open_timeout=10) as visitor:
                visitor.send(
                    json.dumps({"type": "message.send", "ref": "v1", "client_id": new_client_id(), "body": "hi"})
                )
                while (frame := json.loads(visitor.recv(timeout=15))).get("ref") != "v1":
                    pass
            assert frame["type"] == "ack", frame
            conversation_id = frame["data"]["conversation_id"]
            page.locator(f'#conversations li[data-id="{conversation_id}"]').click()
            page.locator("#messages .message", has_text="hi").wait_for()

            private_postgres.stop()
            page.fill("#body", "reply during the outage")
            page.press("#body", "Control+Enter")
            # Answered ``unavailable`` after the pool's 3 s, sent again after ``retry_after`` (5 s).
            page.wait_for_timeout(9_000)
            reply = page.locator("#messages .message", has_text="reply during the outage")
            assert reply.count() == 1
            assert "is-pending" in reply.get_attribute("class") and "is-failed" not in reply.get_attribute("class")
            assert page.input_value("#body") == ""

            private_postgres.start()
            page.locator(
                "#messages .message:not(.is-pending):not(.is-failed)", has_text="reply during the outage"
            ).wait_for(timeout=40_000)
            assert page.locator("#messages .message", has_text="reply during the outage").count() == 1
        finally:
            context.close()
    finally:
        server.stop(kill=True)

    stored = private_postgres.psql(
        "messenger_dashboard_outage", "select count(*) from messenger_message where body = 'reply during the outage'"
    )
    assert stored.strip() == "1"
