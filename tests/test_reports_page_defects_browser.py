"""The reports page's own defects, in Chromium against a live server: the default range ends
today in the report's zone (not the browser's UTC day), a long duration reads 2 h 0 min (not
1 h 60 min), Russian numbers have a decimal comma, an address with a day the date field refuses
keeps the default instead of failing, the page fits a phone's width. No page or console error."""

from __future__ import annotations

import json
import time
import zoneinfo
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
from django.utils import timezone

from messenger.actions.report_facts import do_fill_working_seconds, do_rebuild_report_facts
from messenger.models import AgentRole
from tests import live
from tests.factories import make_audit, make_branch, make_conversation, make_inbox, make_message, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TIMEOUT = 15_000
ZONE = "Asia/Kathmandu"


@pytest.fixture(scope="module", autouse=True)
def _orm_beside_playwright(django_db_setup):  # noqa: ANN001
    with live.orm_beside_playwright():
        yield


def open_reports(
    browser: Any, server: Any, username: str, query: str = "", locale: str = "en-US", width: int = 1300
) -> Any:
    context = browser.new_context(viewport={"width": width, "height": 900}, locale=locale)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.errors = errors
    page.goto(server.url + "/accounts/login/?next=" + quote("/dashboard/reports/" + query))
    page.fill("#id_username", username)
    page.fill("#id_password", "pw-" + username)
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard/reports/**")
    deadline = time.monotonic() + TIMEOUT / 1000
    while page.locator("body").get_attribute("data-loaded") != "1":
        assert time.monotonic() < deadline, f"not loaded: {errors} {page.locator('#report-error').inner_text()!r}"
        page.wait_for_timeout(50)
    return page


def test_default_range_durations_numbers_and_a_refused_day(chromium, live_server_factory):  # noqa: ANN001
    branch = make_branch("Kathmandu", timezone=ZONE)
    make_user("sup", role=AgentRole.SUPERVISOR, branch=branch)
    operator = make_user("op", branch=branch)
    # Answered 7170 s (1 h 59 min 30 s) after the visitor wrote, a moment ago; rated 4 of 5.
    now = timezone.now()
    asked = now - timedelta(seconds=7200)
    conversation = make_conversation(make_inbox(branch), at=asked, assignee=operator, status="resolved")
    make_message(conversation, at=asked)
    make_message(conversation, at=asked + timedelta(seconds=7170), direction="out", user=operator)
    make_audit(conversation, "conversation.status", at=now, payload={"from": "open", "to": "resolved"})
    make_audit(conversation, "conversation.rated", at=now, payload={"score": 4, "scale": "stars"})
    do_rebuild_report_facts()
    do_fill_working_seconds()
    server = live_server_factory({"DJANGO_ALLOW_ASYNC_UNSAFE": ""})

    page = open_reports(chromium, server, "sup")
    config = json.loads(page.locator("#config").text_content())
    today = timezone.now().astimezone(zoneinfo.ZoneInfo(ZONE)).date()
    assert page.input_value("#f-end") == config["end"] == today.isoformat()
    assert page.input_value("#f-start") == config["start"] == (today - timedelta(days=29)).isoformat()
    assert page.input_value("#f-tz") == ZONE
    assert page.locator('#figures dd[data-figure="conversations.new"]').inner_text() == "1"
    assert page.locator('#figures dd[data-figure="first_response.median"]').inner_text() == "2 h 0 min"
    assert page.locator('#figures dd[data-figure="csat.average"]').inner_text() == "4.00"
    assert page.errors == []

    # One day, one rating: counted in the singular.
    page.fill("#f-start", today.isoformat())
    page.click("#report-filters button[type=submit]")
    deadline = time.monotonic() + TIMEOUT / 1000
    while page.locator("body").get_attribute("data-loaded") != "2":
        assert time.monotonic() < deadline
        page.wait_for_timeout(50)
    assert page.locator("#table-series caption").text_content() == "1 day"
    assert page.locator("#table-ratings caption").inner_text() == "1 rating"
    assert page.locator("#chart-csat figcaption").inner_text() == "CSAT: 1 rating, average 4.00"

    russian = open_reports(chromium, server, "sup", locale="ru-RU")
    assert russian.locator('#figures dd[data-figure="csat.average"]').inner_text() == "4,00"
    assert russian.locator('#figures dd[data-figure="first_response.median"]').inner_text() == "2 ч 0 мин"
    assert russian.locator("#table-ratings caption").inner_text() == "1 оценка"
    assert russian.locator("#table-series caption").text_content() == "30 дн."
    assert russian.errors == []

    # Dates the server refuses (start after end): the error, and none of the previous figures
    # under it (the address already names the refused range).
    page.fill("#f-start", (today + timedelta(days=1)).isoformat())
    page.click("#report-filters button[type=submit]")
    page.locator("#report-error").wait_for()
    assert "start: after end" in page.locator("#report-error").inner_text()
    assert page.locator("#figures dd").count() == 0 and page.locator("#table-operators tr").count() == 0
    assert page.locator("#chart-heatmap rect.cell").count() == 0

    refused = open_reports(chromium, server, "sup", query="?start=garbage&end=" + today.isoformat())
    assert refused.input_value("#f-start") == config["start"]
    assert refused.locator("#report-error").is_hidden()
    assert refused.errors == []

    # A phone: the twelve-column tables scroll inside their sections; the page did not fit (922 px
    # wide at 390) and the filters ran off the screen.
    phone = open_reports(chromium, server, "sup", width=390)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    assert phone.locator("#f-label").bounding_box()["x"] + phone.locator("#f-label").bounding_box()["width"] <= 390
    assert phone.errors == []


def test_a_string_the_russian_table_lacks_reads_in_english(chromium, live_server_factory):  # noqa: ANN001
    """reports.js with a top-level key and a key of a nested table gone from its Russian table:
    those two read in English, the rest stays Russian (it showed nothing)."""
    make_user("sup", role=AgentRole.SUPERVISOR, branch=make_branch("North"))
    server = live_server_factory({"DJANGO_ALLOW_ASYNC_UNSAFE": ""})
    source = (live.ROOT / "static" / "messenger" / "reports.js").read_text()
    english, russian = source.split("\n    ru: {\n")
    for entry in ('chartConversations: "Новые и решённые диалоги по дням", ', '"conversations.new": "Новые диалоги", '):
        assert entry in russian
        russian = russian.replace(entry, "")
    lacking = english + "\n    ru: {\n" + russian

    page = open_reports(chromium, server, "sup", locale="ru-RU")
    assert page.locator("#chart-conversations figcaption").inner_text() == "Новые и решённые диалоги по дням"
    assert page.locator("#figures dt").first.inner_text() == "Новые диалоги"
    page.route(
        "**/static/messenger/reports.js*",
        lambda route: route.fulfill(body=lacking, content_type="text/javascript; charset=utf-8"),
    )
    page.reload()
    deadline = time.monotonic() + TIMEOUT / 1000
    while page.locator("body").get_attribute("data-loaded") != "1":
        assert time.monotonic() < deadline, page.errors
        page.wait_for_timeout(50)
    assert page.locator("#chart-conversations figcaption").inner_text() == "New and resolved conversations per day"
    labels = page.locator("#figures dt").all_inner_texts()
    assert labels[:2] == ["New conversations", "Решено"]
    assert page.locator("#chart-first-response figcaption").inner_text() == "Первый ответ по дням (медиана)"
    assert page.errors == []
