"""The widget's screens in a real browser as the conversation and the operators' availability
change: who a message is from, the offline state and its contact form, the layout with several
forms, the emoji picker, the "opened" notice, upload progress and the live queue place."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from messenger.actions.base import Actor
from messenger.actions.intake import send_visitor_message
from messenger.actions.messages import send_operator_message
from messenger.models import AgentRole, Conversation
from tests import live
from tests.conftest import bootstrap, new_client_id, visitor_rows
from tests.factories import make_branch, make_inbox, make_user
from tests.live import _orm_beside_playwright, demo_page  # noqa: F401 — the fixture
from tests.test_widget_browser import Operator, send_text, widget

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

STORED = "() => document.querySelector('profi-messenger').shadowRoot.querySelector('.msg.in[data-id]') !== null"


server = live.server  # the fixture


def _open(chromium: Any, server: Any, inbox: Any, **options: Any) -> Any:
    page = demo_page(chromium, server, inbox.widget_token, ready=True, **options)
    page.evaluate("ProfiMessenger.open()")
    return page


def test_an_automatic_reply_is_not_labelled_operator(chromium, server):  # noqa: ANN001
    branch = make_branch()
    inbox = make_inbox(
        branch, settings={"automation": {"auto_reply": {"enabled": True, "message": "Thanks, one moment."}}}
    )
    make_user(branch=branch, first_name="Olga")
    page = _open(chromium, server, inbox)
    try:
        send_text(page, "Hello")
        reply = widget(page).locator(".msg.out", has_text="Thanks, one moment.")
        reply.wait_for()
        assert reply.locator(".who").inner_text() == "Automatic reply"
    finally:
        page.context.close()


def test_offline_state_its_contact_form_and_operators_coming_online(chromium, server):  # noqa: ANN001
    branch = make_branch()
    inbox = make_inbox(branch, settings={"features": {"pre_chat_form": True}})
    page = _open(chromium, server, inbox)
    operator = None
    try:
        banner = widget(page).locator(".notice.offline")
        assert banner.is_visible()
        # Connected, but nobody can answer: the header does not say "Online".
        conn = widget(page).locator(".conn")
        assert conn.inner_text() == "Offline"
        assert page.evaluate("ProfiMessenger.connection") == "online"
        # The pre-chat form takes the name and e-mail: no second form asks for them again.
        prechat = widget(page).locator("form.prechat")
        assert widget(page).locator("form.contact").count() == 0
        prechat.locator("input[name=name]").fill("Anna")
        prechat.locator("input[name=email]").fill("anna@example.com")
        prechat.locator("button[type=submit]").click()
        widget(page).locator(".composer").wait_for()
        page.wait_for_timeout(300)
        assert widget(page).locator("form.contact").count() == 0
    finally:
        page.context.close()

    # A visitor who filled nothing gets the offline contact form; it goes once someone is online.
    page = _open(chromium, server, make_inbox(branch))
    try:
        contact = widget(page).locator("form.contact")
        contact.wait_for()
        operator = Operator(server, make_user(branch=branch, first_name="Olga"))
        widget(page).locator(".notice.offline").wait_for(state="hidden")
        assert widget(page).locator("form.contact").count() == 0
        assert widget(page).locator(".conn").inner_text() == "Online"
    finally:
        page.context.close()
        if operator:
            operator.close()


def test_offline_contact_form_asks_only_for_what_the_pre_chat_form_did_not_take(chromium, server):  # noqa: ANN001
    inbox = make_inbox(
        make_branch(),
        settings={
            "features": {"pre_chat_form": True},
            "pre_chat": {"fields": [{"name": "name", "type": "text", "required": True}]},
        },
    )
    page = _open(chromium, server, inbox)
    try:
        prechat = widget(page).locator("form.prechat")
        prechat.locator("input[name=name]").fill("Anna")
        prechat.locator("button[type=submit]").click()
        contact = widget(page).locator("form.contact")
        contact.wait_for()
        assert contact.locator("input[name=name]").count() == 0
        assert contact.locator("input[name=email]").count() == 1
    finally:
        page.context.close()


def test_the_message_log_keeps_its_room_with_forms_shown_and_the_picker_closes_on_send(chromium, server):  # noqa: ANN001
    branch = make_branch()
    inbox = make_inbox(branch)
    user = make_user(branch=branch, first_name="Olga")
    operator = Operator(server, user)
    page = _open(chromium, server, inbox)
    try:
        widget(page).locator("button.emoji-toggle").click()
        picker = widget(page).locator(".emoji")
        assert picker.is_visible()
        picker.locator("button").first.click()
        widget(page).locator("textarea.input").press("Enter")
        page.wait_for_function(STORED)
        assert not picker.is_visible()
        assert widget(page).locator("button.emoji-toggle").get_attribute("aria-expanded") == "false"

        conversation_id = operator.expect("message.created", direction="in")["conversation_id"]
        operator.command("conversation.open", conversation_id=conversation_id)
        info = widget(page).locator(".notice.info")
        info.wait_for()
        assert "Olga opened your conversation" in info.inner_text()
        operator.command("conversation.status", conversation_id=conversation_id, status="resolved")
        widget(page).locator("form.rating").wait_for()
        # Resolved: the notice that someone opened it is gone.
        assert not info.is_visible()
        widget(page).locator(".resolved button.transcript-btn").click()
        widget(page).locator("form.transcript").wait_for()
        height = widget(page).locator(".log").evaluate("el => el.getBoundingClientRect().height")
        assert height >= 150, height
    finally:
        operator.close()
        page.context.close()


def _paste(page: Any, script: str) -> None:
    """Paste the File that ``script`` (an expression) makes into the composer."""
    page.evaluate(
        f"""() => {{
          const data = new DataTransfer();
          data.items.add({script});
          const box = document.querySelector("profi-messenger").shadowRoot.querySelector("textarea.input");
          box.dispatchEvent(new ClipboardEvent("paste", {{clipboardData: data, bubbles: true, cancelable: true}}));
        }}"""
    )


# Every value a progress bar in the widget takes, kept on the page.
RECORD_PROGRESS = """
window.progressSeen = [];
new MutationObserver(() => {
  const bar = document.querySelector("profi-messenger").shadowRoot.querySelector(".chip progress");
  if (bar) window.progressSeen.push(bar.value);
}).observe(document.querySelector("profi-messenger").shadowRoot, {subtree: true, attributes: true, childList: true});
"""


def test_upload_progress(chromium, server):  # noqa: ANN001
    inbox = make_inbox(make_branch())
    page = _open(chromium, server, inbox)
    held: list[Any] = []
    page.route("**/api/widget/attachments/", lambda route: held.append(route))
    try:
        # While the upload runs, its chip shows a progress bar.
        _paste(page, 'new File(["hello"], "notes.txt", {type: "text/plain"})')
        progress = widget(page).locator(".chip[data-ready='0'] progress")
        progress.wait_for()
        assert progress.get_attribute("max") == "100"
        assert progress.get_attribute("aria-label") == "Uploading notes.txt"
        while not held:
            page.wait_for_timeout(50)
        held[0].continue_()
        page.unroute("**/api/widget/attachments/")
        widget(page).locator(".chip[data-ready='1']").wait_for()
        assert widget(page).locator(".chip progress").count() == 0

        # A larger file: the bar follows the bytes sent, up to 100.
        widget(page).locator(".chip button").click()
        page.evaluate(RECORD_PROGRESS)
        _paste(page, 'new File([new Uint8Array(2 * 1024 * 1024).fill(65)], "big.txt", {type: "text/plain"})')
        widget(page).locator(".chip[data-ready='1']").wait_for(timeout=20_000)
        seen = page.evaluate("window.progressSeen")
        assert max(seen) == 100, seen
    finally:
        page.context.close()


def _waiting(inbox: Any) -> tuple[Conversation, str]:
    boot = bootstrap(inbox)
    contact_inbox = visitor_rows(boot)
    result = send_visitor_message(
        contact_inbox=contact_inbox, client_id=new_client_id(), body="hello", actor=Actor(contact=contact_inbox.contact)
    )
    return result.conversation, boot["pubsub_token"]


def test_queue_place_is_live_with_an_expected_wait(chromium, live_server_factory):  # noqa: ANN001
    server = live_server_factory(
        {"DJANGO_ALLOW_ASYNC_UNSAFE": "", "MESSENGER_EMBEDDED_SCHEDULER": "1", "MESSENGER_TICK_SECONDS": "1"}
    )
    branch = make_branch()
    inbox = make_inbox(branch, settings={"features": {"queue_position": True}})
    # Answered 3 minutes after it started, a moment ago: the branch's recent first-response time.
    offline = make_user(branch=branch, status="offline")
    answered, _ = _waiting(inbox)
    send_operator_message(conversation=answered, user=offline, client_id=new_client_id(), body="Hi")
    Conversation.objects.filter(pk=answered.pk).update(created_at=timezone.now() - timedelta(minutes=3))
    first, _ = _waiting(inbox)
    _, pubsub = _waiting(inbox)
    supervisor = Operator(server, make_user(branch=branch, role=AgentRole.SUPERVISOR))
    page = _open(
        chromium,
        server,
        inbox,
        init_script=f"localStorage.setItem('profimessenger:{inbox.widget_token}:pubsub', '\"{pubsub}\"')",
    )
    try:
        queue = widget(page).locator(".notice.queue")
        assert queue.inner_text() == "You are #2 in the queue, about 6 min"
        # The one ahead leaves the queue: the place moves without a reload.
        supervisor.command("conversation.status", conversation_id=first.pk, status="resolved")
        widget(page).locator(".notice.queue", has_text="#1").wait_for(timeout=8000)
        assert queue.inner_text() == "You are #1 in the queue, about 3 min"
        # A new visitor learns their place as soon as their first message is stored, without a reload.
        newcomer = _open(chromium, server, inbox)
        try:
            send_text(newcomer, "Anyone there?")
            place = widget(newcomer).locator(".notice.queue")
            place.wait_for(timeout=8000)
            assert place.inner_text() == "You are #2 in the queue, about 6 min"
        finally:
            newcomer.context.close()
    finally:
        supervisor.close()
        page.context.close()
        server.stop(kill=True)


def test_a_typing_preview_cut_at_its_limit_never_splits_an_emoji(chromium, server):  # noqa: ANN001
    branch = make_branch()
    inbox = make_inbox(branch, settings={"features": {"typing_preview": True}})
    operator = Operator(server, make_user(branch=branch, first_name="Olga"))
    page = _open(chromium, server, inbox)
    try:
        send_text(page, "Hello")
        conversation_id = operator.expect("message.created", direction="in")["conversation_id"]
        operator.command("conversation.open", conversation_id=conversation_id)
        # 2 000 UTF-16 units: the emoji's second half lies past the limit. Cut in two, the preview
        # would carry a lone surrogate, which the server refuses: the operator would see nothing.
        widget(page).locator("textarea.input").fill("a" * 1999 + "😀")
        typing = operator.expect("typing.started", who="contact")
        assert typing["data"]["preview"] == "a" * 1999
        # Text that already holds a lone surrogate (pasted from a broken source) is not refused either.
        # Typing goes out at most once a second: the page keeps "typing" until one has gone.
        page.evaluate(
            """() => { const box = document.querySelector('profi-messenger').shadowRoot.querySelector('textarea.input');
                       box.value = 'b\\ud83d c';
                       setInterval(() => box.dispatchEvent(new Event('input', {bubbles: true})), 200); }"""
        )
        typing = operator.expect("typing.started", who="contact", timeout=15)
        assert typing["data"]["preview"] == "b\ufffd c"
        assert not any(frame["type"] == "error" for frame in operator.frames)
    finally:
        operator.close()
        page.context.close()


def test_a_rating_given_in_one_tab_leaves_the_other_tab_too(chromium, server):  # noqa: ANN001
    branch = make_branch()
    inbox = make_inbox(branch, settings={"rating": {"enabled": True}})
    operator = Operator(server, make_user(branch=branch, first_name="Olga"))
    first = _open(chromium, server, inbox)
    second = first.context.new_page()  # the same visitor (same storage) in another tab
    second.goto(f"{server.other_origin_url}/demo/?token={inbox.widget_token}")
    live.wait_ready(second)
    second.evaluate("ProfiMessenger.open()")
    try:
        send_text(first, "Hello")
        conversation_id = operator.expect("message.created", direction="in")["conversation_id"]
        operator.command("conversation.status", conversation_id=conversation_id, status="resolved")
        for page in (first, second):
            widget(page).locator("form.rating").wait_for()
        rating = widget(first).locator("form.rating")
        rating.locator("button[data-score='5']").click()
        rating.locator("button[type=submit]").click()
        widget(first).locator(".thanks").wait_for()
        # The other tab no longer asks for a rating the visitor gave.
        widget(second).locator(".thanks").wait_for()
        assert widget(second).locator("form.rating").count() == 0
        # A new conversation started in the first tab: the other one's thanks belongs to the old one.
        widget(first).locator(".newconv").click()
        widget(first).locator(".divider").wait_for()
        send_text(first, "Another question")
        widget(second).locator(".msg.in", has_text="Another question").wait_for()
        # Under the old conversation's messages, as in the first tab: a divider, then the new one.
        for page in (first, second):
            log = widget(page).locator(".log > .msg, .log > .divider")
            assert [line.split("\n")[0] for line in log.all_inner_texts()][-2:] == [
                "— Start a new conversation —",
                "Another question",
            ]
        widget(second).locator(".thanks").wait_for(state="detached")
        assert widget(second).locator("form.rating, .resolved").count() == 0
    finally:
        operator.close()
        first.context.close()


def test_a_long_operator_name_stays_inside_a_phone_screen(chromium, server):  # noqa: ANN001
    branch = make_branch()
    inbox = make_inbox(branch, settings={"features": {"queue_position": True}})
    name = "Maximiliana" + "X" * 60  # no space to break at
    operator = Operator(server, make_user(branch=branch, first_name=name))
    page = _open(chromium, server, inbox, viewport={"width": 375, "height": 700})
    try:
        send_text(page, "Hi")
        conversation_id = operator.expect("message.created", direction="in")["conversation_id"]
        operator.command("conversation.open", conversation_id=conversation_id)
        operator.command("message.send", conversation_id=conversation_id, client_id=new_client_id(), body="Hello")
        operator.send("typing.start", conversation_id=conversation_id)
        root = widget(page)
        for selector in (".msg.out .who", ".notice.info", ".typing"):
            line = root.locator(selector, has_text=name)
            line.wait_for()
            # The name wraps inside its line instead of running off the screen.
            assert line.evaluate("(node) => node.scrollWidth <= node.clientWidth"), selector
            box = line.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= 375, (selector, box)
    finally:
        operator.close()
        page.context.close()


def test_a_file_the_server_refuses_by_its_content_is_explained_in_the_widgets_language(chromium, server):  # noqa: ANN001
    inbox = make_inbox(make_branch(), settings={"widget": {"language": "ru"}})
    page = _open(chromium, server, inbox)
    try:
        # Named and typed as a picture, an HTML page inside: the browser lets it through, the
        # server (which reads the content) refuses it with the code file_type_not_allowed.
        _paste(page, 'new File(["<html><body>hi</body></html>"], "photo.png", {type: "image/png"})')
        error = widget(page).locator(".err[role=alert]", has_text="photo.png")
        error.wait_for()
        assert error.inner_text() == "photo.png: такой тип файла не разрешён"
        assert widget(page).locator(".chip").count() == 0
    finally:
        page.context.close()


def test_a_request_refused_as_too_frequent_is_explained_in_the_widgets_language(chromium, server):  # noqa: ANN001
    inbox = make_inbox(make_branch(), settings={"widget": {"language": "ru"}})
    page = _open(chromium, server, inbox)
    try:
        send_text(page, "Здравствуйте")
        page.wait_for_function(STORED)
        # Three transcripts an hour; the fourth request is refused with rate_limited.
        for attempt in range(4):
            widget(page).locator("button.menub").click()
            widget(page).locator("button.transcript-item").click()
            form = widget(page).locator("form.transcript")
            form.locator("input[name=email]").fill("anna@example.com")
            form.locator("button[type=submit]").click()
            if attempt < 3:
                widget(page).locator(".transcript-sent").nth(attempt).wait_for()
        error = form.locator(".err")
        error.get_by_text("Слишком много запросов. Попробуйте позже.").wait_for()
    finally:
        page.context.close()
