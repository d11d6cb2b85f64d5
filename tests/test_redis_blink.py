"""Nothing stays silent after a Redis blink, or after a frame lost during a replay: the real widget
and dashboard in Chromium against live server processes.

Redis: two server processes share a Redis of the test's own, stopped and started under them. Each
side sends one message while it is down and nothing happens afterwards: no later event reveals a
gap, nobody reconnects. The servers notice the outage (a probe round trip through the layer, a
failed publish, the pub/sub connection reconnecting), the clients show a degraded state, and when
the layer delivers again the servers tell their sockets to resume (docs/protocol.md, "Live
delivery"). The same when Redis stays up but drops the subscriptions, where no publish fails.

Replay: a proxy between the page and the server (Playwright's WebSocket routing) loses one live
frame, holds the replay that the gap causes, and lets a newer live frame overtake it — the race of
a replay read just before the next commit. The client must ask again when the replay ends.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from messenger.models import Conversation, Message
from tests import live
from tests.factories import make_branch, make_inbox, make_user
from tests.live import run_async, screenshot
from tests.test_dashboard_browser import TIMEOUT, Visitor, log_in, row
from tests.test_resilience import REDIS_SERVER, PrivateRedis
from tests.test_widget_browser import Operator, demo_page, send_text, wait_ready, widget

pytestmark = pytest.mark.django_db(transaction=True)

# The promise: everything missed is on screen within 5 s of Redis being back.
CATCH_UP_SECONDS = 5


@pytest.fixture(scope="module", autouse=True)
def _orm_beside_playwright(django_db_setup):  # noqa: ANN001
    with live.orm_beside_playwright():
        yield


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


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.skipif(not os.path.exists(REDIS_SERVER), reason="redis-server is not installed")
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
        assert widget(page).locator(".conn").inner_text() == "Reconnecting…"
        assert widget(page).locator(".notice.live").inner_text() == (
            "Live updates are interrupted. Your messages are still saved."
        )
        olga.wait_for_selector("#connection[data-state=interrupted]")
        assert olga.inner_text("#connection") == "Live updates interrupted — reconnecting…"
        screenshot(page, "widget-live-interrupted")
        screenshot(olga, "dashboard-live-interrupted")

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
        assert widget(page).locator(".notice.live").is_hidden()
        olga.wait_for_selector("#connection[data-state=online]", timeout=left())
        assert time.monotonic() <= deadline
        assert widget_sockets == [] and dashboard_sockets == []  # nobody reconnected
        # Each message shown once on each side.
        assert widget(page).locator(".msg", has_text="visitor during the outage").count() == 1
        assert olga.locator("#messages .message", has_text="operator during the outage").count() == 1
    finally:
        page.context.close()
        olga.context.close()


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.skipif(not os.path.exists(REDIS_SERVER), reason="redis-server is not installed")
def test_subscriptions_dropped_while_redis_stays_up_are_caught_too(chromium, private_redis, live_server_factory):  # noqa: ANN001
    """Redis stays up but drops every pub/sub connection and refuses new ones for a moment (a
    failover behind a proxy, a restart on the same address): the servers publish on connections
    they already hold, successfully, to nobody. No publish fails; only the watch sees it."""
    import redis

    branch = make_branch()
    inbox = make_inbox(branch)
    make_user("olga", branch=branch)
    env = {"REDIS_URL": private_redis.url, "DJANGO_ALLOW_ASYNC_UNSAFE": ""}
    widget_server, dashboard_server = live_server_factory(env), live_server_factory(env)
    page = demo_page(chromium, widget_server, inbox.widget_token)
    olga = log_in(chromium, dashboard_server, "olga")
    admin = redis.Redis(port=private_redis.port)  # this connection stays: new ones are refused below
    try:
        wait_ready(page)
        page.evaluate("ProfiMessenger.open()")
        send_text(page, "hello before")
        widget(page).locator(".msg.in[data-id]", has_text="hello before").wait_for()
        row(olga, Conversation.objects.get(inbox=inbox).pk).click()
        olga.locator("#messages .message", has_text="hello before").wait_for()
        widget_sockets, dashboard_sockets = count_sockets(page), count_sockets(olga)

        admin.config_set("maxclients", 1)
        assert admin.client_kill_filter(_type="pubsub") >= 2  # both servers' subscriptions
        send_text(page, "visitor during the blink")
        widget(page).locator(".msg.in[data-id]", has_text="visitor during the blink").wait_for()
        page.wait_for_timeout(1000)
        admin.config_set("maxclients", 10000)
        olga.locator("#messages .message", has_text="visitor during the blink").wait_for(
            timeout=CATCH_UP_SECONDS * 1000
        )
        assert olga.locator("#messages .message", has_text="visitor during the blink").count() == 1
        assert widget_sockets == [] and dashboard_sockets == []
    finally:
        admin.close()
        page.context.close()
        olga.context.close()


class Recorder:
    """Stands for a socket of the server process: keeps the ``live`` states it is told."""

    def __init__(self) -> None:
        self.states: list[str] = []

    async def send(self, text_data: str | None = None, bytes_data: bytes | None = None, close: bool = False) -> None:
        self.states.append(json.loads(text_data)["data"]["state"])


@pytest.mark.redis
@pytest.mark.skipif(not os.path.exists(REDIS_SERVER), reason="redis-server is not installed")
def test_the_watch_hears_of_a_pubsub_reconnect_at_once_and_stays_quiet_otherwise(private_redis):  # noqa: ANN001
    """The watch on channels-redis's layer as configured in production: steady probes raise no
    alarm; a pub/sub connection that Redis drops (and redis-py renews within milliseconds, too fast
    for a probe to be lost) is reported by the connection's own reconnect, before any probe could
    time out. Fails if the adapter to channels-redis's internals stops finding the connection."""
    import redis.asyncio
    from channels_redis.pubsub import RedisPubSubChannelLayer

    from messenger.realtime import liveness

    async def scenario() -> tuple[list[str], int, list[str]]:
        layer = RedisPubSubChannelLayer(
            hosts=[{"address": private_redis.url, "socket_timeout": None, "socket_connect_timeout": 5}], prefix="t"
        )
        watch = liveness.LayerWatch(layer)
        socket = Recorder()
        watch.sockets.add(socket)
        await asyncio.sleep(liveness.PROBE_TIMEOUT + 1)
        quiet = list(socket.states)
        admin = redis.asyncio.Redis.from_url(private_redis.url)
        killed = await admin.client_kill_filter(_type="pubsub")
        await asyncio.sleep(liveness.PROBE_TIMEOUT * 0.75)
        states = list(socket.states)
        watch.task.cancel()
        await admin.aclose()
        await layer.flush()
        return quiet, killed, states

    quiet, killed, states = run_async(scenario())
    assert quiet == []
    assert killed == 1
    assert states == ["interrupted", "restored"]


class ReplayRace:
    """Between a page and the server: drops the live ``message.created`` of ``lost``, holds
    everything the server sends after the page's first ``resume`` (the replay), and when the live
    frame of ``overtaking`` arrives, delivers it before the held replay. Receipts the page sends
    are dropped, so that no later event reveals the gap by itself."""

    def __init__(self, *, lost: str, overtaking: str) -> None:
        self.lost, self.overtaking = lost, overtaking
        self.dropped = False
        self.holding = False
        self.held: list[str] = []
        self.resumes: list[dict[str, Any]] = []

    def route(self, page_side: Any) -> None:
        server_side = page_side.connect_to_server()
        page_side.on_message(lambda message: self.from_page(message, server_side))
        server_side.on_message(lambda message: self.from_server(message, page_side))

    def from_page(self, message: str, server_side: Any) -> None:
        frame = json.loads(message)
        if frame["type"] in ("message.delivered", "conversation.read"):
            return
        if frame["type"] == "resume":
            self.resumes.append(frame)
            self.holding = self.holding or len(self.resumes) == 1
        server_side.send(message)

    def from_server(self, message: str, page_side: Any) -> None:
        frame = json.loads(message)
        body = ((frame.get("data") or {}).get("message") or {}).get("body")
        if frame["type"] == "message.created" and body == self.lost and not self.dropped:
            self.dropped = True
            return
        if self.holding and frame["type"] == "message.created" and body == self.overtaking:
            self.holding = False
            page_side.send(message)
            for held in self.held:
                page_side.send(held)
            self.held = []
            return
        if self.holding:
            self.held.append(message)
            return
        page_side.send(message)

    def wait_for_held_replay(self, page: Any) -> None:
        deadline = time.monotonic() + 10
        while not any(json.loads(held)["type"] == "resume.done" for held in self.held):
            assert time.monotonic() < deadline, f"no replay held; resumes {self.resumes}"
            page.wait_for_timeout(50)


@pytest.mark.browser
def test_widget_asks_again_for_a_frame_dropped_while_its_replay_was_in_flight(chromium, live_server_factory):  # noqa: ANN001
    branch = make_branch()
    inbox = make_inbox(branch)
    user = make_user(branch=branch)
    server = live_server_factory({"DJANGO_ALLOW_ASYNC_UNSAFE": ""})
    race = ReplayRace(lost="one", overtaking="three")
    context = chromium.new_context(viewport={"width": 1100, "height": 800})
    context.route_web_socket(re.compile(r"/ws/widget/"), race.route)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    page.goto(f"{server.other_origin_url}/demo/?token={inbox.widget_token}")
    operator = Operator(server, user)
    try:
        wait_ready(page)
        page.evaluate("ProfiMessenger.open()")
        send_text(page, "hello")
        widget(page).locator(".msg.in[data-id]", has_text="hello").wait_for()
        conversation_id = Conversation.objects.get(inbox=inbox).pk

        def reply(body: str) -> None:
            operator.command("message.send", conversation_id=conversation_id, client_id=f"op-{body}", body=body)

        reply("one")  # lost on the way
        reply("two")  # reveals the gap: the widget resumes, and its replay is held
        race.wait_for_held_replay(page)
        reply("three")  # stored after the replay was read; its live frame arrives first
        widget(page).locator(".msg.out", has_text="two").wait_for()
        # Nothing else happens: the widget itself must notice that "three" is still missing.
        widget(page).locator(".msg.out", has_text="three").wait_for(timeout=CATCH_UP_SECONDS * 1000)
        assert [text.strip() for text in widget(page).locator(".msg.out .text").all_inner_texts()] == [
            "one",
            "two",
            "three",
        ]
        assert len(race.resumes) >= 2  # it asked again
    finally:
        operator.close()
        context.close()


@pytest.mark.browser
def test_dashboard_asks_again_for_a_frame_dropped_while_its_replay_was_in_flight(chromium, live_server_factory):  # noqa: ANN001
    branch = make_branch()
    inbox = make_inbox(branch)
    make_user("olga", branch=branch)
    server = live_server_factory({"DJANGO_ALLOW_ASYNC_UNSAFE": ""})
    race = ReplayRace(lost="one", overtaking="three")
    visitor = Visitor(server, inbox)
    visitor.say("hello")
    context = chromium.new_context(viewport={"width": 1400, "height": 900})
    context.route_web_socket(re.compile(r"/ws/operator/"), race.route)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    try:
        page.goto(server.url + "/accounts/login/?next=/dashboard/")
        page.fill("#id_username", "olga")
        page.fill("#id_password", "pw-olga")
        page.click("button[type=submit]")
        page.wait_for_url("**/dashboard/")
        page.wait_for_selector("#connection[data-state=online]")
        row(page, visitor.conversation_id).click()
        page.locator("#messages .message", has_text="hello").wait_for()

        visitor.say("one")  # lost on the way
        visitor.say("two")  # reveals the gap: the dashboard resumes, and its replay is held
        race.wait_for_held_replay(page)
        visitor.say("three")  # stored after the replay was read; its live frame arrives first
        page.locator("#messages .message", has_text="two").wait_for()
        page.locator("#messages .message", has_text="three").wait_for(timeout=CATCH_UP_SECONDS * 1000)
        assert len(race.resumes) >= 2  # it asked again
    finally:
        visitor.close()
        context.close()
