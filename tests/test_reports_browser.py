"""The reports page in Chromium against a live server, on the fixture day of tests/test_reports.py
(Berlin's spring-forward Sunday): a supervisor sees the figures the session API gives for the same
query, changes a filter and sees them change, downloads a CSV; an operator sees their own figures;
no page error and no console error (a CSP violation is one). Screenshots: artifacts/reports/."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests import live
from tests.live import ROOT
from tests.test_reports import build_world

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TIMEOUT = 15_000
DAY = "start=2026-03-29&end=2026-03-29&tz=Europe/Berlin"
SHOTS = ROOT / "artifacts" / "reports"


@pytest.fixture(scope="module", autouse=True)
def _orm_beside_playwright(django_db_setup):  # noqa: ANN001
    with live.orm_beside_playwright():
        yield


def open_reports(browser: Any, server: Any, username: str, query: str) -> Any:
    context = browser.new_context(viewport={"width": 1300, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.errors = errors
    page.goto(server.url + "/accounts/login/?next=/dashboard/reports/")
    page.fill("#id_username", username)
    page.fill("#id_password", "pw-" + username)
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard/reports/**")
    page.goto(server.url + "/dashboard/reports/?" + query)
    wait_loaded(page, "1")
    return page


def wait_loaded(page: Any, generation: str) -> None:
    """Until the page has drawn the report of its ``generation``-th load (``body[data-loaded]``)."""
    deadline = time.monotonic() + TIMEOUT / 1000
    while page.locator("body").get_attribute("data-loaded") != generation:
        error = page.locator("#report-error").inner_text()
        assert time.monotonic() < deadline, f"not loaded: {page.errors} {error!r}"
        page.wait_for_timeout(50)


def api(page: Any, server: Any, name: str, query: str) -> Any:
    """The session read the page uses, with the page's own cookies."""
    response = page.request.get(f"{server.url}/api/operator/reports/{name}/?{query}")
    assert response.ok, response.text()
    return response.json()


def value(text: str | None) -> Any:
    """A shown raw value as the API's: numbers compared as numbers (JavaScript writes 4.0 as "4")."""
    if text in ("", None):
        return None
    try:
        return float(text)
    except ValueError:
        return text


def shown_figures(page: Any) -> dict[str, Any]:
    cells = page.locator("#figures dd")
    return {
        cells.nth(i).get_attribute("data-figure"): value(cells.nth(i).get_attribute("data-value"))
        for i in range(cells.count())
    }


def expected_figures(figures: dict) -> dict[str, Any]:
    def pick(path: str) -> Any:
        value: Any = figures
        for key in path.split("."):
            value = value[key]
        return value

    return {path: value("" if pick(path) is None else str(pick(path))) for path in shown_path_list}


shown_path_list = [
    "conversations.new",
    "conversations.resolved",
    "conversations.reopened",
    "conversations.missed",
    "conversations.abandoned",
    "first_response.median",
    "first_response.p90",
    "first_response_working_hours.median",
    "resolution.median",
    "queue_wait.mean",
    "messages_per_conversation",
    "escalations",
    "transfers",
    "csat.average",
    "nps.score",
]


def table_rows(page: Any, table: str) -> list[dict[str, Any]]:
    rows = []
    for line in page.locator(f"#{table} tbody tr[data-id]").all():
        cells = line.locator("td")
        rows.append(
            {
                cells.nth(i).get_attribute("data-key"): value(cells.nth(i).get_attribute("data-value"))
                for i in range(cells.count())
            }
        )
    return rows


def as_shown(rows: list[dict], keys: list[str]) -> list[dict[str, Any]]:
    return [{key: value("" if row[key] is None else str(row[key])) for key in keys} for row in rows]


def test_reports_page(chromium, live_server_factory):  # noqa: ANN001
    world = build_world()
    server = live_server_factory({"DJANGO_ALLOW_ASYNC_UNSAFE": ""})
    SHOTS.mkdir(parents=True, exist_ok=True)

    sup = open_reports(chromium, server, "sup", DAY)
    assert sup.title().startswith("Reports")
    summary = api(sup, server, "summary", DAY)
    assert summary["figures"]["conversations"]["new"] == 5
    assert shown_figures(sup) == expected_figures(summary["figures"])
    assert sup.locator('#figures dd[data-figure="conversations.new"]').inner_text() == "5"
    assert (
        sup.locator('#figures dd[data-figure="first_response.median"]').inner_text() == "6 min 0 s"
    )  # median of 60, 120, 600, 1800 s

    operators = api(sup, server, "operators", DAY)["results"]
    keys = ["name", "new", "resolved", "first_response_median", "csat_average"]
    assert as_shown(table_rows(sup, "table-operators"), keys) == as_shown(operators, keys)
    # The charts: accessible SVG, one bar pair per operator, the heat map's 168 hours, 5 stars.
    assert sup.locator("#chart-operators svg[role=img] > title").text_content() == "Conversations per operator"
    assert sup.locator("#chart-operators rect.bar.s-new").count() == len(operators)
    assert sup.locator("#chart-conversations svg path").count() == 2
    assert sup.locator("#chart-heatmap rect.cell").count() == 168
    # C4 at 14:00 Berlin on a Sunday; C1 at 00:30.
    assert sup.locator('#chart-heatmap rect[data-weekday="6"][data-hour="14"]').get_attribute("data-new") == "1"
    assert sup.locator('#chart-heatmap rect[data-weekday="6"][data-hour="0"]').get_attribute("data-new") == "1"
    csat = summary["figures"]["csat"]
    assert sup.locator("#chart-csat figcaption").inner_text() == f"CSAT: {csat['count']} ratings, average 4.00"
    stars = [sup.locator("#chart-csat rect > title").nth(i).text_content() for i in range(5)]
    assert stars == [f"{star}★: {csat['distribution'].get(str(star), 0)}" for star in range(1, 6)]
    sup.screenshot(path=str(SHOTS / "supervisor.png"), full_page=True)

    # A filter: inbox B has C5 alone; the address keeps it.
    sup.select_option("#f-inbox", str(world["inbox_b"].pk))
    wait_loaded(sup, "2")
    query_b = f"{DAY}&inbox={world['inbox_b'].pk}"
    assert f"inbox={world['inbox_b'].pk}" in sup.url
    filtered = api(sup, server, "summary", query_b)
    assert filtered["figures"]["conversations"]["new"] == 1
    assert shown_figures(sup) == expected_figures(filtered["figures"])
    assert [row["name"] for row in table_rows(sup, "table-operators")] == ["Otto"]
    sup.screenshot(path=str(SHOTS / "supervisor-inbox-filter.png"), full_page=True)

    # A CSV download: the table as the session CSV gives it for the same query.
    with sup.expect_download() as download_info:
        sup.click('a[data-csv="operators"]')
    download = download_info.value
    assert download.suggested_filename == "operators-2026-03-29-2026-03-29.csv"
    content = Path(download.path()).read_bytes()
    expected = sup.request.get(f"{server.url}/api/operator/reports/operators/csv/?{query_b}").body()
    assert content == expected
    assert content.decode().splitlines()[1].startswith(f"{world['op3'].pk},Otto,1,1,")
    assert sup.errors == []

    # An operator: their own figures only, no operator filter.
    olga = open_reports(chromium, server, "op1", DAY)
    mine = api(olga, server, "summary", DAY)
    assert mine["figures"]["conversations"]["new"] == 2
    assert shown_figures(olga) == expected_figures(mine["figures"])
    assert [row["name"] for row in table_rows(olga, "table-operators")] == ["Olga"]
    assert olga.locator("#f-operator").count() == 0
    olga.screenshot(path=str(SHOTS / "operator.png"), full_page=True)
    assert olga.errors == []
