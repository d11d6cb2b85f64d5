"""Analytics (docs/analytics.md): every figure against hand-computed fixtures, days and hours in a
zone east and west of UTC and across daylight-saving changes, working-hours first response across
a night and a weekend, operator scope, bad input, CSV and pinned query counts. The same test runs on
PostgreSQL and on SQLite against the same constants: both databases give the same figures."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from messenger.actions.api_tokens import do_create_api_token
from messenger.actions.base import Actor
from messenger.actions.report_facts import do_fill_working_seconds, do_rebuild_report_facts
from messenger.api.v1 import reports as report_api
from messenger.models import AgentRole, Label, Region
from messenger.routing.hours import schedule_open_seconds
from tests.factories import make_audit, make_branch, make_conversation, make_inbox, make_message, make_user
from tests.test_api_v1 import Api

pytestmark = pytest.mark.django_db


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def api_for(user) -> Api:
    return Api(do_create_api_token(user=user, name="reports", actor=Actor.system("test"))[1])


def check_shape(name: str, body: dict) -> None:
    """The answer is what the schema says (the serializer accepts it back)."""
    shape = report_api.V1ReportSummary if name == "summary" else report_api.VIEWS[name][0].serializer_class
    data = shape(data=body)
    assert data.is_valid(), data.errors


@pytest.fixture
def world():
    return build_world()


def build_world() -> dict:
    """Berlin's spring-forward day, 2026-03-29 (a Sunday: 23 hours; 02:00 CET → 03:00 CEST at
    01:00 UTC). The day in Europe/Berlin is [2026-03-28 23:00Z, 2026-03-29 22:00Z).

    C1 inbox A, op1: created 23:30Z on the 28th (local 00:30 CET, Sunday). Visitor 23:30:00;
    bot auto-reply 23:30:05 (not a response); op1's internal note 23:31 (not a response); op1
    replies 23:32 → first response 120 s. Visitor 23:40, op1 23:41 → 4 counted messages.
    Resolved 01:30Z → resolution 2 h = 7200 s. Rated 5 stars "great" 01:31Z.
    C2 inbox A, op2: created 08:00Z (10:00 CEST). Visitor 08:00, op2 08:10 → 600 s; op2 08:11
    deleted (not counted) → 2 messages. Resolved 09:00Z (3600 s), rated 3; reopened 10:00Z;
    resolved again 11:00Z; rated 4 "better" 11:05Z (the current rating).
    C3 inbox A, nobody: created 20:00Z (22:00 local), visitor writes, nobody answers, closed
    21:00Z → missed and abandoned (never assigned). 1 message.
    C4 inbox A, op1: created 12:00Z (14:00), visitor 12:00, assigned to op1 12:05 (queue wait
    300 s), escalated 12:06, chain ran out 12:07, transferred 12:08, op1 answers 12:30 → 1800 s.
    C5 inbox B (branch B, region R), op3: created 10:00Z (12:00), visitor 10:00, op3 10:01 →
    60 s. Resolved 10:20Z (1200 s). NPS 9 at 10:30Z.
    C6 inbox A: created 22:30Z on the 29th (00:30 on the 30th in Berlin): outside the Berlin day,
    inside the UTC day. Visitor writes, open, unanswered (not missed: still open).
    """
    branch_a = make_branch("Alpha", timezone="Europe/Berlin")
    branch_b = make_branch("Beta", timezone="Europe/Berlin")
    region = Region.objects.create(name="North")
    inbox_a, inbox_b = make_inbox(branch_a), make_inbox(branch_b)
    op1 = make_user("op1", branch=branch_a, first_name="Olga")
    op2 = make_user("op2", branch=branch_a, first_name="Oleg")
    op3 = make_user("op3", branch=branch_b, first_name="Otto")
    supervisor = make_user("sup", role=AgentRole.SUPERVISOR, branch=branch_a)
    label = Label.objects.create(name="vip")

    c1 = make_conversation(inbox_a, at=utc(2026, 3, 28, 23, 30), assignee=op1, status="resolved")
    make_message(c1, at=utc(2026, 3, 28, 23, 30))
    make_message(c1, at=utc(2026, 3, 28, 23, 30, 5), direction="out", sender_type="bot")
    make_message(c1, at=utc(2026, 3, 28, 23, 31), direction="internal", user=op1)
    make_message(c1, at=utc(2026, 3, 28, 23, 32), direction="out", user=op1)
    make_message(c1, at=utc(2026, 3, 28, 23, 40))
    make_message(c1, at=utc(2026, 3, 28, 23, 41), direction="out", user=op1)
    make_audit(c1, "conversation.status", at=utc(2026, 3, 29, 1, 30), payload={"from": "open", "to": "resolved"})
    make_audit(c1, "conversation.rated", at=utc(2026, 3, 29, 1, 31), payload={"score": 5, "scale": "stars"})
    type(c1).objects.filter(pk=c1.pk).update(rating_score=5, rating_comment="great", rated_at=utc(2026, 3, 29, 1, 31))
    c1.labels.add(label)

    c2 = make_conversation(inbox_a, at=utc(2026, 3, 29, 8), assignee=op2, status="resolved")
    # Routing assigned op2 as the conversation started, a moment before the message was stored.
    make_audit(c2, "assignment.assigned", at=utc(2026, 3, 29, 7, 59, 59), payload={"to": {"id": op2.pk}})
    make_message(c2, at=utc(2026, 3, 29, 8))
    make_message(c2, at=utc(2026, 3, 29, 8, 10), direction="out", user=op2)
    make_message(c2, at=utc(2026, 3, 29, 8, 11), direction="out", user=op2, content_attributes={"deleted": True})
    make_audit(c2, "conversation.status", at=utc(2026, 3, 29, 9), payload={"from": "open", "to": "resolved"})
    make_audit(c2, "conversation.rated", at=utc(2026, 3, 29, 9, 5), payload={"score": 3, "scale": "stars"})
    make_audit(c2, "conversation.status", at=utc(2026, 3, 29, 10), payload={"from": "resolved", "to": "open"})
    make_audit(c2, "conversation.status", at=utc(2026, 3, 29, 11), payload={"from": "open", "to": "resolved"})
    make_audit(c2, "conversation.rated", at=utc(2026, 3, 29, 11, 5), payload={"score": 4, "scale": "stars"})
    type(c2).objects.filter(pk=c2.pk).update(rating_score=4, rating_comment="better", rated_at=utc(2026, 3, 29, 11, 5))

    c3 = make_conversation(inbox_a, at=utc(2026, 3, 29, 20), status="closed")
    make_message(c3, at=utc(2026, 3, 29, 20))
    make_audit(c3, "conversation.status", at=utc(2026, 3, 29, 21), payload={"from": "open", "to": "closed"})

    c4 = make_conversation(inbox_a, at=utc(2026, 3, 29, 12), assignee=op1)
    make_message(c4, at=utc(2026, 3, 29, 12))
    make_audit(c4, "assignment.assigned", at=utc(2026, 3, 29, 12, 5), payload={"to": {"id": op1.pk}, "from": None})
    make_audit(c4, "assignment.escalated", at=utc(2026, 3, 29, 12, 6), payload={"to": {"id": op2.pk}})
    make_audit(c4, "assignment.escalation_queued", at=utc(2026, 3, 29, 12, 7), payload={"to": None})
    make_audit(c4, "conversation.transferred", at=utc(2026, 3, 29, 12, 8), payload={"to_user": op1.pk})
    make_message(c4, at=utc(2026, 3, 29, 12, 30), direction="out", user=op1)

    c5 = make_conversation(inbox_b, at=utc(2026, 3, 29, 10), assignee=op3, status="resolved", region=region)
    make_message(c5, at=utc(2026, 3, 29, 10))
    make_message(c5, at=utc(2026, 3, 29, 10, 1), direction="out", user=op3)
    make_audit(c5, "conversation.status", at=utc(2026, 3, 29, 10, 20), payload={"from": "open", "to": "resolved"})
    make_audit(c5, "conversation.rated", at=utc(2026, 3, 29, 10, 30), payload={"score": 9, "scale": "nps"})
    type(c5).objects.filter(pk=c5.pk).update(rating_score=9, rated_at=utc(2026, 3, 29, 10, 30))

    c6 = make_conversation(inbox_a, at=utc(2026, 3, 29, 22, 30))
    make_message(c6, at=utc(2026, 3, 29, 22, 30))
    # The rows above were written directly, not by the actions: their report facts are rebuilt
    # from them, as after an import (tests/test_report_facts.py checks the actions keep the same).
    do_rebuild_report_facts()
    do_fill_working_seconds()
    return {
        "branch_a": branch_a,
        "branch_b": branch_b,
        "region": region,
        "inbox_a": inbox_a,
        "inbox_b": inbox_b,
        "op1": op1,
        "op2": op2,
        "op3": op3,
        "supervisor": supervisor,
        "label": label,
        "c": [c1, c2, c3, c4, c5, c6],
    }


BERLIN_DAY = {"start": "2026-03-29", "end": "2026-03-29", "tz": "Europe/Berlin"}


def summary(api: Api, **params) -> dict:
    response = api.get("reports/summary", {**BERLIN_DAY, **params})
    assert response.status_code == 200, response.content
    check_shape("summary", response.json())
    return response.json()["figures"]


def test_summary_figures_by_hand(world):
    figures = summary(api_for(world["supervisor"]))
    # New C1..C5 (C6 is on the 30th in Berlin). Resolved: C1, C2 twice, C5 = 4; reopened: C2.
    assert figures["conversations"] == {"new": 5, "resolved": 4, "reopened": 1, "missed": 1, "abandoned": 1}
    # First responses 60, 120, 600, 1800: median (120+600)/2 = 360; p90 rank 2.7: 600 + 0.7·1200.
    assert figures["first_response"] == {"count": 4, "median": 360.0, "p90": 1440.0}
    # No inbox has working hours: the same.
    assert figures["first_response_working_hours"] == {"count": 4, "median": 360.0, "p90": 1440.0}
    # Resolutions (first per conversation) 1200, 3600, 7200: median 3600; p90 rank 1.8: 3600 + 0.8·3600.
    assert figures["resolution"] == {"count": 3, "median": 3600.0, "p90": 6480.0}
    # Queue waits 0 (C2: assigned before the visitor's message was stored), 60 (C5: the reply),
    # 120 (C1: the reply), 300 (C4: assigned 12:05): median (60+120)/2 = 90,
    # p90 rank 2.7: 120 + 0.7·180 = 246, mean 480/4 = 120.
    assert figures["queue_wait"] == {"count": 4, "median": 90.0, "p90": 246.0, "mean": 120.0}
    # Messages: C1 4 (bot and note excluded), C2 2 (deleted excluded), C3 1, C4 2, C5 2 → 11/5.
    assert figures["messages_per_conversation"] == 2.2
    assert (figures["escalations"], figures["escalation_chains_ran_out"], figures["transfers"]) == (1, 1, 1)
    # Stars 5, 3, 4 (C2 rated twice in the range): average 4.
    assert figures["csat"] == {"count": 3, "average": 4.0, "distribution": {"1": 0, "2": 0, "3": 1, "4": 1, "5": 1}}
    # One NPS answer, 9: a promoter → 100.
    assert figures["nps"] == {"count": 1, "promoters": 1, "passives": 0, "detractors": 0, "score": 100.0}


def test_tables_series_heatmap_ratings(world):
    api = api_for(world["supervisor"])
    operators = api.get("reports/operators", BERLIN_DAY).json()
    check_shape("operators", operators)
    by_name = {row["name"]: row for row in operators["results"]}
    # Olga (op1): C1 (120 s) and C4 (1800 s): median 960; C1 resolved in 7200 s, rated 5.
    assert by_name["Olga"]["new"] == 2 and by_name["Olga"]["first_response_median"] == 960.0
    assert by_name["Olga"]["resolution_median"] == 7200.0 and by_name["Olga"]["csat_average"] == 5.0
    # Oleg (op2): C2, resolved twice, rated 3 then 4 → 3.5.
    assert (by_name["Oleg"]["resolved"], by_name["Oleg"]["csat_average"]) == (2, 3.5)
    assert by_name["Otto"]["nps"] == 100.0
    # Unassigned: C3 (missed) — and C6, outside the day: no figures of its own in the range.
    assert by_name[""]["missed"] == 1 and by_name[""]["new"] == 1

    branches = {row["name"]: row for row in api.get("reports/branches", BERLIN_DAY).json()["results"]}
    assert (branches["Alpha"]["new"], branches["Beta"]["new"]) == (4, 1)
    regions = {row["name"]: row for row in api.get("reports/regions", BERLIN_DAY).json()["results"]}
    assert regions["North"]["first_response_median"] == 60.0 and regions[""]["new"] == 4

    series = api.get("reports/series", BERLIN_DAY).json()
    check_shape("series", series)
    assert series["results"] == [
        {"date": "2026-03-29", "new": 5, "resolved": 4, "missed": 1, "first_response_median": 360.0}
    ]
    assert series["range"]["since"] == "2026-03-28T23:00:00Z" and series["range"]["until"] == "2026-03-29T22:00:00Z"

    heat = api.get("reports/heatmap", BERLIN_DAY).json()
    check_shape("heatmap", heat)
    cells = {(cell["weekday"], cell["hour"]): cell for cell in heat["results"] if cell["new"]}
    # Sunday (6): C1 00:30 CET, C2 10:00 CEST, C5 12:00, C4 14:00, C3 22:00 (local hours).
    assert {key: cell["queue_wait_mean"] for key, cell in cells.items()} == {
        (6, 0): 120.0,
        (6, 10): 0.0,
        (6, 12): 60.0,
        (6, 14): 300.0,
        (6, 22): None,
    }
    assert len(heat["results"]) == 7 * 24

    ratings = api.get("reports/ratings", BERLIN_DAY).json()
    check_shape("ratings", ratings)
    assert [(row["score"], row["comment"]) for row in ratings["results"]] == [
        (4, "better"),  # 11:05Z
        (9, ""),  # 10:30Z
        (3, ""),  # 09:05Z, replaced by the 4: its comment is gone
        (5, "great"),  # 01:31Z
    ]


def test_days_in_utc_and_filters(world):
    api = api_for(world["supervisor"])
    # In UTC, C1 is on the 28th and C6 on the 29th.
    series = api.get("reports/series", {"start": "2026-03-28", "end": "2026-03-29", "tz": "UTC"}).json()["results"]
    assert [(day["date"], day["new"]) for day in series] == [("2026-03-28", 1), ("2026-03-29", 5)]
    assert summary(api, branch=world["branch_b"].pk)["conversations"]["new"] == 1
    assert summary(api, region=world["region"].pk)["first_response"]["median"] == 60.0
    assert summary(api, inbox=world["inbox_a"].pk)["conversations"]["new"] == 4
    assert summary(api, operator=world["op2"].pk)["conversations"]["resolved"] == 2
    assert summary(api, label=world["label"].pk)["first_response"] == {"count": 1, "median": 120.0, "p90": 120.0}


def test_operator_sees_only_own_figures(world):
    api = api_for(world["op1"])
    figures = summary(api)
    # C1 and C4 only: C2 (op2, same branch) and C5 (another branch) never count.
    assert figures["conversations"]["new"] == 2
    assert figures["first_response"] == {"count": 2, "median": 960.0, "p90": 1632.0}
    assert figures["csat"]["count"] == 1
    names = [row["name"] for row in api.get("reports/operators", BERLIN_DAY).json()["results"]]
    assert names == ["Olga"]
    assert "Otto" not in api.get("reports/operators/csv", BERLIN_DAY).content.decode()
    for params in ({"operator": world["op2"].pk}, {"branch": world["branch_b"].pk}, {"inbox": world["inbox_b"].pk}):
        response = api.get("reports/summary", {**BERLIN_DAY, **params})
        assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert summary(api, operator=world["op1"].pk)["conversations"]["new"] == 2


def test_csv_of_every_table(world):
    api = api_for(world["supervisor"])
    for name in report_api.VIEWS:
        response = api.get(f"reports/{name}/csv", BERLIN_DAY)
        assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(response.content.decode())))
        json_rows = api.get(f"reports/{name}", BERLIN_DAY).json()["results"]
        assert rows[0] == list(json_rows[0]) and len(rows) == len(json_rows) + 1
    series = api.get("reports/series/csv", BERLIN_DAY).content.decode().splitlines()
    assert series == ["date,new,resolved,missed,first_response_median", "2026-03-29,5,4,1,360.0"]


def test_daylight_saving_days_east_and_west():
    """Berlin's autumn day 2026-10-25 has 25 hours: [10-24 22:00Z, 10-25 23:00Z). New York's
    spring day 2026-03-08 has 23: [03-08 05:00Z, 03-09 04:00Z)."""
    supervisor = make_user("sup2", role=AgentRole.SUPERVISOR)
    inbox = make_inbox(make_branch())
    for moment in (
        utc(2026, 10, 24, 21, 50),  # Berlin 23:50 CEST on the 24th: out; NY 17:50 on the 24th
        utc(2026, 10, 24, 22, 30),  # Berlin 00:30 CEST on the 25th: in
        utc(2026, 10, 25, 22, 30),  # Berlin 23:30 CET on the 25th: in (the 25th hour)
        utc(2026, 10, 25, 23, 10),  # Berlin 00:10 on the 26th: out
        utc(2026, 3, 8, 6, 30),  # New York 01:30 EST on the 8th: in
        utc(2026, 3, 9, 3, 30),  # New York 23:30 EDT on the 8th: in
        utc(2026, 3, 9, 4, 30),  # New York 00:30 EDT on the 9th: out
        utc(2026, 3, 8, 4, 30),  # New York 23:30 EST on the 7th: out
    ):
        make_message(make_conversation(inbox, at=moment), at=moment)
    api = api_for(supervisor)
    berlin = api.get("reports/heatmap", {"start": "2026-10-25", "end": "2026-10-25", "tz": "Europe/Berlin"}).json()
    assert {(c["weekday"], c["hour"]): c["new"] for c in berlin["results"] if c["new"]} == {(6, 0): 1, (6, 23): 1}
    assert berlin["range"]["since"] == "2026-10-24T22:00:00Z" and berlin["range"]["until"] == "2026-10-25T23:00:00Z"
    york = api.get("reports/series", {"start": "2026-03-07", "end": "2026-03-09", "tz": "America/New_York"}).json()
    assert [(day["date"], day["new"]) for day in york["results"]] == [
        ("2026-03-07", 1),
        ("2026-03-08", 2),
        ("2026-03-09", 1),
    ]
    heat = api.get("reports/heatmap", {"start": "2026-03-08", "end": "2026-03-08", "tz": "America/New_York"}).json()
    assert {(c["weekday"], c["hour"]): c["new"] for c in heat["results"] if c["new"]} == {(6, 1): 1, (6, 23): 1}


def test_first_response_in_working_hours_across_a_night_and_a_weekend():
    """Inbox hours Mon–Fri 09:00–18:00 Europe/Berlin.

    W1: visitor Fri 2026-03-27 17:30 CET (16:30Z), reply Mon 03-30 09:15 CEST (07:15Z): 30 min on
    Friday + nothing on the weekend (Sunday is the 23-hour day) + 15 min on Monday = 2700 s; by the
    wall clock 2 d 14 h 45 min = 225 900 s.
    W2: visitor Tue 03-31 17:50 CEST (15:50Z), reply Wed 04-01 09:05 (07:05Z): 600 + 300 = 900 s;
    wall 15 h 15 min = 54 900 s.
    W3, an inbox following its branch's hours (New York, Mon–Fri 09:00–17:00, US holidays):
    visitor Mon 03-30 16:50 EDT (20:50Z), reply Tue 09:10 EDT (13:10Z): 600 + 600 = 1200 s; wall
    16 h 20 min = 58 800 s. W4, the same inbox: visitor Fri 2026-07-03 16:00 EDT, a US holiday
    (Independence Day observed), reply Mon 07-06 09:30: 1800 s (outside the range below).
    Working: 900, 1200, 2700 → median 1200, p90 rank 1.8: 1200 + 0.8·1500 = 2400.
    Wall: 54 900, 58 800, 225 900 → median 58 800, p90 58 800 + 0.8·167 100 = 192 480.
    """
    days = {day: [["09:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}
    inbox = make_inbox(
        make_branch(timezone="Europe/Berlin"),
        settings={"working_hours": {"enabled": True, "timezone": "Europe/Berlin", "days": days}},
    )
    supervisor = make_user("sup3", role=AgentRole.SUPERVISOR)
    operator = make_user("op9")
    for asked, answered in (
        (utc(2026, 3, 27, 16, 30), utc(2026, 3, 30, 7, 15)),
        (utc(2026, 3, 31, 15, 50), utc(2026, 4, 1, 7, 5)),
    ):
        conversation = make_conversation(inbox, at=asked, assignee=operator)
        make_message(conversation, at=asked)
        make_message(conversation, at=answered, direction="out", user=operator)
    weekdays = {day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}
    new_york = make_branch(timezone="America/New_York", working_hours=weekdays, holiday_calendar="US")
    follows = make_inbox(new_york, settings={"working_hours": {"enabled": True, "use_branch_hours": True}})
    for asked, answered in (
        (utc(2026, 3, 30, 20, 50), utc(2026, 3, 31, 13, 10)),
        (utc(2026, 7, 3, 20), utc(2026, 7, 6, 13, 30)),
    ):
        conversation = make_conversation(follows, at=asked, assignee=operator)
        make_message(conversation, at=asked)
        make_message(conversation, at=answered, direction="out", user=operator)
    do_rebuild_report_facts()
    assert do_fill_working_seconds() == 4
    api = api_for(supervisor)
    figures = summary(api, start="2026-03-27", end="2026-03-31")
    assert figures["first_response_working_hours"] == {"count": 3, "median": 1200.0, "p90": 2400.0}
    assert figures["first_response"] == {"count": 3, "median": 58800.0, "p90": 192480.0}
    # W4 alone: Friday the 3rd is a holiday, Monday 09:00–09:30 counts.
    july = summary(api, start="2026-07-03", end="2026-07-03", tz="America/New_York")
    assert july["first_response_working_hours"] == {"count": 1, "median": 1800.0, "p90": 1800.0}


def test_open_seconds_over_daylight_saving_change():
    # Open all Sunday (00:00–24:00) in Berlin on 2026-03-29: the day has 23 hours.
    days = {"sun": [["00:00", "24:00"]]}
    assert schedule_open_seconds(days, [], "Europe/Berlin", utc(2026, 3, 28, 12), utc(2026, 3, 30, 12)) == 23 * 3600
    assert schedule_open_seconds(days, [], "Europe/Berlin", utc(2026, 10, 24, 12), utc(2026, 10, 26, 12)) == 25 * 3600
    # A holiday is closed.
    assert schedule_open_seconds(days, ["2026-03-29"], "Europe/Berlin", utc(2026, 3, 28), utc(2026, 3, 31)) == 0


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"start": "2026-03-30", "end": "2026-03-29"}, 400),
        ({"start": "2025-01-01", "end": "2026-01-02"}, 400),
        ({"start": "2026-03-29", "end": "2026-03-29", "tz": "Mars/Olympus"}, 400),
        ({"start": "2026-03-29", "end": "2026-03-29", "tz": "../../etc/passwd"}, 400),
        ({"start": "2026-03-29", "end": "2026-03-29", "tz": "a\x00b"}, 400),
        ({"start": "9999-12-31", "end": "9999-12-31"}, 400),
        ({"start": "0001-01-01", "end": "0001-01-01", "tz": "America/New_York"}, 400),
        ({"start": "2026-03-29"}, 400),
        ({"start": "yesterday", "end": "2026-03-29"}, 400),
        ({"start": "2026-03-29", "end": "2026-03-29", "branch": 999999}, 404),
        ({"start": "2026-03-29", "end": "2026-03-29", "label": 999999}, 404),
        ({"start": "2026-03-29", "end": "2026-03-29", "region": 999999}, 404),
        ({"start": "2026-03-29", "end": "2026-03-29", "operator": 999999}, 404),
    ],
)
def test_bad_input(params, status):
    api = api_for(make_user("sup4", role=AgentRole.SUPERVISOR))
    for path in ("reports/summary", "reports/operators/csv"):
        response = api.get(path, params)
        assert response.status_code == status, (path, params, response.content)
        assert response["Content-Type"] == "application/json"


def test_no_token_is_401(world):
    assert Api(None).get("reports/summary", BERLIN_DAY).status_code == 401


# The token with its user and profile, one query (its ``last_used_at`` is written at most once a
# while: a first request warms it), then the report's grouped queries: the conversations' and the
# audit rows' figures (summary, series; the heat map and the ratings need one of them), the tables
# also their groups' names, the operators table the presence periods too. On PostgreSQL the report
# runs in a transaction of its own that sets ``plan_cache_mode`` (``reports._planned_for_its_range``):
# inside a test's transaction a savepoint, the SET and the savepoint's release, three more.
QUERIES = {"summary": 3, "operators": 5, "branches": 4, "regions": 4, "series": 3, "heatmap": 2, "ratings": 2}


def planning() -> int:
    return 3 if connection.vendor == "postgresql" else 0


def test_query_counts_are_pinned_whatever_the_rows(world):
    api = api_for(world["supervisor"])
    api.get("reports/summary", BERLIN_DAY)

    def counts() -> dict[str, int]:
        result = {}
        for name in QUERIES:
            for suffix in ("", "/csv") if name != "summary" else ("",):
                with CaptureQueriesContext(connection) as queries:
                    assert api.get(f"reports/{name}{suffix}", BERLIN_DAY).status_code == 200
                result[f"{name}{suffix}"] = len(queries)
        return result

    before = counts()
    assert before == {key: QUERIES[key.split("/")[0]] + planning() for key in before}, before
    inbox = world["inbox_a"]
    for minute in range(20):
        conversation = make_conversation(inbox, at=utc(2026, 3, 29, 15, minute), assignee=world["op2"])
        make_message(conversation, at=utc(2026, 3, 29, 15, minute))
        make_audit(
            conversation, "conversation.status", at=utc(2026, 3, 29, 16), payload={"from": "open", "to": "resolved"}
        )
    assert counts() == before


def test_query_counts_with_filters_and_for_an_operator(world):
    """Each filter costs one query (is it in reach?); an operator's report is always their own."""
    supervisor, operator = api_for(world["supervisor"]), api_for(world["op1"])
    filters = {
        "branch": world["branch_a"].pk,
        "region": world["region"].pk,
        "inbox": world["inbox_a"].pk,
        "operator": world["op1"].pk,
        "label": world["label"].pk,
    }
    for api, params, expected in (
        (supervisor, filters, 3 + 5),  # no conversation matches them all: the same count
        (supervisor, {"label": world["label"].pk}, 4),
        (operator, {}, 3),
        (operator, {"branch": world["branch_a"].pk}, 4),
    ):
        api.get("reports/summary", BERLIN_DAY)
        with CaptureQueriesContext(connection) as queries:
            assert api.get("reports/summary", {**BERLIN_DAY, **params}).status_code == 200
        assert len(queries) == expected + planning(), [query["sql"][:80] for query in queries]


def test_the_ratings_list_is_the_newest_limit_and_the_csv_has_them_all(world):
    api = api_for(world["supervisor"])
    every = api.get("reports/ratings", BERLIN_DAY).json()["results"]
    assert len(every) == 4  # C1, C2 twice, C5: under the default limit (100)
    newest = api.get("reports/ratings", {**BERLIN_DAY, "limit": 2}).json()["results"]
    assert newest == every[:2]
    for bad in ("0", "1001", "two"):
        response = api.get("reports/ratings", {**BERLIN_DAY, "limit": bad})
        assert response.status_code == 400 and "limit" in response.json()["errors"], bad
    rows = list(
        csv.DictReader(io.StringIO(api.get("reports/ratings/csv", {**BERLIN_DAY, "limit": 1}).content.decode()))
    )
    assert len(rows) == 4  # an export is whole: the limit is the JSON list's


def test_a_purged_conversations_audit_rows_do_not_count(world):
    """Retention deletes a conversation; its audit rows stay, without it (SET NULL): a supervisor's
    unfiltered report, which reads the audit rows without joining the conversations, leaves them
    out as a filtered one does."""
    gone = make_conversation(world["inbox_a"], at=utc(2026, 3, 20))
    make_audit(gone, "conversation.status", at=utc(2026, 3, 29, 9), payload={"from": "open", "to": "resolved"})
    make_audit(gone, "conversation.transferred", at=utc(2026, 3, 29, 9), payload={})
    api = api_for(world["supervisor"])
    counted = summary(api)
    assert (counted["conversations"]["resolved"], counted["transfers"]) == (5, 2)
    gone.delete()
    for params in ({}, {"branch": world["branch_a"].pk}):
        figures = summary(api, **params)
        assert (figures["conversations"]["resolved"], figures["transfers"]) == (4 - ("branch" in params), 1), params


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_report_is_planned_for_its_own_range_and_leaves_the_session_as_it_was(world):
    """PostgreSQL: the report's statements run with ``plan_cache_mode = force_custom_plan``, set for
    its own transaction only; the connection's next statements (the send path's) keep the default.
    (No test transaction around it here: the report's transaction is the outermost, as in a view.)"""
    if connection.vendor != "postgresql":
        pytest.skip("plan_cache_mode is PostgreSQL's")
    api = api_for(world["supervisor"])
    with CaptureQueriesContext(connection) as queries:
        assert api.get("reports/operators", BERLIN_DAY).status_code == 200
    statements = [query["sql"] for query in queries]
    setting = statements.index("SET LOCAL plan_cache_mode = force_custom_plan")
    assert not connection.in_atomic_block
    assert any("messenger_conversation" in sql for sql in statements[setting:])
    with connection.cursor() as cursor:
        cursor.execute("SHOW plan_cache_mode")
        assert cursor.fetchone()[0] == "auto"
