"""The operator dashboard in a real browser against a live server: operators and a supervisor in
Chromium, the visitor on the real widget socket (bootstrap over HTTP, then ``/ws/widget/``)."""

from __future__ import annotations

import base64
import json
import time
import urllib.request
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from messenger.models import AgentRole, CannedResponse, Conversation
from tests.factories import VISITOR_ORIGIN, make_branch, make_inbox, make_user
from tests.live import TIMEOUT, _orm_beside_playwright, log_in, screenshot  # noqa: F401 — the fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP8z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg=="
)


class Visitor:
    """A visitor through the public HTTP bootstrap and the widget socket, from http://localhost."""

    def __init__(self, server: Any, inbox: Any) -> None:
        request = urllib.request.Request(  # noqa: S310 — loopback test server
            server.url + "/api/widget/bootstrap/",
            data=json.dumps({"widget_token": inbox.widget_token, "page": {"url": VISITOR_ORIGIN + "/shop"}}).encode(),
            headers={"Content-Type": "application/json", "Origin": VISITOR_ORIGIN},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            boot = json.loads(response.read())
        self.socket: ClientConnection = connect(
            f"{server.url.replace('http', 'ws')}/ws/widget/?widget_token={inbox.widget_token}&token={boot['session_token']}",
            origin=VISITOR_ORIGIN,
            open_timeout=5,
        )
        self.frames: list[dict[str, Any]] = []
        self.ref = 0
        self.conversation_id: int | None = None
        assert self.expect("hello")["type"] == "hello"

    def receive(self, timeout: float) -> dict[str, Any] | None:
        try:
            frame = json.loads(self.socket.recv(timeout=timeout))
        except TimeoutError:
            return None
        self.frames.append(frame)
        return frame

    def expect(self, type_: str, timeout: float = 8, **match: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            frame = self.receive(max(0.01, deadline - time.monotonic()))
            if frame is None:
                break
            fields = {**((frame.get("data") or {}).get("message") or {}), **(frame.get("data") or {})}
            if frame["type"] == type_ and all(fields.get(k) == v for k, v in match.items()):
                return frame
        raise AssertionError(f"no {type_} {match}; got {self.frames[-10:]}")

    def drain(self, seconds: float) -> list[dict[str, Any]]:
        got = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            frame = self.receive(max(0.01, deadline - time.monotonic()))
            if frame is not None:
                got.append(frame)
        return got

    def command(self, type_: str, **fields: Any) -> dict[str, Any]:
        self.ref += 1
        ref = f"v{self.ref}"
        self.socket.send(json.dumps({"type": type_, "ref": ref, **fields}))
        while True:
            frame = self.receive(8)
            assert frame is not None, f"no answer to {type_}"
            if frame.get("ref") == ref:
                assert frame["type"] == "ack", frame
                return frame

    def say(self, body: str) -> dict[str, Any]:
        fields: dict[str, Any] = {"client_id": f"v-{time.monotonic_ns()}", "body": body}
        if self.conversation_id:
            fields["conversation_id"] = self.conversation_id
        ack = self.command("message.send", **fields)
        self.conversation_id = ack["data"]["conversation_id"]
        return ack["data"]["message"]

    def close(self) -> None:
        self.socket.close()


def wait_title(page: Any, expected: str, timeout: float = TIMEOUT / 1000) -> None:
    """Polled from here: the page's CSP forbids the eval behind wait_for_function."""
    deadline = time.monotonic() + timeout
    while page.title() != expected:
        assert time.monotonic() < deadline, f"title {page.title()!r}, expected {expected!r}"
        page.wait_for_timeout(50)


def row(page: Any, conversation_id: int) -> Any:
    return page.locator(f'#conversations li[data-id="{conversation_id}"]')


def test_operator_dashboard_live(chromium, live_server_factory):  # noqa: ANN001
    north, south = make_branch("North"), make_branch("South")
    inbox = make_inbox(north)
    make_user("olga", branch=north)
    ivan = make_user("ivan", branch=south)
    make_user("sonia", role=AgentRole.SUPERVISOR)
    CannedResponse.objects.create(short_code="thanks", text="Thank you for waiting!")
    server = live_server_factory({"DJANGO_ALLOW_ASYNC_UNSAFE": ""})

    olga = log_in(chromium, server, "olga")
    ivan_page = log_in(chromium, server, "ivan")
    sonia = log_in(chromium, server, "sonia")
    assert olga.title() == "Messenger"

    # A new visitor writes: the conversation appears live, assigned to the only free North operator.
    visitor = Visitor(server, inbox)
    first = visitor.say("Hello, I need help")
    conversation_id = visitor.conversation_id
    row(olga, conversation_id).wait_for()
    assert "Hello, I need help" in row(olga, conversation_id).inner_text()
    wait_title(olga, "(1) Messenger")
    visitor.say("Are you there?")
    wait_title(olga, "(2) Messenger")
    assert row(olga, conversation_id).get_attribute("data-unread") == "2"
    screenshot(olga, "dashboard-new-conversation")

    # The supervisor watches: read-only, and neither a read receipt nor "opened" reaches anyone.
    sonia.locator("#tabs [data-tab=all]").click()
    row(sonia, conversation_id).click()
    sonia.wait_for_selector("#watch-banner:not([hidden])")
    sonia.locator("#messages .message", has_text="Are you there?").wait_for()
    assert sonia.locator("#body").is_disabled()
    time.sleep(0.8)
    assert not [frame for frame in visitor.drain(0.5) if frame["type"] == "conversation.read"]
    watched = Conversation.objects.get(pk=conversation_id)
    assert watched.unread_for_agent == 2 and watched.assignee_opened_at is None
    screenshot(sonia, "dashboard-supervisor-watch")

    # The operator opens it: opened recorded, everything read, the badge counts down.
    row(olga, conversation_id).click()
    olga.locator("#messages .message", has_text="Are you there?").wait_for()
    wait_title(olga, "Messenger")
    read = visitor.expect("conversation.read", reader="agent")
    assert read["data"]["up_to_message_id"] > first["id"]
    assert Conversation.objects.get(pk=conversation_id).assignee_opened_at is not None

    # Canned response, formatting preview, an attachment, then Ctrl+Enter.
    olga.fill("#body", "/than")
    olga.locator("#canned li", has_text="/thanks").wait_for()
    olga.press("#body", "Enter")
    assert olga.input_value("#body") == "Thank you for waiting!"
    olga.fill("#body", "Here is **the answer** and _more_")
    assert olga.inner_html("#preview").startswith("Here is <strong>the answer</strong>")
    olga.set_input_files("#file", files=[{"name": "shot.png", "mimeType": "image/png", "buffer": PNG}])
    olga.locator("#pending-attachments .chip.ready").wait_for()
    olga.press("#body", "Control+Enter")
    reply = visitor.expect("message.created", direction="out")
    assert reply["data"]["message"]["content"] == "Here is <strong>the answer</strong> and <em>more</em>"
    assert [a["name"] for a in reply["data"]["message"]["attachments"]] == ["shot.png"]
    reply_id = reply["data"]["message"]["id"]
    ticks = olga.locator(f'#messages .message[data-id="{reply_id}"] .ticks')
    ticks.wait_for()
    assert ticks.get_attribute("data-ticks") == "sent"

    # The visitor reads it: two ticks.
    visitor.command("message.delivered", conversation_id=conversation_id, up_to_message_id=reply_id)
    olga.wait_for_selector(f'#messages .message[data-id="{reply_id}"] .ticks[data-ticks=delivered]')
    visitor.command("conversation.read", conversation_id=conversation_id, up_to_message_id=reply_id)
    olga.wait_for_selector(f'#messages .message[data-id="{reply_id}"] .ticks[data-ticks=read]')
    screenshot(olga, "dashboard-two-ticks")

    # An internal note stays with the staff.
    olga.check("#composer input[value=note]")
    olga.fill("#body", "secret note: refund approved")
    olga.press("#body", "Control+Enter")
    olga.locator("#messages .message.m-internal", has_text="secret note").wait_for()
    sonia.locator("#messages .message.m-internal", has_text="secret note").wait_for()
    assert not [frame for frame in visitor.drain(1.0) if "secret note" in json.dumps(frame)]
    olga.check("#composer input[value=reply]")

    # Transfer to South: it leaves Olga's view and lands with Ivan, live.
    olga.select_option("#transfer-branch", label="South")
    olga.click("#transfer-branch-go")
    row(ivan_page, conversation_id).wait_for()
    row(olga, conversation_id).wait_for(state="detached")
    olga.wait_for_selector("#conversation[data-state=empty]")
    moved = Conversation.objects.get(pk=conversation_id)
    assert moved.branch_id == south.pk and moved.assignee_id == ivan.pk
    screenshot(ivan_page, "dashboard-transferred")

    # Ivan answers; the visitor gets it, and Ivan's badge counts the next visitor message.
    visitor.say("Thanks, waiting")
    wait_title(ivan_page, "(1) Messenger")
    row(ivan_page, conversation_id).click()
    wait_title(ivan_page, "Messenger")
    ivan_page.fill("#body", "Ivan here")
    ivan_page.press("#body", "Control+Enter")
    visitor.expect("message.created", direction="out", body="Ivan here")

    visitor.close()
    for page in (olga, ivan_page, sonia):
        assert page.errors == [], page.errors
        page.context.close()
