"""Static files as production serves them: a DEBUG=0 daphne process after collectstatic.

The embed URL stays the same for ever and is cached briefly; the widget behind it has a hashed
name cached for a year; both travel brotli- or gzip-compressed. Plus the favicon.
"""

from __future__ import annotations

import gzip
import re
import urllib.request

import brotli
import pytest
from django.test import Client

from tests import live
from tests.factories import make_branch, make_inbox
from tests.live import ROOT

pytestmark = pytest.mark.django_db(transaction=True)

SOURCE = ROOT / "static" / "messenger"
HASHED_WIDGET = re.compile(r'new URL\("(widget\.[0-9a-f]{12}\.js)", s\.src\)')
YEAR = "max-age=31536000, public, immutable"
SHORT = "max-age=300, public"
PRODUCTION = {"DEBUG": "0", "SECRET_KEY": "static-files-test-" + "k" * 40}


@pytest.fixture
def production(live_server_factory, collected_static_root):  # noqa: ANN001
    server = live_server_factory(
        {**PRODUCTION, "STATIC_ROOT": str(collected_static_root), "DJANGO_ALLOW_ASYNC_UNSAFE": ""}
    )
    yield server
    server.stop(kill=True)


def fetch(url: str, accept_encoding: str | None = "gzip, br") -> tuple[int, dict[str, str], bytes]:
    """Status, headers and the body as it came over the wire (urllib decompresses nothing)."""
    request = urllib.request.Request(url, headers={"Accept-Encoding": accept_encoding} if accept_encoding else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, dict(response.headers.items()), response.read()


def decoded(headers: dict[str, str], body: bytes) -> bytes:
    encoding = headers.get("Content-Encoding")
    if encoding == "br":
        return brotli.decompress(body)
    if encoding == "gzip":
        return gzip.decompress(body)
    assert encoding is None, encoding
    return body


def test_embed_url_is_short_cached_compressed_and_loads_the_year_cached_hashed_widget(production):
    status, headers, body = fetch(production.url + "/static/messenger/widget-loader.js")
    assert status == 200
    assert headers["Content-Encoding"] == "br"
    assert headers["Cache-Control"] == SHORT
    assert "Accept-Encoding" in headers["Vary"]
    loader = decoded(headers, body).decode()
    # collectstatic wrote the hashed name into the stable copy; the source keeps the plain one.
    hashed = HASHED_WIDGET.search(loader).group(1)
    assert 'new URL("widget.js", s.src)' in (SOURCE / "widget-loader.js").read_text()

    status, headers, body = fetch(production.url + f"/static/messenger/{hashed}")
    assert status == 200
    assert headers["Content-Encoding"] == "br"
    assert headers["Cache-Control"] == YEAR
    assert len(body) <= 20_000, len(body)
    assert int(headers["Content-Length"]) == len(body)
    assert decoded(headers, body) == (SOURCE / "widget.js").read_bytes()

    # A client that only speaks gzip gets gzip, within the same budget.
    status, headers, body = fetch(production.url + f"/static/messenger/{hashed}", "gzip")
    assert headers["Content-Encoding"] == "gzip" and len(body) <= 20_000, len(body)
    assert decoded(headers, body) == (SOURCE / "widget.js").read_bytes()
    # And one that asks for nothing gets the plain file.
    status, headers, body = fetch(production.url + f"/static/messenger/{hashed}", None)
    assert "Content-Encoding" not in headers and body == (SOURCE / "widget.js").read_bytes()


def test_old_direct_embed_url_still_works_compressed_with_a_short_cache(production):
    status, headers, body = fetch(production.url + "/static/messenger/widget.js")
    assert status == 200
    assert headers["Content-Encoding"] == "br" and len(body) <= 20_000
    assert headers["Cache-Control"] == SHORT
    assert decoded(headers, body) == (SOURCE / "widget.js").read_bytes()


def test_dashboard_assets_are_hashed_in_production(production):
    status, headers, body = fetch(production.url + "/accounts/login/")
    page = decoded(headers, body).decode()
    stylesheet = re.search(r'href="(/static/messenger/dashboard\.[0-9a-f]{12}\.css)"', page).group(1)
    status, headers, body = fetch(production.url + stylesheet)
    assert status == 200 and headers["Cache-Control"] == YEAR
    assert headers["Content-Encoding"] == "br"


def test_favicon_is_served_at_the_root_and_linked_from_the_pages(production):
    status, headers, body = fetch(production.url + "/favicon.ico")
    assert status == 200
    assert headers["Content-Type"] in ("image/x-icon", "image/vnd.microsoft.icon")
    assert decoded(headers, body) == (ROOT / "public" / "favicon.ico").read_bytes()
    for path in ("/accounts/login/", "/admin/login/"):
        status, headers, body = fetch(production.url + path)
        assert '<link rel="icon" href="/favicon.ico">' in decoded(headers, body).decode(), path


def test_favicon_in_the_embedded_default():
    client = Client()
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == (ROOT / "public" / "favicon.ico").read_bytes()
    for path in ("/accounts/login/", "/admin/login/"):
        assert b'<link rel="icon" href="/favicon.ico">' in client.get(path).content, path


@pytest.fixture(scope="module")
def orm_beside_playwright(django_db_setup):  # noqa: ANN001
    with live.orm_beside_playwright():
        yield


@pytest.mark.browser
def test_demo_page_loads_the_hashed_widget_in_production(orm_beside_playwright, chromium, production):  # noqa: ANN001
    inbox = make_inbox(make_branch())
    context = chromium.new_context()
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    try:
        page.set_default_timeout(10_000)
        page.goto(f"{production.other_origin_url}/demo/?token={inbox.widget_token}")
        page.wait_for_function(
            "() => window.ProfiMessenger && !window.ProfiMessenger._stub"
            " && window.ProfiMessenger.connection === 'online'"
        )
        scripts = [url for url in requested if "/static/messenger/" in url]
        assert scripts[0] == f"{production.url}/static/messenger/widget-loader.js"
        assert re.fullmatch(re.escape(production.url) + r"/static/messenger/widget\.[0-9a-f]{12}\.js", scripts[1])
        assert len(scripts) == 2
    finally:
        context.close()

    # A loader cached from before a release names a hashed widget the server no longer has: the
    # plain name, which every release has, takes over.
    context = chromium.new_context()
    context.route(re.compile(r".*/static/messenger/widget\.[0-9a-f]{12}\.js$"), lambda route: route.fulfill(status=404))
    page = context.new_page()
    requested.clear()
    page.on("request", lambda request: requested.append(request.url))
    try:
        page.set_default_timeout(10_000)
        page.goto(f"{production.other_origin_url}/demo/?token={inbox.widget_token}")
        page.wait_for_function(
            "() => window.ProfiMessenger && !window.ProfiMessenger._stub"
            " && window.ProfiMessenger.connection === 'online'"
        )
        scripts = [url for url in requested if "/static/messenger/" in url]
        assert scripts[2] == f"{production.url}/static/messenger/widget.js"
        assert page.evaluate("document.querySelectorAll('script[src*=\"/messenger/widget.\"]').length") == 1
    finally:
        context.close()
