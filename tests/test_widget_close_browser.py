"""A visitor who closes the widget while its socket is down gets no automatic invitation either:
the widget tells the server once it is connected again (docs/widget.md, "Behaviour and options")."""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

import pytest
from django.core.cache import cache

from messenger.actions import visitors
from tests import live
from tests.factories import make_branch, make_inbox
from tests.live import TIMEOUT, _orm_beside_playwright, wait_ready  # noqa: F401 — the fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

server = live.server  # the fixture


class Cutter:
    """Between the widget and the server: passes every frame, cuts the open connection on
    ``cut()`` and refuses new ones while ``held``; records the frames each connection carried
    from the page."""

    def __init__(self) -> None:
        self.held = threading.Event()
        self.connections: list[tuple[Any, Any, list[dict[str, Any]]]] = []

    def route(self, page_side: Any) -> None:
        if self.held.is_set():
            page_side.close()
            return
        server_side = page_side.connect_to_server()
        sent: list[dict[str, Any]] = []
        self.connections.append((page_side, server_side, sent))

        def from_page(message: str | bytes) -> None:
            sent.append(json.loads(message))
            server_side.send(message)

        page_side.on_message(from_page)
        server_side.on_message(page_side.send)

    def cut(self) -> None:
        self.held.set()
        page_side, server_side, _ = self.connections[-1]
        server_side.close()
        page_side.close()


def test_closing_the_widget_while_offline_reaches_the_server_once_back(chromium, server):  # noqa: ANN001
    inbox = make_inbox(make_branch())
    cutter = Cutter()
    context = chromium.new_context(viewport={"width": 1100, "height": 800})
    context.route_web_socket(re.compile(r"/ws/widget/"), cutter.route)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(f"{server.other_origin_url}/demo/?token={inbox.widget_token}")
        wait_ready(page)
        visitor_id = page.evaluate("new Promise((done) => ProfiMessenger.on('ready', (e) => done(e.visitorId)))")
        page.evaluate("ProfiMessenger.open()")
        cutter.cut()
        page.wait_for_function("() => ProfiMessenger.connection !== 'online'")
        page.evaluate("ProfiMessenger.close()")  # no socket to say it on
        assert not cache.get(visitors._closed_key(visitor_id))
        cutter.held.clear()
        wait_ready(page)
        deadline = time.monotonic() + TIMEOUT / 1000
        while not cache.get(visitors._closed_key(visitor_id)):
            assert time.monotonic() < deadline, "the server never heard that the widget was closed"
            page.wait_for_timeout(100)
        frames = [frame["type"] for frame in cutter.connections[-1][2]]
        assert frames.count("widget.close") == 1, frames
        assert errors == []
    finally:
        context.close()
