"""Headers every page and API answer carries, and CSRF on the operator's HTTP side."""

import re

import pytest
from django.test import Client

from tests.factories import make_branch, make_user

pytestmark = pytest.mark.django_db


def test_pages_carry_csp_nosniff_and_frame_denial():
    operator = make_user(branch=make_branch())
    client = Client()
    client.force_login(operator)
    for url in ("/dashboard/", "/dashboard/reports/", "/accounts/login/", "/demo/?token=x"):
        response = client.get(url)
        assert response.status_code in (200, 404), url
        assert response["X-Content-Type-Options"] == "nosniff"
        csp = response["Content-Security-Policy"]
        assert "default-src 'self'" in csp or "default-src 'none'" in csp, url
        assert "object-src 'none'" in csp or "default-src 'none'" in csp, url
        assert "unsafe-eval" not in csp
    dashboard = client.get("/dashboard/")
    assert dashboard["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in dashboard["Content-Security-Policy"]


def test_api_answers_are_nosniff_json():
    response = Client().post("/api/widget/bootstrap/", {"widget_token": "nope"}, content_type="application/json")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response["X-Content-Type-Options"] == "nosniff"
    # An address under /api/ that no route takes (an id that is not a number) answers JSON too.
    unknown = Client().get("/api/attachments/not-a-number/")
    assert unknown.status_code == 404
    assert unknown.json() == {"detail": "Not found.", "code": "not_found"}
    page = Client().get("/no-such-page/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")


def test_operator_http_requires_csrf():
    operator = make_user(branch=make_branch())
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    response = client.post("/api/operator/attachments/", {"conversation_id": 1})
    assert response.status_code == 403
    logout = client.post("/accounts/logout/")
    assert logout.status_code == 403


def test_https_redirect_spares_health_and_believes_the_proxy_header(settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 3600
    client = Client()
    plain = client.get("/accounts/login/")
    assert (plain.status_code, plain["Location"]) == (301, "https://testserver/accounts/login/")
    behind_tls = client.get("/accounts/login/", headers={"X-Forwarded-Proto": "https"})
    assert behind_tls.status_code == 200
    assert behind_tls["Strict-Transport-Security"] == "max-age=3600"
    # The orchestrator's and the proxy's plain-HTTP probe gets the real answer, not a redirect.
    assert client.get("/health/").status_code == 200


def test_api_docs_page_runs_no_inline_script_under_our_csp():
    """Swagger UI at /api/docs/: our CSP (script-src 'self', no 'unsafe-inline'), every script a
    file of ours, its own start-up script included."""
    client = Client()
    page = client.get("/api/docs/")
    assert page.status_code == 200
    csp = page["Content-Security-Policy"]
    script_src = next(part for part in csp.split(";") if part.strip().startswith("script-src"))
    assert script_src.strip() == "script-src 'self'"
    html = page.content.decode()
    scripts = re.findall(r"<script([^>]*)>", html)
    assert scripts and all(re.fullmatch(r' src="/[^"/][^"]*"', attributes) for attributes in scripts), scripts
    assert '<script src="/api/docs/?script="></script>' in html
    assert "cdn" not in html.lower() and "//" not in "".join(re.findall(r'(?:src|href)="([^"]*)"', html))
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert '"validatorUrl": null' in script.content.decode()
