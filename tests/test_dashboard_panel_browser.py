"""The dashboard shows what is stored and stays usable down to a 768 px tablet: Chromium against
a live server, the visitor on the real widget socket. Screenshots at 1 440 px and 768 px go to
``artifacts/dashboard/`` (not committed)."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
from django.utils import timezone

from messenger.models import AgentRole, AgentStatus, Conversation
from tests import live
from tests.factories import make_branch, make_inbox, make_user
from tests.live import TIMEOUT, _orm_beside_playwright  # noqa: F401 — the fixture
from tests.test_dashboard_browser import Visitor, row

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = live.ROOT / "artifacts" / "dashboard"


log_in = partial(live.log_in, width=1440)


def shoot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def lines_of(locator: Any) -> int:
    """How many lines the element's text takes: its text boxes grouped by vertical overlap."""
    return locator.evaluate(
        """(node) => {
            const range = document.createRange();
            range.selectNodeContents(node);
            const rects = [...range.getClientRects()].filter((r) => r.width > 0).sort((a, b) => a.top - b.top);
            let lines = 0, bottom = -Infinity;
            for (const rect of rects) {
                if (rect.top >= bottom - 1) { lines += 1; bottom = rect.bottom; } else bottom = Math.max(bottom, rect.bottom);
            }
            return lines;
        }"""
    )


def wait_until(check: Any, what: str, timeout: float = TIMEOUT / 1000) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def typing(visitor: Visitor, kind: str) -> None:
    visitor.socket.send(json.dumps({"type": f"typing.{kind}", "conversation_id": visitor.conversation_id}))


def until_received(visitor: Visitor, body: str) -> None:
    """The visitor's socket got a message with ``body`` (its command() may have read it already)."""
    while not any((f.get("data") or {}).get("message", {}).get("body") == body for f in visitor.frames):
        assert visitor.receive(8) is not None, f"never received {body!r}"


def north(live_server_factory: Any, **inbox_settings: Any) -> tuple[Any, Any]:
    """North with Olga online (every new chat is hers); the server; the inbox."""
    branch = make_branch("North")
    inbox = make_inbox(branch, settings=inbox_settings)
    make_user("olga", branch=branch)
    return live_server_factory({"DJANGO_ALLOW_ASYNC_UNSAFE": ""}), inbox


def finish(visitor: Visitor, *pages: Any) -> None:
    visitor.close()
    for page in pages:
        assert page.errors == [], page.errors
        page.context.close()


def test_the_list_preview_keeps_the_visitors_question_under_the_auto_reply(chromium, live_server_factory):  # noqa: ANN001
    server, inbox = north(
        live_server_factory, automation={"auto_reply": {"enabled": True, "message": "Thanks! One minute."}}
    )
    olga = log_in(chromium, server, "olga")
    visitor = Visitor(server, inbox)
    visitor.say("Where is my order?")
    until_received(visitor, "Thanks! One minute.")
    reply = next(
        f["data"]["message"]
        for f in visitor.frames
        if (f.get("data") or {}).get("message", {}).get("body") == "Thanks! One minute."
    )
    item = row(olga, visitor.conversation_id)
    # The auto-reply's frame has been applied: the row's time is the reply's.
    olga.wait_for_function(
        """([id, at]) => {
            const when = document.querySelector(`#conversations li[data-id="${id}"] .when`);
            return when !== null && Date.parse(when.title) >= Date.parse(at);
        }""",
        arg=[visitor.conversation_id, reply["created_at"]],
    )
    assert item.locator(".row-preview").inner_text() == "Where is my order?"
    # And so says the server. The reload closes Olga's socket and opens another: her conversation,
    # unopened, stays hers (or goes back to her), however the server interleaves the two.
    olga.reload()
    assert row(olga, visitor.conversation_id).locator(".row-preview").inner_text() == "Where is my order?"
    finish(visitor, olga)


def test_the_tab_counters_stay_on_one_line(chromium, live_server_factory):  # noqa: ANN001
    server, inbox = north(live_server_factory)
    olga = log_in(chromium, server, "olga")
    visitor = Visitor(server, inbox)
    visitor.say("Hello")
    mine = olga.locator("#tabs [data-tab=mine]")
    mine.locator(".counter.has-unread", has_text="1 · 1").wait_for()
    for width in (1440, 1100, 768):
        olga.set_viewport_size({"width": width, "height": 900})
        assert lines_of(mine) == 1, width
        for tab in olga.locator("#tabs [data-tab]").all():  # nothing spills into the next tab
            assert tab.evaluate("(node) => node.scrollWidth <= node.clientWidth"), (width, tab.inner_text())
    finish(visitor, olga)


def test_typing_names_the_visitor_as_the_form_did_and_changes_only_that_row(chromium, live_server_factory):  # noqa: ANN001
    server, inbox = north(live_server_factory)
    olga = log_in(chromium, server, "olga")
    visitor = Visitor(server, inbox)
    visitor.say("First question")
    other = Visitor(server, inbox)
    other.command("contact.update", name="Anna Petrova", email="anna@example.com")
    other.say("Second question")
    row(olga, visitor.conversation_id).wait_for()
    row(olga, other.conversation_id).click()
    olga.locator("#messages .message", has_text="Second question").wait_for()
    olga.wait_for_timeout(300)
    nodes = [row(olga, c).element_handle() for c in (visitor.conversation_id, other.conversation_id)]
    typing(other, "start")
    olga.locator("#typing", has_text="Anna Petrova").wait_for()
    row(olga, other.conversation_id).locator(".row-preview", has_text="✎").wait_for()
    assert [node.evaluate("(node) => node.isConnected") for node in nodes] == [True, True]
    typing(other, "stop")
    row(olga, other.conversation_id).locator(".row-preview", has_text="Second question").wait_for()
    assert [node.evaluate("(node) => node.isConnected") for node in nodes] == [True, True]
    assert olga.inner_text("#typing") == ""
    other.close()
    finish(visitor, olga)


def test_the_contact_panel_shows_the_pre_chat_fields(chromium, live_server_factory):  # noqa: ANN001
    # Under the inbox form's labels; "city" is not (or no longer) in the form: its name.
    server, inbox = north(
        live_server_factory, pre_chat={"fields": [{"name": "order_number", "label": "Order no.", "type": "text"}]}
    )
    olga = log_in(chromium, server, "olga")
    visitor = Visitor(server, inbox)
    visitor.command(
        "contact.update", name="Anna Petrova", email="anna@example.com", custom={"order_number": "A-42", "city": "Riga"}
    )
    visitor.say("Where is my order?")
    row(olga, visitor.conversation_id).click()
    field = olga.locator('#contact-custom dd[data-field="order_number"]')
    field.wait_for()
    assert field.inner_text() == "A-42"
    assert olga.locator('#contact-custom dd[data-field="city"]').inner_text() == "Riga"
    assert olga.locator("#contact-custom dt").all_inner_texts() == ["Order no.", "city"]
    card = olga.locator("#contact-card")
    assert "Anna Petrova" in card.inner_text() and "anna@example.com" in card.inner_text()
    assert card.locator(".avatar").inner_text() == "AP"
    finish(visitor, olga)


def test_delivered_shows_one_tick_and_read_two(chromium, live_server_factory):  # noqa: ANN001
    server, inbox = north(live_server_factory)
    olga = log_in(chromium, server, "olga")
    visitor = Visitor(server, inbox)
    visitor.say("Hi")
    row(olga, visitor.conversation_id).click()
    olga.fill("#body", "Let me check")
    olga.press("#body", "Control+Enter")
    reply = visitor.expect("message.created", direction="out", body="Let me check")["data"]["message"]
    message = f'#messages .message[data-id="{reply["id"]}"]'
    olga.locator(f"{message} .ticks[data-ticks=sent]").wait_for()
    visitor.command("message.delivered", conversation_id=visitor.conversation_id, up_to_message_id=reply["id"])
    olga.locator(f"{message} .ticks[data-ticks=delivered]").wait_for()
    assert olga.inner_text(f"{message} .ticks") == "✓"
    visitor.command("conversation.read", conversation_id=visitor.conversation_id, up_to_message_id=reply["id"])
    olga.locator(f"{message} .ticks[data-ticks=read]").wait_for()
    assert olga.inner_text(f"{message} .ticks") == "✓✓"
    finish(visitor, olga)


def test_the_assign_picker_shows_current_loads_and_waits_for_the_button(chromium, live_server_factory):  # noqa: ANN001
    server, inbox = north(live_server_factory)
    petr = make_user("petr", branch=inbox.branch, status=AgentStatus.AWAY)
    olga = log_in(chromium, server, "olga")
    petr_page = log_in(chromium, server, "petr")
    first, second = Visitor(server, inbox), Visitor(server, inbox)
    first.say("One")
    second.say("Two")
    row(olga, first.conversation_id).click()
    petr_option = olga.locator(f'#assign-to option[value="{petr.pk}"]')
    wait_until(lambda: "away · 0 open" in petr_option.inner_text(), f"Petr at 0: {petr_option.inner_text()}")

    # Choosing does nothing by itself.
    olga.select_option("#assign-to", value=str(petr.pk))
    olga.wait_for_timeout(600)
    assert Conversation.objects.get(pk=first.conversation_id).assignee.username == "olga"
    olga.click("#assign-go")
    wait_until(lambda: Conversation.objects.get(pk=first.conversation_id).assignee_id == petr.pk, "assigned")
    wait_until(lambda: "away · 1 open" in petr_option.inner_text(), f"Petr at 1: {petr_option.inner_text()}")

    # A change made elsewhere (Petr takes the second chat) shows in Olga's picker too.
    row(petr_page, first.conversation_id).wait_for()
    petr_page.click("#tabs [data-tab=branch]")
    row(petr_page, second.conversation_id).click()
    petr_page.locator("#assign-me:not([disabled])").click()
    wait_until(lambda: Conversation.objects.get(pk=second.conversation_id).assignee_id == petr.pk, "taken")
    wait_until(lambda: "away · 2 open" in petr_option.inner_text(), f"Petr at 2: {petr_option.inner_text()}")
    second.close()
    finish(first, olga, petr_page)


def test_the_routing_log_reads_in_words(chromium, live_server_factory):  # noqa: ANN001
    server, inbox = north(live_server_factory)
    jonas = make_user("jonas", branch=inbox.branch, status=AgentStatus.AWAY)
    olga = log_in(chromium, server, "olga")
    visitor = Visitor(server, inbox)
    visitor.say("Hi")
    row(olga, visitor.conversation_id).click()
    olga.locator("#routing-log li[data-step=assigned]").wait_for()
    olga.select_option("#transfer-operator", value=str(jonas.pk))
    olga.click("#transfer-operator-go")
    transferred = olga.locator("#routing-log li[data-step=transferred] .routing-head")
    transferred.wait_for()
    assert transferred.inner_text() == "Transferred → Jonas · North"
    assert (
        olga.locator("#routing-log li[data-step=route] .routing-head").inner_text() == "Routed (inbox's branch) → North"
    )
    assert olga.locator("#routing-log li[data-step=assigned] .routing-head").inner_text() == "Assigned → Olga"
    finish(visitor, olga)


@pytest.mark.parametrize(
    ("scale", "score", "shown"), [("stars", 4, "★ 4/5"), ("nps", 9, "NPS 9/10")], ids=["stars", "nps"]
)
def test_the_rating_and_its_comment_show_in_the_conversation_and_the_list(
    chromium, live_server_factory, scale, score, shown
):  # noqa: ANN001
    server, inbox = north(live_server_factory, rating={"enabled": True, "scale": scale})
    olga = log_in(chromium, server, "olga")
    visitor = Visitor(server, inbox)
    visitor.command("contact.update", name="Anna Petrova")
    visitor.say("Where is my order?")
    row(olga, visitor.conversation_id).click()
    olga.locator("#messages .message", has_text="Where is my order?").wait_for()
    olga.select_option("#filter-status", "any")
    olga.click("#resolve")
    visitor.expect("rating.requested")
    visitor.command("conversation.rate", conversation_id=visitor.conversation_id, score=score, comment="Quick and kind")
    rating = olga.locator("#conversation-rating")
    rating.locator(".rating-text", has_text="Quick and kind").wait_for()
    assert rating.locator(".rating-score").inner_text() == f"Rating: {shown}"
    badge = row(olga, visitor.conversation_id).locator(".rating-badge")
    badge.wait_for()
    assert badge.inner_text() == f"{shown} “Quick and kind”"
    shoot(olga, f"dashboard-1440-rated-{scale}")
    olga.reload()  # from the list and detail endpoints too
    olga.wait_for_selector("#connection[data-state=online]")
    olga.select_option("#filter-status", "any")
    badge = row(olga, visitor.conversation_id).locator(".rating-badge", has_text="Quick and kind")
    badge.wait_for()
    assert badge.inner_text() == f"{shown} “Quick and kind”"
    row(olga, visitor.conversation_id).click()
    olga.locator("#conversation-rating .rating-score", has_text=shown).wait_for()
    finish(visitor, olga)


def test_side_panel_is_a_drawer_on_a_tablet(chromium, live_server_factory):  # noqa: ANN001
    north, south = make_branch("North"), make_branch("South")
    inbox = make_inbox(north)
    make_user("olga", branch=north)
    make_user("ivan", branch=south, status=AgentStatus.AWAY)
    server = live_server_factory({"DJANGO_ALLOW_ASYNC_UNSAFE": ""})
    visitor = Visitor(server, inbox)
    visitor.say("Hello from a tablet")
    conversation_id = visitor.conversation_id

    # 1 440 px: three columns, the panel open beside the conversation; it can be folded away.
    wide = log_in(chromium, server, "olga", width=1440)
    row(wide, conversation_id).click()
    wide.locator("#transfer-branch option", has_text="South").wait_for(state="attached")
    assert wide.locator("#transfer-branch").is_visible()
    shoot(wide, "dashboard-1440")
    wide.click("#toggle-side")
    assert not wide.locator("#side").is_visible()
    assert wide.get_attribute("#toggle-side", "aria-expanded") == "false"
    wide.click("#toggle-side")
    assert wide.locator("#transfer-branch").is_visible()
    assert wide.errors == [], wide.errors
    wide.context.close()

    # 1 280 px: every filter and every control of the panel is whole inside its column (a grid
    # column sized by its content used to push them past its edge).
    laptop = log_in(chromium, server, "olga", width=1280, height=800)
    row(laptop, conversation_id).click()
    laptop.locator("#transfer-branch option", has_text="South").wait_for(state="attached")
    for column, controls in (
        (".filters", ("#search", "#filter-status", "#filter-priority", "#filter-inbox")),
        ("#side", ("#assign-me", "#assign-to", "#transfer-branch", "#transfer-operator", "#set-priority")),
    ):
        edge = laptop.locator(column).bounding_box()
        for control in controls:
            if not laptop.locator(control).count():
                continue
            laptop.locator(control).scroll_into_view_if_needed()
            box = laptop.locator(control).bounding_box()
            # Inside the column and clear of its right edge (the side column has a 1 rem padding).
            assert box["x"] >= edge["x"] and box["x"] + box["width"] <= edge["x"] + edge["width"] - 4, (
                control,
                box,
                edge,
            )
    shoot(laptop, "dashboard-1280")
    laptop.context.close()

    # 768 px: list and conversation; the panel is one click away and fully inside the screen.
    tablet = log_in(chromium, server, "olga", width=768, height=1024)
    row(tablet, conversation_id).click()
    tablet.locator("#messages .message", has_text="Hello from a tablet").wait_for()
    assert tablet.locator("#body").is_visible() and tablet.locator("#conversations").is_visible()
    assert not tablet.locator("#transfer-branch").is_visible()
    shoot(tablet, "dashboard-768")
    tablet.click("#toggle-side")
    for control in (
        "#assign-me",
        "#assign-to",
        "#transfer-branch",
        "#transfer-operator",
        "#set-status",
        "#set-priority",
    ):
        tablet.locator(control).scroll_into_view_if_needed()
        assert tablet.locator(control).is_visible(), control
        box = tablet.locator(control).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 768, (control, box)
    tablet.locator("#contact-card", has_text="Visitor").wait_for()
    shoot(tablet, "dashboard-768-details")

    # Everything in it works from there: a transfer, confirmed.
    tablet.select_option("#transfer-branch", label="South")
    tablet.click("#transfer-branch-go")
    wait_until(lambda: Conversation.objects.get(pk=conversation_id).branch.name == "South", "transferred to South")
    tablet.wait_for_selector("#conversation[data-state=empty]")
    tablet.keyboard.press("Escape")
    assert not tablet.locator("#side").is_visible()
    assert tablet.errors == [], tablet.errors
    visitor.close()
    tablet.context.close()


def test_supervisor_alert_is_shown(chromium, live_server_factory):  # noqa: ANN001
    north = make_branch("North")
    inbox = make_inbox(north)
    make_user("olga", branch=north)
    make_user("sonia", role=AgentRole.SUPERVISOR)
    server = live_server_factory({"DJANGO_ALLOW_ASYNC_UNSAFE": "", "MESSENGER_EMBEDDED_SCHEDULER": "1"})
    olga = log_in(chromium, server, "olga")
    sonia = log_in(chromium, server, "sonia")
    visitor = Visitor(server, inbox)
    visitor.say("Is anyone there?")
    conversation_id = visitor.conversation_id
    row(olga, conversation_id).wait_for()

    # Olga never opens it and nobody else in North can take it: the chain runs out at once.
    Conversation.objects.filter(pk=conversation_id).update(escalation_deadline=timezone.now() - timedelta(seconds=1))
    alert = sonia.locator(f'#alerts .alert[data-conversation-id="{conversation_id}"]')
    alert.wait_for(timeout=20_000)
    assert "no eligible operator" in alert.inner_text()
    shoot(sonia, "dashboard-1440-supervisor-alert")
    alert.locator(".alert-open").click()
    sonia.wait_for_selector("#watch-banner:not([hidden])")
    sonia.locator("#messages .message", has_text="Is anyone there?").wait_for()
    assert sonia.locator("#alerts .alert").count() == 0
    visitor.close()
    for page in (olga, sonia):
        assert page.errors == [], page.errors
        page.context.close()


# Every box inside ``selector`` that reaches past its right edge (more than a pixel), by id or class.
SPILLS = """(selector) => {
    const outer = document.querySelector(selector).getBoundingClientRect();
    return [...document.querySelectorAll(`${selector} *`)]
        .filter((node) => { const box = node.getBoundingClientRect(); return box.width > 0 && box.right > outer.right + 1; })
        .map((node) => node.id || node.className || node.tagName);
}"""


def test_long_names_and_words_without_spaces_stay_in_their_columns(chromium, live_server_factory):  # noqa: ANN001
    server, inbox = north(live_server_factory, features={"typing_preview": True})
    visitor = Visitor(server, inbox)
    visitor.command("contact.update", name="N" * 120, email="e" * 80 + "@example.com")
    visitor.say("x" * 300)
    for width in (1440, 768):
        olga = log_in(chromium, server, "olga", width=width, height=900)
        row(olga, visitor.conversation_id).click()
        olga.locator("#messages .message").wait_for()
        typing(visitor, "start")  # without a preview: the name alone
        visitor.socket.send(
            json.dumps({"type": "typing.start", "conversation_id": visitor.conversation_id, "preview": "y" * 300})
        )
        olga.locator("#typing", has_text="yyyy").wait_for()
        olga.locator("#contact-card strong").wait_for(state="attached")
        # The title is cut short (the whole name is its tooltip), not painted over the header's buttons.
        title = olga.locator("#conversation-title")
        assert title.evaluate(
            "(node) => node.scrollWidth <= node.clientWidth || getComputedStyle(node).overflowX !== 'visible'"
        )
        assert title.get_attribute("title") == "N" * 120
        assert olga.evaluate(SPILLS, "#conversation") == []
        # The message's time stays on one line beside the sender's name.
        assert lines_of(olga.locator("#messages .message .meta time").first) == 1
        if width == 768:
            olga.locator("#toggle-side").click()
            olga.locator("#close-side").wait_for()
        assert olga.evaluate(SPILLS, "#side") == []
        assert olga.evaluate("document.documentElement.scrollWidth") <= width
        shoot(olga, f"dashboard-long-{width}")
        olga.context.close()
    finish(visitor)


def test_a_conversation_transferred_away_by_someone_else_leaves_the_old_branchs_screens(chromium, live_server_factory):  # noqa: ANN001
    from tests.test_widget_browser import Operator

    server, inbox = north(live_server_factory)
    south = make_branch("South")
    olga = log_in(chromium, server, "olga")
    visitor = Visitor(server, inbox)
    visitor.say("Hello")
    row(olga, visitor.conversation_id).click()
    olga.locator("#messages .message").wait_for()
    # Her colleague moves it to South's queue: its assignment frame goes to South only, so Olga's
    # page sees the next event (the branch change) after a gap, and her replay is refused.
    petr = Operator(server, make_user("petr", branch=Conversation.objects.get().branch))
    petr.command("conversation.transfer", conversation_id=visitor.conversation_id, branch_id=south.pk)
    olga.locator("#empty-state", has_text="moved out of your view").wait_for()
    assert olga.locator("#conversation").get_attribute("data-state") == "empty"
    row(olga, visitor.conversation_id).wait_for(state="detached")
    petr.close()
    finish(visitor, olga)


def test_the_routing_log_speaks_russian_on_a_russian_page(chromium, live_server_factory):  # noqa: ANN001
    server, inbox = north(live_server_factory)
    jonas = make_user("jonas", branch=inbox.branch, status=AgentStatus.AWAY)
    visitor = Visitor(server, inbox)
    visitor.say("Здравствуйте")
    context = chromium.new_context(viewport={"width": 1440, "height": 900})
    context.add_cookies([{"name": "django_language", "value": "ru", "url": server.url}])
    olga = context.new_page()
    olga.set_default_timeout(TIMEOUT)
    olga.errors = []
    olga.on("pageerror", lambda error: olga.errors.append(str(error)))
    olga.goto(server.url + "/accounts/login/?next=/dashboard/")
    olga.fill("#id_username", "olga")
    olga.fill("#id_password", "pw-olga")
    olga.click("button[type=submit]")
    olga.wait_for_selector("#connection[data-state=online]")
    row(olga, visitor.conversation_id).click()
    assigned = olga.locator("#routing-log li[data-step=assigned]")
    assigned.wait_for()
    assert assigned.locator(".routing-head").inner_text() == "Назначен → Olga"
    # The server stores the policy in English; the page shows it in its own language.
    assert "меньше всего открытых диалогов, затем дольше всех без назначения" in assigned.inner_text()
    assert "fewest" not in olga.locator("#routing-log").inner_text()
    # The transfer's note in the history is stored in English, with its words as data: shown in Russian.
    olga.select_option("#transfer-operator", value=str(jonas.pk))
    olga.click("#transfer-operator-go")
    note = olga.locator("#messages .message.m-system .content")
    note.wait_for()
    assert note.inner_text() == "Передан: Jonas"
    finish(visitor, olga)


def test_right_to_left_text_reads_right_to_left_on_both_sides(chromium, live_server_factory):  # noqa: ANN001
    from tests.test_widget_browser import send_text, widget

    server, inbox = north(live_server_factory)
    olga = log_in(chromium, server, "olga")
    visitor = live.demo_page(chromium, server, inbox.widget_token, ready=True)
    visitor.evaluate("ProfiMessenger.open()")
    question = "مرحبا، أين طلبي؟"
    send_text(visitor, question)
    # Each message block takes its direction from its own text (dir="auto"): the Arabic question
    # mark ends the line on the left, not after it on the right.
    bubble = widget(visitor).locator(".msg.in .text", has_text=question)
    bubble.wait_for()
    assert bubble.evaluate("(node) => getComputedStyle(node).direction") == "rtl"
    assert widget(visitor).locator("textarea.input").get_attribute("dir") == "auto"
    item = olga.locator("#conversations li.conversation", has_text=question)
    item.wait_for()
    assert item.locator(".row-preview").evaluate("(node) => getComputedStyle(node).direction") == "rtl"
    item.click()
    content = olga.locator("#messages .message .content", has_text=question)
    content.wait_for()
    assert content.evaluate("(node) => getComputedStyle(node).direction") == "rtl"
    assert olga.locator("#body").get_attribute("dir") == "auto"
    # Latin text stays left to right.
    assert olga.locator("#contact-card").evaluate("(node) => getComputedStyle(node).direction") == "ltr"
    visitor.context.close()
    assert olga.errors == [], olga.errors
    olga.context.close()


def test_a_transfer_confirmed_while_the_connection_is_down_keeps_the_choice(chromium, live_server_factory):  # noqa: ANN001
    server, inbox = north(live_server_factory)
    south = make_branch("South")
    olga = log_in(chromium, server, "olga")
    dialogs: list[str] = []
    olga.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    visitor = Visitor(server, inbox)
    visitor.say("Hello")
    row(olga, visitor.conversation_id).click()
    olga.locator("#messages .message").wait_for()
    olga.select_option("#transfer-branch", value=str(south.pk))
    visitor.close()
    server.stop(kill=True)
    olga.wait_for_selector("#connection[data-state=offline]")
    olga.click("#transfer-branch-go")
    wait_until(lambda: dialogs, "no message about the failed transfer")
    assert dialogs == ["Not sent: Offline — reconnecting…"]
    # Nothing happened, and the page says so without forgetting what Olga chose.
    assert olga.locator("#transfer-branch").input_value() == str(south.pk)
    assert olga.locator("#transfer-branch-go").is_enabled()
    server.start()
    olga.wait_for_selector("#connection[data-state=online]", timeout=60_000)
    olga.click("#transfer-branch-go")
    olga.locator("#empty-state", has_text="moved out of your view").wait_for()
    assert Conversation.objects.get().branch == south
    assert olga.errors == [], olga.errors
    olga.context.close()
