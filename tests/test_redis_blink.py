"""Nothing stays silent after a Redis blink: the real widget and dashboard in Chromium, on two live
server processes that share a Redis of the test's own, stopped and started under them.

Each side sends one message while Redis is down and nothing happens afterwards: no later event
reveals a gap, nobody reconnects. The servers notice the outage (a probe round trip through the
layer, a failed publish), the clients show a degraded state, and when the layer delivers again
the servers tell their sockets to resume (docs/protocol.md, "Live delivery").
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from messenger.models import Conversation, Message
from tests.factories import make_branch, make_inbox, make_user
from tests.test_dashboard_browser import log_in, row
from tests.test_resilience import REDIS_SERVER, PrivateRedis
from tests.test_widget_browser import demo_page, send_text, wait_ready, widget

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.path.exists(REDIS_SERVER), reason="redis-server is not installed"),
]

# The promise: everything missed is on screen within 5 s of Redis being back.
CATCH_UP_SECONDS = 5


@pytest.fixture(scope="module", autouse=True)
def _orm_beside_playwright(django_db_setup):  # noqa: ANN001
    """Playwright's sync API runs an event loop in this thread; the test's ORM calls are sync."""
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    yield
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    redis = PrivateRedis()
    redis.start()
    yield redis
    redis.stop()


def count_sockets(page: Any) -> list[str]:
    """The URLs of every WebSocket the page opens from now on (a reconnect would add one)."""
    opened: list[str] = []
    page.on("websocket", lambda socket: opened.append(socket.url))
    return opened


def test_both_sides_see_what_the_other_sent_while_redis_was_down(chromium, private_redis, live_server_factory):  # noqa: ANN001
    branch = make_branch()
    inbox = make_inbox(branch)
    make_user("olga", branch=branch)
    env = {"REDIS_URL": private_redis.url, "DJANGO_ALLOW_ASYNC_UNSAFE": ""}
    widget_server, dashboard_server = live_server_factory(env), live_server_factory(env)

    # The visitor on one process, the operator on the other, the conversation open on both sides.
    page = demo_page(chromium, widget_server, inbox.widget_token)
    olga = log_in(chromium, dashboard_server, "olga")
    try:
        wait_ready(page)
        page.evaluate("ProfiMessenger.open()")
        send_text(page, "hello before")
        widget(page).locator(".msg.in[data-id]", has_text="hello before").wait_for()
        conversation_id = Conversation.objects.get(inbox=inbox).pk
        row(olga, conversation_id).click()
        olga.locator("#messages .message", has_text="hello before").wait_for()
        widget_sockets, dashboard_sockets = count_sockets(page), count_sockets(olga)

        private_redis.stop()
        # Both sides say so while live delivery is down.
        widget(page).locator(".root[data-conn=interrupted]").wait_for(state="attached")
        assert widget(page).locator(".conn").inner_text() == "Live updates interrupted — reconnecting…"
        olga.wait_for_selector("#connection[data-state=interrupted]")
        assert olga.inner_text("#connection") == "Live updates interrupted — reconnecting…"

        # One message each way: both are stored and acked (the database is the truth).
        send_text(page, "visitor during the outage")
        widget(page).locator(".msg.in[data-id]", has_text="visitor during the outage").wait_for()
        olga.fill("#body", "operator during the outage")
        olga.press("#body", "Control+Enter")
        olga.locator("#messages .message:not(.is-pending)", has_text="operator during the outage").wait_for()
        bodies = set(Message.objects.filter(conversation_id=conversation_id).values_list("body", flat=True))
        assert {"visitor during the outage", "operator during the outage"} <= bodies
        page.wait_for_timeout(1000)
        assert widget(page).locator(".msg.out", has_text="operator during the outage").count() == 0
        assert olga.locator("#messages .message", has_text="visitor during the outage").count() == 0

        # Redis returns; nothing else happens. Both sides catch up within 5 s, on the same sockets.
        private_redis.start()
        deadline = time.monotonic() + CATCH_UP_SECONDS

        def left() -> float:
            return max(1.0, (deadline - time.monotonic()) * 1000)

        widget(page).locator(".msg.out", has_text="operator during the outage").wait_for(timeout=left())
        olga.locator("#messages .message", has_text="visitor during the outage").wait_for(timeout=left())
        widget(page).locator(".root[data-conn=online]").wait_for(state="attached", timeout=left())
        olga.wait_for_selector("#connection[data-state=online]", timeout=left())
        assert time.monotonic() <= deadline
        assert widget_sockets == [] and dashboard_sockets == []  # nobody reconnected
        # Each message shown once on each side.
        assert widget(page).locator(".msg", has_text="visitor during the outage").count() == 1
        assert olga.locator("#messages .message", has_text="operator during the outage").count() == 1
    finally:
        page.context.close()
        olga.context.close()
