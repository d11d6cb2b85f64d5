"""The widget's transcript request in a real browser (docs/widget.md): from the menu and from the
resolved screen, the confirmation, and the e-mail arriving at a real SMTP server."""

from __future__ import annotations

import pytest

from messenger.models import EmailKind, OutgoingEmail
from messenger.scheduler import TICK_JOBS
from tests.factories import make_branch, make_inbox, make_user
from tests.live import screenshot
from tests.mailserver import Mailbox, mailbox_fixture  # noqa: F401 — the fixture
from tests.test_widget_browser import (  # noqa: F401 — the fixtures
    Operator,
    _orm_beside_playwright,
    demo_page,
    send_text,
    server,
    wait_ready,
    widget,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_visitor_asks_for_the_transcript_from_the_menu_and_after_the_resolution(
    chromium,  # noqa: ANN001
    server,  # noqa: ANN001, F811
    mailbox: Mailbox,
):
    branch = make_branch()
    inbox = make_inbox(branch, name="Acme shop")
    user = make_user(branch=branch, first_name="Olga")
    operator = Operator(server, user)
    page = demo_page(chromium, server, inbox.widget_token)
    try:
        wait_ready(page)
        page.evaluate("ProfiMessenger.open()")
        send_text(page, "Hello <b>there</b>")
        created = operator.expect("message.created", direction="in")
        conversation_id = created["conversation_id"]

        # From the menu: no address known, so one is typed (and checked first).
        widget(page).locator("button.menub").click()
        widget(page).locator("button.transcript-item").click()
        form = widget(page).locator("form.transcript")
        form.locator("input[name=email]").fill("not an address")
        form.locator("button[type=submit]").click()
        assert "not a valid e-mail" in form.locator(".err").inner_text()
        form.locator("input[name=email]").fill("anna@example.com")
        screenshot(page, "widget-transcript")
        form.locator("button[type=submit]").click()
        sent = widget(page).locator(".transcript-sent")
        sent.wait_for()
        assert sent.inner_text() == "The conversation is on its way to anna@example.com."
        TICK_JOBS["email"]()  # the send job runs inline under tests
        (received,) = mailbox.wait_for(1)
        assert received.recipients == ["anna@example.com"]
        assert "Hello <b>there</b>" in received.part("text/plain")
        assert "Hello &lt;b&gt;there&lt;/b&gt;" in received.part("text/html")

        # From the resolved screen.
        operator.command("conversation.status", conversation_id=conversation_id, status="resolved")
        widget(page).locator(".resolved button.transcript-btn").click()
        form = widget(page).locator("form.transcript")
        form.locator("input[name=email]").fill("anna@example.com")
        form.locator("button[type=submit]").click()
        widget(page).locator(".transcript-sent").nth(1).wait_for()
        assert OutgoingEmail.objects.filter(kind=EmailKind.TRANSCRIPT, conversation_id=conversation_id).count() == 2
    finally:
        operator.close()
        page.context.close()
