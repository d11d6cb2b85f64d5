"""The API documentation page (/api/docs/, Swagger UI) in a real browser, as production serves it:
a DEBUG=0 server after collectstatic, our Content-Security-Policy, no request leaving the server."""

from __future__ import annotations

import re

import pytest
from drf_spectacular.generators import SchemaGenerator

from tests import live
from tests.live import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PRODUCTION = {"DEBUG": "0", "SECRET_KEY": "api-docs-test-" + "k" * 40, "DJANGO_ALLOW_ASYNC_UNSAFE": ""}


@pytest.fixture(scope="module", autouse=True)
def _orm_beside_playwright(django_db_setup):  # noqa: ANN001
    with live.orm_beside_playwright():
        yield


def documented_operations() -> set[tuple[str, str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return {(method.upper(), path) for path, methods in schema["paths"].items() for method in methods}


def test_docs_page_lists_every_operation_from_our_own_files(chromium, live_server_factory, collected_static_root):  # noqa: ANN001
    server = live_server_factory({**PRODUCTION, "STATIC_ROOT": str(collected_static_root)})
    context = chromium.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    requested: list[str] = []
    console: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
    try:
        response = page.goto(server.url + "/api/docs/")
        assert response is not None and response.status == 200
        csp = response.headers["content-security-policy"]
        assert "script-src 'self';" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]

        page.wait_for_selector(".opblock-summary-path")
        shown: set[tuple[str, str]] = set()
        for block in page.locator(".opblock-summary").all():
            method = block.locator(".opblock-summary-method").inner_text().strip().upper()
            path = block.locator(".opblock-summary-path").get_attribute("data-path")
            shown.add((method, path))
        screenshot(page, "api-docs")
        assert shown == documented_operations()
        assert page.locator(".errors-wrapper").count() == 0

        # Opening an operation shows its documented responses (the schema was read, not only listed).
        page.locator('.opblock-summary-path[data-path="/api/widget/bootstrap/"]').first.click()
        page.wait_for_selector(".responses-table .response[data-code='200']")
    finally:
        context.close()

    assert all(url.startswith(server.url + "/") for url in requested), requested
    # Production serves Swagger UI's files under hashed names (collectstatic), as every static file.
    assets = [url for url in requested if "/static/drf_spectacular_sidecar/" in url]
    assert any(re.search(r"/swagger-ui-bundle\.[0-9a-f]{12}\.js$", url) for url in assets), assets
    assert any(url == server.url + "/api/docs/?script=" for url in requested), requested
    problems = [
        line for line in console if line.startswith(("error", "pageerror")) or "Content Security Policy" in line
    ]
    assert not problems, problems
