"""Accessibility in Chromium: axe-core (the copy shipped by ``axe-playwright-python``, injected by
Playwright: no CDN) finds no serious or critical violation on the widget's screens, the
dashboard, the reports page and the login page; and the widget and the dashboard work from the
keyboard alone (docs/widget.md and docs/dashboard.md, "Accessibility")."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe

from messenger.models import AgentRole, Label
from tests import live
from tests.factories import make_branch, make_inbox, make_user
from tests.live import screenshot
from tests.test_dashboard_browser import Visitor, log_in, row
from tests.test_reports import build_world
from tests.test_reports_browser import DAY, open_reports
from tests.test_widget_browser import Operator, demo_page, send_text, wait_ready, widget

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BLOCKING = ("serious", "critical")
STORED = "() => document.querySelector('profi-messenger').shadowRoot.querySelector('.msg.in[data-id]') !== null"
AXE = Axe()


@pytest.fixture(scope="module", autouse=True)
def _orm_beside_playwright(django_db_setup):  # noqa: ANN001
    with live.orm_beside_playwright():
        yield


@pytest.fixture
def server(live_server_factory):  # noqa: ANN001
    live = live_server_factory({"DJANGO_ALLOW_ASYNC_UNSAFE": ""})
    yield live
    live.stop(kill=True)


def blocking_violations(page: Any, context: Any = None) -> list[dict[str, Any]]:
    """axe-core's violations of impact serious or critical on the page (or within ``context``)."""
    results = AXE.run(page, context=context, options={"resultTypes": ["violations"]})
    return [v for v in results.response["violations"] if v["impact"] in BLOCKING]


def describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for violation in violations:
        lines.append(f"{violation['id']} ({violation['impact']}): {violation['help']}  {violation['helpUrl']}")
        for node in violation["nodes"]:
            lines.append(f"    at {' > '.join(map(str, node['target']))}: {node['html'][:160]}")
            lines.append(f"       {node.get('failureSummary', '').replace(chr(10), ' ')}")
    return "\n".join(lines)


class Audit:
    """Runs axe-core on each screen and fails once, at the end, with every screen's findings."""

    def __init__(self) -> None:
        self.findings: list[str] = []
        self.screens = 0

    def check(self, page: Any, where: str, context: Any = None) -> None:
        violations = blocking_violations(page, context)
        self.screens += 1
        if violations:
            self.findings.append(f"axe-core on {where}:\n{describe(violations)}")

    def verify(self) -> None:
        assert self.screens
        assert not self.findings, "\n\n".join(self.findings)


WIDGET = {"include": [["profi-messenger"]]}


def test_axe_on_the_widget_screens(chromium, server):  # noqa: ANN001
    branch = make_branch()
    inbox = make_inbox(branch, settings={"widget": {"greeting": "Hi there!"}, "features": {"emoji": True}})
    operator = Operator(server, make_user(branch=branch, first_name="Olga"))
    page = demo_page(chromium, server, inbox.widget_token)
    audit = Audit()
    try:
        wait_ready(page)
        audit.check(page, "the closed widget (launcher)", WIDGET)
        page.evaluate("ProfiMessenger.open()")
        send_text(page, "Hello, **where** is my order?")
        page.wait_for_function(STORED)
        conversation_id = operator.expect("message.created", direction="in")["conversation_id"]
        operator.command("message.send", conversation_id=conversation_id, client_id="op-1", body="It is on its way.")
        widget(page).locator(".msg.out", has_text="It is on its way.").wait_for()
        audit.check(page, "the open widget with messages", WIDGET)
        widget(page).locator("button.emoji-toggle").click()
        widget(page).locator("button.menub").click()
        audit.check(page, "the widget with the emoji picker and the menu open", WIDGET)
        page.keyboard.press("Escape")
        operator.command("conversation.status", conversation_id=conversation_id, status="resolved")
        widget(page).locator("form.rating").wait_for()
        screenshot(page, "a11y-widget-rating")
        audit.check(page, "the widget's rating form", WIDGET)
    finally:
        page.context.close()
        operator.close()
    audit.verify()


def test_axe_on_the_widget_forms(chromium, server):  # noqa: ANN001
    branch = make_branch()
    inbox = make_inbox(branch, settings={"features": {"pre_chat_form": True}})
    page = demo_page(chromium, server, inbox.widget_token)
    audit = Audit()
    try:
        wait_ready(page)
        page.evaluate("ProfiMessenger.open()")
        widget(page).locator("form.prechat").wait_for()
        audit.check(page, "the widget's pre-chat form (offline)", WIDGET)
    finally:
        page.context.close()
    # A light brand colour: the text on it turns dark, links and outlines on white darken.
    light = make_inbox(branch, settings={"widget": {"color": "#facc15"}})
    page = demo_page(chromium, server, light.widget_token)
    try:
        wait_ready(page)
        page.evaluate("ProfiMessenger.open()")
        widget(page).locator("form.contact").wait_for()
        send_text(page, "Hello, see https://example.com/order")
        page.wait_for_function(STORED)
        screenshot(page, "a11y-widget-offline-light-brand")
        audit.check(page, "the widget's offline contact form, a light brand colour", WIDGET)
        audit.check(page, "the demo page around the widget")
    finally:
        page.context.close()
    audit.verify()


FOCUSED = """() => {
  let el = document.activeElement;
  while (el && el.shadowRoot && el.shadowRoot.activeElement) el = el.shadowRoot.activeElement;
  if (!el) return null;
  return {tag: el.tagName.toLowerCase(), cls: el.className || "", name: el.getAttribute("name"),
          label: el.getAttribute("aria-label") || el.textContent.trim().slice(0, 40), id: el.id,
          type: el.getAttribute("type"), value: el.value};
}"""


def focused(page: Any) -> dict[str, Any]:
    """The element that has the keyboard's focus, inside the widget's shadow root too."""
    return page.evaluate(FOCUSED)


def tab_to(page: Any, predicate: Any, *, backwards: bool = False, limit: int = 30) -> dict[str, Any]:
    """Press Tab (Shift+Tab) until ``predicate(focused)``; fails when it is never reached."""
    seen = []
    for _ in range(limit):
        page.keyboard.press("Shift+Tab" if backwards else "Tab")
        now = focused(page)
        if now and predicate(now):
            return now
        seen.append(now)
    raise AssertionError(f"not reached with {'Shift+' if backwards else ''}Tab; focus went through {seen}")


def resize(page: Any, width: int, height: int) -> None:
    """Resize, then wait until the page's script sees the new width (the dashboard switches the
    side panel to a drawer below 1 100 px) and has drawn a frame."""
    page.set_viewport_size({"width": width, "height": height})
    narrow = width <= 1100
    deadline = time.monotonic() + 5
    while page.evaluate("matchMedia('(max-width: 1100px)').matches") != narrow:
        assert time.monotonic() < deadline, "the page did not see the new width"
        page.wait_for_timeout(50)
    page.evaluate("new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")


def has_class(name: str) -> Any:
    return lambda f: name in f["cls"].split()


def test_the_widget_from_the_keyboard_alone(chromium, server):  # noqa: ANN001
    branch = make_branch()
    inbox = make_inbox(branch, settings={"features": {"emoji": True}})
    operator = Operator(server, make_user(branch=branch, first_name="Olga"))
    page = demo_page(chromium, server, inbox.widget_token)
    panel = widget(page).locator("[role=dialog]")
    try:
        wait_ready(page)
        # From the host page's last control, Tab reaches the launcher; Enter opens the panel and
        # puts the focus in the composer.
        page.locator("#host-button").focus()
        assert has_class("launcher")(tab_to(page, has_class("launcher"), limit=3))
        page.keyboard.press("Enter")
        assert panel.is_visible()
        assert has_class("input")(focused(page))
        page.keyboard.type("Hello from the keyboard")
        page.keyboard.press("Enter")
        page.wait_for_function(STORED)
        conversation_id = operator.expect("message.created", direction="in")["conversation_id"]

        # The emoji picker: opened with Enter on its button, one Tab stop, arrow keys inside,
        # Enter inserts and returns to the composer, Escape closes it and returns to its button.
        tab_to(page, has_class("emoji-toggle"), backwards=True)
        page.keyboard.press("Enter")
        picker = widget(page).locator(".emoji")
        assert picker.is_visible()
        assert focused(page)["label"] == "😀"
        page.keyboard.press("ArrowRight")
        page.keyboard.press("ArrowDown")
        assert focused(page)["label"] == "😡"
        page.keyboard.press("Enter")
        assert has_class("input")(focused(page))
        assert widget(page).locator("textarea.input").input_value() == "😡"
        tab_to(page, lambda f: f["label"] == "😡", backwards=True)
        page.keyboard.press("Escape")
        assert not picker.is_visible() and panel.is_visible()
        assert has_class("emoji-toggle")(focused(page))
        assert widget(page).locator("button.emoji-toggle").get_attribute("aria-expanded") == "false"

        # The header's menu: Enter opens it on its item, Escape closes it back to its button, Tab
        # out of it closes it too; its item opens the transcript form with the focus in it.
        tab_to(page, has_class("menub"), backwards=True)
        page.keyboard.press("Enter")
        menu = widget(page).locator("[role=menu]")
        assert menu.is_visible()
        assert has_class("transcript-item")(focused(page))
        page.keyboard.press("Escape")
        assert not menu.is_visible() and panel.is_visible()
        assert has_class("menub")(focused(page))
        page.keyboard.press("Enter")
        page.keyboard.press("Tab")
        assert not menu.is_visible()
        tab_to(page, has_class("menub"), backwards=True)
        page.keyboard.press("Enter")
        page.keyboard.press("Enter")
        assert focused(page)["name"] == "email"
        # A bad address: the field is marked invalid, described by the message, and keeps the focus.
        page.keyboard.type("not-an-address")
        page.keyboard.press("Enter")
        email = widget(page).locator("form.transcript input[name=email]")
        assert email.get_attribute("aria-invalid") == "true"
        described = email.get_attribute("aria-describedby")
        assert "not a valid e-mail" in widget(page).locator(f"#{described}").inner_text()
        assert focused(page)["name"] == "email"

        # The rating, from the keyboard: one Tab stop for the stars, arrows choose, Enter sends.
        operator.command("conversation.status", conversation_id=conversation_id, status="resolved")
        rating = widget(page).locator("form.rating")
        rating.wait_for()
        widget(page).locator("textarea.input").focus()
        star = tab_to(page, lambda f: f["label"] == "1 of 5", backwards=True)
        assert star["tag"] == "button"
        for _ in range(3):
            page.keyboard.press("ArrowRight")
        assert focused(page)["label"] == "4 of 5"
        assert rating.locator("[aria-checked=true]").get_attribute("data-score") == "4"
        page.keyboard.press("Tab")
        assert focused(page)["name"] == "comment"
        page.keyboard.type("Quick")
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")
        widget(page).locator(".notice.thanks").wait_for()

        # Escape anywhere in the panel closes it and gives the focus back to the launcher.
        widget(page).locator("textarea.input").focus()
        page.keyboard.press("Escape")
        assert not panel.is_visible()
        assert has_class("launcher")(focused(page))
        assert widget(page).locator("button.launcher").get_attribute("aria-expanded") == "false"

        # A site that hides the launcher opens the chat from its own button: Escape gives the
        # focus back to that button.
        page.evaluate("ProfiMessenger.hideLauncher()")
        page.locator("#host-button").focus()
        page.evaluate("ProfiMessenger.open()")
        assert has_class("input")(focused(page))
        page.keyboard.press("Escape")
        assert not panel.is_visible()
        assert focused(page)["id"] == "host-button"
        # A close() from the page while the visitor is elsewhere takes the focus nowhere.
        page.evaluate("ProfiMessenger.showLauncher(); ProfiMessenger.open()")
        page.locator("#host-button").focus()
        page.evaluate("ProfiMessenger.close()")
        assert focused(page)["id"] == "host-button"
    finally:
        page.context.close()
        operator.close()


def test_an_invitation_opens_the_widget_without_taking_the_focus(chromium, server):  # noqa: ANN001
    branch = make_branch()
    inbox = make_inbox(branch)
    operator = Operator(server, make_user(branch=branch, first_name="Olga"))
    page = demo_page(chromium, server, inbox.widget_token)
    try:
        wait_ready(page)
        visitor_id = None  # as the dashboard learns it: from the live list's frames
        while visitor_id is None:
            frame = json.loads(operator.socket.recv(timeout=8))
            if frame["type"] == "visitors.changed" and frame["data"]["upserts"]:
                visitor_id = frame["data"]["upserts"][0]["id"]
        page.locator("#host-button").focus()
        # The live visitors list learns of the page within a second or two: invite until it does.
        deadline = time.monotonic() + 10
        while True:
            invite = {"type": "visitor.invite", "ref": "invite", "visitor_id": visitor_id, "body": "Need a hand?"}
            operator.socket.send(json.dumps(invite))
            frame = None
            while frame is None or frame.get("ref") != "invite":
                frame = json.loads(operator.socket.recv(timeout=8))
            if frame["type"] == "ack":
                break
            assert time.monotonic() < deadline, frame
            time.sleep(0.3)
        widget(page).locator(".msg.invitation").wait_for()
        widget(page).locator(".panel:not([hidden])").wait_for()
        # Shown and announced (the log is a live region), but the visitor's focus stays put.
        assert focused(page)["id"] == "host-button"
    finally:
        page.context.close()
        operator.close()


def test_the_pre_chat_form_from_the_keyboard(chromium, server):  # noqa: ANN001
    inbox = make_inbox(make_branch(), settings={"features": {"pre_chat_form": True}})
    page = demo_page(chromium, server, inbox.widget_token)
    try:
        wait_ready(page)
        page.locator("#host-button").focus()
        tab_to(page, has_class("launcher"), limit=3)
        page.keyboard.press("Enter")
        # The composer waits for the form: the focus starts in its first field.
        assert focused(page)["name"] == "name"
        page.keyboard.type("Anna")
        page.keyboard.press("Enter")
        name, email = (widget(page).locator(f"form.prechat input[name={n}]") for n in ("name", "email"))
        assert focused(page)["name"] == "email"
        assert email.get_attribute("aria-invalid") == "true" and name.get_attribute("aria-invalid") == "false"
        assert email.get_attribute("aria-required") == "true"
        page.keyboard.type("anna@example.com")
        page.keyboard.press("Enter")
        widget(page).locator(".composer").wait_for()
        assert has_class("input")(focused(page))
        assert email.count() == 0
    finally:
        page.context.close()


def test_axe_on_the_login_and_reports_pages(chromium, server):  # noqa: ANN001
    build_world()
    audit = Audit()
    context = chromium.new_context(viewport={"width": 1300, "height": 900})
    page = context.new_page()
    try:
        page.goto(server.url + "/accounts/login/")
        audit.check(page, "the login page")
        # Each language's name is read in that language.
        assert page.locator(".language-switch button[value=ru]").get_attribute("lang") == "ru"
        assert page.locator(".language-switch button[value=en]").get_attribute("lang") == "en"
        page.fill("#id_username", "op1")
        page.fill("#id_password", "wrong")
        page.click("button[type=submit]")
        page.locator(".login-error").wait_for()
        audit.check(page, "the login page after a failed attempt")
        page.goto(server.url + "/accounts/password_reset/")
        audit.check(page, "the password reset page")
    finally:
        context.close()
    for username in ("sup", "op1"):
        page = open_reports(chromium, server, username, DAY)
        try:
            page.locator("#now-connection[data-state=online]").wait_for()
            page.locator("#table-now tr").first.wait_for()
            page.locator("details summary").click()
            audit.check(page, f"the reports page ({username})")
        finally:
            page.context.close()
    audit.verify()


def test_axe_on_the_dashboard(chromium, server):  # noqa: ANN001
    branch = make_branch("North")
    inbox = make_inbox(branch)
    make_user("olga", branch=branch)
    make_user("sonia", role=AgentRole.SUPERVISOR)
    Label.objects.create(name="vip")
    visitors = [Visitor(server, inbox) for _ in range(2)]
    for number, visitor in enumerate(visitors):
        visitor.say(f"Hello number {number}, where is my **order**?")
    audit = Audit()
    olga = log_in(chromium, server, "olga")
    sonia = log_in(chromium, server, "sonia")
    try:
        row(olga, visitors[0].conversation_id).wait_for()
        audit.check(olga, "the dashboard's list")
        # A contact's avatar takes one of 12 hues from the name: each keeps its initials readable.
        olga.evaluate(
            """() => {
              const avatar = document.querySelector("#conversations .avatar");
              for (let hue = 0; hue < 12; hue++) {
                const copy = avatar.cloneNode(true);
                copy.dataset.hue = String(hue);
                copy.classList.add("hue-probe");
                avatar.after(copy);
              }
            }"""
        )
        audit.check(olga, "the avatars of every hue", {"include": [[".hue-probe"]]})
        olga.evaluate("() => document.querySelectorAll('.hue-probe').forEach((node) => node.remove())")
        row(olga, visitors[0].conversation_id).click()
        olga.locator("#messages .message", has_text="Hello number 0").wait_for()
        olga.locator("#side:not([hidden])").wait_for()
        audit.check(olga, "the dashboard with an open conversation and its side panel")
        olga.check("#composer input[value=note]")
        olga.fill("#body", "A note with **bold**")
        audit.check(olga, "the dashboard's composer in note mode with a preview")
        olga.keyboard.press("Escape")
        olga.keyboard.press("?")
        olga.locator("#help[open]").wait_for()
        audit.check(olga, "the dashboard's keyboard help")
        olga.keyboard.press("Escape")
        resize(olga, 768, 1024)
        olga.locator("#toggle-side").click()
        olga.locator("#side").wait_for()
        audit.check(olga, "the dashboard on a tablet with the details drawer open")
        resize(olga, 1400, 900)
        sonia.select_option("#filter-status", "closed")
        sonia.locator("#conversations li.empty").wait_for()
        audit.check(sonia, "the dashboard with an empty list")
        sonia.select_option("#filter-status", "active")
        sonia.locator("#tabs [data-tab=all]").click()
        row(sonia, visitors[1].conversation_id).click()
        sonia.wait_for_selector("#watch-banner:not([hidden])")
        audit.check(sonia, "the dashboard watching a conversation (supervisor)")
        sonia.locator("#open-fairness").click()
        sonia.locator("#fairness[open]").wait_for()
        audit.check(sonia, "the dashboard's fairness view")
        sonia.keyboard.press("Escape")
        sonia.locator("#open-visitors").click()
        sonia.locator("#visitors:not([hidden]) .visitor-kind").first.wait_for()
        audit.check(sonia, "the dashboard's live visitors")
        screenshot(olga, "a11y-dashboard")
    finally:
        for visitor in visitors:
            visitor.close()
        olga.context.close()
        sonia.context.close()
    audit.verify()


def test_the_dashboard_from_the_keyboard_alone(chromium, server):  # noqa: ANN001
    branch = make_branch("North")
    inbox = make_inbox(branch)
    make_user("olga", branch=branch)
    Label.objects.create(name="vip")
    visitors = [Visitor(server, inbox) for _ in range(3)]
    for number, visitor in enumerate(visitors):
        visitor.say(f"Question number {number}")
    olga = log_in(chromium, server, "olga")
    ids = [visitor.conversation_id for visitor in visitors]
    newest_first = sorted(ids, reverse=True)
    listbox = olga.locator("#conversations")

    def selected() -> str | None:
        return listbox.get_attribute("aria-activedescendant")

    try:
        for conversation_id in ids:
            row(olga, conversation_id).wait_for()
        # The tabs: ← and → move between them and select.
        olga.locator("#tabs [data-tab=mine]").focus()
        olga.keyboard.press("ArrowRight")
        assert focused(olga)["label"].startswith("Unassigned")
        assert olga.locator("#tabs [data-tab=unassigned]").get_attribute("aria-selected") == "true"
        olga.keyboard.press("ArrowLeft")
        assert olga.locator("#tabs [data-tab=mine]").get_attribute("aria-selected") == "true"
        for conversation_id in ids:
            row(olga, conversation_id).wait_for()

        # Tab reaches the list, which lands on its first row; the arrows, Home and End move, and
        # the list names the selected row for screen readers (aria-activedescendant).
        olga.locator("#search").focus()
        tab_to(olga, lambda f: f["id"] == "conversations")
        assert selected() == f"row-{newest_first[0]}"
        olga.keyboard.press("ArrowDown")
        assert selected() == f"row-{newest_first[1]}"
        assert row(olga, newest_first[1]).get_attribute("aria-selected") == "true"
        olga.keyboard.press("End")
        assert selected() == f"row-{newest_first[2]}"
        olga.keyboard.press("Home")
        olga.keyboard.press("j")
        assert selected() == f"row-{newest_first[1]}"
        olga.keyboard.press("Enter")
        olga.locator("#messages .message", has_text="Question number 1").wait_for()
        assert focused(olga)["id"] == "conversations"

        # Tab goes on to the composer; Ctrl+Enter sends; Escape returns to the list.
        tab_to(olga, lambda f: f["id"] == "body")
        olga.keyboard.type("Answered from the keyboard")
        olga.keyboard.press("Control+Enter")
        visitors[1].expect("message.created", direction="out", body="Answered from the keyboard")
        olga.keyboard.press("Escape")
        assert focused(olga)["id"] == "conversations"

        # The side panel's controls come next in the Tab order: Space ticks a label.
        tab_to(olga, lambda f: f["type"] == "checkbox" and f["value"] == "vip", limit=40)
        olga.keyboard.press("Space")
        row(olga, newest_first[1]).locator(".label", has_text="vip").wait_for()

        # Enter on a button is the button's (here: the panel's toggle), not "open the selected row".
        olga.locator("#toggle-side").focus()
        assert olga.locator("#toggle-side").get_attribute("aria-expanded") == "true"
        olga.keyboard.press("Enter")
        assert olga.locator("#toggle-side").get_attribute("aria-expanded") == "false"
        olga.keyboard.press("Enter")
        assert olga.locator("#toggle-side").get_attribute("aria-expanded") == "true"

        # A tablet: the details drawer opens on its close button and Escape closes it back to its
        # toggle.
        resize(olga, 768, 1024)
        olga.locator("#toggle-side").focus()
        olga.keyboard.press("Enter")
        olga.locator("#side").wait_for()
        assert focused(olga)["id"] == "close-side"
        tab_to(olga, lambda f: f["id"] == "set-status")
        olga.keyboard.press("Escape")
        olga.locator("#side").wait_for(state="hidden")
        assert focused(olga)["id"] == "toggle-side"
        resize(olga, 1400, 900)

        # The shortcuts' help: ? opens it, Escape closes it.
        listbox.focus()
        olga.keyboard.press("?")
        assert olga.locator("#help").is_visible()
        olga.keyboard.press("Escape")
        assert not olga.locator("#help").is_visible()
        assert olga.errors == []
    finally:
        for visitor in visitors:
            visitor.close()
        olga.context.close()


REPORT_STOP = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const style = getComputedStyle(el);
  const rect = el.getBoundingClientRect();
  return {
    stop: el.id || (el.dataset.csv ? "csv:" + el.dataset.csv : el.textContent.trim()),
    ring: style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2,
    shown: rect.width > 0 && rect.bottom > 0 && rect.top < innerHeight && rect.right > 0 && rect.left < innerWidth,
  };
}"""

# The reports page's Tab stops in order, each once (a date field takes one press per part of the
# date and one for its calendar button).
REPORT_STOPS = [
    "Conversations", "Log out",
    "f-start", "f-end", "f-tz", "f-branch", "f-region", "f-inbox", "f-operator", "f-label", "Show",
    "csv:series", "Table", "csv:operators", "csv:branches", "csv:regions", "csv:heatmap", "csv:ratings",
]  # fmt: skip


def report_stops(page: Any, key: str) -> list[str]:
    """Press ``key`` until the focus leaves the page; every stop on the way shows its focus (an
    outline of 2 px or more, on screen). The stops, each once."""
    stops: list[str] = []
    hidden: list[str] = []
    for _ in range(60):
        page.keyboard.press(key)
        now = page.evaluate(REPORT_STOP)
        if now is None:
            assert not hidden, f"focus not visible at {hidden}"
            return stops
        if not (now["ring"] and now["shown"]):
            hidden.append(now["stop"])
        if not stops or stops[-1] != now["stop"]:
            stops.append(now["stop"])
    raise AssertionError(f"the focus never left the page: {stops}")


def test_the_reports_page_from_the_keyboard_alone(chromium, server):  # noqa: ANN001
    build_world()
    page = open_reports(chromium, server, "sup", DAY)
    report = page.locator("body")

    def loaded(generation: int) -> None:
        page.wait_for_function(f"() => document.body.dataset.loaded === '{generation}'")

    try:
        page.locator("#now-connection[data-state=online]").wait_for()
        page.locator("#table-now tr").first.wait_for()
        # Every control in reading order, its focus always visible; past the last the focus
        # leaves the page and comes back to the first: nothing holds it. Shift+Tab: the same way back.
        assert report_stops(page, "Tab") == REPORT_STOPS
        assert report_stops(page, "Tab") == REPORT_STOPS
        assert report_stops(page, "Shift+Tab") == REPORT_STOPS[::-1]
        # Each CSV link says what it exports (its section's heading), not only "CSV".
        for heading in (
            "By day",
            "Operators",
            "Branches",
            "Regions",
            "New conversations by weekday and hour",
            "Ratings",
        ):
            assert page.get_by_role("link", name=f"{heading} CSV", exact=True).count() == 1, heading

        # The period: the date typed into its field, Enter shows the report.
        tab_to(page, lambda f: f["id"] == "f-start")
        page.keyboard.type("03282026")
        assert page.locator("#f-start").input_value() == "2026-03-28"
        page.keyboard.press("Enter")
        loaded(2)
        assert page.locator("#report-status").inner_text() == "2026-03-28 – 2026-03-29 (Europe/Berlin)"
        # The time zone: typed, Enter.
        tab_to(page, lambda f: f["id"] == "f-tz")
        page.keyboard.press("Control+A")
        page.keyboard.type("UTC")
        page.keyboard.press("Enter")
        loaded(3)
        assert page.locator("#report-status").inner_text().endswith("(UTC)")
        # A filter: the arrow keys choose, the report follows; the focus stays on the filter.
        page.keyboard.press("Tab")
        assert focused(page)["id"] == "f-branch"
        page.keyboard.press("ArrowDown")
        loaded(4)
        assert "branch=" in page.url and focused(page)["id"] == "f-branch"
        tab_to(page, lambda f: f["label"] == "Show")
        page.keyboard.press("Enter")
        loaded(5)

        # The CSV export of the shown report, from the keyboard.
        tab_to(page, lambda f: f["cls"] == "csv")
        with page.expect_download() as download:
            page.keyboard.press("Enter")
        assert "/series/csv/?" in download.value.url and "branch=" in download.value.url
        # The day table opens with Enter on its summary.
        page.keyboard.press("Tab")
        assert focused(page)["tag"] == "summary"
        page.keyboard.press("Enter")
        assert page.locator("#table-series").is_visible()
        assert report.get_attribute("data-loaded") == "5"

        # A phone: a table wider than the screen scrolls in its section, and the keyboard reaches
        # it (the section's CSV link) and scrolls it with the arrow keys.
        page.set_viewport_size({"width": 375, "height": 800})
        page.evaluate("new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
        wide = (
            page.locator("section")
            .filter(has=page.locator("table"))
            .evaluate_all(
                "(nodes) => nodes.filter((n) => n.scrollWidth > n.clientWidth).map((n) => n.getAttribute('aria-labelledby'))"
            )
        )
        assert wide, "no table is wider than a phone's screen"
        page.locator("#f-label").focus()
        for heading in wide:
            section = page.locator(f"section[aria-labelledby={heading}]")
            link = tab_to(
                page,
                lambda f, heading=heading: page.evaluate(
                    "(id) => document.activeElement.closest('section')?.getAttribute('aria-labelledby') === id", heading
                ),
            )
            assert link["cls"] == "csv"
            for _ in range(3):
                page.keyboard.press("ArrowRight")
            page.wait_for_function("(node) => node.scrollLeft > 0", arg=section.element_handle())
        assert page.errors == []
    finally:
        page.context.close()
