"""Live visitors and invitations end to end in Chromium: an operator's dashboard lists the visitor
of a demo page, invites them, the real widget opens with the invitation, the visitor answers and
the conversation lands with that operator. Screenshots of the visitors screen at 1 440 and 768 px."""

from __future__ import annotations

import time
from functools import partial

import pytest
from django.utils import timezone

from messenger.models import AgentStatus, Contact, Conversation
from tests import live
from tests.factories import make_branch, make_conversation, make_inbox, make_user
from tests.live import _orm_beside_playwright, log_in, screenshot  # noqa: F401 — the fixture
from tests.test_dashboard_browser import row

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

demo_page = partial(live.demo_page, ready=True)


def test_an_operator_invites_a_visitor_who_answers(chromium, live_server_factory):  # noqa: ANN001
    branch = make_branch("North")
    inbox = make_inbox(branch, name="Shop")
    # Olga is away: automatic assignment would never give her the conversation.
    olga = make_user("olga", branch=branch, status=AgentStatus.AWAY, first_name="Olga")
    make_user("ivan", branch=branch)
    server = live_server_factory({"DJANGO_ALLOW_ASYNC_UNSAFE": ""})
    try:
        dashboard = log_in(chromium, server, "olga", 1440)
        dashboard.click("#open-visitors")
        dashboard.wait_for_selector("#visitors:not([hidden])")
        dashboard.locator("#visitors-empty").wait_for()

        visitor = demo_page(chromium, server, inbox.widget_token)
        row = dashboard.locator("#visitors tbody tr[data-id]").first
        row.wait_for()
        assert "/demo/" in row.inner_text()
        assert dashboard.locator("#visitors-count").inner_text() == "1"
        assert "New" in row.inner_text()
        time.sleep(1.2)  # time on site counts up
        screenshot(dashboard, "visitors-list-1440")

        row.locator("button.invite").click()
        dashboard.fill("#visitors .invite-text", "Hello! Need a hand with your order?")
        dashboard.click("#visitors .send-invite")
        dashboard.locator("#visitors .badge.invited").wait_for()

        widget = visitor.locator("profi-messenger")
        invitation = widget.locator(".msg.invitation")
        invitation.wait_for()
        assert invitation.locator(".who").inner_text() == "Olga"
        assert invitation.locator(".bubble").inner_text() == "Hello! Need a hand with your order?"
        widget.locator(".panel:not([hidden])").wait_for()
        assert visitor.evaluate("() => window.ProfiMessenger.isOpen()")
        screenshot(visitor, "widget-invitation")

        box = widget.locator("textarea.input")
        box.fill("Yes, where is my parcel?")
        box.press("Enter")
        widget.locator(".msg.in .tick[data-state=delivered], .msg.in .tick[data-state=sent]").first.wait_for()
        deadline = time.monotonic() + 10
        while not Conversation.objects.filter(inbox=inbox).exists():
            assert time.monotonic() < deadline, "no conversation"
            time.sleep(0.1)
        conversation = Conversation.objects.get(inbox=inbox)
        assert conversation.assignee_id == olga.pk
        assert conversation.additional_attributes["invitation"] == "Hello! Need a hand with your order?"
        # The list says the visitor chats; the conversation is Olga's.
        dashboard.locator("#visitors tr.is-chatting").wait_for()
        dashboard.locator("#visitors tr.is-chatting button.link").click()
        dashboard.wait_for_selector("#visitors", state="hidden")
        dashboard.locator("#messages .message", has_text="Yes, where is my parcel?").wait_for()
        # The side panel says what the visitor answered.
        dashboard.locator("#contact-details dd", has_text="Hello! Need a hand with your order?").wait_for()
        assert dashboard.errors == []

        narrow = log_in(chromium, server, "olga", 768)
        narrow.click("#open-visitors")
        narrow.locator("#visitors tbody tr[data-id]").first.wait_for()
        screenshot(narrow, "visitors-list-768")
        assert narrow.errors == []

        # The visitor leaves: gone from the list within a few seconds.
        visitor.context.close()
        dashboard.click("#open-visitors")
        dashboard.locator("#visitors-empty:not([hidden])").wait_for(timeout=8_000)
    finally:
        server.stop(kill=True)


def test_a_stored_page_that_is_not_a_web_address_is_shown_not_linked(chromium, live_server_factory):  # noqa: ANN001
    """A contact stored before bootstrap kept only web addresses may
    say its page is ``javascript:…``: the side panel shows it as text, never as a link."""
    inbox = make_inbox(make_branch("North"))
    olga = make_user("olga", branch=inbox.branch, first_name="Olga")
    conversation = make_conversation(inbox, at=timezone.now(), assignee=olga)
    Contact.objects.filter(pk=conversation.contact_id).update(
        additional_attributes={"url": "javascript:alert(document.domain)", "title": "Pricing"}
    )
    server = live_server_factory({"DJANGO_ALLOW_ASYNC_UNSAFE": ""})
    try:
        dashboard = log_in(chromium, server, "olga", 1440)
        row(dashboard, conversation.pk).click()
        dashboard.locator("#contact-details dd", has_text="javascript:alert(document.domain)").wait_for()
        assert dashboard.locator("#contact-details a").count() == 0
        assert dashboard.errors == []
    finally:
        server.stop(kill=True)


def test_a_visitor_arriving_keeps_the_invitation_being_typed(chromium, live_server_factory):  # noqa: ANN001
    """The list is drawn again on every change (a visitor arrives, leaves, starts chatting): the
    invitation box being typed in keeps its text and the focus."""
    inbox = make_inbox(make_branch("North"))
    make_user("olga", branch=inbox.branch, first_name="Olga")
    server = live_server_factory({"DJANGO_ALLOW_ASYNC_UNSAFE": ""})
    try:
        dashboard = log_in(chromium, server, "olga", 1440)
        dashboard.click("#open-visitors")
        dashboard.wait_for_selector("#visitors:not([hidden])")
        demo_page(chromium, server, inbox.widget_token)
        rows = dashboard.locator("#visitors tbody tr[data-id]:not(.invite-row)")
        rows.first.wait_for()
        rows.first.locator("button.invite").click()
        box = dashboard.locator("#visitors .invite-text")
        box.fill("Typed by hand, not sent yet")
        demo_page(chromium, server, inbox.widget_token)  # a second visitor arrives
        rows.nth(1).wait_for()
        assert box.input_value() == "Typed by hand, not sent yet"
        assert dashboard.evaluate("() => document.activeElement.classList.contains('invite-text')")
        assert dashboard.errors == []
    finally:
        server.stop(kill=True)
