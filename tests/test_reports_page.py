"""The dashboard's reports page and its session-authenticated reads (/api/operator/reports/…): the
same answers as /api/v1/reports/ for the same query, an operator's own figures only, no answer to
anyone without a staff session, CSV as text/csv. The page itself in a browser:
tests/test_reports_browser.py."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from messenger.api.v1 import reports as report_api
from tests.test_reports import BERLIN_DAY, api_for, build_world

pytestmark = pytest.mark.django_db
NAMES = ["summary", *report_api.ROWS]


@pytest.fixture
def world():
    return build_world()


def session(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def url(name: str, csv: bool = False) -> str:
    return f"/api/operator/reports/{name}/" + ("csv/" if csv else "")


@pytest.mark.parametrize("name", NAMES)
def test_session_answers_equal_v1(world, name):
    """For every report, with and without a filter: the session read answers what v1 answers."""
    api = api_for(world["supervisor"])
    client = session(world["supervisor"])
    answers = []
    for params in (BERLIN_DAY, {**BERLIN_DAY, "inbox": world["inbox_b"].pk}, {**BERLIN_DAY, "tz": "UTC"}):
        ours = client.get(url(name), params)
        assert ours.status_code == 200, ours.content
        theirs = api.get(f"reports/{name}", params)
        assert theirs.status_code == 200
        assert ours.json() == theirs.json()
        answers.append(ours.json())
    if name == "summary":
        # C1–C5 in the Berlin day; C5 alone in inbox B; the UTC day has C2–C6.
        assert [answer["figures"]["conversations"]["new"] for answer in answers] == [5, 1, 5]
        assert answers[2]["range"]["tz"] == "UTC"


@pytest.mark.parametrize("name", list(report_api.ROWS))
def test_csv_for_every_table(world, name):
    client = session(world["supervisor"])
    response = client.get(url(name, csv=True), BERLIN_DAY)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="{name}-2026-03-29-2026-03-29.csv"'
    v1 = api_for(world["supervisor"]).get(f"reports/{name}/csv", BERLIN_DAY)
    assert response.content == v1.content
    assert response.content.decode().splitlines()[0].split(",") == list(
        report_api.SHAPES[name]().fields["results"].child.fields
    )


def test_operator_sees_only_own_figures(world):
    op1 = world["op1"]
    client = session(op1)
    figures = client.get(url("summary"), BERLIN_DAY).json()["figures"]
    assert figures["conversations"]["new"] == 2  # C1 and C4, op1's
    rows = client.get(url("operators"), BERLIN_DAY).json()["results"]
    assert [row["id"] for row in rows] == [op1.pk]
    assert client.get(url("summary"), {**BERLIN_DAY, "operator": op1.pk}).status_code == 200
    # Another operator's figures, or a branch out of reach: not found, as on /api/v1/.
    for params in ({"operator": world["op2"].pk}, {"branch": world["branch_b"].pk}):
        response = client.get(url("summary"), {**BERLIN_DAY, **params})
        assert response.status_code == 404
        assert client.get(url("operators", csv=True), {**BERLIN_DAY, **params}).status_code == 404


def test_no_staff_session_no_report(world):
    from django.contrib.auth import get_user_model

    for name in NAMES:
        assert Client().get(url(name), BERLIN_DAY).status_code == 403
    assert Client().get(url("series", csv=True), BERLIN_DAY).status_code == 403
    outsider = get_user_model().objects.create_user(username="outsider", password="pw-outsider")
    assert session(outsider).get(url("summary"), BERLIN_DAY).status_code == 403
    # A bearer token is for /api/v1/, not for the session reads.
    token_headers = {"Authorization": api_for(world["supervisor"]).headers["Authorization"]}
    assert Client().get(url("summary"), BERLIN_DAY, headers=token_headers).status_code == 403


def test_bad_query_is_400(world):
    client = session(world["supervisor"])
    for params in ({"start": "2026-03-29"}, {**BERLIN_DAY, "tz": "Mars/Olympus"}, {**BERLIN_DAY, "end": "2026-03-01"}):
        assert client.get(url("summary"), params).status_code == 400


def test_page_for_staff_only(world):
    response = Client().get("/dashboard/reports/")
    assert response.status_code == 302 and "/login" in response["Location"]
    assert Client().get("/analytics/")["Location"] == "/dashboard/reports/"

    page = session(world["supervisor"]).get("/dashboard/reports/")
    assert page.status_code == 200
    assert "script-src 'self'" in page["Content-Security-Policy"]
    html = page.content.decode()
    assert "/static/messenger/reports.js" in html and 'id="f-operator"' in html
    # Nothing inline the CSP would refuse: scripts from files, the configuration as JSON data.
    scripts = re.findall(r"<script([^>]*)>", html)
    assert scripts == [' id="config" type="application/json"', ' src="/static/messenger/reports.js" defer']
    markup = re.sub(r'<script id="config".*?</script>', "", html, flags=re.S)
    assert not re.search(r"\s(style|on[a-z]+)=", markup)
    config = json.loads(html.split('<script id="config" type="application/json">')[1].split("</script>")[0])
    assert config["tz"] == "Europe/Berlin"  # the supervisor's branch's zone
    assert {row["name"] for row in config["choices"]["operators"]} >= {"Olga", "Oleg", "Otto"}
    assert config["urls"]["summary"] == "/api/operator/reports/summary/"

    assert 'href="/dashboard/reports/"' in session(world["op1"]).get("/dashboard/").content.decode()
    mine = session(world["op1"]).get("/dashboard/reports/").content.decode()
    config = json.loads(mine.split('<script id="config" type="application/json">')[1].split("</script>")[0])
    assert [row["name"] for row in config["choices"]["operators"]] == ["Olga"]
    assert [row["name"] for row in config["choices"]["branches"]] == ["Alpha"]
    assert 'id="f-operator"' not in mine
