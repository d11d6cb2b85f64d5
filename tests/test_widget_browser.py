"""The visitor widget in a real browser: a demo page on http://localhost:PORT embedding the widget
from http://127.0.0.1:PORT (two origins), and an operator on the real operator socket."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from messenger.models import ActivityEvent, Attachment, ContactInbox, Conversation, Message
from tests import live
from tests.conftest import session_cookie
from tests.factories import make_branch, make_inbox, make_user
from tests.live import _orm_beside_playwright, demo_page, screenshot, wait_ready  # noqa: F401 — the fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# A 2×2 red PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP8z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg=="
)
# widget.js, or its hashed name when collectstatic ran (DEBUG=0).
WIDGET_SCRIPT = re.compile(r"/static/messenger/widget(\.[0-9a-f]{12})?\.js$")


server = live.server  # the fixture


class Operator:
    """The operator's side through the real ``/ws/operator/`` socket of the server process."""

    def __init__(self, server: Any, user: Any) -> None:
        self.socket: ClientConnection = connect(
            server.url.replace("http", "ws") + "/ws/operator/",
            origin=server.url,
            additional_headers={"Cookie": f"sessionid={session_cookie(user)}"},
            open_timeout=5,
        )
        self.frames: list[dict[str, Any]] = []
        self.ref = 0
        assert self.expect("hello")["role"] == "operator"

    def expect(self, type_: str, timeout: float = 8, **match: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            frame = json.loads(self.socket.recv(timeout=max(0.01, deadline - time.monotonic())))
            self.frames.append(frame)
            data = frame.get("data") or {}
            fields = {**(data.get("message") or {}), **data, **frame}
            if frame["type"] == type_ and all(fields.get(k) == v for k, v in match.items()):
                return frame

    def command(self, type_: str, **fields: Any) -> dict[str, Any]:
        self.ref += 1
        ref = f"op{self.ref}"
        self.socket.send(json.dumps({"type": type_, "ref": ref, **fields}))
        while True:
            frame = json.loads(self.socket.recv(timeout=8))
            self.frames.append(frame)
            if frame.get("ref") == ref:
                assert frame["type"] in ("ack", "conversation.snapshot"), frame
                return frame

    def send(self, type_: str, **fields: Any) -> None:
        """Commands without an answer (typing)."""
        self.socket.send(json.dumps({"type": type_, **fields}))

    def close(self) -> None:
        self.socket.close()


def widget(page: Any) -> Any:
    return page.locator("profi-messenger")


def own_messages(page: Any) -> Any:
    return widget(page).locator(".msg.in")


def send_text(page: Any, text: str) -> None:
    box = widget(page).locator("textarea.input")
    box.fill(text)
    box.press("Enter")


def paste_png(page: Any) -> None:
    page.evaluate(
        """(b64) => {
          const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
          const data = new DataTransfer();
          data.items.add(new File([bytes], "screenshot.png", {type: "image/png"}));
          const box = document.querySelector("profi-messenger").shadowRoot.querySelector("textarea.input");
          box.dispatchEvent(new ClipboardEvent("paste", {clipboardData: data, bubbles: true, cancelable: true}));
        }""",
        base64.b64encode(PNG).decode(),
    )


def test_widget_conversation_end_to_end(chromium, server):  # noqa: ANN001
    branch = make_branch()
    inbox = make_inbox(branch, settings={"widget": {"title": "Shop help", "color": "#16a34a", "greeting": "Hi there!"}})
    user = make_user(branch=branch, first_name="Olga")
    operator = Operator(server, user)
    page = demo_page(chromium, server, inbox.widget_token)
    try:
        page.evaluate(
            "window.__events = []; for (const n of ['ready','open','close','message'])"
            " window.addEventListener('profimessenger:' + n, () => window.__events.push(n));"
        )
        wait_ready(page)
        launcher = widget(page).locator("button.launcher")
        assert launcher.is_visible()
        # Host CSS neither leaks in (Georgia, yellow buttons) nor is touched by the widget's CSS.
        assert "Georgia" not in launcher.evaluate("el => getComputedStyle(el).fontFamily")
        assert launcher.evaluate("el => getComputedStyle(el).backgroundColor") == "rgb(22, 163, 74)"
        assert page.locator("#host-button").evaluate("el => getComputedStyle(el).backgroundColor") == "rgb(255, 255, 0)"

        # The JS API from the host page.
        page.evaluate("ProfiMessenger.open()")
        panel = widget(page).locator("[role=dialog]")
        assert panel.is_visible()
        assert "Shop help" in panel.locator("h2").inner_text()
        assert widget(page).locator(".greeting").inner_text() == "Hi there!"
        page.evaluate("ProfiMessenger.hideLauncher()")
        assert not launcher.is_visible()
        page.evaluate("ProfiMessenger.showLauncher()")
        assert launcher.is_visible()
        page.keyboard.press("Escape")
        assert not panel.is_visible()
        page.evaluate("ProfiMessenger.toggle()")
        assert panel.is_visible()
        assert page.evaluate("window.ProfiMessenger.isOpen()") is True
        screenshot(page, "widget-open")

        # The visitor writes; Shift+Enter is a newline, Enter sends.
        box = widget(page).locator("textarea.input")
        box.fill("Hello")
        box.press("Shift+Enter")
        box.type("**world**")
        box.press("Enter")
        first = own_messages(page).first
        page.wait_for_function(
            "() => document.querySelector('profi-messenger').shadowRoot.querySelector('.msg.in[data-id]') !== null"
        )
        assert first.locator("strong").inner_text() == "world"
        created = operator.expect("message.created", direction="in")
        conversation_id = created["conversation_id"]
        message_id = created["data"]["message"]["id"]
        assert Message.objects.filter(conversation_id=conversation_id, direction="in").count() == 1

        # One tick on delivery, two when the operator reads.
        operator.command("conversation.open", conversation_id=conversation_id)
        operator.command("message.delivered", conversation_id=conversation_id, up_to_message_id=message_id)
        first.locator(".tick[data-state=delivered]").wait_for()
        assert first.locator(".tick").inner_text() == "✓"
        operator.command("conversation.read", conversation_id=conversation_id, up_to_message_id=message_id)
        first.locator(".tick[data-state=read]").wait_for()
        assert first.locator(".tick").inner_text() == "✓✓"
        info = widget(page).locator(".notice.info")
        assert "Olga opened your conversation" in info.inner_text()

        # Typing both ways.
        operator.send("typing.start", conversation_id=conversation_id)
        widget(page).locator(".typing", has_text="Olga is typing").wait_for()
        box.type("and")
        typing = operator.expect("typing.started", who="contact")
        assert typing["conversation_id"] == conversation_id
        box.fill("")

        # An operator reply appears live, with formatting, and is read once visible.
        operator.command(
            "message.send", conversation_id=conversation_id, client_id=uuid.uuid4().hex, body="We **can** help _you_"
        )
        reply = widget(page).locator(".msg.out").last
        reply.locator("strong", has_text="can").wait_for()
        assert reply.locator("em").inner_text() == "you"
        assert widget(page).locator(".typing").inner_text() == ""
        operator.expect("conversation.read", reader="contact")
        assert Message.objects.get(conversation_id=conversation_id, direction="out").read_at is not None

        # An image pasted from the clipboard.
        paste_png(page)
        widget(page).locator(".chip[data-ready='1'] img").wait_for()
        box.press("Enter")
        image = own_messages(page).nth(1).locator(".files img")
        image.wait_for()
        page.wait_for_function(
            "() => document.querySelector('profi-messenger').shadowRoot.querySelector('.files img').naturalWidth === 2"
        )
        page.wait_for_function(
            "() => document.querySelector('profi-messenger').shadowRoot.querySelectorAll('.msg.in[data-id]').length === 2"
        )
        attachment = Attachment.objects.get(conversation_id=conversation_id)
        assert attachment.message_id is not None and (attachment.width, attachment.height) == (2, 2)
        assert attachment.content_type == "image/png"
        screenshot(page, "widget-conversation")
        assert page.evaluate("window.__events").count("message") >= 3
        # "ready" may fire before this listener exists; late subscribers are covered by on("ready").
        assert {"open", "close"} <= set(page.evaluate("window.__events"))

        # A reload keeps the history.
        page.reload()
        wait_ready(page)
        page.evaluate("ProfiMessenger.open()")
        assert own_messages(page).count() == 2
        assert widget(page).locator(".msg.out strong").inner_text() == "can"
        assert own_messages(page).first.locator(".tick").get_attribute("data-state") == "read"

        # Resolve: rating (stars), then a fresh conversation.
        operator.command("conversation.status", conversation_id=conversation_id, status="resolved")
        rating = widget(page).locator("form.rating")
        rating.wait_for()
        rating.locator("button[data-score='4']").click()
        rating.locator("textarea").fill("Quick answer")
        screenshot(page, "widget-rating")
        rating.locator("button[type=submit]").click()
        widget(page).locator(".thanks").wait_for()
        conversation = Conversation.objects.get(pk=conversation_id)
        assert (conversation.rating_score, conversation.rating_comment) == (4, "Quick answer")
        widget(page).locator("button.newconv").click()
        send_text(page, "A new question")
        page.wait_for_function(
            "() => [...document.querySelector('profi-messenger').shadowRoot.querySelectorAll('.msg.in')].pop().dataset.id"
        )
        newest = Conversation.objects.filter(contact_inbox=conversation.contact_inbox).order_by("-id").first()
        assert newest.pk != conversation_id
        assert newest.messages.get().body == "A new question"
        assert own_messages(page).count() == 3  # the earlier conversation stays visible
    finally:
        operator.close()
        page.context.close()


def test_loader_is_lazy_forbidden_origin_and_offline_banner(chromium, server):  # noqa: ANN001
    branch = make_branch()
    inbox = make_inbox(branch)
    requested: list[str] = []

    # Lazy: nothing but the loader until the first interaction.
    page = demo_page(chromium, server, inbox.widget_token, "&loader=1")
    page.on("request", lambda request: requested.append(request.url))
    try:
        page.evaluate("ProfiMessenger.on('ready', () => { window.__ready = true; })")
        page.wait_for_timeout(300)
        assert not any(WIDGET_SCRIPT.search(url) for url in requested)
        assert page.evaluate("ProfiMessenger._stub") == 1
        page.locator("#title").click()
        page.wait_for_function("() => window.__ready === true")
        assert any(WIDGET_SCRIPT.search(url) for url in requested)
    finally:
        page.context.close()

    # After N seconds.
    page = demo_page(chromium, server, inbox.widget_token, "&loader=1&load_after=0.3")
    try:
        wait_ready(page)
    finally:
        page.context.close()

    # A page whose origin is not in the allowlist gets no widget and leaves an audit row.
    forbidden = make_inbox(branch, allowed=["shop.example.com"])
    page = demo_page(chromium, server, forbidden.widget_token)
    statuses: list[int] = []
    page.on("response", lambda response: statuses.append(response.status) if "bootstrap" in response.url else None)
    try:
        page.reload()
        # The loader's stub first, then the widget itself, which asks for bootstrap.
        page.wait_for_function("() => window.ProfiMessenger && !window.ProfiMessenger._stub")
        page.wait_for_timeout(300)
        assert 403 in statuses
        assert widget(page).count() == 0
        assert ActivityEvent.objects.filter(verb="widget.origin_denied", target_id=str(forbidden.pk)).exists()
    finally:
        page.context.close()

    # Outside working hours (no open day): the banner with the inbox's offline text and contact fields.
    closed = make_inbox(
        branch,
        settings={
            "working_hours": {"enabled": True, "timezone": "UTC", "days": {}},
            "offline": {"enabled": True, "message": "Back on Monday at 9."},
        },
    )
    page = demo_page(chromium, server, closed.widget_token)
    try:
        wait_ready(page)
        page.evaluate("ProfiMessenger.open()")
        banner = widget(page).locator(".notice.offline")
        assert banner.inner_text() == "Back on Monday at 9."
        contact = widget(page).locator("form.contact")
        contact.locator("input[name=email]").fill("not-an-email")
        contact.locator("button[type=submit]").click()
        assert "not a valid e-mail" in contact.locator(".err").inner_text()
        contact.locator("input[name=email]").fill("anna@example.com")
        contact.locator("button[type=submit]").click()
        widget(page).locator(".notice", has_text="we will get back").wait_for()
        send_text(page, "Please call me")
        page.wait_for_function(
            "() => document.querySelector('profi-messenger').shadowRoot.querySelector('.msg.in[data-id]') !== null"
        )
        message = Message.objects.get(conversation__inbox=closed, direction="in", body="Please call me")
        assert message.conversation.contact.email == "anna@example.com"
        screenshot(page, "widget-offline")
    finally:
        page.context.close()


def test_server_restart_delivers_every_message_once(chromium, server):  # noqa: ANN001
    inbox = make_inbox(make_branch())
    page = demo_page(chromium, server, inbox.widget_token)
    try:
        wait_ready(page)
        page.evaluate("ProfiMessenger.open()")
        send_text(page, "before")
        page.wait_for_function(
            "() => document.querySelector('profi-messenger').shadowRoot.querySelector('.msg.in[data-id]') !== null"
        )
        server.stop(kill=True)
        widget(page).locator(".root[data-conn=reconnecting]").wait_for(state="attached")
        for text in ("during 1", "during 2", "during 3"):
            send_text(page, text)
        assert own_messages(page).locator(".tick[data-state=pending]").count() == 3
        screenshot(page, "widget-reconnecting")
        server.start()
        wait_ready(page)
        page.wait_for_function(
            "() => document.querySelector('profi-messenger').shadowRoot.querySelectorAll('.msg.in[data-id]').length === 4",
            timeout=20_000,
        )
        # Another crash while nothing is pending: nothing is sent twice.
        server.restart()
        wait_ready(page)
        page.wait_for_timeout(300)
        bodies = list(Message.objects.filter(conversation__inbox=inbox).order_by("id").values_list("body", flat=True))
        assert bodies == ["before", "during 1", "during 2", "during 3"]
        assert [el.strip() for el in own_messages(page).locator(".text").all_inner_texts()] == bodies
        page.reload()
        wait_ready(page)
        assert own_messages(page).count() == 4
    finally:
        page.context.close()


def test_pre_chat_form_typing_preview_queue_and_mobile_layout(chromium, server):  # noqa: ANN001
    inbox = make_inbox(
        make_branch(),
        settings={
            "features": {"pre_chat_form": True, "typing_preview": True, "queue_position": True},
            "pre_chat": {
                "fields": [
                    {"name": "name", "type": "text", "label": "Имя", "required": True},
                    {"name": "email", "type": "email", "label": "Почта", "required": True},
                    {"name": "order", "type": "text", "label": "Заказ"},
                ]
            },
            "widget": {"language": "ru"},
            "privacy": {"text": "Мы храним переписку.", "url": "https://example.com/privacy"},
        },
    )
    page = demo_page(chromium, server, inbox.widget_token, viewport={"width": 375, "height": 700})
    try:
        wait_ready(page)
        page.evaluate("ProfiMessenger.open()")
        panel = widget(page).locator("[role=dialog]")
        box = panel.bounding_box()
        assert (box["width"], box["height"]) == (375, 700)  # full screen on a phone
        assert widget(page).locator(".notice.preview").inner_text().startswith("Операторы видят")
        assert widget(page).locator(".privacy a").get_attribute("href") == "https://example.com/privacy"
        form = widget(page).locator("form.prechat")
        assert not widget(page).locator(".composer").is_visible()
        form.locator("input[name=name]").fill("Анна")
        form.locator("button[type=submit]").click()
        assert "Почта: обязательное поле" in form.locator(".err").inner_text()
        form.locator("input[name=email]").fill("anna@example.com")
        form.locator("input[name=order]").fill("A-17")
        form.locator("button[type=submit]").click()
        widget(page).locator(".composer").wait_for()
        contact = ContactInbox.objects.get(inbox=inbox).contact
        assert (contact.name, contact.email, contact.custom_attributes) == (
            "Анна",
            "anna@example.com",
            {"order": "A-17"},
        )
        send_text(page, "Где мой заказ?")
        page.wait_for_function(
            "() => document.querySelector('profi-messenger').shadowRoot.querySelector('.msg.in[data-id]') !== null"
        )
        page.reload()
        wait_ready(page)
        page.evaluate("ProfiMessenger.open()")
        assert widget(page).locator(".notice.queue").inner_text().startswith("Вы №1 в очереди")
        assert widget(page).locator("form.prechat").count() == 0
        screenshot(page, "widget-mobile-ru")
    finally:
        page.context.close()


def test_pre_chat_form_demanded_by_the_server_holds_the_message_until_sent(chromium, server):  # noqa: ANN001
    inbox = make_inbox(
        make_branch(),
        settings={
            "features": {"pre_chat_form": True},
            "pre_chat": {"fields": [{"name": "name", "type": "text", "required": True}]},
        },
    )
    # The browser believes the form done (say, filled before the contact was anonymised): it shows
    # the composer, and only the server knows the contact has no name.
    page = demo_page(
        chromium,
        server,
        inbox.widget_token,
        init_script=f"localStorage.setItem('profimessenger:{inbox.widget_token}:prechatDone', '1')",
    )
    try:
        wait_ready(page)
        page.evaluate("ProfiMessenger.open()")
        assert widget(page).locator("form.prechat").count() == 0
        send_text(page, "Hello?")
        form = widget(page).locator("form.prechat")
        form.wait_for()
        assert not widget(page).locator(".composer").is_visible()
        assert not Message.objects.filter(conversation__inbox=inbox).exists()
        assert not Conversation.objects.filter(inbox=inbox).exists()
        form.locator("input[name=name]").fill("Anna")
        form.locator("button[type=submit]").click()
        page.wait_for_function(
            "() => document.querySelector('profi-messenger').shadowRoot.querySelector('.msg.in[data-id]') !== null"
        )
        assert list(Message.objects.filter(conversation__inbox=inbox).values_list("body", flat=True)) == ["Hello?"]
        assert ContactInbox.objects.get(inbox=inbox).contact.name == "Anna"
        assert widget(page).locator(".composer").is_visible()
    finally:
        page.context.close()


# The frames the widget's socket receives, kept on the page for the test to read.
RECORD_FRAMES = """
const NativeWebSocket = window.WebSocket;
window.receivedFrames = [];
window.WebSocket = class extends NativeWebSocket {
  constructor(...args) {
    super(...args);
    this.addEventListener("message", (event) => window.receivedFrames.push(JSON.parse(event.data)));
  }
};
"""


# A page served over plain HTTP from a public address is not a secure context: no crypto.subtle.
NO_SUBTLE_CRYPTO = "Object.defineProperty(Crypto.prototype, 'subtle', { get: () => undefined, configurable: true });"


@pytest.mark.parametrize("secure_context", [True, False], ids=["crypto.subtle", "plain-http"])
def test_captcha_proof_of_work_is_solved_by_the_widget_after_the_per_ip_threshold(
    chromium, live_server_factory, secure_context
):  # noqa: ANN001
    server = live_server_factory({"DJANGO_ALLOW_ASYNC_UNSAFE": "", "MESSENGER_CAPTCHA_AFTER_CONVERSATIONS_PER_IP": "1"})
    inbox = make_inbox(make_branch())
    first = demo_page(chromium, server, inbox.widget_token)
    second = demo_page(
        chromium, server, inbox.widget_token, init_script=RECORD_FRAMES + ("" if secure_context else NO_SUBTLE_CRYPTO)
    )
    try:
        assert second.evaluate("Boolean(window.crypto.subtle)") is secure_context
        wait_ready(first)
        first.evaluate("ProfiMessenger.open()")
        send_text(first, "first visitor")
        first.wait_for_function(
            "() => document.querySelector('profi-messenger').shadowRoot.querySelector('.msg.in[data-id]') !== null"
        )
        # A second new conversation from the same IP: the server asks for a proof of work, which
        # the widget solves on its own; the server verifies it and stores the message.
        wait_ready(second)
        second.evaluate("ProfiMessenger.open()")
        send_text(second, "second visitor")
        second.wait_for_function(
            "() => document.querySelector('profi-messenger').shadowRoot.querySelector('.msg.in[data-id]') !== null",
            timeout=20_000,
        )
        assert Message.objects.filter(body="second visitor").count() == 1
        assert widget(second).locator(".captcha").count() == 0
        refusals = [f for f in second.evaluate("window.receivedFrames") if f.get("code") == "captcha_required"]
        assert refusals and refusals[0]["challenge"]["provider"] == "altcha"
        assert refusals[0]["reason"] == "missing" and len(refusals) == 1
    finally:
        first.context.close()
        second.context.close()
        server.stop(kill=True)


def test_a_file_that_starts_the_conversation_past_the_threshold_waits_for_the_captcha(chromium, live_server_factory):  # noqa: ANN001
    server = live_server_factory({"DJANGO_ALLOW_ASYNC_UNSAFE": "", "MESSENGER_CAPTCHA_AFTER_CONVERSATIONS_PER_IP": "1"})
    inbox = make_inbox(make_branch())
    first = demo_page(chromium, server, inbox.widget_token)
    second = demo_page(chromium, server, inbox.widget_token)
    try:
        wait_ready(first)
        first.evaluate("ProfiMessenger.open()")
        send_text(first, "first visitor")
        first.wait_for_function(
            "() => document.querySelector('profi-messenger').shadowRoot.querySelector('.msg.in[data-id]') !== null"
        )
        # The second visitor's first act is a file: the upload would start a conversation past the
        # threshold, so the server asks for the proof of work; the widget solves it and uploads again.
        uploads: list[int] = []
        second.on("response", lambda r: uploads.append(r.status) if "/api/widget/attachments/" in r.url else None)
        wait_ready(second)
        second.evaluate("ProfiMessenger.open()")
        paste_png(second)
        widget(second).locator(".chip[data-ready='1'] img").wait_for(timeout=20_000)
        assert widget(second).locator(".captcha").count() == 0
        assert uploads == [403, 201]  # refused for the CAPTCHA, then accepted with its solution
        widget(second).locator("textarea.input").press("Enter")
        second.wait_for_function(
            "() => document.querySelector('profi-messenger').shadowRoot.querySelector('.msg.in[data-id]') !== null"
        )
        attachment = Attachment.objects.select_related("conversation").get(conversation__inbox=inbox)
        assert attachment.message_id is not None
        assert Conversation.objects.filter(inbox=inbox).count() == 2
    finally:
        first.context.close()
        second.context.close()
        server.stop(kill=True)


# The provider's script as the browser gets it, faked at the network layer: a check the visitor
# clicks, which hands the widget a token the loopback siteverify accepts once.
FAKE_TURNSTILE = """
window.turnstile = {
  render(container, options) {
    const button = document.createElement("button");
    button.className = "fake-turnstile";
    button.textContent = "I am human";
    button.onclick = () => options.callback("good-token");
    container.append(button);
  },
};
"""


def test_turnstile_script_loads_only_when_asked_and_its_token_is_verified_by_the_server(chromium, live_server_factory):  # noqa: ANN001
    from tests.test_captcha import SECRET, SITE_KEY, FakeSiteverify

    siteverify = FakeSiteverify()
    threading.Thread(target=siteverify.serve_forever, daemon=True).start()
    server = live_server_factory(
        {
            "DJANGO_ALLOW_ASYNC_UNSAFE": "",
            "MESSENGER_CAPTCHA_AFTER_CONVERSATIONS_PER_IP": "1",
            "MESSENGER_CAPTCHA": "turnstile",
            "MESSENGER_CAPTCHA_SITE_KEY": SITE_KEY,
            "MESSENGER_CAPTCHA_SECRET": SECRET,
            "MESSENGER_CAPTCHA_VERIFY_URL": siteverify.url,
        }
    )
    inbox = make_inbox(make_branch())
    first = demo_page(chromium, server, inbox.widget_token)
    second = demo_page(chromium, server, inbox.widget_token)
    script_requests: list[str] = []

    def provider_script(route: Any) -> None:
        script_requests.append(route.request.url)
        route.fulfill(body=FAKE_TURNSTILE, content_type="text/javascript")

    second.route("https://challenges.cloudflare.com/**", provider_script)
    try:
        wait_ready(first)
        first.evaluate("ProfiMessenger.open()")
        send_text(first, "first visitor")
        first.wait_for_function(
            "() => document.querySelector('profi-messenger').shadowRoot.querySelector('.msg.in[data-id]') !== null"
        )
        assert script_requests == []
        wait_ready(second)
        second.evaluate("ProfiMessenger.open()")
        assert script_requests == []
        send_text(second, "second visitor")
        check = widget(second).locator(".captcha .fake-turnstile")
        check.wait_for()
        assert script_requests == ["https://challenges.cloudflare.com/turnstile/v0/api.js?render=explicit"]
        assert not Message.objects.filter(body="second visitor").exists()
        assert siteverify.requests == []
        check.click()
        second.wait_for_function(
            "() => document.querySelector('profi-messenger').shadowRoot.querySelector('.msg.in[data-id]') !== null"
        )
        assert Message.objects.filter(body="second visitor").count() == 1
        assert [(r["secret"], r["response"]) for r in siteverify.requests] == [(SECRET, "good-token")]
        assert widget(second).locator(".captcha").count() == 0
    finally:
        first.context.close()
        second.context.close()
        server.stop(kill=True)
        siteverify.shutdown()
        siteverify.server_close()
