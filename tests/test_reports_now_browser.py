"""The reports page's live "now" panel in Chromium against a live server: it changes without a
reload when an operator opens the dashboard and changes status and when visitors start
conversations on the real widget socket; its own socket does not make the viewer online; after the
server restarts it reconnects and reads the numbers again; in Russian it speaks Russian. No page
error, no console error (a CSP violation is one). Screenshots: artifacts/reports/."""

from __future__ import annotations

import time
from typing import Any

import pytest

from messenger.models import AgentRole, AgentStatus
from tests import live
from tests.factories import make_branch, make_inbox, make_user
from tests.live import ROOT
from tests.test_dashboard_browser import Visitor
from tests.test_dashboard_browser import log_in as open_dashboard

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TIMEOUT = 15_000
SHOTS = ROOT / "artifacts" / "reports"


@pytest.fixture(scope="module", autouse=True)
def _orm_beside_playwright(django_db_setup):  # noqa: ANN001
    with live.orm_beside_playwright():
        yield


def open_reports(browser: Any, server: Any, username: str, *, locale: str = "en-US") -> Any:
    context = browser.new_context(viewport={"width": 1300, "height": 900}, locale=locale)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.errors = errors
    # When the page asked for the now panel, by the browser's clock (epoch ms): the test thread
    # takes Playwright's events late while it drives the visitors.
    reads: list[Any] = []
    page.on("requestfinished", lambda request: "/api/operator/reports/now/" in request.url and reads.append(request))
    page.reads = reads
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: frame == page.main_frame and navigations.append(frame.url))
    page.navigations = navigations
    page.goto(server.url + "/accounts/login/?next=/dashboard/reports/")
    page.fill("#id_username", username)
    page.fill("#id_password", "pw-" + username)
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard/reports/**")
    page.wait_for_selector("#now-connection[data-state=online]")
    page.wait_for_selector("body[data-now-loaded]")
    navigations.clear()
    return page


def shown(page: Any, key: str) -> str | None:
    return page.locator(f'#now-figures dd[data-now="{key}"]').get_attribute("data-value")


def wait_now(page: Any, expected: dict[str, str], operators: dict[str, str] | None = None) -> None:
    """Until the panel shows ``expected`` (figure → raw value) and ``operators`` (name → status).
    Polled from here: the page's CSP forbids the eval behind wait_for_function."""
    deadline = time.monotonic() + TIMEOUT / 1000
    while True:
        figures = {key: shown(page, key) for key in expected}
        people = {
            row.locator('td[data-key="name"]').inner_text(): row.get_attribute("data-status")
            for row in page.locator("#table-now tbody tr").all()
        }
        if figures == expected and (operators is None or people == operators):
            return
        assert time.monotonic() < deadline, f"shown {figures} {people}, expected {expected} {operators}; {page.errors}"
        page.wait_for_timeout(50)


def operator_row(page: Any, name: str) -> dict[str, str]:
    line = page.locator("#table-now tbody tr", has=page.locator('td[data-key="name"]', has_text=name))
    return {key: line.locator(f'td[data-key="{key}"]').get_attribute("data-value") for key in ("open", "waiting")}


def test_now_panel_updates_live(chromium, live_server_factory):  # noqa: ANN001
    north, south = make_branch("North"), make_branch("South")
    north_inbox, south_inbox = make_inbox(north), make_inbox(south)
    make_user("olga", branch=north, status=AgentStatus.ONLINE)
    make_user("sonia", role=AgentRole.SUPERVISOR, status=AgentStatus.ONLINE)
    server = live_server_factory({"DJANGO_ALLOW_ASYNC_UNSAFE": ""})
    SHOTS.mkdir(parents=True, exist_ok=True)

    sonia = open_reports(chromium, server, "sonia")
    # Nobody at work; the supervisor watching the reports is not online because of it.
    wait_now(sonia, {"waiting": "0", "open": "0", "present_online": "0", "present_busy": "0"}, {})
    assert sonia.locator("#h-now").inner_text().startswith("Now")

    # Olga opens the dashboard: she is online on the panel, without a reload.
    olga = open_dashboard(chromium, server, "olga")
    wait_now(sonia, {"present_online": "1"}, {"Olga": "online"})

    # A visitor writes to North: assigned to Olga at once, waiting for her answer.
    anna = Visitor(server, north_inbox)
    anna.say("Hello, anyone?")
    wait_now(sonia, {"waiting": "1", "waiting_unassigned": "0", "open": "1"}, {"Olga": "online"})
    assert operator_row(sonia, "Olga") == {"open": "1", "waiting": "1"}
    assert shown(sonia, "longest") == str(anna.conversation_id)

    # A visitor writes to South, where nobody works: in the queue, unassigned.
    boris = Visitor(server, south_inbox)
    boris.say("Is this the South office?")
    wait_now(sonia, {"waiting": "2", "waiting_unassigned": "1", "open": "2", "open_unassigned": "1"})
    longest = sonia.locator('#now-figures dd[data-now="longest"]')
    assert longest.get_attribute("data-conversation") == str(anna.conversation_id)  # Anna wrote first
    # The longest wait counts on in the page between reads.
    before = longest.inner_text()
    sonia.wait_for_timeout(2100)
    assert longest.inner_text() != before and longest.inner_text().endswith(" s")

    # A burst of frames (ten messages in a row) costs at most one read a second.
    sonia.wait_for_timeout(1100)
    sonia.reads.clear()
    started = time.monotonic()
    for number in range(10):
        anna.say(f"Message {number}")
    sonia.wait_for_timeout(2500)
    starts = sorted(request.timing["startTime"] for request in sonia.reads)
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:], strict=False)]
    # The page spaces its reads by 1 s; the network's start times lag it by a scheduling delay under
    # load (951 ms was seen), so the gaps are checked loosely and the count strictly.
    assert starts and all(gap >= 800 for gap in gaps), gaps
    assert len(starts) <= (time.monotonic() - started) + 1

    # Olga goes away: the panel follows.
    olga.select_option("#my-status", "away")
    wait_now(sonia, {"present_online": "0", "present_away": "1"}, {"Olga": "away"})
    sonia.screenshot(path=str(SHOTS / "now-live.png"), full_page=True)
    assert sonia.navigations == []
    assert sonia.errors == []

    # The server restarts: the page reconnects and reads again; later changes still arrive.
    server.restart()
    sonia.wait_for_selector("#now-connection[data-state=online]", timeout=40_000)
    sonia.errors.clear()  # the refused reconnects while it was down are console errors
    cyril = Visitor(server, south_inbox)
    cyril.say("Still there?")
    wait_now(sonia, {"waiting": "3", "waiting_unassigned": "2"})
    assert sonia.navigations == []
    assert sonia.errors == []
    for visitor in (anna, boris, cyril):
        visitor.close()

    # In Russian: the panel and the page's own texts.
    russian = open_reports(chromium, server, "sonia", locale="ru-RU")
    wait_now(russian, {"waiting": "3"})
    assert russian.locator("#h-now").inner_text().startswith("Сейчас")
    labels = [russian.locator("#now-figures dt").nth(i).inner_text() for i in range(3)]
    assert labels == ["Ждут ответа", "Ждут, не назначены", "Дольше всех ждёт"]
    assert russian.locator("#table-now th").first.inner_text() == "Сотрудник"
    assert russian.locator('#figures dd[data-figure="conversations.new"]').count() == 1
    assert russian.locator("#figures dt").first.inner_text() == "Новые диалоги"
    assert russian.locator("#h-summary").inner_text() == "Сводка"
    assert russian.title() == "Отчёты · Messenger"
    russian.screenshot(path=str(SHOTS / "now-ru.png"), full_page=True)
    assert russian.errors == []
