"""A real server for browser and multi-process tests: daphne subprocesses on free loopback ports,
sharing the test database (and Redis, when configured) with the test process.

Tests that use it must be ``django_db(transaction=True)`` so their rows are committed and visible
to the server. With the embedded default (SQLite + in-memory layer) each server process has its
own channel layer: only Redis lets the test process's actions reach the server's sockets.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    from django.conf import settings
    from django.db import connection

    database = connection.settings_dict
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DJANGO_SETTINGS"))}
    env["DJANGO_SETTINGS_MODULE"] = "project.settings"
    env["MESSENGER_EMBEDDED_SCHEDULER"] = env.get("MESSENGER_EMBEDDED_SCHEDULER", "0")
    env["ALLOWED_HOSTS"] = "127.0.0.1,localhost,testserver"
    env["MEDIA_ROOT"] = str(settings.MEDIA_ROOT)
    if database["ENGINE"].endswith("postgresql"):
        user = database.get("USER") or "postgres"
        password = f":{database['PASSWORD']}" if database.get("PASSWORD") else ""
        env["DATABASE_URL"] = (
            f"postgres://{user}{password}@{database.get('HOST') or '127.0.0.1'}:{database.get('PORT') or 5432}/{database['NAME']}"
        )
    else:
        env.pop("DATABASE_URL", None)
        env["SQLITE_PATH"] = str(database["NAME"])
    env.update(extra or {})
    return env


class LiveServer:
    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.env = env
        self.process: subprocess.Popen | None = None
        self.log_path = ROOT / "artifacts" / f"server-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def other_origin_url(self) -> str:
        """The same server under another host name: a second origin for the demo page."""
        return f"http://localhost:{self.port}"

    def start(self, *, healthy: bool = True) -> LiveServer:
        """Start and wait until ``/health/`` answers 200 (``healthy=False``: until it answers at all)."""
        self.log_path.parent.mkdir(exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 — kept open for the process's life
        self.process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "project.asgi:application"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: see {self.log_path}")
            try:
                urllib.request.urlopen(self.url + "/health/", timeout=2)  # noqa: S310
                return self
            except urllib.error.HTTPError:
                if not healthy:
                    return self
                time.sleep(0.2)
            except Exception:  # noqa: BLE001
                time.sleep(0.2)
        raise RuntimeError(f"server did not start: see {self.log_path}")

    def stop(self, *, kill: bool = False) -> None:
        if self.process is None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop(kill=True)
        self.start()


@pytest.fixture
def live_server_factory(django_db_setup, django_db_blocker) -> Iterator:  # noqa: ANN001
    """Start one or more servers: ``live_server_factory(extra_env)``; all stop after the test."""
    servers: list[LiveServer] = []

    def start(extra: dict[str, str] | None = None) -> LiveServer:
        with django_db_blocker.unblock():
            server = LiveServer(server_env(extra)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def live_server_proc(live_server_factory) -> LiveServer:  # noqa: ANN001
    return live_server_factory()


@pytest.fixture(scope="session")
def collected_static_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A STATIC_ROOT as production has it (``collectstatic`` with DEBUG=0: hashed names, gzip and
    brotli copies). A DEBUG=0 server needs one: pass ``STATIC_ROOT`` to ``live_server_factory``."""
    root = tmp_path_factory.mktemp("staticfiles")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DJANGO_SETTINGS"))},
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DEBUG": "0",
        "SECRET_KEY": "collectstatic-only",
        "STATIC_ROOT": str(root),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return root


def run_async(coroutine):  # noqa: ANN001, ANN201
    """asyncio.run in a thread of its own: Playwright's sync API leaves a loop running in this one."""
    import asyncio
    import threading

    outcome: dict = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(coroutine)
        except BaseException as error:  # noqa: BLE001 — re-raised in the caller's thread
            outcome["error"] = error

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


@contextmanager
def orm_beside_playwright() -> Iterator[None]:
    """For a browser test module's fixture: Playwright's sync API runs an event loop in the test's
    thread, which Django's async-safety check takes for async code, while the test's ORM calls are
    plain sync calls. Set until the module ends (past the test database's flush); servers started
    by ``server_env`` get the check back."""
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def chromium() -> Iterator:
    """A headless Debian Chromium driven by Playwright (sync API: use it from sync tests).

    Module-scoped: Playwright's sync API keeps an event loop running in the test thread while it
    is alive, which Django's async-safety check then sees in every later (sync) test.
    """
    if not os.path.exists(CHROMIUM):
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def screenshot(page, name: str) -> None:  # noqa: ANN001
    folder = ROOT / "artifacts" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"))


# The browser test modules' shared set-up. A module takes the two fixtures by importing them:
# ``from tests.live import _orm_beside_playwright`` (autouse there) and ``server = live.server``.

TIMEOUT = 10_000  # milliseconds: a page's default wait


@pytest.fixture(scope="module", autouse=True)
def _orm_beside_playwright(django_db_setup) -> Iterator[None]:  # noqa: ANN001
    """``orm_beside_playwright`` for the whole module that imports this fixture."""
    with orm_beside_playwright():
        yield


@pytest.fixture
def server(live_server_factory) -> Iterator[LiveServer]:  # noqa: ANN001
    """A server with Django's async-safety check back on; killed after the test (Daphne would wait
    on SIGTERM for the open sockets to drain, and these tests have nothing left to save)."""
    started = live_server_factory({"DJANGO_ALLOW_ASYNC_UNSAFE": ""})
    yield started
    started.stop(kill=True)


def log_in(browser: Any, server: LiveServer, username: str, width: int = 1400, height: int = 900) -> Any:
    """A fresh browser context logged in as ``username`` (password ``pw-<username>``, as
    ``make_user`` sets it) with the dashboard online. ``page.errors`` collects the page's
    uncaught errors (close ``page.context`` after)."""
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    page.set_default_timeout(TIMEOUT)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors
    page.goto(server.url + "/accounts/login/?next=/dashboard/")
    page.fill("#id_username", username)
    page.fill("#id_password", "pw-" + username)
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard/")
    page.wait_for_selector("#connection[data-state=online]")
    return page


def demo_page(
    browser: Any,
    server: LiveServer,
    token: str,
    query: str = "",
    *,
    viewport: dict[str, int] | None = None,
    init_script: str | None = None,
    ready: bool = False,
) -> Any:
    """The demo page with the widget, from the server's other origin, in a fresh browser context
    (close ``page.context`` after); ``ready``: once the widget is online (``wait_ready``)."""
    context = browser.new_context(viewport=viewport or {"width": 1100, "height": 800})
    if init_script:
        context.add_init_script(init_script)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    page.goto(f"{server.other_origin_url}/demo/?token={token}{query}")
    if ready:
        wait_ready(page)
    return page


def wait_ready(page: Any) -> None:
    """The widget has loaded (not the loader's stub) and its socket is online."""
    page.wait_for_function(
        "() => window.ProfiMessenger && !window.ProfiMessenger._stub && window.ProfiMessenger.connection === 'online'"
    )
